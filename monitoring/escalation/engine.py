"""The escalation engine: match, fire once per level, clear.

For each enabled rule, one pass (``escalation_sweep``; beat runs it every few seconds, and each
ticket event runs it narrowed to that ticket) does, set-based, in one transaction:

1. **clear**: the rule's live matches whose ticket no longer meets every condition (or is no
   longer open) get ``cleared_at``; a ticket on which a level had fired gets an
   ``escalation_cleared`` event. Nothing already done is undone (a tag stays, a raised priority
   stays): clearing stops the levels still to come.
2. **match**: open tickets meeting every condition with no live match get one, ``since`` now.
3. **fire**: for each level, the live matches that have held for its ``after_minutes`` and have
   no firing of that level get one, and an ``escalated`` event on the ticket's timeline.

A match is an episode: once cleared, a later re-occurrence starts a new one from its own
``since``, and its levels fire again (the same breach never fires twice; a ticket that comes
back into danger after being out of it does). The queries per rule are fixed, whatever the
number of open tickets. The unique constraints (one live match per rule and ticket, one firing
per match and level) make two workers sweeping at once safe: the second insert fails, that
rule's pass rolls back whole (its events too), and the next pass finds the work done.

The actions of the new firings run after commit in ``run_escalation_actions`` (a task, in
batches), so a sweep that fires many levels at once stays a handful of queries and never waits
on mail or chat servers.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from monitoring.escalation.actions import run_actions
from monitoring.escalation.conditions import UnknownCondition, apply_conditions
from monitoring.models import (
    EscalationEventKind,
    EscalationFiring,
    EscalationMatch,
    EscalationRule,
)
from tickets.events import record_events
from tickets.models import OPEN_STATUSES, Ticket, TicketEvent, TicketQuerySet

log = logging.getLogger(__name__)

ACTION_BATCH = 100


@dataclass
class EscalationPass:
    """What one pass did: matches started and cleared, and the firings it made."""

    matched: int = 0
    cleared: int = 0
    fired: list[int] = field(default_factory=list)


def open_tickets(organization_id: int) -> TicketQuerySet:
    return Ticket.objects.filter(organization_id=organization_id, status__in=OPEN_STATUSES)


def matching_tickets(
    organization_id: int,
    conditions: list[dict[str, Any]],
    *,
    now: datetime | None = None,
    ticket_id: int | None = None,
    ticket_ids: Collection[int] | None = None,
) -> TicketQuerySet:
    """The organisation's open tickets (or the one ticket, or those of ``ticket_ids``) every
    condition holds for now: what the rule would match (the dry run shows exactly this)."""
    tickets = open_tickets(organization_id)
    if ticket_id is not None:
        tickets = tickets.filter(pk=ticket_id)  # first: a kind read into Python reads one row
    if ticket_ids is not None:
        tickets = tickets.filter(pk__in=list(ticket_ids))
    return apply_conditions(tickets, conditions, now or timezone.now())


def _pass_rule(rule: EscalationRule, now: datetime, ticket_ids: list[int] | None) -> EscalationPass:
    result = EscalationPass()
    try:
        matching = matching_tickets(
            rule.organization_id, rule.conditions, now=now, ticket_ids=ticket_ids
        )
    except UnknownCondition as error:
        log.warning("escalation rule %s matches nothing: %s", rule.pk, error)
        matching = open_tickets(rule.organization_id).none()
    live = EscalationMatch.objects.filter(rule=rule, cleared_at__isnull=True)
    if ticket_ids is not None:
        live = live.filter(ticket_id__in=ticket_ids)
    # Three reads, whatever the number of tickets: what matches now, the live matches, and
    # the levels they have fired. The rest is set arithmetic here.
    matched = set(matching.values_list("pk", flat=True))
    live_rows = list(live.values_list("pk", "ticket_id", "since"))
    fired: dict[int, set[int]] = {}
    if live_rows:
        levels_fired = EscalationFiring.objects.filter(rule=rule, match__cleared_at__isnull=True)
        if ticket_ids is not None:
            levels_fired = levels_fired.filter(ticket_id__in=ticket_ids)
        for match_id, number in levels_fired.values_list("match_id", "level"):
            fired.setdefault(match_id, set()).add(number)
    events: list[TicketEvent] = []

    # 1. Clear the matches whose conditions no longer hold.
    clearing = [(pk, tid) for pk, tid, _ in live_rows if tid not in matched]
    if clearing:
        EscalationMatch.objects.filter(pk__in=[pk for pk, _ in clearing]).update(cleared_at=now)
        result.cleared = len(clearing)
        events += [
            TicketEvent(
                organization_id=rule.organization_id,
                ticket_id=tid,
                kind=EscalationEventKind.ESCALATION_CLEARED,
                at=now,
                data={"rule_id": rule.pk, "rule": rule.name},
            )
            for pk, tid in clearing
            if fired.get(pk)
        ]
    holding = [(pk, tid, since) for pk, tid, since in live_rows if tid in matched]

    # 2. Start a match for each ticket newly meeting every condition.
    new_ids = sorted(matched - {tid for _, tid, _ in live_rows})
    if new_ids:
        created_matches = EscalationMatch.objects.bulk_create(
            EscalationMatch(
                organization_id=rule.organization_id, rule=rule, ticket_id=tid, since=now
            )
            for tid in new_ids
        )
        holding += [(match.pk, match.ticket_id, now) for match in created_matches]
        result.matched = len(new_ids)

    # 3. Fire each level whose time has come, once per match.
    firings: list[EscalationFiring] = []
    for number, level in enumerate(rule.levels, start=1):
        after = timedelta(minutes=int(level.get("after_minutes") or 0))
        for match_id, tid, since in holding:
            if since > now - after or number in fired.get(match_id, ()):
                continue
            firings.append(
                EscalationFiring(
                    organization_id=rule.organization_id,
                    match_id=match_id,
                    rule=rule,
                    ticket_id=tid,
                    level=number,
                    fired_at=now,
                    actions=level.get("actions") or {},
                )
            )
            events.append(
                TicketEvent(
                    organization_id=rule.organization_id,
                    ticket_id=tid,
                    kind=EscalationEventKind.ESCALATED,
                    at=now,
                    data={
                        "rule_id": rule.pk,
                        "rule": rule.name,
                        "level": number,
                        "summary": f"{rule.name}, level {number}",
                    },
                )
            )
    if firings:
        created = EscalationFiring.objects.bulk_create(firings)
        result.fired = [firing.pk for firing in created]
    if events:
        record_events(events)
    return result


def escalation_sweep(
    *,
    now: datetime | None = None,
    ticket_id: int | None = None,
    ticket_ids: Collection[int] | None = None,
    organization_id: int | None = None,
    rules: Iterable[EscalationRule] | None = None,
) -> EscalationPass:
    """One pass of every enabled rule (of one organisation, or narrowed to one ticket or to
    ``ticket_ids``). The new firings' actions are queued after commit."""
    now = now or timezone.now()
    narrowed: list[int] | None = None
    if ticket_id is not None or ticket_ids is not None:
        narrowed = sorted({*([ticket_id] if ticket_id is not None else []), *(ticket_ids or ())})
    if rules is None:
        selected = EscalationRule.objects.filter(enabled=True).order_by(
            "organization_id", "position", "pk"
        )
        if organization_id is not None:
            selected = selected.filter(organization_id=organization_id)
        rules = list(selected)
    total = EscalationPass()
    for rule in rules:
        try:
            with transaction.atomic():
                one = _pass_rule(rule, now, narrowed)
        except IntegrityError:
            # Another worker matched or fired the same at the same moment; it did the work.
            log.info("escalation rule %s: a concurrent pass got there first", rule.pk)
            continue
        total.matched += one.matched
        total.cleared += one.cleared
        total.fired += one.fired
    if total.fired:
        queue_actions(total.fired)
    return total


def queue_actions(firing_ids: list[int]) -> None:
    from monitoring.escalation.tasks import run_escalation_actions

    queue = settings.CELERY_INTERACTIVE_QUEUE  # someone is waiting for these
    for start in range(0, len(firing_ids), ACTION_BATCH):
        batch = firing_ids[start : start + ACTION_BATCH]
        transaction.on_commit(
            lambda batch=batch: run_escalation_actions.apply_async(args=(batch,), queue=queue),  # type: ignore[misc]
            robust=True,
        )


def escalation_run_actions(*, firing_ids: Iterable[int]) -> int:
    """Carry out the actions of the given firings not yet done, each in its own transaction
    with its row locked (two workers never run the same firing at once). Returns how many ran."""
    ran = 0
    for firing_id in firing_ids:
        with transaction.atomic():
            firing = (
                EscalationFiring.objects.select_for_update()
                .select_related("rule", "ticket", "ticket__organization")
                .filter(pk=firing_id, actions_done_at__isnull=True)
                .first()
            )
            if firing is None:
                continue  # done already, or gone with its rule or ticket
            outcome = run_actions(
                firing.ticket,
                firing.actions,
                rule_name=firing.rule.name,
                level=firing.level,
                firing_id=firing.pk,
            )
            firing.actions_done_at = timezone.now()
            firing.outcome = outcome
            firing.save(update_fields=["actions_done_at", "outcome"])
            ran += 1
    return ran


def escalation_run_pending(
    *, older_than: timedelta = timedelta(minutes=2), limit: int = 500
) -> int:
    """Firings whose actions never ran (the task was lost): run them now."""
    cutoff = timezone.now() - older_than
    ids = list(
        EscalationFiring.objects.filter(actions_done_at__isnull=True, fired_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    return escalation_run_actions(firing_ids=ids) if ids else 0
