"""The SLA policy form of the settings area.

The calendar is edited as fields a person can fill in (24/7 or hours per weekday, a holiday
calendar, custom closed dates and special hours) and stored as ``BusinessCalendar.to_config()``;
the calendar itself validates it, and its reasons are shown next to the field they concern.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import available_timezones

import holidays
from django import forms

from careinbox.accounts.models import Organization
from channels_social.models import Brand, Platform, SocialAccount
from monitoring.calendars import WEEKDAYS, BusinessCalendar, CalendarError, OpeningInterval
from monitoring.models import SlaPolicy
from tickets.models import Priority

_TARGETS = tuple(
    f"{metric}_minutes"
    for metric in ("first_response", "next_response", "take_offline", "resolution", "close_out")
)
ALWAYS_OPEN = "always"
BUSINESS_HOURS = "hours"
WEEKDAY_LABELS = dict(zip(WEEKDAYS, ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), strict=True))
_SPECIAL_LINE = re.compile(r"^\s*(\S+)\s+(.+?)\s*$")


@cache
def time_zone_choices() -> list[tuple[str, str]]:
    return [(zone, zone) for zone in sorted(available_timezones()) if "/" in zone or zone == "UTC"]


@cache
def holiday_country_choices() -> list[tuple[str, str]]:
    names: dict[str, str] = {}
    for class_name, codes in holidays.registry.COUNTRIES.items():
        names[codes[1]] = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", codes[0]) or class_name
    supported = holidays.list_supported_countries()
    countries = sorted(
        ((code, f"{names.get(code, code)} ({code})") for code in supported),
        key=lambda choice: choice[1],
    )
    return [("", "No public holidays"), *countries]


def holiday_subdivisions(country: str) -> list[str]:
    return list(holidays.list_supported_countries().get(country, []))


if TYPE_CHECKING:
    _ModelChoiceField = forms.ModelChoiceField[SocialAccount]
    _PolicyModelForm = forms.ModelForm[SlaPolicy]
else:  # not subscriptable at run time
    _ModelChoiceField = forms.ModelChoiceField
    _PolicyModelForm = forms.ModelForm


class HandleChoiceField(_ModelChoiceField):
    def label_from_instance(self, obj: SocialAccount) -> str:
        return f"@{obj.username} ({obj.get_platform_display()})"


class SlaPolicyForm(_PolicyModelForm):
    """Create or edit one policy of ``organization``."""

    calendar_kind = forms.ChoiceField(
        label="Hours",
        choices=[(ALWAYS_OPEN, "24/7"), (BUSINESS_HOURS, "Business hours")],
        widget=forms.RadioSelect,
        initial=BUSINESS_HOURS,
    )
    time_zone = forms.ChoiceField(label="Time zone", choices=time_zone_choices)
    holiday_country = forms.ChoiceField(
        label="Public holidays", choices=holiday_country_choices, required=False
    )
    holiday_subdivision = forms.CharField(
        label="Region",
        required=False,
        max_length=10,
        help_text="The holidays library's code, e.g. ENG for England in GB, BY for Bavaria "
        "in DE; empty: the country's national holidays only.",
    )
    closed_dates = forms.CharField(
        label="Other closed dates",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One date a line (or comma-separated), e.g. 2026-12-24.",
    )
    special_hours = forms.CharField(
        label="Special hours",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="A date and its hours a line, e.g. 2026-12-31 09:00-13:00 (or “closed”); "
        "they win over holidays and the weekday.",
    )
    apply_to_running = forms.TypedChoiceField(
        label="When targets or hours change",
        choices=[
            ("yes", "Recompute the due times of running timers (recorded on each ticket)"),
            ("no", "Keep running timers as they are; apply to timers started from now on"),
        ],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
        initial="yes",
    )

    class Meta:
        model = SlaPolicy
        fields = [
            "name",
            "brand",
            "platform",
            "social_account",
            "priority",
            "first_response_minutes",
            "next_response_minutes",
            "take_offline_minutes",
            "resolution_minutes",
            "close_out_minutes",
            "warning_percent",
        ]
        field_classes = {"social_account": HandleChoiceField}
        labels = {
            "first_response_minutes": "First response",
            "next_response_minutes": "Next response",
            "take_offline_minutes": "Take offline",
            "resolution_minutes": "Resolution",
            "close_out_minutes": "Public close-out",
            "warning_percent": "Warn at (% of the target)",
            "platform": "Platform",
        }

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.organization = organization
        self.instance.organization = organization
        brand_field = self.fields["brand"]
        assert isinstance(brand_field, forms.ModelChoiceField)
        brand_field.queryset = Brand.objects.filter(organization=organization).order_by("name")
        brand_field.empty_label = "Any brand"
        handle_field = self.fields["social_account"]
        assert isinstance(handle_field, forms.ModelChoiceField)
        handle_field.queryset = SocialAccount.objects.filter(organization=organization).order_by(
            "platform", "username"
        )
        handle_field.empty_label = "Any handle"
        platform_field = self.fields["platform"]
        assert isinstance(platform_field, forms.ChoiceField)
        platform_field.choices = [("", "Any platform"), *Platform.choices]
        priority_field = self.fields["priority"]
        assert isinstance(priority_field, forms.ChoiceField)
        priority_field.choices = [("", "Any priority"), *Priority.choices]
        for target in _TARGETS:
            self.fields[target].widget.attrs["placeholder"] = "no target"
        for weekday in WEEKDAYS:
            self.fields[f"hours_{weekday}"] = forms.CharField(
                label=WEEKDAY_LABELS[weekday],
                required=False,
                max_length=120,
                widget=forms.TextInput(attrs={"placeholder": "closed"}),
            )
        if not self.is_bound:
            self._initial_calendar()

    def _initial_calendar(self) -> None:
        policy = self.instance
        if policy.pk is None:
            self.initial["time_zone"] = self.organization.time_zone or "UTC"
            for weekday in WEEKDAYS[:5]:
                self.initial[f"hours_{weekday}"] = "09:00-17:00"
            return
        config = policy.calendar_config()
        calendar = BusinessCalendar.from_config(config)
        self.initial["time_zone"] = policy.time_zone
        always = calendar.weekly_hours == BusinessCalendar.always_open().weekly_hours
        self.initial["calendar_kind"] = ALWAYS_OPEN if always else BUSINESS_HOURS
        for weekday in WEEKDAYS:
            text = config["hours"].get(weekday, "closed")
            self.initial[f"hours_{weekday}"] = "" if text == "closed" else text
        self.initial["holiday_country"] = config.get("holiday_country") or ""
        self.initial["holiday_subdivision"] = config.get("holiday_subdivision") or ""
        self.initial["closed_dates"] = "\n".join(config.get("closed_dates", []))
        self.initial["special_hours"] = "\n".join(
            f"{day} {hours}" for day, hours in config.get("special_hours", {}).items()
        )
        self.initial["apply_to_running"] = "yes" if policy.apply_to_running else "no"

    def weekday_fields(self) -> list[forms.BoundField]:
        return [self[f"hours_{weekday}"] for weekday in WEEKDAYS]

    def clean_holiday_subdivision(self) -> str:
        typed = self.cleaned_data["holiday_subdivision"].strip()
        country = self.cleaned_data.get("holiday_country") or ""
        if not typed:
            return ""
        if not country:
            raise forms.ValidationError("Choose the country of this region first.")
        known = holiday_subdivisions(country)
        # The library's own spelling, whatever the case typed ("by" is BY).
        subdivision = next((code for code in known if code.lower() == typed.lower()), typed)
        if subdivision not in known:
            listed = ", ".join(known) if known else "none"
            raise forms.ValidationError(
                f"{country} has no region {subdivision!r} in the holidays library; its regions: "
                f"{listed}."
            )
        return subdivision

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not any(cleaned.get(field) for field in _TARGETS):
            self.add_error(None, "Give the policy at least one target.")
        config = self._calendar_config(cleaned)
        if config is not None:
            try:
                calendar = BusinessCalendar.from_config(config)
            except CalendarError as error:
                self.add_error(_field_for(str(error)), str(error))
            else:
                self.instance.time_zone = calendar.time_zone
                self.instance.calendar = calendar.to_config()
        self.instance.apply_to_running = bool(cleaned.get("apply_to_running", True))
        return cleaned

    def _calendar_config(self, cleaned: dict[str, Any]) -> dict[str, Any] | None:
        """The calendar settings, each piece checked where the admin typed it; None (and the
        errors added) when one is wrong."""
        time_zone = cleaned.get("time_zone")
        problems = False
        if cleaned.get("calendar_kind") == ALWAYS_OPEN:
            hours = dict.fromkeys(WEEKDAYS, "00:00-24:00")
        else:
            hours = {}
            for weekday in WEEKDAYS:
                text = (cleaned.get(f"hours_{weekday}") or "").strip()
                try:
                    for part in text.split(",") if text and text.lower() != "closed" else ():
                        OpeningInterval.parse(part)
                except CalendarError as error:
                    self.add_error(f"hours_{weekday}", str(error))
                    problems = True
                hours[weekday] = text or "closed"
        special: dict[str, str] = {}
        for line in (cleaned.get("special_hours") or "").splitlines():
            if not line.strip():
                continue
            match = _SPECIAL_LINE.match(line)
            if match is None or not _is_date(match.group(1)):
                self.add_error(
                    "special_hours",
                    f"{line.strip()!r}: write a date like 2026-12-31, then its hours",
                )
                problems = True
                continue
            special[match.group(1)] = match.group(2)
        closed = [
            part.strip()
            for part in re.split(r"[,\n]", cleaned.get("closed_dates") or "")
            if part.strip()
        ]
        for text in closed:
            if not _is_date(text):
                self.add_error("closed_dates", f"{text!r} is not a date like 2026-12-24")
                problems = True
        if problems or not time_zone:
            return None
        return {
            "time_zone": time_zone,
            "hours": hours,
            "holiday_country": cleaned.get("holiday_country") or None,
            "holiday_subdivision": cleaned.get("holiday_subdivision") or None,
            "closed_dates": closed,
            "special_hours": special,
        }


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _field_for(reason: str) -> str | None:
    """The form field a calendar's reason concerns (its text names the setting)."""
    lowered = reason.lower()
    if "time zone" in lowered:
        return "time_zone"
    if "holiday" in lowered:
        return "holiday_country"
    if "both a closed date" in lowered:
        return "closed_dates"
    for weekday, label in zip(
        WEEKDAYS,
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        strict=True,
    ):
        if lowered.startswith(label) or f"{label}'s" in lowered:
            return f"hours_{weekday}"
    return None
