"""The manager's first dashboard: today's open load and first-response SLA figures.

Definitions (shown on the page too):
- open tickets: tickets not yet closed out, now;
- first-response SLA compliance today: of the first-response timers that ended today (met when
  the first public reply went out, breached when the due time passed first), the share met;
- median first response today: the median time from the customer's post to the brand's first
  public reply, over first replies sent today;
- closed without a public close-out today: ``closed_without_close_out`` events recorded today,
  by their reason (spam, duplicate, DMs closed …), the one kind every such close records.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone

from careinbox.accounts.models import Organization
from monitoring.models import Metric, SlaTimer, TimerState
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


def start_of_today(now: datetime) -> datetime:
    local = timezone.localtime(now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def today_summary(organization: Organization, *, now: datetime | None = None) -> TodaySummary:
    now = now or timezone.now()
    day_start = start_of_today(now)
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
    # A timer "ends" when it is fulfilled or when it breaches, whichever comes first.
    ended_today = timers.filter(
        Q(state=TimerState.MET, fulfilled_at__gte=day_start, fulfilled_at__lte=now)
        | Q(state=TimerState.BREACHED, breached_at__gte=day_start, breached_at__lte=now)
        | Q(state=TimerState.RUNNING, due_at__gte=day_start, due_at__lt=now)
    )
    counts = ended_today.aggregate(
        met=Count("pk", filter=Q(state=TimerState.MET)),
        breached=Count("pk", filter=~Q(state=TimerState.MET)),
    )
    seconds = [
        (fulfilled - started).total_seconds()
        for started, fulfilled in timers.filter(
            fulfilled_at__gte=day_start, fulfilled_at__lte=now
        ).values_list("started_at", "fulfilled_at")
        if fulfilled is not None
    ]
    active = timers.filter(state=TimerState.RUNNING)
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
        median_first_response=timedelta(seconds=statistics.median(seconds)) if seconds else None,
        first_responses=len(seconds),
        closed_without_reply={str(labels.get(r, r)): n for r, n in closes},
    )
