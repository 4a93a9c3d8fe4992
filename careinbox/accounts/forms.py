"""The settings area's forms: they check input and word the errors; the services make changes."""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from typing import Any

from django import forms
from django.contrib.auth.forms import SetPasswordForm

from careinbox.accounts.models import (
    AuditEntry,
    Membership,
    Organization,
    Role,
    Team,
    User,
    validate_time_zone,
)

# What the capacity field accepts: routing hands a member at most this many open tickets.
MAX_CAPACITY = 500


@functools.cache
def time_zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


class InviteForm(forms.Form):
    name = forms.CharField(max_length=150, label="Name")
    email = forms.EmailField(label="E-mail")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.AGENT, label="Role")


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, label="Role")


class AvailabilityForm(forms.Form):
    is_away = forms.BooleanField(required=False, label="Away")
    capacity = forms.IntegerField(
        min_value=0,
        max_value=MAX_CAPACITY,
        label="Capacity",
        help_text="The most open tickets routing gives this member at once.",
    )


class TeamForm(forms.Form):
    name = forms.CharField(max_length=120, label="Team name")

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("A team needs a name.")
        return name


def _member_name(membership: Membership) -> str:
    return membership.user.get_full_name() or membership.user.username


class TeamMemberForm(forms.Form):
    """Pick one of the organisation's active members who is not in the team yet."""

    membership = forms.ModelChoiceField(
        queryset=Membership.objects.none(), label="Add a member", empty_label="Choose a member"
    )

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["membership"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = (
            Membership.objects.filter(organization_id=team.organization_id, is_active=True)
            .exclude(teams=team)
            .select_related("user")
            .order_by("user__first_name", "user__last_name", "user__username")
        )
        field.label_from_instance = _member_name  # type: ignore[method-assign,assignment]


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=200, label="Organisation name")
    # A text box with a datalist of every IANA zone: type "Berl" and pick Europe/Berlin.
    time_zone = forms.CharField(
        max_length=64,
        label="Time zone",
        help_text=(
            "Type part of a name (Berlin, New_York) and pick from the list. The day boundary "
            "of the dashboard and the default of new SLA calendars."
        ),
        widget=forms.TextInput(attrs={"list": "time-zones", "autocomplete": "off"}),
    )

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("The organisation needs a name.")
        return name

    def clean_time_zone(self) -> str:
        value: str = self.cleaned_data["time_zone"].strip()
        if value not in time_zone_names():
            close = difflib.get_close_matches(value, time_zone_names(), n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}?" if close else "e.g. Europe/Berlin."
            raise forms.ValidationError(
                f"“{value}” is not an IANA time zone; pick one from the list ({hint})"
            )
        validate_time_zone(value)
        return value

    @classmethod
    def for_organization(cls, organization: Organization) -> OrganizationForm:
        return cls(initial={"name": organization.name, "time_zone": organization.time_zone})


class AuditFilterForm(forms.Form):
    """GET filters of the audit trail: what kind of object, and who changed it."""

    object_type = forms.ChoiceField(required=False, label="Object")
    actor = forms.ChoiceField(required=False, label="Changed by")

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        entries = AuditEntry.objects.filter(organization=organization)
        types = entries.order_by("object_type").values_list("object_type", flat=True).distinct()
        type_field = self.fields["object_type"]
        assert isinstance(type_field, forms.ChoiceField)
        type_field.choices = [("", "Every object"), *((kind, kind) for kind in types)]
        actors = User.objects.filter(pk__in=entries.exclude(actor=None).values("actor")).order_by(
            "first_name", "last_name", "username"
        )
        actor_field = self.fields["actor"]
        assert isinstance(actor_field, forms.ChoiceField)
        actor_field.choices = [
            ("", "Anyone"),
            *((str(user.pk), user.get_full_name() or user.username) for user in actors),
        ]


class AcceptInvitationForm(SetPasswordForm):  # type: ignore[type-arg]
    """Choose a password: checked by every AUTH_PASSWORD_VALIDATORS validator for this user."""
