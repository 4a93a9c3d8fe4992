"""The dashboard's filters: a period in the organisation's time zone (today, 7 or 30 days, or a
custom range of days), and a brand, a channel (handle) and a team. Parsed from the query string;
a value that does not parse, or names another organisation's brand, is refused with a message
and left out (the page still shows, with the defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.http import QueryDict
from django.utils import timezone

from careinbox.accounts.models import Organization, Team
from channels_social.models import Brand, SocialAccount

PERIODS = {"today": "Today", "7d": "7 days", "30d": "30 days", "custom": "Custom"}
DEFAULT_PERIOD = "7d"
MAX_DAYS = 366


@dataclass(frozen=True)
class ReportFilter:
    organization: Organization
    now: datetime
    period: str
    start: date  # first day, inclusive, organisation-local
    end: date  # last day, inclusive
    brand_id: int | None = None
    channel_id: int | None = None
    team_id: int | None = None
    errors: tuple[str, ...] = field(default=())

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.organization.time_zone or "UTC")

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    @property
    def starts_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=self.zone)

    def dimensions(self, prefix: str = "") -> Q:
        """The brand, channel and team filters, on a fact table."""
        q = Q()
        if self.brand_id:
            q &= Q(**{f"{prefix}brand_id": self.brand_id})
        if self.channel_id:
            q &= Q(**{f"{prefix}social_account_id": self.channel_id})
        if self.team_id:
            q &= Q(**{f"{prefix}team_id": self.team_id})
        return q

    def params(self) -> dict[str, str]:
        params = {"period": self.period}
        if self.period == "custom":
            params |= {"from": self.start.isoformat(), "to": self.end.isoformat()}
        for name, value in (
            ("brand", self.brand_id),
            ("channel", self.channel_id),
            ("team", self.team_id),
        ):
            if value:
                params[name] = str(value)
        return params

    def querystring(self, **extra: Any) -> str:
        return urlencode(self.params() | {k: str(v) for k, v in extra.items() if v is not None})

    def with_period(self, period: str) -> ReportFilter:
        return replace(self, period=period)


def _local_today(organization: Organization, now: datetime) -> date:
    return timezone.localtime(now, ZoneInfo(organization.time_zone or "UTC")).date()


def _day(text: str, name: str, errors: list[str]) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(f"“{text[:20]}” is not a date for {name} (use YYYY-MM-DD).")
        return None


def parse_filter(
    query: QueryDict | dict[str, str], organization: Organization, *, now: datetime | None = None
) -> ReportFilter:
    now = now or timezone.now()
    today = _local_today(organization, now)
    errors: list[str] = []
    period = query.get("period") or DEFAULT_PERIOD
    if period not in PERIODS:
        errors.append(f"There is no period “{period[:20]}”; showing {PERIODS[DEFAULT_PERIOD]}.")
        period = DEFAULT_PERIOD
    start, end = today - timedelta(days=6), today
    if period == "today":
        start = today
    elif period == "30d":
        start = today - timedelta(days=29)
    elif period == "custom":
        first = _day(query.get("from") or "", "from", errors)
        last = _day(query.get("to") or "", "to", errors)
        if first and last and first > last:
            errors.append("The range ends before it starts.")
        elif first and last and (last - first).days >= MAX_DAYS:
            errors.append(f"A range is at most {MAX_DAYS} days.")
        elif first and last:
            start, end = first, last
        if (start, end) != (first, last):
            period = DEFAULT_PERIOD
    ids: dict[str, int | None] = {}
    for name, model in (("brand", Brand), ("channel", SocialAccount), ("team", Team)):
        raw = query.get(name) or ""
        ids[name] = None
        if not raw:
            continue
        if raw.isdigit() and model.objects.filter(organization=organization, pk=raw).exists():  # type: ignore[attr-defined]
            ids[name] = int(raw)
        else:
            errors.append(f"There is no such {name} in {organization.name}; showing every {name}.")
    return ReportFilter(
        organization=organization,
        now=now,
        period=period,
        start=start,
        end=end,
        brand_id=ids["brand"],
        channel_id=ids["channel"],
        team_id=ids["team"],
        errors=tuple(errors),
    )
