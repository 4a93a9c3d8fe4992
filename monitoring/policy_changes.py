"""An admin's changes to SLA policies: create, edit, move and delete.

Each is one transaction that writes the audit entry (``careinbox.audit.record_change``) and
applies the change to running timers as the policy says:

- a change of targets, warning or hours recomputes the due times of the policy's running and
  paused timers, each recorded on the ticket (``sla_policy_changed``, in bulk, in the
  transaction), and a target it gained starts on the open tickets that follow it
  (``start_gained_targets`` after commit: it reads every open ticket); only with
  ``apply_to_running``;
- a change of what a policy matches (brand, platform, handle, priority) or of the order sends
  open tickets to the policy they match now: ``rematch_open_tickets`` runs after commit, one
  task for the organisation, since it can touch every open ticket;
- a deleted policy's running timers move at once, in the same transaction, to the policy each
  ticket matches next, recorded (``sla_moved``), so no timer is ever left without a policy.

The list always ends with a catch-all (a policy that narrows on nothing): the last catch-all
can be neither deleted nor narrowed, so every ticket has an SLA.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from careinbox.accounts.models import Organization, User
from careinbox.audit import record_change, snapshot
from monitoring.models import LIVE_STATES, Metric, SlaEventKind, SlaPolicy, SlaTimer
from monitoring.policies import org_policies, policy_for
from monitoring.services import sla_policy_changed, sla_rematch
from tickets.models import Ticket

TARGET_FIELDS = tuple(f"{metric}_minutes" for metric in Metric.values)
# What, when changed, moves the due times of the policy's running timers.
TIMING_FIELDS = (*TARGET_FIELDS, "warning_percent", "time_zone", "calendar")
# What, when changed, may send tickets to another policy.
MATCHING_FIELDS = ("position", "brand", "platform", "social_account", "priority")
# What the audit trail keeps of a policy.
AUDITED_FIELDS = (
    "name",
    *MATCHING_FIELDS,
    *TIMING_FIELDS,
    "apply_to_running",
)


class PolicyError(Exception):
    """A change that would leave the organisation's SLA broken; the message says why."""


def _audit(policy: SlaPolicy) -> dict[str, Any]:
    return snapshot(policy, AUDITED_FIELDS)


def _renumber(organization_id: int, order: list[SlaPolicy] | None = None) -> None:
    """Positions 1, 2, 3... in ``order`` (the stored order by default)."""
    if order is None:
        order = list(
            SlaPolicy.objects.filter(organization_id=organization_id).order_by("position", "pk")
        )
    moved = []
    for position, policy in enumerate(order, start=1):
        if policy.position != position:
            policy.position = position
            moved.append(policy)
    SlaPolicy.objects.bulk_update(moved, ["position"])


def _other_catch_all_exists(policy: SlaPolicy) -> bool:
    return any(
        other.is_catch_all
        for other in SlaPolicy.objects.filter(organization_id=policy.organization_id).exclude(
            pk=policy.pk
        )
    )


def _start_gained_after_commit(policy_id: int, metrics: list[str]) -> None:
    from monitoring.tasks import start_gained_targets

    transaction.on_commit(lambda: start_gained_targets.delay(policy_id, metrics))


def _rematch_after_commit(organization_id: int) -> None:
    from monitoring.tasks import rematch_open_tickets

    transaction.on_commit(lambda: rematch_open_tickets.delay(organization_id))


@transaction.atomic
def sla_policy_create(*, organization: Organization, actor: User, policy: SlaPolicy) -> SlaPolicy:
    """Add ``policy`` (validated, unsaved). A narrowed policy goes just above the last
    catch-all, so it is reached; a catch-all goes at the end."""
    policy.organization = organization
    org_policies(organization.pk)  # an organisation with none gets its catch-all first
    order = list(
        SlaPolicy.objects.select_for_update()
        .filter(organization=organization)
        .order_by("position", "pk")
    )
    last_catch_all = max(
        (index for index, other in enumerate(order) if other.is_catch_all), default=None
    )
    policy.position = (order[-1].position + 1) if order else 1
    policy.save()
    at = len(order) if policy.is_catch_all or last_catch_all is None else last_catch_all
    order.insert(at, policy)
    _renumber(organization.pk, order)
    record_change(organization, actor, "created", policy, after=_audit(policy))
    _rematch_after_commit(organization.pk)
    return policy


@transaction.atomic
def sla_policy_update(*, policy: SlaPolicy, actor: User) -> int:
    """Save the edited ``policy`` and apply it. Returns the number of running timers whose due
    times were recomputed or started."""
    saved = SlaPolicy.objects.select_for_update().get(pk=policy.pk)
    if saved.is_catch_all and not policy.is_catch_all and not _other_catch_all_exists(saved):
        raise PolicyError(
            f"“{saved.name}” is the organisation's only catch-all policy (no brand, channel or "
            "priority): narrowing it would leave some tickets without an SLA. Add another "
            "catch-all first."
        )
    before = _audit(saved)
    policy.save()
    after = _audit(policy)
    changed = {name for name in AUDITED_FIELDS if before[name] != after[name]}
    if not changed:
        return 0
    record_change(policy.organization, actor, "updated", policy, before=before, after=after)
    recomputed = 0
    if changed & set(TIMING_FIELDS) or "apply_to_running" in changed:
        added = [
            metric
            for metric in Metric.values
            if saved.target_minutes(metric) is None and policy.target_minutes(metric) is not None
        ]
        recomputed = sla_policy_changed(policy=policy)
        if added and policy.apply_to_running:
            _start_gained_after_commit(policy.pk, added)
    if changed & set(MATCHING_FIELDS):
        _rematch_after_commit(policy.organization_id)
    return recomputed


@transaction.atomic
def sla_policy_move(*, policy: SlaPolicy, actor: User, up: bool) -> bool:
    """Swap ``policy`` with the one above (``up``) or below it. False when it is at that end
    already."""
    order = list(
        SlaPolicy.objects.select_for_update()
        .filter(organization_id=policy.organization_id)
        .order_by("position", "pk")
    )
    index = next(index for index, other in enumerate(order) if other.pk == policy.pk)
    neighbour = index - 1 if up else index + 1
    if not 0 <= neighbour < len(order):
        return False
    before = {other.name: position for position, other in enumerate(order, start=1)}
    order[index], order[neighbour] = order[neighbour], order[index]
    _renumber(policy.organization_id, order)
    record_change(
        policy.organization,
        actor,
        "moved",
        order[neighbour],
        before={"order": list(before)},
        after={"order": [other.name for other in order]},
    )
    _rematch_after_commit(policy.organization_id)
    return True


@transaction.atomic
def sla_policy_delete(*, policy: SlaPolicy, actor: User) -> int:
    """Delete ``policy``. Its running timers move, now, to the policy each ticket matches next
    (recomputed on it, recorded). The last catch-all is refused. Returns the number of tickets
    whose timers moved."""
    policy = SlaPolicy.objects.select_for_update().get(pk=policy.pk)
    if policy.is_catch_all and not _other_catch_all_exists(policy):
        raise PolicyError(
            f"“{policy.name}” is the organisation's only catch-all policy: without it some "
            "tickets would have no SLA. Add another catch-all (no brand, channel or priority) "
            "before deleting this one."
        )
    organization, name = policy.organization, policy.name
    ticket_ids = sorted(
        set(
            SlaTimer.objects.filter(
                policy=policy, state__in=LIVE_STATES, fulfilled_at__isnull=True
            ).values_list("ticket_id", flat=True)
        )
    )
    record_change(organization, actor, "deleted", policy, before=_audit(policy))
    policy.delete()  # its timers' policy is set to NULL: the rematch below puts them on one
    _renumber(organization.pk)
    now = timezone.now()
    policies = org_policies(organization.pk)
    for ticket in Ticket.objects.filter(pk__in=ticket_ids):
        successor = policy_for(ticket, policies)
        ticket.record(
            SlaEventKind.SLA_MOVED,
            at=now,
            actor=actor,
            cause="policy_deleted",
            policy=successor.name if successor else None,
            before_policy=name,
        )
        sla_rematch(ticket=ticket, at=now, cause="policy_deleted", actor=actor)
    return len(ticket_ids)
