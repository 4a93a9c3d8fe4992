"""Merge and split: an agent puts two tickets about one case together, or takes messages about
another case out into a ticket of their own. Both are recorded on each ticket involved.

Merging B into A moves B's messages to A and closes B as merged, with a link to A
(``merged_into``); monitoring stops B's SLA timers on its ``merged_into`` event. Splitting moves
the chosen customer messages into a new ticket, opened (``opened``: monitoring starts its timers)
from the first of them. Events stay on the ticket where they happened: each timeline keeps its
history, and the merge or split event says where the messages went.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from tickets import priority
from tickets.models import (
    Direction,
    EventKind,
    Message,
    OutboxState,
    StepError,
    Ticket,
    TicketEvent,
    lock_search_documents,
)

if TYPE_CHECKING:
    from careinbox.accounts.models import User

# A reply on its way (or of unknown fate) belongs to the ticket whose step it was sent for.
_IN_FLIGHT = (OutboxState.QUEUED, OutboxState.SENDING, OutboxState.UNCERTAIN)


def _locked(*tickets: Ticket) -> list[Ticket]:
    """The tickets again, locked, in id order (two agents merging both ways cannot deadlock)."""
    ids = sorted(t.pk for t in tickets)
    # ORDER BY: the rows are locked in the order the statement returns them, which an IN list
    # alone does not fix (a bitmap scan returns them in the table's order).
    locking = Ticket.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk")
    found = {t.pk: t for t in locking}
    return [found[t.pk] for t in tickets]


def _has_reply_in_flight(ticket: Ticket) -> bool:
    return Message.objects.filter(
        ticket_id=ticket.pk, direction=Direction.OUTBOUND, outbox__state__in=_IN_FLIGHT
    ).exists()


@transaction.atomic
def ticket_merge(*, target: Ticket, source: Ticket, by: User) -> TicketEvent:
    """Merge ``source`` (B) into ``target`` (A): B's messages move to A, B is closed as merged
    with a link to A, and both record it. Raises StepError, changing nothing, when the two
    cannot be merged."""
    if target.organization_id != source.organization_id:
        raise StepError("Those tickets belong to different organisations.")
    if target.pk == source.pk:
        raise StepError("A ticket cannot be merged into itself.")
    target, source = _locked(target, source)
    if source.merged_into_id is not None:
        raise StepError(f"Ticket #{source.pk} is merged into #{source.merged_into_id} already.")
    if not target.is_open:
        raise StepError(f"Ticket #{target.pk} is closed: merge into an open ticket.")
    if target.platform != source.platform:
        raise StepError(
            "Tickets on different platforms cannot be merged: replies go out on the "
            "ticket's own platform. Link the customer's identities instead."
        )
    if _has_reply_in_flight(source):
        raise StepError(
            f"A reply on ticket #{source.pk} is still on its way (or unsettled): merge once "
            "it has gone out."
        )
    lock_search_documents((source.pk, target.pk))  # before the update's row-level triggers
    moved = Message.objects.filter(ticket_id=source.pk).update(ticket=target)
    target.refresh_last_message_direction()
    source.refresh_last_message_direction()
    source.close_as_merged(target, by=by, moved=moved)
    return target.record(EventKind.MERGED, actor=by, source=source.pk, moved=moved)


@transaction.atomic
def ticket_split(*, ticket: Ticket, message_ids: Sequence[int], by: User) -> Ticket:
    """Move the chosen customer messages of ``ticket`` into a new ticket, opened from the first
    of them; both tickets record it. Returns the new ticket. Raises StepError, changing nothing,
    for a choice that cannot be split (none, another ticket's, the brand's, the first post)."""
    (ticket,) = _locked(ticket)
    chosen = list(
        Message.objects.filter(ticket_id=ticket.pk, pk__in=list(message_ids)).order_by(
            "created_at", "pk"
        )
    )
    if not chosen:
        raise StepError("Choose the customer's messages to split out.")
    if len(chosen) != len(set(message_ids)):
        raise StepError("Only this ticket's own messages can be split out.")
    if any(m.direction != Direction.INBOUND for m in chosen):
        raise StepError("Only the customer's messages can be split out; the brand's stay.")
    if ticket.root_message_id in {m.pk for m in chosen}:
        raise StepError("The post that opened the ticket stays; split out the others.")
    first = chosen[0]
    level, reasons = priority.assess(text=first.text, followers=first.author_followers)
    new = Ticket.objects.create(
        organization_id=ticket.organization_id,
        brand_id=ticket.brand_id,
        social_account_id=ticket.social_account_id,
        platform=ticket.platform,
        priority=level,
        priority_reasons=reasons,
        customer_id=ticket.customer_id,
        customer_external_id=first.author_external_id or ticket.customer_external_id,
        customer_username=first.author_username or ticket.customer_username,
        customer_display_name=first.author_display_name or ticket.customer_display_name,
        customer_followers=first.author_followers,
        conversation_id=first.conversation_id or first.external_id,
        is_public=first.is_public,
        opened_at=first.created_at,
        root_message=first,
    )
    ids = [m.pk for m in chosen]
    lock_search_documents((ticket.pk, new.pk))
    Message.objects.filter(pk__in=ids).update(ticket=new)
    new.refresh_last_message_direction()
    ticket.refresh_last_message_direction()
    new.record(EventKind.OPENED, actor=by, at=first.created_at, priority=level, reasons=reasons)
    new.record(EventKind.SPLIT_FROM, actor=by, source=ticket.pk, messages=ids)
    ticket.record(EventKind.SPLIT, actor=by, into=new.pk, messages=ids)
    return new


@dataclass(frozen=True)
class MergeOffer:
    """An open ticket of the same customer that ingest found about the same thing."""

    candidate: Ticket
    similarity: int | None


def merge_offers(
    ticket: Ticket, *, events: Sequence[TicketEvent] | None = None
) -> list[MergeOffer]:
    """The offers still standing on ``ticket``: not dismissed, both tickets open (two queries;
    one when the ticket's ``events`` are given, loaded in their order: ``at``, then ``pk``)."""
    if not ticket.is_open:
        return []
    kinds = (EventKind.MERGE_OFFERED, EventKind.MERGE_OFFER_DISMISSED)
    offers: Iterable[tuple[str, Any]] = (
        ticket.events.filter(kind__in=kinds).values_list("kind", "data")
        if events is None
        else [(e.kind, e.data) for e in events if e.kind in kinds]
    )
    offered: dict[int, int | None] = {}
    for kind, data in offers:
        candidate = data.get("candidate")
        if not isinstance(candidate, int):
            continue
        if kind == EventKind.MERGE_OFFERED:
            offered[candidate] = data.get("similarity")
        else:
            offered.pop(candidate, None)
    if not offered:
        return []
    candidates = Ticket.objects.filter(
        pk__in=list(offered), organization_id=ticket.organization_id
    ).select_related("root_message")
    return [
        MergeOffer(candidate, offered[candidate.pk])
        for candidate in candidates.order_by("pk")
        if candidate.is_open and candidate.merged_into_id is None
    ]


@transaction.atomic
def merge_offer_dismiss(*, ticket: Ticket, candidate_id: int, by: User) -> TicketEvent | None:
    """The agent says the offered ticket is another matter; recorded. None if no such offer."""
    if all(offer.candidate.pk != candidate_id for offer in merge_offers(ticket)):
        return None
    return ticket.record(EventKind.MERGE_OFFER_DISMISSED, actor=by, candidate=candidate_id)
