"""The tickets behind a figure: each link on the dashboard names a source (which roll-up and
which of its rows) and the figure's own narrowing; this resolves them, with the page's
filters, to the tickets, so a figure and its list never disagree."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from django.db.models import Q, QuerySet

from monitoring.models import Metric, SlaFact, TicketFact
from monitoring.reports.figures import AGE_BUCKETS, RESPONSIVENESS_DAYS, Report
from monitoring.reports.filters import ReportFilter
from tickets.closing import NOT_OWED_REASONS
from tickets.models import Priority, Sentiment, Ticket

SOURCES = {
    "sla": "SLA timers that started in the period",
    "tickets": "Tickets opened in the period",
    "closed": "Tickets closed in the period",
    "backlog": "Open tickets now",
    "waiting": "Tickets waiting for a first reply now",
    "responsive": "Tickets of the last 7 days",
}


class DrillError(ValueError):
    """A link that names no figure: said, never guessed."""


def _int(params: Mapping[str, str], name: str, choices: range | list[int]) -> int | None:
    raw = params.get(name) or ""
    if not raw:
        return None
    if not raw.lstrip("-").isdigit() or int(raw) not in choices:
        raise DrillError(f"“{raw[:20]}” is not a {name} here.")
    return int(raw)


def _narrow(params: Mapping[str, str]) -> Q:
    """The narrowing both fact tables share (agent, team, priority)."""
    q = Q()
    for name in ("agent", "team"):
        raw = params.get(name) or ""
        if raw:
            if not raw.isdigit():
                raise DrillError(f"“{raw[:20]}” is not a {name} here.")
            q &= Q(**{f"{name}_id": int(raw)})
    priority = _int(params, "priority", [p.value for p in Priority])
    if priority is not None:
        q &= Q(priority=priority)
    return q


def _day(params: Mapping[str, str]) -> date | None:
    raw = params.get("day") or ""
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise DrillError(f"“{raw[:20]}” is not a day.") from None


def drill(filt: ReportFilter, params: Mapping[str, str]) -> tuple[str, QuerySet[Ticket]]:
    """``(what the list is, the tickets)`` for a dashboard link's query string."""
    source = params.get("source") or ""
    if source not in SOURCES:
        raise DrillError("That link names no figure of the dashboard.")
    report = Report(filt)
    org = filt.organization
    narrow = _narrow(params)
    day = _day(params)
    ids: QuerySet[SlaFact] | QuerySet[TicketFact]
    if source == "sla":
        timers = report.timers_in_period().filter(narrow)
        metric = params.get("metric") or ""
        if metric:
            if metric not in Metric.values:
                raise DrillError(f"There is no SLA target “{metric[:20]}”.")
            timers = timers.filter(metric=metric)
        outcome = params.get("outcome") or ""
        if outcome == "met":
            timers = timers.filter(outcome="met")
        elif outcome == "breached":
            timers = timers.filter(report.breached_q())
        elif outcome:
            raise DrillError("An outcome is met or breached.")
        if day:
            timers = timers.filter(started_day=day)
        ids = timers
    elif source == "waiting":
        timers = SlaFact.objects.filter(
            filt.dimensions(), narrow, organization=org, metric=Metric.FIRST_RESPONSE, owed=True
        )
        if params.get("past_due") == "yes":
            timers = timers.filter(due_at__lt=filt.now)
        ids = timers
    else:
        facts: QuerySet[TicketFact]
        if source == "tickets":
            facts = report.tickets_in_period()
        elif source == "closed":
            facts = TicketFact.objects.filter(
                filt.dimensions(),
                organization=org,
                closed_day__gte=filt.start,
                closed_day__lte=filt.end,
            )
            if params.get("publicly") == "yes":
                facts = facts.filter(closed_publicly=True)
            elif params.get("publicly") == "no":
                facts = facts.filter(closed_publicly=False)
                if "reason" in params:
                    facts = facts.filter(closed_reason=str(params["reason"])[:32])
        elif source == "backlog":
            facts = TicketFact.objects.filter(filt.dimensions(), organization=org, is_open=True)
            bucket = _int(params, "age", range(len(AGE_BUCKETS)))
            if bucket is not None:
                _label, low, high = AGE_BUCKETS[bucket]
                facts = facts.filter(opened_at__lte=filt.now - timedelta(hours=low))
                if high is not None:
                    facts = facts.filter(opened_at__gt=filt.now - timedelta(hours=high))
        else:  # responsive
            facts = TicketFact.objects.filter(
                organization=org, opened_at__gte=filt.now - timedelta(days=RESPONSIVENESS_DAYS)
            ).exclude(closed_reason__in=NOT_OWED_REASONS)
            if filt.brand_id:
                facts = facts.filter(brand_id=filt.brand_id)
            if filt.channel_id:
                facts = facts.filter(social_account_id=filt.channel_id)
        facts = facts.filter(narrow)
        weekday = _int(params, "weekday", range(7))
        if weekday is not None:
            facts = facts.filter(opened_weekday=weekday)
        hour = _int(params, "hour", range(24))
        if hour is not None:
            facts = facts.filter(opened_hour=hour)
        if day:
            facts = facts.filter(opened_day=day)
        sentiment = params.get("sentiment") or ""
        if sentiment:
            if sentiment not in Sentiment.values:
                raise DrillError(f"There is no sentiment “{sentiment[:20]}”.")
            facts = facts.filter(sentiment=sentiment)
        if params.get("answered") == "yes":
            facts = facts.filter(first_response_seconds__isnull=False)
        if params.get("resolved") == "yes":
            facts = facts.filter(resolution_seconds__isnull=False)
        promises = params.get("promises") or ""
        if promises == "kept":
            facts = facts.filter(promises_kept__gt=0)
        elif promises == "broken":
            facts = facts.filter(promises_broken__gt=0)
        ids = facts
    tickets = (
        Ticket.objects.for_org(org)
        .filter(pk__in=ids.values("ticket_id"))
        .select_related("social_account", "assigned_to")
        .order_by("-opened_at", "-pk")
    )
    return SOURCES[source], tickets
