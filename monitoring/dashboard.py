"""Today's open load and first-response SLA figures, for the API's ``/api/metrics/today/``
(the dashboard itself reads the roll-ups: ``monitoring.reports``). "Today" is the
organisation's day, in its time zone.

Definitions (as on the dashboard, ``monitoring.reports.definitions``):
- open tickets: tickets not yet closed out, now;
- first-response SLA compliance today: of the first-response timers that *started* today (the
  ticket's day) and are decided (met; or breached: late, or past due and still owed, whether or
  not the sweep has marked it), the share met;
- median first response today: the median time from the customer's post to the brand's first
  public reply, over first replies sent today;
- closed without a public close-out today: ``closed_without_close_out`` events recorded today,
  by their reason (spam, duplicate, DMs closed …), the one kind every such close records.
- waiting for a first reply: first-response timers still owed (running, paused or breached);
  past due: those whose due time has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Q
from django.utils import timezone

from careinbox.accounts.models import Organization
from monitoring.models import Metric, SlaTimer, TimerState
from monitoring.reports.stats import ALL, SecondsBetween, percentiles
from tickets.models import EventKind, Priority, SkipReason, Ticket, TicketEvent


@dataclass(frozen=True)
class TodaySummary:
    day_start: datetime
    open_tickets: int
    open_by_priority: dict[str, int]
    unanswered: int
    overdue_now: int
    met: int
    breached: int
    compliance_percent: float | None
    median_first_response: timedelta | None
    first_responses: int
    #: Reason label -> tickets closed today with no public close-out for it, most first.
    closed_without_reply: dict[str, int]

    @property
    def closed_without_reply_total(self) -> int:
        return sum(self.closed_without_reply.values())


def start_of_today(now: datetime, organization: Organization | None = None) -> datetime:
    zone = ZoneInfo(organization.time_zone or "UTC") if organization is not None else None
    local = timezone.localtime(now, zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def today_summary(organization: Organization, *, now: datetime | None = None) -> TodaySummary:
    now = now or timezone.now()
    day_start = start_of_today(now, organization)
    open_counts = (
        Ticket.objects.for_org(organization)
        .open()
        .aggregate(
            total=Count("pk"),
            **{
                f"p{level.value}": Count("pk", filter=Q(priority=level.value)) for level in Priority
            },
        )
    )
    timers = SlaTimer.objects.for_org(organization).filter(metric=Metric.FIRST_RESPONSE)
    # Counted on the day the timer started (the ticket's day), once decided: met, breached,
    # or running past its due time (the sweep has not come round yet).
    decided_today = timers.filter(started_at__gte=day_start, started_at__lte=now).filter(
        Q(state__in=[TimerState.MET, TimerState.BREACHED])
        | Q(state=TimerState.RUNNING, due_at__lt=now)
    )
    counts = decided_today.aggregate(
        met=Count("pk", filter=Q(state=TimerState.MET)),
        breached=Count("pk", filter=~Q(state=TimerState.MET)),
    )
    # The median by the database (percentile_cont; its window-function equivalent on SQLite):
    # one number leaves it, not every timer the organisation fulfilled today.
    answered_today = timers.filter(fulfilled_at__gte=day_start, fulfilled_at__lte=now)
    first_responses = answered_today.count()
    median = (
        percentiles(
            answered_today.annotate(taken=SecondsBetween("fulfilled_at", "started_at")),
            "taken",
            [0.5],
        )[ALL][0]
        if first_responses
        else None
    )
    # Still owed: running, paused, or breached and not yet answered (a breached timer is still
    # waiting for its reply, and is the most past due of all).
    active = timers.live()
    closes = (
        TicketEvent.objects.for_org(organization)
        .filter(kind=EventKind.CLOSED_WITHOUT_CLOSE_OUT, at__gte=day_start, at__lte=now)
        .values_list("data__reason")
        .annotate(n=Count("pk"))
        .order_by("-n")
    )
    labels = dict(SkipReason.choices)
    met, breached = counts["met"], counts["breached"]
    return TodaySummary(
        day_start=day_start,
        open_tickets=open_counts["total"],
        open_by_priority={level.label: open_counts[f"p{level.value}"] for level in Priority},
        unanswered=active.count(),
        overdue_now=active.filter(due_at__lt=now).count(),
        met=met,
        breached=breached,
        compliance_percent=round(100 * met / (met + breached), 1) if met + breached else None,
        median_first_response=timedelta(seconds=median) if median is not None else None,
        first_responses=first_responses,
        closed_without_reply={str(labels.get(r, r)): n for r, n in closes},
    )
