"""The dashboard's figures, read from the roll-ups (``TicketFact``, ``SlaFact``) in a fixed
number of queries whatever the number of tickets. Each figure is a ``Table`` (its definition,
headers, rows of cells that link to the tickets behind them) that the page shows with a chart
and the CSV export writes as it is. Definitions: ``monitoring.reports.definitions``."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, cast

from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.expressions import RawSQL
from django.urls import reverse

from careinbox.accounts.models import Team, User
from channels_social.models import SocialAccount
from monitoring.models import (
    Metric,
    SlaDayDimension,
    SlaDayStat,
    SlaFact,
    SlaOutcome,
    TicketDayDimension,
    TicketDayStat,
    TicketFact,
    TimeDayStat,
    TimeMetric,
)
from monitoring.reports import backlog, histograms, responsiveness, running
from monitoring.reports.definitions import Definition, definition
from monitoring.reports.filters import ReportFilter
from monitoring.reports.stats import ALL, percentiles
from tickets.closing import NOT_OWED_REASONS
from tickets.models import Priority, Sentiment, SkipReason
from tickets.templatetags.care import duration

# Facebook's "very responsive" badge (PLATFORMS.md): over the last 7 days.
BADGE_RATE_PERCENT = 90
BADGE_MINUTES = 15
RESPONSIVENESS_DAYS = 7
# Backlog age buckets: (label, from hours, to hours).
AGE_BUCKETS = (
    ("under 1 h", 0, 1),
    ("1-4 h", 1, 4),
    ("4-24 h", 4, 24),
    ("1-3 days", 24, 72),
    ("over 3 days", 72, None),
)
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
BREACH_LIST_LIMIT = 25


@dataclass(frozen=True)
class Cell:
    value: Any  # what the CSV writes
    text: str = ""  # what the page shows (the value when empty)
    href: str = ""  # the tickets behind it

    def __str__(self) -> str:
        return self.text or ("" if self.value is None else str(self.value))


@dataclass
class Table:
    key: str
    headers: list[str]
    rows: list[list[Cell]]
    summary: list[tuple[str, Cell]] = field(default_factory=list)  # the big numbers
    chart: Any = None  # set by the view (monitoring.reports.charts)

    @property
    def definition(self) -> Definition:
        return definition(self.key)


def percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def percent_text(value: float | None) -> str:
    return "—" if value is None else f"{value:g}%"


def seconds_text(value: float | None) -> str:
    return "—" if value is None else duration(timedelta(seconds=round(value)))


class FactReport:
    """Every figure for one filter, each from the per-ticket facts (``TicketFact``,
    ``SlaFact``): one or a few queries each. The reference ``Report`` is checked against; the
    dashboard reads ``Report`` (the daily sums where a figure is made of sums)."""

    def __init__(self, filt: ReportFilter) -> None:
        self.filt = filt
        self.org = filt.organization
        self.now = filt.now
        self._sla_groups_cache: list[dict[str, Any]] | None = None

    # Querysets -------------------------------------------------------------------------------

    def tickets_in_period(self) -> QuerySet[TicketFact]:
        return TicketFact.objects.filter(
            self.filt.dimensions(),
            organization=self.org,
            opened_day__gte=self.filt.start,
            opened_day__lte=self.filt.end,
        )

    def timers_in_period(self) -> QuerySet[SlaFact]:
        return SlaFact.objects.filter(
            self.filt.dimensions(),
            organization=self.org,
            started_day__gte=self.filt.start,
            started_day__lte=self.filt.end,
        )

    def breached_q(self) -> Q:
        """Breached, or still running past its due time (the sweep has not come round yet)."""
        return Q(outcome=SlaOutcome.BREACHED) | Q(outcome=SlaOutcome.RUNNING, due_at__lt=self.now)

    def _compliance_counts(self) -> dict[str, Any]:
        return {
            "met": Count("pk", filter=Q(outcome=SlaOutcome.MET)),
            "breached": Count("pk", filter=self.breached_q()),
            "total": Count("pk"),
        }

    def link(self, source: str, **params: Any) -> str:
        return (
            reverse("monitoring:report-tickets")
            + "?"
            + self.filt.querystring(source=source, **params)
        )

    def _compliance_cells(self, met: int, breached: int, **params: Any) -> list[Cell]:
        return [
            Cell(percent(met, met + breached), percent_text(percent(met, met + breached))),
            Cell(met, href=self.link("sla", outcome="met", **params) if met else ""),
            Cell(breached, href=self.link("sla", outcome="breached", **params) if breached else ""),
        ]

    # SLA ---------------------------------------------------------------------------------------

    def _sla_groups(self) -> list[dict[str, Any]]:
        """The period's timers counted once by day, priority and target (met, breached,
        total): compliance by target, by priority and by day are sums of these groups, so the
        three figures read the period's timers once, not three times. Kept on the report."""
        if self._sla_groups_cache is None:
            self._sla_groups_cache = list(
                self.timers_in_period()
                .values("started_day", "priority", "metric")
                .annotate(**self._compliance_counts())
                .order_by()
            )
        return self._sla_groups_cache

    def _sla_sums(self, *keys: str) -> dict[Any, dict[str, int]]:
        sums: dict[Any, dict[str, int]] = {}
        for row in self._sla_groups():
            key = tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]]
            tally = sums.setdefault(key, {"met": 0, "breached": 0, "total": 0})
            for name in tally:
                tally[name] += row[name]
        return sums

    def sla_by_target(self) -> Table:
        counts = self._sla_sums("metric")
        rows = []
        for metric in Metric:
            row = counts.get(metric.value, {"met": 0, "breached": 0, "total": 0})
            pending = row["total"] - row["met"] - row["breached"]
            rows.append(
                [
                    Cell(metric.label),
                    *self._compliance_cells(row["met"], row["breached"], metric=metric.value),
                    Cell(pending),
                ]
            )
        return Table("sla_by_target", ["Target", "Compliance", "Met", "Breached", "Pending"], rows)

    def sla_by_priority(self) -> Table:
        counts = self._sla_sums("priority", "metric")
        rows = []
        for level in Priority:
            cells = [Cell(level.label)]
            for metric in Metric:
                row = counts.get((level.value, metric.value), {"met": 0, "breached": 0})
                value = percent(row["met"], row["met"] + row["breached"])
                cells.append(
                    Cell(
                        value,
                        f"{percent_text(value)} ({row['met']}/{row['met'] + row['breached']})",
                        self.link("sla", metric=metric.value, priority=level.value)
                        if row["met"] + row["breached"]
                        else "",
                    )
                )
            rows.append(cells)
        return Table("sla_by_priority", ["Priority", *[m.label for m in Metric]], rows)

    def sla_over_time(self) -> Table:
        counts: dict[date, dict[str, int]] = {}
        for row in self._sla_groups():
            tally = counts.setdefault(row["started_day"], {"fm": 0, "fb": 0, "am": 0, "ab": 0})
            if row["metric"] == Metric.FIRST_RESPONSE:
                tally["fm"] += row["met"]
                tally["fb"] += row["breached"]
            tally["am"] += row["met"]
            tally["ab"] += row["breached"]
        rows = []
        for day in self.filt.days:
            c = counts.get(day, {"fm": 0, "fb": 0, "am": 0, "ab": 0})
            first, every = percent(c["fm"], c["fm"] + c["fb"]), percent(c["am"], c["am"] + c["ab"])
            rows.append(
                [
                    Cell(day.isoformat(), day.strftime("%a %d %b")),
                    Cell(
                        first,
                        percent_text(first),
                        self.link("sla", metric=Metric.FIRST_RESPONSE, day=day.isoformat()),
                    ),
                    Cell(every, percent_text(every), self.link("sla", day=day.isoformat())),
                    Cell(c["am"] + c["ab"]),
                ]
            )
        return Table(
            "sla_over_time",
            ["Day", "First response compliance", "All targets compliance", "Decided timers"],
            rows,
        )

    def _response_percentiles(self) -> tuple[list[float | None], list[float | None]]:
        """The period's first response and resolution p50 and p90."""
        tickets = self.tickets_in_period()
        first = percentiles(tickets, "first_response_seconds", [0.5, 0.9]).get(ALL, [None, None])
        resolution = percentiles(tickets, "resolution_seconds", [0.5, 0.9]).get(ALL, [None, None])
        return first, resolution

    def response_times(self) -> Table:
        first, resolution = self._response_percentiles()
        counts = self._response_counts()
        rows = [
            [
                Cell("First response"),
                Cell(first[0], seconds_text(first[0])),
                Cell(first[1], seconds_text(first[1])),
                Cell(counts["first"], href=self.link("tickets", answered="yes")),
            ],
            [
                Cell("Resolution"),
                Cell(resolution[0], seconds_text(resolution[0])),
                Cell(resolution[1], seconds_text(resolution[1])),
                Cell(counts["resolved"], href=self.link("tickets", resolved="yes")),
            ],
        ]
        return Table("response_times", ["Time", "p50", "p90", "Tickets"], rows)

    def _response_counts(self) -> dict[str, int]:
        return self.tickets_in_period().aggregate(
            first=Count("pk", filter=Q(first_response_seconds__isnull=False)),
            resolved=Count("pk", filter=Q(resolution_seconds__isnull=False)),
        )

    # Now ---------------------------------------------------------------------------------------

    def waiting(self) -> Table:
        owed = SlaFact.objects.filter(
            self.filt.dimensions(),
            organization=self.org,
            metric=Metric.FIRST_RESPONSE,
            owed=True,
        ).aggregate(total=Count("pk"), past_due=Count("pk", filter=Q(due_at__lt=self.now)))
        return Table(
            "waiting",
            ["", "Tickets"],
            [
                [Cell("Waiting for a first reply"), Cell(owed["total"], href=self.link("waiting"))],
                [
                    Cell("Past due"),
                    Cell(owed["past_due"], href=self.link("waiting", past_due="yes")),
                ],
            ],
        )

    def open_facts(self) -> QuerySet[TicketFact]:
        return TicketFact.objects.filter(
            self.filt.dimensions(), organization=self.org, is_open=True
        )

    def _age_counts(self) -> dict[str, Any]:
        """The open backlog's count and its age buckets (``b0`` ...), as aggregates."""
        counts: dict[str, Any] = {"total": Count("pk")}
        for n, (_label, low, high) in enumerate(AGE_BUCKETS):
            q = Q(opened_at__lte=self.now - timedelta(hours=low))
            if high is not None:
                q &= Q(opened_at__gt=self.now - timedelta(hours=high))
            counts[f"b{n}"] = Count("pk", filter=q)
        return counts

    def _backlog_counts(self) -> dict[str, int]:
        return self.open_facts().aggregate(**self._age_counts())

    def backlog(self) -> Table:
        got = self._backlog_counts()
        rows = [
            [
                Cell(label),
                Cell(got[f"b{n}"], href=self.link("backlog", age=n) if got[f"b{n}"] else ""),
            ]
            for n, (label, _low, _high) in enumerate(AGE_BUCKETS)
        ]
        rows.append([Cell("All open"), Cell(got["total"], href=self.link("backlog"))])
        return Table("backlog", ["Age", "Open tickets"], rows)

    # Volume ------------------------------------------------------------------------------------

    def volume_by_channel(self) -> Table:
        rows = [
            [
                Cell(
                    f"{row['social_account__platform'] or row['platform']} "
                    f"@{row['social_account__username'] or '?'}"
                ),
                Cell(row["n"], href=self.link("tickets", channel=row["social_account_id"])),
            ]
            for row in self._channel_counts()
        ]
        return Table("volume_channel", ["Channel", "Tickets"], rows)

    def _channel_counts(self) -> list[dict[str, Any]]:
        return list(
            self.tickets_in_period()
            .values(
                "social_account_id",
                "social_account__username",
                "social_account__platform",
                "platform",
            )
            .annotate(n=Count("pk"))
            .order_by("-n", "social_account__username", "social_account_id", "platform")
        )

    def volume_by_brand(self) -> Table:
        rows = [
            [
                Cell(row["brand__name"]),
                Cell(row["n"], href=self.link("tickets", brand=row["brand_id"])),
            ]
            for row in self._brand_counts()
        ]
        return Table("volume_brand", ["Brand", "Tickets"], rows)

    def _brand_counts(self) -> list[dict[str, Any]]:
        return list(
            self.tickets_in_period()
            .values("brand_id", "brand__name")
            .annotate(n=Count("pk"))
            .order_by("-n", "brand__name", "brand_id")
        )

    def _hour_counts(self) -> dict[tuple[int, int], int]:
        return {
            (row["opened_weekday"], row["opened_hour"]): row["n"]
            for row in self.tickets_in_period()
            .values("opened_weekday", "opened_hour")
            .annotate(n=Count("pk"))
        }

    def heatmap(self) -> Table:
        counts = self._hour_counts()
        rows = []
        for weekday, name in enumerate(WEEKDAY_NAMES):
            cells = [Cell(name)]
            for hour in range(24):
                n = counts.get((weekday, hour), 0)
                cells.append(
                    Cell(n, href=self.link("tickets", weekday=weekday, hour=hour) if n else "")
                )
            rows.append(cells)
        return Table("heatmap", ["Day", *[f"{h:02d}" for h in range(24)]], rows)

    def _breach_timers(self) -> QuerySet[SlaFact]:
        return (
            self.timers_in_period()
            .filter(self.breached_q())
            .select_related("ticket")
            .order_by("-due_at", "-pk")[:BREACH_LIST_LIMIT]
        )

    def breaches(self) -> Table:
        timers = self._breach_timers()
        local = self.filt.zone
        rows = [
            [
                Cell(
                    fact.ticket_id,
                    f"#{fact.ticket_id} @{fact.ticket.customer_username}",
                    reverse("tickets:detail", args=[fact.ticket_id]),
                ),
                Cell(fact.get_metric_display()),
                Cell(Priority(fact.priority).label),
                Cell(fact.due_at.astimezone(local).strftime("%Y-%m-%d %H:%M")),
                Cell(
                    fact.elapsed_seconds,
                    seconds_text(fact.elapsed_seconds) if fact.elapsed_seconds else "still owed",
                ),
            ]
            for fact in timers
        ]
        return Table("breaches", ["Ticket", "Target", "Priority", "Due", "Took"], rows)

    # People ------------------------------------------------------------------------------------

    def _people(self, key: str, field_name: str) -> Table:
        handled = self._handled(field_name)
        compliance = self._compliance_by(field_name)
        medians = self._medians(field_name)
        load = self._load(field_name)
        ids = set(handled) | set(compliance) | set(load)
        param = "agent" if field_name == "agent_id" else "team"
        if field_name == "agent_id":
            names = {
                user.pk: user.get_full_name() or user.username
                for user in User.objects.filter(pk__in=ids)
            }
        else:
            names = dict(Team.objects.filter(pk__in=ids).values_list("pk", "name"))
        # Only people and teams that still exist: a deleted one's tickets have no team or
        # assignee in the facts now (SET_NULL), and its rows in the daily sums and histograms
        # (plain ids) were re-keyed to none when it was deleted (``monitoring.reports.rekey``);
        # should a row still name one (a delete that bypassed Django), it is left out here.
        ids &= set(names)
        rows = []
        for pk in sorted(ids, key=lambda pk: (names.get(pk, ""), pk)):
            row = compliance.get(pk, {"met": 0, "breached": 0})
            median = medians.get(pk, [None])[0]
            rows.append(
                [
                    Cell(names.get(pk, f"#{pk}")),
                    Cell(handled.get(pk, 0), href=self.link("tickets", **{param: pk})),
                    *self._compliance_cells(row["met"], row["breached"], **{param: pk}),
                    Cell(median, seconds_text(median)),
                    Cell(load.get(pk, 0), href=self.link("backlog", **{param: pk})),
                ]
            )
        return Table(
            key,
            [
                "Agent" if param == "agent" else "Team",
                "Handled",
                "Compliance",
                "Met",
                "Breached",
                "Median first response",
                "Open load",
            ],
            rows,
        )

    def _medians(self, field_name: str) -> dict[Any, list[float | None]]:
        """The period's median first response per agent or team (``field_name``)."""
        return percentiles(
            self.tickets_in_period().exclude(**{f"{field_name}__isnull": True}),
            "first_response_seconds",
            [0.5],
            group=field_name,
        )

    def _handled(self, field_name: str) -> dict[int, int]:
        """Tickets opened in the period, per agent or team (``field_name``)."""
        return {
            row[field_name]: row["n"]
            for row in self.tickets_in_period()
            .exclude(**{f"{field_name}__isnull": True})
            .values(field_name)
            .annotate(n=Count("pk"))
        }

    def _load(self, field_name: str) -> dict[int, int]:
        """Open tickets now, per agent or team."""
        return {
            row[field_name]: row["n"]
            for row in self.open_facts()
            .exclude(**{f"{field_name}__isnull": True})
            .values(field_name)
            .annotate(n=Count("pk"))
        }

    def _compliance_by(self, field_name: str) -> dict[int, dict[str, int]]:
        """The period's timers per agent or team: ``{"met", "breached", "total"}``."""
        return {
            row[field_name]: {k: row[k] for k in ("met", "breached", "total")}
            for row in self.timers_in_period()
            .exclude(**{f"{field_name}__isnull": True})
            .values(field_name)
            .annotate(**self._compliance_counts())
        }

    def agents(self) -> Table:
        return self._people("agents", "agent_id")

    def teams(self) -> Table:
        return self._people("teams", "team_id")

    # Outcomes ----------------------------------------------------------------------------------

    def _sentiment_counts(self) -> dict[tuple[date, str], int]:
        return {
            (row["opened_day"], row["sentiment"]): row["n"]
            for row in self.tickets_in_period()
            .values("opened_day", "sentiment")
            .annotate(n=Count("pk"))
        }

    def sentiment(self) -> Table:
        counts = self._sentiment_counts()
        rows = []
        for day in self.filt.days:
            cells = [Cell(day.isoformat(), day.strftime("%a %d %b"))]
            for mood in Sentiment:
                n = counts.get((day, mood.value), 0)
                cells.append(
                    Cell(
                        n,
                        href=self.link("tickets", day=day.isoformat(), sentiment=mood.value)
                        if n
                        else "",
                    )
                )
            rows.append(cells)
        return Table("sentiment", ["Day", *[m.label for m in Sentiment]], rows)

    def _closed_counts(self) -> dict[str, int]:
        return TicketFact.objects.filter(
            self.filt.dimensions(),
            organization=self.org,
            closed_day__gte=self.filt.start,
            closed_day__lte=self.filt.end,
        ).aggregate(total=Count("pk"), public=Count("pk", filter=Q(closed_publicly=True)))

    def closed_publicly(self) -> Table:
        got = self._closed_counts()
        share = percent(got["public"], got["total"])
        return Table(
            "closed_publicly",
            ["Closed", "Closed out publicly", "Share"],
            [
                [
                    Cell(got["total"], href=self.link("closed")),
                    Cell(got["public"], href=self.link("closed", publicly="yes")),
                    Cell(share, percent_text(share)),
                ]
            ],
        )

    def _closed_reasons(self) -> list[tuple[str, int]]:
        closed = TicketFact.objects.filter(
            self.filt.dimensions(),
            organization=self.org,
            closed_day__gte=self.filt.start,
            closed_day__lte=self.filt.end,
            closed_publicly=False,
        )
        return list(
            closed.values_list("closed_reason")
            .annotate(n=Count("pk"))
            .order_by("-n", "closed_reason")
        )

    def closed_without_close_out(self) -> Table:
        counts = self._closed_reasons()
        labels = {**dict(SkipReason.choices), "merged": "Merged into another ticket"}
        return Table(
            "closed_without_close_out",
            ["Reason", "Tickets"],
            [
                [
                    Cell(reason, str(labels.get(reason, reason or "Other"))),
                    Cell(n, href=self.link("closed", publicly="no", reason=reason)),
                ]
                for reason, n in counts
            ],
        )

    def _promise_sums(self) -> dict[str, int]:
        return self.tickets_in_period().aggregate(
            kept=Sum("promises_kept", default=0), broken=Sum("promises_broken", default=0)
        )

    def promises(self) -> Table:
        got = self._promise_sums()
        share = percent(got["kept"], got["kept"] + got["broken"])
        return Table(
            "promises",
            ["Kept", "Broken", "Share kept"],
            [
                [
                    Cell(got["kept"], href=self.link("tickets", promises="kept")),
                    Cell(got["broken"], href=self.link("tickets", promises="broken")),
                    Cell(share, percent_text(share)),
                ]
            ],
        )

    # Public responsiveness ---------------------------------------------------------------------

    def _responsiveness_counts(self) -> dict[int, dict[str, Any]]:
        """Per handle, the last 7 days' counted tickets (on a handle, not closed as not owed):
        ``total``, ``answered``, and ``fast_sum`` and ``fast_n`` of the first responses at or
        under the handle's p90."""
        since = self.now - timedelta(days=RESPONSIVENESS_DAYS)
        counted = TicketFact.objects.filter(
            organization=self.org,
            # The same rows: opened since then is opened on that day or after, in the
            # organisation's zone; the day is what the period index is ordered by.
            opened_day__gte=since.astimezone(self.filt.zone).date(),
            opened_at__gte=since,
            social_account__isnull=False,
        ).exclude(closed_reason__in=NOT_OWED_REASONS)
        if self.filt.brand_id:
            counted = counted.filter(brand_id=self.filt.brand_id)
        if self.filt.channel_id:
            counted = counted.filter(social_account_id=self.filt.channel_id)
        cutoffs = percentiles(counted, "first_response_seconds", [0.9], group="social_account_id")
        fastest = Q(pk__in=[])
        for account_id, (cutoff,) in cutoffs.items():
            fastest |= Q(social_account_id=account_id, first_response_seconds__lte=cutoff)
        return {
            row["social_account_id"]: row
            for row in counted.values("social_account_id").annotate(
                total=Count("pk"),
                answered=Count("pk", filter=Q(first_response_seconds__isnull=False)),
                fast_sum=Sum("first_response_seconds", filter=fastest),
                fast_n=Count("pk", filter=fastest),
            )
        }

    def responsiveness(self) -> Table:
        rows_by_account = self._responsiveness_counts()
        accounts = SocialAccount.objects.filter(organization=self.org).order_by(
            "platform", "username"
        )
        if self.filt.brand_id:
            accounts = accounts.filter(brand_id=self.filt.brand_id)
        if self.filt.channel_id:
            accounts = accounts.filter(pk=self.filt.channel_id)
        rows = []
        for account in accounts:
            row = rows_by_account.get(
                account.pk, {"total": 0, "answered": 0, "fast_sum": None, "fast_n": 0}
            )
            rate = percent(row["answered"], row["total"])
            typical = row["fast_sum"] / row["fast_n"] if row["fast_n"] else None
            earns = (
                rate is not None
                and rate >= BADGE_RATE_PERCENT
                and typical is not None
                and typical <= BADGE_MINUTES * 60
            )
            rows.append(
                [
                    Cell(f"{account.get_platform_display()} @{account.username}"),
                    Cell(rate, percent_text(rate), self.link("responsive", channel=account.pk)),
                    Cell(typical, seconds_text(typical)),
                    Cell("yes" if earns else "no"),
                    Cell(self._badge_fix(row["total"], row["answered"], rate, typical, earns)),
                ]
            )
        return Table(
            "responsiveness",
            ["Channel", "Response rate", "Response time", "Very responsive", "To fix"],
            rows,
        )

    @staticmethod
    def _badge_fix(
        total: int, answered: int, rate: float | None, typical: float | None, earns: bool
    ) -> str:
        if earns:
            return "Nothing: keep answering within 15 minutes."
        if not total:
            return "No messages in the last 7 days."
        fixes = []
        if rate is None or rate < BADGE_RATE_PERCENT:
            missing = math.ceil(BADGE_RATE_PERCENT * total / 100) - answered
            fixes.append(
                f"answer {missing} more of the {total - answered} unanswered "
                f"(rate {percent_text(rate)}, needs {BADGE_RATE_PERCENT}%)"
            )
        if typical is None or typical > BADGE_MINUTES * 60:
            fixes.append(
                f"answer faster (typical {seconds_text(typical)}, needs at most "
                f"{BADGE_MINUTES} min)"
            )
        return "; ".join(fixes).capitalize() + "."

    # All ---------------------------------------------------------------------------------------

    TABLES = (
        "sla_by_target",
        "sla_by_priority",
        "sla_over_time",
        "response_times",
        "waiting",
        "backlog",
        "volume_channel",
        "volume_brand",
        "heatmap",
        "breaches",
        "agents",
        "teams",
        "sentiment",
        "closed_publicly",
        "closed_without_close_out",
        "promises",
        "responsiveness",
    )

    def table(self, key: str) -> Table:
        method = {
            "volume_channel": self.volume_by_channel,
            "volume_brand": self.volume_by_brand,
        }.get(key) or getattr(self, key)
        result: Table = method()
        return result

    def all(self) -> dict[str, Table]:
        return {key: self.table(key) for key in self.TABLES}


class Report(FactReport):
    """Every figure for one filter, as the dashboard shows it: the figures made of counts and
    sums read the daily sums (``TicketDayStat``, ``SlaDayStat``: a few rows per day of the
    period, whatever the number of tickets); medians and percentiles, what is owed or open now,
    the breach list, the last 7 days' responsiveness and the timers running past their due time
    (breached as of now) still read the facts. ``tests/test_daily_stats.py`` checks that every
    figure equals ``FactReport``'s."""

    def __init__(self, filt: ReportFilter) -> None:
        super().__init__(filt)
        self._running_late_cache: list[dict[str, Any]] | None = None
        self._open_cache: list[dict[str, Any]] | None = None
        self._times_cache: dict[Hashable, list[float | None]] | None = None

    # Percentiles from the day histograms -------------------------------------------------------

    def _time_histograms(self) -> dict[Hashable, histograms.Histogram]:
        """The period's time histograms (``TimeDayStat``) in one query: per time for the
        period, and the first response's per agent and per team. Group keys: ``(metric,
        field, id)``, field ``"all"`` (id None), ``"agent_id"`` or ``"team_id"``."""
        got: dict[Hashable, histograms.Histogram] = {}
        rows = (
            TimeDayStat.objects.filter(
                self.filt.dimensions(),
                organization=self.org,
                day__gte=self.filt.start,
                day__lte=self.filt.end,
            )
            .values_list("metric", "agent_id", "team_id", "bucket")
            .annotate(n=Sum("tickets"))
            .filter(n__gt=0)
            .order_by()
        )
        for metric, agent_id, team_id, bucket, n in rows:
            keys: list[Hashable] = [(metric, "all", None)]
            if metric == TimeMetric.FIRST_RESPONSE:
                if agent_id:
                    keys.append((metric, "agent_id", agent_id))
                if team_id:
                    keys.append((metric, "team_id", team_id))
            for key in keys:
                histogram = got.setdefault(key, {})
                histogram[bucket] = histogram.get(bucket, 0) + n
        return got

    def _read_buckets(self, ranges: histograms.Ranges) -> histograms.Values:
        """The period's facts in the buckets ``ranges`` names (their values and counts), in
        one statement: a ``UNION ALL`` of one grouped read per time and bucket (for every
        agent or team whose rank falls in it), each a range of the time's index on (day, time)
        for each day of the period (``ticket_fact_first_response_idx``,
        ``ticket_fact_resolution_idx``)."""
        arms: dict[tuple[str, str, int, int], list[int]] = {}
        for key, spans in ranges.items():
            metric, field_name, pk = cast(tuple[str, str, int | None], key)
            for low, high in spans:
                pks = arms.setdefault((metric, field_name, low, high), [])
                if pk is not None:
                    pks.append(pk)
        selects: list[QuerySet[Any, Any]] = []
        for (metric, field_name, low, high), pks in sorted(arms.items()):
            column = histograms.TIME_COLUMNS[metric]
            facts = TicketFact.objects.filter(
                self.filt.dimensions(),
                organization=self.org,
                opened_day__in=self.filt.days,  # one index range per day
                **{f"{column}__gte": low, f"{column}__lt": high},
            )
            group: Any = Value(0)
            if field_name != "all":
                facts = facts.filter(**{f"{field_name}__in": sorted(pks)})
                group = F(field_name)
            selects.append(
                facts.annotate(
                    h_metric=Value(metric), h_field=Value(field_name), h_group=group, h_v=F(column)
                )
                .values_list("h_metric", "h_field", "h_group", "h_v")
                .annotate(n=Count("pk"))
                .order_by()
            )
        values: histograms.Values = {}
        query = selects[0].union(*selects[1:], all=True) if len(selects) > 1 else selects[0]
        for metric, field_name, group, value, n in query:
            key = (metric, field_name, None if field_name == "all" else group)
            got = values.setdefault(key, {})
            got[value] = got.get(value, 0) + n
        return values

    def _times(self) -> dict[Hashable, list[float | None]] | None:
        """Every percentile the page shows, exact, from the histograms and the facts of the
        buckets that hold their ranks (two statements at most); None if the two reads
        disagreed (a write committed between them: the figures then read the facts)."""
        if self._times_cache is None:
            try:
                self._times_cache = histograms.exact_percentiles(
                    self._time_histograms(),
                    lambda key: [0.5, 0.9] if key[1] == "all" else [0.5],  # type: ignore[index]
                    self._read_buckets,
                )
            except histograms.Mismatch:
                return None
        return self._times_cache

    def _response_percentiles(self) -> tuple[list[float | None], list[float | None]]:
        times = self._times()
        if times is None:
            return super()._response_percentiles()
        return (
            times.get((TimeMetric.FIRST_RESPONSE.value, "all", None), [None, None]),
            times.get((TimeMetric.RESOLUTION.value, "all", None), [None, None]),
        )

    def _medians(self, field_name: str) -> dict[Any, list[float | None]]:
        times = self._times()
        if times is None:
            return super()._medians(field_name)
        return {
            key[2]: value  # type: ignore[index]
            for key, value in times.items()
            if key[1] == field_name  # type: ignore[index]
        }

    def _responsiveness_counts(self) -> dict[int, dict[str, Any]]:
        """From the responsiveness histograms (``ResponseDayStat``) for the window's whole
        days, the facts for its partial first day and for the bucket of each handle's p90
        (``monitoring.reports.responsiveness``); from the facts if the two reads disagreed."""
        got = responsiveness.window_counts(self.filt, RESPONSIVENESS_DAYS)
        return super()._responsiveness_counts() if got is None else got

    # The breach list from its two partial indexes ----------------------------------------------

    def _breach_timers(self) -> QuerySet[SlaFact]:
        """The 25 newest due of the timers breached and of those running past due, each read
        newest due first from its own partial index (``sla_fact_breached_idx``,
        ``sla_fact_running_due_idx``) and stopped at 25, then the 25 newest of the two: one
        statement (the ids in a ``UNION ALL`` of two limited reads)."""
        newest = ("-due_at", "-pk")
        breached = (
            self.timers_in_period()
            .filter(outcome=SlaOutcome.BREACHED)
            .order_by(*newest)
            .values_list("pk")[:BREACH_LIST_LIMIT]
        )
        running = (
            self.timers_in_period()
            .filter(outcome=SlaOutcome.RUNNING, due_at__lt=self.now)
            .order_by(*newest)
            .values_list("pk")[:BREACH_LIST_LIMIT]
        )
        first, first_params = breached.query.sql_with_params()
        second, second_params = running.query.sql_with_params()
        # Django's compiled SQL of the two reads (their values stay parameters), nothing else.
        ids = RawSQL(  # noqa: S611
            f"SELECT * FROM ({first}) AS b UNION ALL SELECT * FROM ({second}) AS r",  # noqa: S608
            (*first_params, *second_params),
        )
        return (
            SlaFact.objects.filter(pk__in=ids)
            .select_related("ticket")
            .order_by(*newest)[:BREACH_LIST_LIMIT]
        )

    def _open_groups(self) -> list[dict[str, Any]]:
        """The open backlog counted once per agent and team, with its age buckets: the
        backlog and both open loads are sums of these. Ages are as of the request: the open
        counts (``OpenHourStat``) for every hour that lies wholly in one bucket, the facts for
        the few hours a bucket's edge cuts (``monitoring.reports.backlog``)."""
        if self._open_cache is None:
            self._open_cache = backlog.open_groups(self.filt)
        return self._open_cache

    def _backlog_counts(self) -> dict[str, int]:
        got = {"total": 0, **{f"b{n}": 0 for n in range(len(AGE_BUCKETS))}}
        for row in self._open_groups():
            for name in got:
                got[name] += row[name]
        return got

    def _load(self, field_name: str) -> dict[int, int]:
        load: dict[int, int] = {}
        for row in self._open_groups():
            if row[field_name] is not None:
                load[row[field_name]] = load.get(row[field_name], 0) + row["total"]
        return load

    def ticket_days(self, dimension: TicketDayDimension) -> QuerySet[TicketDayStat]:
        return TicketDayStat.objects.filter(
            self.filt.dimensions(),
            organization=self.org,
            dimension=dimension,
            day__gte=self.filt.start,
            day__lte=self.filt.end,
        )

    def sla_days(self, dimension: SlaDayDimension) -> QuerySet[SlaDayStat]:
        return SlaDayStat.objects.filter(
            self.filt.dimensions(),
            organization=self.org,
            dimension=dimension,
            day__gte=self.filt.start,
            day__lte=self.filt.end,
        )

    def _running_late(self) -> list[dict[str, Any]]:
        """The period's timers still running past their due time (breached as of now: the
        daily sums count them as neither met nor breached), counted per day, priority, target,
        agent and team: the days due before today from the running timers' counts
        (``RunningDueStat``), today's from the facts (``monitoring.reports.running``)."""
        if self._running_late_cache is None:
            self._running_late_cache = running.running_late(self.filt)
        return self._running_late_cache

    def _sla_groups(self) -> list[dict[str, Any]]:
        if self._sla_groups_cache is None:
            groups: dict[tuple[Any, ...], dict[str, Any]] = {}
            for row in (
                self.sla_days(SlaDayDimension.TARGET)
                .values("day", "priority", "metric")
                .annotate(s_met=Sum("met"), s_breached=Sum("breached"), s_total=Sum("total"))
                .order_by()
            ):
                groups[(row["day"], row["priority"], row["metric"])] = {
                    "started_day": row["day"],
                    "priority": row["priority"],
                    "metric": row["metric"],
                    "met": row["s_met"],
                    "breached": row["s_breached"],
                    "total": row["s_total"],
                }
            for row in self._running_late():
                group = groups[(row["started_day"], row["priority"], row["metric"])]
                group["breached"] += row["n"]
            self._sla_groups_cache = list(groups.values())
        return self._sla_groups_cache

    def _response_counts(self) -> dict[str, int]:
        return self.ticket_days(TicketDayDimension.OPENED).aggregate(
            first=Sum("answered", default=0), resolved=Sum("resolved", default=0)
        )

    def _promise_sums(self) -> dict[str, int]:
        return self.ticket_days(TicketDayDimension.OPENED).aggregate(
            kept=Sum("promises_kept", default=0), broken=Sum("promises_broken", default=0)
        )

    def _channel_counts(self) -> list[dict[str, Any]]:
        counts = list(
            self.ticket_days(TicketDayDimension.OPENED)
            .values("social_account_id", "platform")
            .annotate(n=Sum("tickets"))
            .filter(n__gt=0)
            .order_by()
        )
        accounts: dict[int, dict[str, Any]] = {
            row["pk"]: dict(row)
            for row in SocialAccount.objects.filter(
                organization=self.org, pk__in=[row["social_account_id"] for row in counts]
            ).values("pk", "username", "platform")
        }
        rows = []
        for row in counts:
            account: dict[str, Any] = accounts.get(row["social_account_id"], {})
            rows.append(
                {
                    "social_account_id": row["social_account_id"] or None,
                    "social_account__username": account.get("username"),
                    "social_account__platform": account.get("platform"),
                    "platform": row["platform"],
                    "n": row["n"],
                }
            )
        # As the facts' query orders them (a handle's name; none last).
        rows.sort(
            key=lambda r: (
                -r["n"],
                r["social_account__username"] is None,
                r["social_account__username"] or "",
                r["social_account_id"] is None,
                r["social_account_id"] or 0,
                r["platform"],
            )
        )
        return rows

    def _brand_counts(self) -> list[dict[str, Any]]:
        return list(
            self.ticket_days(TicketDayDimension.OPENED)
            .values("brand_id", "brand__name")
            .annotate(n=Sum("tickets"))
            .filter(n__gt=0)
            .order_by("-n", "brand__name", "brand_id")
        )

    def _hour_counts(self) -> dict[tuple[int, int], int]:
        counts: dict[tuple[int, int], int] = {}
        for row in (
            self.ticket_days(TicketDayDimension.HOUR)
            .values("day", "value")
            .annotate(n=Sum("tickets"))
            .order_by()
        ):
            if row["n"]:
                key = (row["day"].weekday(), int(row["value"]))  # the local day's weekday
                counts[key] = counts.get(key, 0) + row["n"]
        return counts

    def _sentiment_counts(self) -> dict[tuple[date, str], int]:
        return {
            (row["day"], row["value"]): row["n"]
            for row in self.ticket_days(TicketDayDimension.SENTIMENT)
            .values("day", "value")
            .annotate(n=Sum("tickets"))
            .filter(n__gt=0)
            .order_by()
        }

    def _closed_counts(self) -> dict[str, int]:
        return self.ticket_days(TicketDayDimension.CLOSED).aggregate(
            total=Sum("tickets", default=0), public=Sum("closed_publicly", default=0)
        )

    def _closed_reasons(self) -> list[tuple[str, int]]:
        return list(
            self.ticket_days(TicketDayDimension.CLOSED)
            .values_list("value")
            .annotate(n=Sum("tickets") - Sum("closed_publicly"))
            .filter(n__gt=0)
            .order_by("-n", "value")
        )

    def _handled(self, field_name: str) -> dict[int, int]:
        rows: QuerySet[TicketDayStat, tuple[Any]]
        if field_name == "agent_id":
            rows = self.ticket_days(TicketDayDimension.AGENT).exclude(value="").values_list("value")
        else:
            rows = (
                self.ticket_days(TicketDayDimension.OPENED)
                .exclude(team_id=0)
                .values_list("team_id")
            )
        return {int(pk): n for pk, n in rows.annotate(n=Sum("tickets")).filter(n__gt=0).order_by()}

    def _compliance_by(self, field_name: str) -> dict[int, dict[str, int]]:
        rows: QuerySet[SlaDayStat, tuple[Any]]
        if field_name == "agent_id":
            rows = self.sla_days(SlaDayDimension.AGENT).exclude(value="").values_list("value")
        else:
            rows = self.sla_days(SlaDayDimension.TARGET).exclude(team_id=0).values_list("team_id")
        got = {
            int(pk): {"met": met, "breached": breached, "total": total}
            for pk, met, breached, total in rows.annotate(
                s_met=Sum("met"), s_breached=Sum("breached"), s_total=Sum("total")
            )
            .filter(s_total__gt=0)
            .order_by()
        }
        for row in self._running_late():
            if row[field_name] is not None:
                got[row[field_name]]["breached"] += row["n"]
        return got
