"""SLA timers: started, fulfilled, paused, resumed and recomputed from ticket events, and swept
set-based for warnings and breaches.

Driven by ticket events (``monitoring.handlers``); monitoring writes nothing of the ticket but its
SLA due time (``Ticket.set_sla_due``) and events (``Ticket.record``, ``record_events``). Every
function here is idempotent: an event delivered twice changes nothing the second time.

Due times count business time only, on the calendar of the timer's policy: a timer is due once
its target, plus the business time it spent paused, has passed since it started
(``SlaPolicy.due``). So a pause, a priority change or a policy change recomputes the due time
from the same three facts (start, target, time paused), never by adding up deltas.

Breaches are kept. A breach is a fact, as Zendesk keeps it: once a timer is breached, no later
change of target, hours, priority or policy un-breaches it or moves its due time, and the reply
still owed fulfils it as breached, so reports count it breached. Every recompute first sweeps
the timers it is about to change at that instant, so a timer already past due (beat had not
come round yet) is breached at its old due time rather than moved. The one way back to met is
a record that was wrong, not a target that changed: a reply delivered in time but recorded
after the sweep (``corrects_breach`` in ``sla_fulfil``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import F, Max, Min, Q
from django.utils import timezone

from monitoring.models import (
    DEFAULT_WARNING_PERCENT,
    LIVE_STATES,
    Metric,
    SlaEventKind,
    SlaPolicy,
    SlaTimer,
    TimerState,
)
from monitoring.policies import org_policies, policy_for
from tickets.events import record_events
from tickets.models import Direction, EventKind, Message, Step, Ticket, TicketEvent

if TYPE_CHECKING:
    from careinbox.accounts.models import User

# Recorded by the care workflow when a closed ticket opens again (its own work, coming).
REOPENED = "reopened"

# Started when the ticket opens (the customer's first post), and again when it is reopened.
OPENING_METRICS = (Metric.FIRST_RESPONSE, Metric.RESOLUTION, Metric.CLOSE_OUT)
REOPEN_METRICS = (Metric.RESOLUTION, Metric.CLOSE_OUT)
# Waiting on the customer (the brand asked them a question) stops these clocks.
PAUSABLE_METRICS = (Metric.NEXT_RESPONSE, Metric.RESOLUTION, Metric.CLOSE_OUT)
# The step whose delivered reply meets a target.
STEP_METRIC: dict[str, str] = {
    Step.TAKE_OFFLINE: Metric.TAKE_OFFLINE,
    Step.RESOLVE: Metric.RESOLUTION,
    Step.CLOSE_OUT: Metric.CLOSE_OUT,
}


# Starting -------------------------------------------------------------------------------------


def _refresh_due(ticket: Ticket) -> None:
    """``Ticket.sla_due_at``: the soonest due time of the timers still owed and counting
    (running, or breached and not yet fulfilled); a paused timer does not count."""
    due = SlaTimer.objects.filter(
        ticket_id=ticket.pk,
        state__in=(TimerState.RUNNING, TimerState.BREACHED),
        fulfilled_at__isnull=True,
    ).aggregate(due=Min("due_at"))["due"]
    ticket.set_sla_due(due)


def _unsaved_timer(
    ticket: Ticket,
    policy: SlaPolicy,
    metric: str,
    started_at: datetime,
    *,
    message: Message | None = None,
) -> SlaTimer | None:
    minutes = policy.target_minutes(metric)
    if minutes is None:
        return None
    return SlaTimer(
        organization_id=ticket.organization_id,
        ticket=ticket,
        policy=policy,
        message=message,
        metric=metric,
        target_minutes=minutes,
        started_at=started_at,
        due_at=policy.due(started_at, minutes, paused=timedelta(0)),
        warn_at=policy.warn(started_at, minutes, paused=timedelta(0)),
    )


def _new_timer(
    ticket: Ticket,
    policy: SlaPolicy,
    metric: str,
    started_at: datetime,
    *,
    message: Message | None = None,
) -> SlaTimer | None:
    """Start one timer unless the policy has no such target or one is already owed."""
    timer = _unsaved_timer(ticket, policy, metric, started_at, message=message)
    if timer is None:
        return None
    try:
        with transaction.atomic():
            timer.save()
    except IntegrityError:
        return None  # one is owed already (one live timer per ticket and metric)
    return timer


def _start(
    ticket: Ticket,
    metrics: Iterable[str],
    started_at: datetime,
    *,
    policy: SlaPolicy | None = None,
) -> list[SlaTimer]:
    """Start ``metrics`` from ``started_at``, once: a timer of the metric that started at that
    very instant (this event, delivered again) or one still owed is kept as it is."""
    return _start_many([(ticket, tuple(metrics), started_at)], policy=policy)


def _start_many(
    starts: Sequence[tuple[Ticket, Sequence[str], datetime]], *, policy: SlaPolicy | None = None
) -> list[SlaTimer]:
    """``_start`` for several tickets (one each) in four statements for all of them: their
    timers read, their organisations' policies, one INSERT, one UPDATE of their due times."""
    if not starts:
        return []
    # One read serves both the idempotence check and each ticket's new soonest due time: the
    # tickets' timers of these metrics started at those instants, and every one still owed.
    all_metrics = {metric for _t, metrics, _at in starts for metric in metrics}
    instants = {at for _t, _m, at in starts}
    timers: dict[int, list[tuple[str, datetime, str, datetime | None, datetime]]] = {}
    for ticket_id, *row in (
        SlaTimer.objects.filter(ticket_id__in=[ticket.pk for ticket, _m, _at in starts])
        .filter(
            Q(metric__in=all_metrics, started_at__in=instants)
            | Q(state__in=LIVE_STATES, fulfilled_at__isnull=True)
        )
        .values_list("ticket_id", "metric", "started_at", "state", "fulfilled_at", "due_at")
    ):
        timers.setdefault(ticket_id, []).append(tuple(row))  # type: ignore[arg-type]
    policies: dict[int, list[SlaPolicy]] = {}
    started: list[SlaTimer] = []
    dues: list[tuple[Ticket, datetime | None]] = []
    counting = (TimerState.RUNNING, TimerState.BREACHED)
    for ticket, metrics, started_at in starts:
        owned = timers.get(ticket.pk, [])
        seen = {
            metric
            for metric, started_then, state, fulfilled_at, _due in owned
            if metric in metrics
            and (started_then == started_at or (state in LIVE_STATES and fulfilled_at is None))
        }
        wanted = [metric for metric in metrics if metric not in seen]
        if not wanted:
            continue
        chosen = policy
        if chosen is None:
            if ticket.organization_id not in policies:
                policies[ticket.organization_id] = org_policies(ticket.organization_id)
            chosen = policy_for(ticket, policies[ticket.organization_id])
        if chosen is None:
            continue
        new = [
            timer
            for metric in wanted
            if (timer := _unsaved_timer(ticket, chosen, metric, started_at)) is not None
        ]
        if new:
            started.extend(new)
            owed = [due for _m, _s, state, done, due in owned if state in counting and done is None]
            dues.append((ticket, min([*owed, *(timer.due_at for timer in new)])))
    if started:
        # One insert; a timer started meanwhile by a concurrent delivery of the same event
        # wins (one live timer per ticket and metric) and this one is dropped (it has the same
        # due time: the same policy, target and start).
        SlaTimer.objects.bulk_create(started, ignore_conflicts=True)
        Ticket.set_sla_dues(dues)
    return started


def sla_start(*, ticket: Ticket, policy: SlaPolicy | None = None) -> SlaTimer | None:
    """The ticket opened: start its first-response, resolution and close-out timers as its
    policy has them, from the customer's post time. Returns the first-response timer."""
    sla_start_timers(ticket=ticket, policy=policy)
    return (
        SlaTimer.objects.filter(ticket_id=ticket.pk, metric=Metric.FIRST_RESPONSE)
        .order_by("-started_at", "-pk")
        .first()
    )


def sla_start_timers(*, ticket: Ticket, policy: SlaPolicy | None = None) -> list[SlaTimer]:
    """``sla_start`` without reading the first-response timer back (the handler's way in)."""
    return _start(ticket, OPENING_METRICS, ticket.opened_at, policy=policy)


def sla_start_timers_many(tickets: Sequence[Ticket]) -> list[SlaTimer]:
    """``sla_start_timers`` for several tickets at once (the handler's many form): four
    statements for a poll's new tickets, not four for each."""
    return _start_many([(ticket, OPENING_METRICS, ticket.opened_at) for ticket in tickets])


def sla_restart(*, ticket: Ticket, at: datetime) -> list[SlaTimer]:
    """The ticket was reopened at ``at``: the resolution and close-out start again (new rows;
    the ended ones stay for reports). A timer still owed is kept."""
    return _start(ticket, REOPEN_METRICS, at)


def _brand_replied_before(ticket: Ticket, at: datetime) -> bool:
    return TicketEvent.objects.filter(
        ticket_id=ticket.pk, kind=EventKind.REPLY_SENT, at__lte=at
    ).exists()


def brand_first_replied(ticket_ids: Collection[int]) -> dict[int, datetime]:
    """When the brand first replied on each of these tickets (those it has replied on): one
    read for a batch of customer messages instead of ``_brand_replied_before`` per message."""
    return dict(
        TicketEvent.objects.filter(ticket_id__in=ticket_ids, kind=EventKind.REPLY_SENT)
        .values("ticket_id")
        .annotate(first=Min("at"))
        .values_list("ticket_id", "first")
    )


def sla_customer_wrote(
    *, ticket: Ticket, message: Message, at: datetime, brand_replied: bool | None = None
) -> SlaTimer | None:
    """A customer message arrived. Once the brand has replied, it awaits a reply: the paused
    timers resume, and a next-response timer starts (or the one still owed is kept).
    ``brand_replied``: whether the brand had replied by ``at``, if the caller read it already
    (``brand_first_replied``)."""
    if message.direction != Direction.INBOUND:
        return None
    if brand_replied is None:
        brand_replied = _brand_replied_before(ticket, at)
    if not brand_replied:
        return None
    sla_resume(ticket=ticket, at=at)
    covered = SlaTimer.objects.filter(
        Q(fulfilled_at__isnull=True) | Q(fulfilled_at__gte=at),
        ticket_id=ticket.pk,
        metric=Metric.NEXT_RESPONSE,
        started_at__lte=at,
    ).exclude(state=TimerState.STOPPED)
    if covered.exists():
        return None  # it waits with an earlier message (or is this one, delivered again)
    policy = policy_for(ticket)
    if policy is None:
        return None
    timer = _new_timer(ticket, policy, Metric.NEXT_RESPONSE, at, message=message)
    if timer is not None:
        _refresh_due(ticket)
    return timer


# Fulfilling -----------------------------------------------------------------------------------


def _close_pause(timer: SlaTimer, at: datetime) -> None:
    """End a pause at ``at``: its business time moves the due and warning times on."""
    assert timer.paused_at is not None
    # A timer whose policy was deleted since keeps counting around the clock.
    policy = timer.policy or SlaPolicy(warning_percent=DEFAULT_WARNING_PERCENT)
    paused = policy.business_calendar.business_time_between(timer.paused_at, at)
    timer.paused_for += max(paused, timedelta(0))
    timer.paused_at = None
    timer.state = TimerState.RUNNING
    timer.due_at = policy.due(timer.started_at, timer.target_minutes, paused=timer.paused_for)
    timer.warn_at = policy.warn(timer.started_at, timer.target_minutes, paused=timer.paused_for)


def _business_time(timer: SlaTimer, at: datetime) -> timedelta:
    if timer.policy is None:
        return at - timer.started_at - timer.paused_for
    worked = timer.policy.business_calendar.business_time_between(timer.started_at, at)
    return max(worked - timer.paused_for, timedelta(0))


@transaction.atomic
def sla_fulfil(*, ticket: Ticket, metrics: Iterable[str], at: datetime) -> list[SlaTimer]:
    """The event that meets ``metrics`` happened at ``at``: each timer still owed (and started
    by then) is met or breached, with an event. A breach the sweep recorded just before an
    in-time reply was recorded turns met (``corrects_breach``)."""
    timers = list(
        SlaTimer.objects.live()
        .select_for_update(of=("self",))
        .select_related("policy")
        .filter(ticket_id=ticket.pk, metric__in=list(metrics), started_at__lte=at)
        .order_by("pk")
    )
    for timer in timers:
        if timer.state == TimerState.PAUSED:
            _close_pause(timer, at)
        timer.fulfilled_at = at
        timer.business_time = _business_time(timer, at)
        met = at <= timer.due_at
        corrects_breach = timer.state == TimerState.BREACHED and met
        if timer.state == TimerState.RUNNING or corrects_breach:
            timer.state = TimerState.MET if met else TimerState.BREACHED
            timer.breached_at = None if met else timer.due_at
            ticket.record(
                SlaEventKind.SLA_MET if met else SlaEventKind.SLA_BREACHED,
                at=at,
                metric=timer.metric,
                due_at=timer.due_at.isoformat(),
                elapsed_seconds=round((at - timer.started_at).total_seconds()),
                business_seconds=round(timer.business_time.total_seconds()),
                corrects_breach=corrects_breach,
            )
        timer.save()
    if timers:
        _refresh_due(ticket)
    return timers


# A skipped care step no longer owes its target (and a close without a public close-out owes
# none): which timers each skip ends. The first response is owed by the acknowledgement.
SKIPPED_STEP_METRICS = {
    "acknowledge": (Metric.FIRST_RESPONSE,),
    "take_offline": (Metric.TAKE_OFFLINE,),
    "resolve": (Metric.RESOLUTION,),
    "close_out": (Metric.CLOSE_OUT,),
}


def sla_stop(
    *, ticket: Ticket, metrics: Iterable[str], at: datetime, reason: str
) -> list[SlaTimer]:
    """The targets ``metrics`` are no longer owed (a step skipped with a reason, a ticket
    closed without a close-out): running or paused timers stop, uncounted in compliance; a
    breach stays a breach (it happened) but stops ranking the ticket. Recorded per timer."""
    timers = list(
        SlaTimer.objects.live()
        .select_for_update(of=("self",))
        .filter(ticket_id=ticket.pk, metric__in=list(metrics))
        .order_by("pk")
    )
    for timer in timers:
        if timer.state == TimerState.PAUSED:
            _close_pause(timer, at)
        if timer.state == TimerState.BREACHED:
            timer.fulfilled_at = at  # no longer owed; still reported as breached
        else:
            timer.state = TimerState.STOPPED
        timer.save()
        ticket.record(SlaEventKind.SLA_STOPPED, at=at, metric=timer.metric, cause=reason)
    if timers:
        _refresh_due(ticket)
    return timers


def sla_fulfil_first_response(*, ticket: Ticket, at: datetime) -> SlaTimer | None:
    """The brand's first public reply the platform accepted went out at ``at``. Returns the
    first-response timer it fulfilled; None when there was none left to fulfil."""
    sla_start(ticket=ticket)
    timers = sla_fulfil(ticket=ticket, metrics=[Metric.FIRST_RESPONSE], at=at)
    return timers[0] if timers else None


def asks_a_question(text: str) -> bool:
    return "?" in text


def sla_reply_delivered(*, ticket: Ticket, message: Message, at: datetime) -> list[SlaTimer]:
    """A brand reply the platform accepted at ``at``. Any reply answers the customer (next
    response); a public one is the first response (any one, on a private ticket); a step's
    reply meets its step's target; the acknowledgement starts the take-offline clock; a direct
    message that asks the customer a question pauses the clocks that now wait on them."""
    metrics: list[str] = [Metric.NEXT_RESPONSE]
    if message.is_public or not ticket.is_public:
        # A private ticket (a conversation begun by DM) has no public thread: its first
        # response is the first reply that reached the customer.
        metrics.append(Metric.FIRST_RESPONSE)
    if message.step in STEP_METRIC:
        metrics.append(STEP_METRIC[message.step])
    fulfilled = sla_fulfil(ticket=ticket, metrics=metrics, at=at)
    if message.step == Step.ACKNOWLEDGE:
        _start(ticket, [Metric.TAKE_OFFLINE], at)
    if not message.is_public and asks_a_question(message.text):
        # Whichever step it was sent for (on a private ticket the acknowledgement is a DM
        # too), or none (typed on the platform): the brand now waits on the customer.
        sla_pause(ticket=ticket, at=at, message=message)
    return fulfilled


# Pausing --------------------------------------------------------------------------------------


@transaction.atomic
def sla_pause(*, ticket: Ticket, at: datetime, message: Message | None = None) -> list[SlaTimer]:
    """The brand asked the customer a question: the clocks that wait on them stop."""
    timers = list(
        SlaTimer.objects.select_for_update(of=("self",)).filter(
            ticket_id=ticket.pk,
            state=TimerState.RUNNING,
            metric__in=PAUSABLE_METRICS,
            started_at__lte=at,  # not a timer started after the question (a reopen)
        )
    )
    if not timers:
        return []
    for timer in timers:
        timer.state = TimerState.PAUSED
        timer.paused_at = at
    SlaTimer.objects.bulk_update(timers, ["state", "paused_at"])
    ticket.record(
        SlaEventKind.SLA_PAUSED,
        at=at,
        message=message,
        metrics=sorted(timer.metric for timer in timers),
        reason="waiting on the customer",
    )
    _refresh_due(ticket)
    return timers


@transaction.atomic
def sla_resume(*, ticket: Ticket, at: datetime) -> list[SlaTimer]:
    """The customer answered: the paused clocks run again, due later by the business time
    they were paused."""
    timers = list(
        SlaTimer.objects.select_for_update(of=("self",))
        .select_related("policy")
        .filter(ticket_id=ticket.pk, state=TimerState.PAUSED, paused_at__lte=at)
    )
    if not timers:
        return []
    for timer in timers:
        _close_pause(timer, at)
    SlaTimer.objects.bulk_update(timers, ["state", "paused_at", "paused_for", "due_at", "warn_at"])
    ticket.record(
        SlaEventKind.SLA_RESUMED,
        at=at,
        metrics=sorted(timer.metric for timer in timers),
        paused_seconds={timer.metric: round(timer.paused_for.total_seconds()) for timer in timers},
    )
    _refresh_due(ticket)
    return timers


# Recomputing ----------------------------------------------------------------------------------


def _retarget(timer: SlaTimer, policy: SlaPolicy, now: datetime) -> dict[str, Any] | None:
    """Put ``timer`` on ``policy`` (its target and calendar). Returns what changed for the
    ticket's history; an empty dict when only the policy did; None when nothing did."""
    minutes = policy.target_minutes(timer.metric)
    before = {"due_at": timer.due_at.isoformat(), "target_minutes": timer.target_minutes}
    if minutes is None:
        timer.state = TimerState.STOPPED
        timer.policy = policy
        return {**before, "metric": timer.metric, "stopped": True, "policy": policy.name}
    due = policy.due(timer.started_at, minutes, paused=timer.paused_for)
    warn = policy.warn(timer.started_at, minutes, paused=timer.paused_for)
    if timer.target_minutes == minutes and timer.due_at == due and timer.warn_at == warn:
        if timer.policy_id == policy.pk:
            return None
        timer.policy = policy
        return {}  # the same times on another policy: kept, nothing to tell
    timer.policy, timer.target_minutes, timer.due_at, timer.warn_at = policy, minutes, due, warn
    if timer.warned_at is not None and warn > now:
        timer.warned_at = None  # warned on the old threshold: warn again on the new one
    return {
        "metric": timer.metric,
        "before": before,
        "due_at": due.isoformat(),
        "target_minutes": minutes,
        "policy": policy.name,
    }


def _change_kind(change: dict[str, Any]) -> str:
    return SlaEventKind.SLA_STOPPED if change.get("stopped") else SlaEventKind.SLA_DUE_CHANGED


@transaction.atomic
def sla_rematch(
    *, ticket: Ticket, at: datetime, cause: str, actor: User | None = None
) -> list[SlaTimer]:
    """The ticket's priority (or what its policy matches on) changed: its running and paused
    timers follow the policy it matches now, due times recomputed, each change recorded
    (``sla_due_changed``). A target the new policy lacks stops; a target it adds starts where
    that target's clock would have started (``_start_missing``)."""
    ticket = Ticket.objects.get(pk=ticket.pk)
    # What was overdue before the change is breached first, at its old due time: a breach is
    # a fact, and no later change of target undoes it.
    sla_sweep(now=at, ticket_id=ticket.pk)
    policy = policy_for(ticket)
    timers = list(
        SlaTimer.objects.select_for_update(of=("self",))
        .select_related("policy")
        .filter(ticket_id=ticket.pk, state__in=(TimerState.RUNNING, TimerState.PAUSED))
    )
    changed: list[SlaTimer] = []
    for timer in timers:
        change = None if policy is None else _retarget(timer, policy, at)
        if change is None:
            continue
        timer.save()
        changed.append(timer)
        if not change:
            continue
        ticket.record(_change_kind(change), at=at, actor=actor, cause=cause, **change)
    if policy is not None:
        # A breached timer keeps its due time ("Breaches are kept", above); one whose
        # policy was deleted counts its business time on the policy the ticket follows now.
        SlaTimer.objects.filter(
            ticket_id=ticket.pk,
            state=TimerState.BREACHED,
            fulfilled_at__isnull=True,
            policy__isnull=True,
        ).update(policy=policy)
        changed += _start_missing(ticket, policy, Metric.values)
    _refresh_due(ticket)
    return changed


class Rematch(NamedTuple):
    """One ticket to put on the policy it matches now (``sla_rematch_many``): when, why, and
    who changed it (the agent's user id, or None)."""

    ticket_id: int
    at: datetime
    cause: str
    actor_id: int | None = None


@transaction.atomic
def sla_rematch_many(rematches: Sequence[Rematch]) -> list[SlaTimer]:
    """``sla_rematch`` for several tickets (one each) in a fixed number of statements for all
    of them, not a dozen for each (a poll's follow-ups raise many priorities at once): the
    tickets read, the sweep at each one's own instant, their running and paused timers read
    and updated, their events written, missing targets started and their due times set in a
    statement or two each. Does exactly what ``for r in rematches: sla_rematch(...)`` does."""
    if not rematches:
        return []
    ids = [rematch.ticket_id for rematch in rematches]
    if len(set(ids)) != len(ids):
        raise ValueError("one rematch per ticket")
    found = Ticket.objects.in_bulk(ids)
    tickets = [found[ticket_id] for ticket_id in ids]  # a missing ticket raises, as get() does
    # What was overdue before the change is breached first, at its old due time (as above),
    # each ticket at its own instant.
    swept = _sweep_each({rematch.ticket_id: rematch.at for rematch in rematches})
    policies: dict[int, list[SlaPolicy]] = {}
    chosen: dict[int, SlaPolicy | None] = {}
    for ticket in tickets:
        if ticket.organization_id not in policies:
            policies[ticket.organization_id] = org_policies(ticket.organization_id)
        chosen[ticket.pk] = policy_for(ticket, policies[ticket.organization_id])
    timers: dict[int, list[SlaTimer]] = {}
    for timer in (
        SlaTimer.objects.select_for_update(of=("self",))
        .select_related("policy")
        .filter(ticket_id__in=ids, state__in=(TimerState.RUNNING, TimerState.PAUSED))
        .order_by("pk")
    ):
        timers.setdefault(timer.ticket_id, []).append(timer)
    changed: list[SlaTimer] = []
    recorded: list[TicketEvent] = []
    for ticket, rematch in zip(tickets, rematches, strict=True):
        recorded.extend(swept.get(ticket.pk, []))
        policy = chosen[ticket.pk]
        for timer in timers.get(ticket.pk, []):
            change = None if policy is None else _retarget(timer, policy, rematch.at)
            if change is None:
                continue
            changed.append(timer)
            if not change:
                continue
            recorded.append(
                TicketEvent(
                    organization_id=ticket.organization_id,
                    ticket=ticket,
                    kind=_change_kind(change),
                    actor_id=rematch.actor_id,
                    at=rematch.at,
                    data={"cause": rematch.cause, **change},
                )
            )
    if changed:
        SlaTimer.objects.bulk_update(
            changed,
            ["policy", "state", "target_minutes", "due_at", "warn_at", "warned_at"],
            batch_size=500,
        )
    if recorded:
        record_events(recorded)
    by_policy: dict[int, tuple[SlaPolicy, list[Ticket]]] = {}
    for ticket in tickets:
        policy = chosen[ticket.pk]
        if policy is not None:
            by_policy.setdefault(policy.pk, (policy, []))[1].append(ticket)
    for policy, theirs in by_policy.values():
        # A breached timer keeps its due time; one whose policy was deleted counts its
        # business time on the policy the ticket follows now (as in ``sla_rematch``).
        SlaTimer.objects.filter(
            ticket_id__in=[ticket.pk for ticket in theirs],
            state=TimerState.BREACHED,
            fulfilled_at__isnull=True,
            policy__isnull=True,
        ).update(policy=policy)
    changed += _start_missing_many(
        [(ticket, policy) for ticket in tickets if (policy := chosen[ticket.pk]) is not None],
        Metric.values,
    )
    _refresh_dues(tickets)
    return changed


def _sweep_each(instants: dict[int, datetime]) -> dict[int, list[TicketEvent]]:
    """``sla_sweep(now=at, ticket_id=ticket)`` for each ticket at its own instant: one read
    of the tickets' running timers that may be due or to warn by the latest instant, each
    narrowed in memory to its ticket's instant, one UPDATE for the breaches and one per
    instant for the warnings. Returns each ticket's events unsaved, in the sweep's order
    (breaches, then warnings), for the caller to write in its own order."""
    latest = max(instants.values())
    rows = _claim(
        SlaTimer.objects.active().filter(
            Q(due_at__lt=latest) | Q(warn_at__lte=latest, warned_at__isnull=True),
            ticket_id__in=list(instants),
        ),
        ("pk", "organization_id", "ticket_id", "metric", "due_at", "warn_at", "warned_at"),
    )
    breaching, warning = [], []
    for row in rows:
        _pk, _org, ticket_id, _metric, due_at, warn_at, warned_at = row
        now = instants[ticket_id]
        if due_at < now:  # SlaTimer.objects.overdue(now)
            breaching.append(row)
        elif warn_at <= now and warned_at is None:  # SlaTimer.objects.to_warn(now)
            warning.append(row)
    if breaching:
        SlaTimer.objects.filter(
            pk__in=[row[0] for row in breaching], state=TimerState.RUNNING
        ).update(state=TimerState.BREACHED, breached_at=F("due_at"))
    warned: dict[datetime, list[int]] = {}
    for row in warning:
        warned.setdefault(instants[row[2]], []).append(row[0])
    for now, pks in warned.items():
        SlaTimer.objects.filter(pk__in=pks).update(warned_at=now)
    events: dict[int, list[TicketEvent]] = {}
    for kind, chosen, at_index in (
        (SlaEventKind.SLA_BREACHED, breaching, 4),  # breached at the due time
        (SlaEventKind.SLA_WARNING, warning, 5),  # warned at the warning time
    ):
        for row in chosen:
            _pk, org_id, ticket_id, metric, due_at, _warn_at, _warned_at = row
            events.setdefault(ticket_id, []).append(
                TicketEvent(
                    organization_id=org_id,
                    ticket_id=ticket_id,
                    kind=kind,
                    at=row[at_index],
                    data={"metric": metric, "due_at": due_at.isoformat()},
                )
            )
    return events


def _refresh_dues(tickets: Sequence[Ticket]) -> None:
    """``_refresh_due`` for several tickets: one aggregate, one UPDATE of those that moved."""
    due = dict(
        SlaTimer.objects.filter(
            ticket_id__in=[ticket.pk for ticket in tickets],
            state__in=(TimerState.RUNNING, TimerState.BREACHED),
            fulfilled_at__isnull=True,
        )
        .values("ticket_id")
        .annotate(due=Min("due_at"))
        .values_list("ticket_id", "due")
    )
    Ticket.set_sla_dues([(ticket, due.get(ticket.pk)) for ticket in tickets])


@transaction.atomic
def sla_policy_changed(
    *, policy: SlaPolicy, now: datetime | None = None, added: Iterable[str] = ()
) -> int:
    """A policy's targets, warning or hours changed. With ``apply_to_running`` its running and
    paused timers are recomputed, each change recorded on its ticket (in bulk), and a target
    it gained (``added``) starts on the open tickets that follow it, from where that target's
    clock would have started; otherwise the change applies to timers started from now on.
    Returns the number of timers changed or started."""
    if not policy.apply_to_running:
        return 0
    now = now or timezone.now()
    policy = SlaPolicy.objects.get(pk=policy.pk)  # as saved, calendar rebuilt
    # Breaches that happened before the change are recorded first, and kept.
    sla_sweep(now=now, policy_id=policy.pk)
    started = _start_missing_on_policy(policy, added, now) if added else 0
    timers = list(
        SlaTimer.objects.select_for_update(of=("self",)).filter(
            policy=policy, state__in=(TimerState.RUNNING, TimerState.PAUSED)
        )
    )
    events: list[TicketEvent] = []
    changed: list[SlaTimer] = []
    for timer in timers:
        timer.policy = policy
        change = _retarget(timer, policy, now)
        if change is None:
            continue
        changed.append(timer)
        if not change:
            continue
        events.append(
            TicketEvent(
                organization_id=timer.organization_id,
                ticket_id=timer.ticket_id,
                kind=_change_kind(change),
                at=now,
                data={**change, "cause": "policy_changed"},
            )
        )
    if not changed:
        return started
    SlaTimer.objects.bulk_update(
        changed, ["state", "target_minutes", "due_at", "warn_at", "warned_at"], batch_size=500
    )
    record_events(events)
    _refresh_due_many({timer.ticket_id for timer in changed})
    return len(changed) + started


def sla_start_gained_targets(
    *, policy_id: int, metrics: Iterable[str], now: datetime | None = None
) -> int:
    """The policy gained ``metrics``: start them on the open tickets that follow it, each from
    where its clock would have started, recorded (``sla_started``). Idempotent (a target a
    ticket has a clock for already is skipped); a policy deleted since starts nothing. Run as
    a task after the change (it reads every open ticket of the organisation)."""
    policy = SlaPolicy.objects.filter(pk=policy_id).first()
    if policy is None or not policy.apply_to_running:
        return 0
    with transaction.atomic():
        return _start_missing_on_policy(policy, metrics, now or timezone.now())


def _start_missing_on_policy(policy: SlaPolicy, metrics: Iterable[str], now: datetime) -> int:
    """Start ``metrics`` on the open tickets that follow ``policy`` now (matched in memory,
    one read of the organisation's policies)."""
    from monitoring.policies import org_policies

    metrics = [metric for metric in metrics if policy.target_minutes(metric) is not None]
    if not metrics:
        return 0
    policies = org_policies(policy.organization_id)
    started = 0
    for ticket in Ticket.objects.filter(organization_id=policy.organization_id).open():
        matched = policy_for(ticket, policies)
        if matched is not None and matched.pk == policy.pk:
            timers = _start_missing(ticket, matched, metrics)
            started += len(timers)
            if timers:
                ticket.record(
                    SlaEventKind.SLA_STARTED,
                    at=now,
                    metrics=sorted(timer.metric for timer in timers),
                    policy=policy.name,
                    cause="policy_changed",
                )
                _refresh_due(ticket)
    if started:
        sla_sweep(now=now, policy_id=policy.pk)
    return started


def _start_missing(ticket: Ticket, policy: SlaPolicy, metrics: Iterable[str]) -> list[SlaTimer]:
    """Start the targets of ``metrics`` the ticket owes now but has no clock for (the policy
    gained them, or the ticket moved to a policy that has them), each from where its clock
    would have started: the first response from the customer's post unless the brand has
    replied in public; resolution and close-out from the post (or the latest reopen) unless
    their step was delivered since; take offline from the delivered acknowledgement unless the
    take-offline DM went out; the next response from the oldest customer message after the
    brand's latest reply. A stopped timer is history: the target starts afresh."""
    return _start_missing_many([(ticket, policy)], metrics)


def _start_missing_many(
    tickets: Sequence[tuple[Ticket, SlaPolicy]], metrics: Iterable[str]
) -> list[SlaTimer]:
    """``_start_missing`` for several tickets (each on its policy), in the same four or five
    statements for all of them: their replies, their latest reopens, the customer messages
    waiting since the latest reply, their timers, one INSERT."""
    metrics = list(metrics)
    owed: dict[int, tuple[Ticket, SlaPolicy, list[str]]] = {}
    for ticket, policy in tickets:
        theirs = [metric for metric in metrics if policy.target_minutes(metric) is not None]
        if theirs:
            owed[ticket.pk] = (ticket, policy, theirs)
    if not owed:
        return []
    replies: dict[int, list[tuple[datetime, str, bool]]] = {pk: [] for pk in owed}
    for ticket_id, *reply in (
        TicketEvent.objects.filter(
            ticket_id__in=list(owed), kind=EventKind.REPLY_SENT, message__isnull=False
        )
        .order_by("at", "pk")
        .values_list("ticket_id", "at", "message__step", "message__is_public")
    ):
        replies[ticket_id].append(tuple(reply))  # type: ignore[arg-type]
    reopened = dict(
        TicketEvent.objects.filter(ticket_id__in=list(owed), kind=REOPENED)
        .values("ticket_id")
        .annotate(at=Max("at"))
        .values_list("ticket_id", "at")
    )
    # The oldest customer message after the brand's latest reply, for the next response.
    last_reply = {
        pk: replies[pk][-1][0]
        for pk, (_t, _p, theirs) in owed.items()
        if replies[pk] and Metric.NEXT_RESPONSE in theirs
    }
    waiting: dict[int, Message] = {}
    if last_reply:
        for found in (
            Message.objects.filter(
                ticket_id__in=list(last_reply),
                direction=Direction.INBOUND,
                created_at__gt=min(last_reply.values()),
            )
            .only("pk", "ticket_id", "created_at")
            .order_by("created_at", "pk")
        ):
            if found.ticket_id not in waiting and found.created_at > last_reply[found.ticket_id]:
                waiting[found.ticket_id] = found
    wanted: dict[int, dict[str, tuple[datetime, Message | None]]] = {}
    for pk, (ticket, _policy, theirs) in owed.items():
        ticket_replies = replies[pk]
        reopened_at = reopened.get(pk)
        since = max(ticket.opened_at, reopened_at) if reopened_at else ticket.opened_at

        def delivered(step: str, after: datetime, replies: list[Any] = ticket_replies) -> bool:
            return any(at >= after and replied_step == step for at, replied_step, _ in replies)

        starts: dict[str, tuple[datetime, Message | None]] = {}
        if not any(public or not ticket.is_public for _, _, public in ticket_replies):
            starts[Metric.FIRST_RESPONSE] = (ticket.opened_at, None)
        case_steps: tuple[tuple[str, str], ...] = (
            (Metric.RESOLUTION, Step.RESOLVE),
            (Metric.CLOSE_OUT, Step.CLOSE_OUT),
        )
        for case_metric, step in case_steps:
            if not delivered(step, since):
                starts[case_metric] = (since, None)
        acknowledged = [at for at, step, _ in ticket_replies if step == Step.ACKNOWLEDGE]
        if acknowledged and not delivered(Step.TAKE_OFFLINE, acknowledged[-1]):
            starts[Metric.TAKE_OFFLINE] = (acknowledged[-1], None)
        if pk in waiting:
            starts[Metric.NEXT_RESPONSE] = (waiting[pk].created_at, waiting[pk])
        chosen = {metric: start for metric, start in starts.items() if metric in theirs}
        if chosen:
            wanted[pk] = chosen
    if not wanted:
        return []
    existing: dict[int, list[SlaTimer]] = {pk: [] for pk in wanted}
    for kept in SlaTimer.objects.filter(
        ticket_id__in=list(wanted),
        metric__in={metric for chosen in wanted.values() for metric in chosen},
    ).exclude(state=TimerState.STOPPED):
        if kept.metric in wanted[kept.ticket_id]:
            existing[kept.ticket_id].append(kept)
    timers = []
    for pk, chosen in wanted.items():
        ticket, policy, _theirs = owed[pk]
        for metric, (started_at, message) in chosen.items():
            if any(
                timer.metric == metric
                and (timer.started_at >= started_at or timer.fulfilled_at is None)
                for timer in existing[pk]
            ):
                continue  # it runs, or ran in this cycle already
            timer = _unsaved_timer(ticket, policy, metric, started_at, message=message)
            if timer is None:
                continue
            sibling = _paused_sibling(existing[pk], metric, started_at)
            if sibling is not None:
                # Waiting on the customer since its sibling paused: so is this one.
                timer.state, timer.paused_at = TimerState.PAUSED, sibling.paused_at
                timer.paused_for = sibling.paused_for
                timer.due_at = policy.due(started_at, timer.target_minutes, paused=timer.paused_for)
                timer.warn_at = policy.warn(
                    started_at, timer.target_minutes, paused=timer.paused_for
                )
            timers.append(timer)
    if timers:
        SlaTimer.objects.bulk_create(timers, ignore_conflicts=True)
    return timers


def _paused_sibling(
    existing: Sequence[SlaTimer], metric: str, started_at: datetime
) -> SlaTimer | None:
    if metric not in PAUSABLE_METRICS:
        return None
    return next(
        (
            timer
            for timer in existing
            if timer.state == TimerState.PAUSED
            and timer.metric in PAUSABLE_METRICS
            and timer.started_at == started_at
        ),
        None,
    )


def sla_rematch_open_tickets(*, organization_id: int, now: datetime | None = None) -> int:
    """The organisation's policies were reordered, or what one matches on changed: every open
    ticket with a running or paused timer follows the policy it matches now (``sla_rematch``,
    each change recorded). Returns the number of tickets looked at."""
    now = now or timezone.now()
    ticket_ids = list(
        Ticket.objects.filter(organization_id=organization_id)
        .open()
        .filter(sla_timers__state__in=(TimerState.RUNNING, TimerState.PAUSED))
        .values_list("pk", flat=True)
        .distinct()
    )
    for ticket in Ticket.objects.filter(pk__in=ticket_ids):
        sla_rematch(ticket=ticket, at=now, cause="policy_changed")
    return len(ticket_ids)


def _refresh_due_many(ticket_ids: Iterable[int]) -> None:
    ids = list(ticket_ids)
    due = dict(
        SlaTimer.objects.filter(
            ticket_id__in=ids,
            state__in=(TimerState.RUNNING, TimerState.BREACHED),
            fulfilled_at__isnull=True,
        )
        .values("ticket_id")
        .annotate(due=Min("due_at"))
        .values_list("ticket_id", "due")
    )
    tickets = Ticket.objects.filter(pk__in=ids).only("pk", "priority", "sla_due_at", "sla_risk_at")
    for ticket in tickets:
        ticket.set_sla_due(due.get(ticket.pk))


# Sweeping -------------------------------------------------------------------------------------


class SweepResult(NamedTuple):
    warned: int
    breached: int


def _claim(queryset: Any, fields: Sequence[str]) -> list[tuple[Any, ...]]:
    # Lock the timers only (not their tickets, which agents are working on); a timer another
    # sweep holds is skipped, and that sweep settles it.
    return list(queryset.select_for_update(skip_locked=True, of=("self",)).values_list(*fields))


def sweep_queries(now: datetime) -> tuple[Any, Any]:
    """The sweep's two reads: running timers past due, and running timers past their warning
    but not yet due. Each is served by a partial index (``sla_timer_running_due_idx``,
    ``sla_timer_to_warn_idx``)."""
    return SlaTimer.objects.overdue(now), SlaTimer.objects.to_warn(now)


def sla_sweep(
    *,
    now: datetime | None = None,
    ticket_id: int | None = None,
    ticket_ids: Collection[int] | None = None,
    policy_id: int | None = None,
) -> SweepResult:
    """One set-based pass: every running timer past due is breached and every one past its
    warning threshold warned, each once, its events written in one insert. ``ticket_id``
    narrows it to one ticket (the cheap check after each of the ticket's events), ``ticket_ids``
    to several (the same check after a batch of events), ``policy_id`` to one policy's timers
    (before a change of that policy)."""
    now = now or timezone.now()
    fields = ("pk", "organization_id", "ticket_id", "metric", "due_at", "warn_at")
    overdue, to_warn = sweep_queries(now)
    if ticket_id is not None:
        overdue, to_warn = overdue.filter(ticket_id=ticket_id), to_warn.filter(ticket_id=ticket_id)
    if ticket_ids is not None:
        ids = list(ticket_ids)
        overdue, to_warn = overdue.filter(ticket_id__in=ids), to_warn.filter(ticket_id__in=ids)
    if policy_id is not None:
        overdue, to_warn = overdue.filter(policy_id=policy_id), to_warn.filter(policy_id=policy_id)
    with transaction.atomic():
        breaching = _claim(overdue, fields)
        warning = _claim(to_warn, fields)
        if not breaching and not warning:
            return SweepResult(0, 0)
        if breaching:
            SlaTimer.objects.filter(
                pk__in=[row[0] for row in breaching], state=TimerState.RUNNING
            ).update(state=TimerState.BREACHED, breached_at=F("due_at"))
        if warning:
            SlaTimer.objects.filter(pk__in=[row[0] for row in warning]).update(warned_at=now)
        record_events(
            [
                TicketEvent(
                    organization_id=org_id,
                    ticket_id=tid,
                    kind=SlaEventKind.SLA_BREACHED,
                    at=due_at,
                    data={"metric": metric, "due_at": due_at.isoformat()},
                )
                for _pk, org_id, tid, metric, due_at, _warn_at in breaching
            ]
            + [
                TicketEvent(
                    organization_id=org_id,
                    ticket_id=tid,
                    kind=SlaEventKind.SLA_WARNING,
                    at=warn_at,
                    data={"metric": metric, "due_at": due_at.isoformat()},
                )
                for _pk, org_id, tid, metric, due_at, warn_at in warning
            ]
        )
    return SweepResult(warned=len(warning), breached=len(breaching))


def sla_sweep_breaches(*, now: datetime | None = None) -> int:
    """The sweep (warnings too); returns the number of timers it breached."""
    return sla_sweep(now=now).breached


# Stopping -------------------------------------------------------------------------------------
