"""Team work on a ticket: assigning, claiming, round-robin within a team, redistributing an away
member's tickets, internal notes with @mentions, skipping a care step, and moderation.

Each service checks who may do it, changes the ticket through its model methods (each records
an event), and runs in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Count
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone

from careinbox.accounts.models import Membership, Role, Team
from careinbox.notifications.services import notify
from channels_social.base import OutboundKind
from channels_social.registry import adapter_class
from tickets.models import (
    Direction,
    EventKind,
    Message,
    MessageKind,
    ModerationReason,
    Note,
    OutboxItem,
    OutboxState,
    StepError,
    TeamRouting,
    Ticket,
    TicketEvent,
)
from tickets.services.steps import pending_replies

if TYPE_CHECKING:
    from careinbox.accounts.models import User

NOTE_MAX_LENGTH = 5000


class TeamworkError(Exception):
    """A team-work action was refused (not allowed, or bad input); nothing changed."""


def ticket_url(ticket: Ticket, anchor: str = "") -> str:
    return reverse("tickets:detail", args=[ticket.pk]) + (f"#{anchor}" if anchor else "")


# --- Assignment ------------------------------------------------------------------------------


def routing_for(team: Team) -> TeamRouting:
    routing, _ = TeamRouting.objects.get_or_create(
        team=team, defaults={"organization_id": team.organization_id}
    )
    return routing


def open_load(organization_id: int, user_ids: list[int]) -> dict[int, int]:
    """How many open tickets each of these users has assigned, in one query."""
    rows = (
        Ticket.objects.filter(organization_id=organization_id, assigned_to_id__in=user_ids)
        .open()
        .values("assigned_to_id")
        .annotate(n=Count("pk"))
    )
    return {row["assigned_to_id"]: row["n"] for row in rows}


def next_in_rotation(
    team: Team, routing: TeamRouting, *, exclude_user_id: int | None = None
) -> Membership | None:
    """The team's next member in round-robin order (membership order, wrapping after the one
    given the last ticket) who is active, not away, and under their capacity; None if nobody."""
    candidates = team.members.filter(is_active=True, is_away=False, user__is_active=True)
    if exclude_user_id is not None:
        candidates = candidates.exclude(user_id=exclude_user_id)
    members = list(candidates.select_related("user").order_by("pk"))
    load = open_load(team.organization_id, [m.user_id for m in members])
    free = [m for m in members if load.get(m.user_id, 0) < m.capacity]
    if not free:
        return None
    last = routing.last_assigned_id or 0
    after = [m for m in free if m.pk > last]
    return (after or free)[0]


def _route_to_team(
    ticket: Ticket, team: Team, *, by: User | None, reason: str, exclude_user_id: int | None = None
) -> TicketEvent | None:
    """Put the ticket in ``team``; with the team's auto-assign on, give it to the next member
    (round-robin), else (or if nobody is free) leave it in the team's queue."""
    routing = TeamRouting.objects.select_for_update().get(pk=routing_for(team).pk)
    member = (
        next_in_rotation(team, routing, exclude_user_id=exclude_user_id)
        if (routing.auto_assign)
        else None
    )
    if member is None:
        note = "; nobody in the team is free" if routing.auto_assign else ""
        return ticket.assign(None, team=team, by=by, reason=f"{reason}{note}")
    routing.last_assigned = member
    routing.save(update_fields=["last_assigned", "updated_at"])
    event = ticket.assign(member.user, team=team, by=by, reason=f"{reason} (round-robin)")
    _tell_assignee(ticket, member.user, by, event)
    return event


def _tell_assignee(ticket: Ticket, user: User, by: User | None, event: TicketEvent | None) -> None:
    if event is None or (by is not None and by.pk == user.pk):
        return
    notify(
        ticket.organization,
        [user],
        f"Ticket #{ticket.pk} (@{ticket.customer_username}) is yours",
        body=f"Assigned by {by}." if by else "Assigned by routing.",
        url=ticket_url(ticket),
        kind="assignment",
        dedupe_key=f"assigned:{event.pk}",
    )


def _member(ticket: Ticket, user_id: int) -> Membership:
    member = (
        Membership.objects.filter(
            organization_id=ticket.organization_id, user_id=user_id, is_active=True
        )
        .select_related("user")
        .first()
    )
    if member is None:
        raise TeamworkError("That person is not an active member of this organisation.")
    return member


def assignment_refusal(*, holder_id: int | None, assignee_id: int | None, by: Membership) -> str:
    """Why ``by`` may not give a ticket ``holder_id`` holds to ``assignee_id`` (None: nobody),
    or "" if they may. The one rule every way of assigning applies (the ticket page, the
    ``m`` key, the inbox's bulk actions, the API): a manager may do anything; an agent claims
    a ticket nobody has, and hands one of their own on; taking a colleague's is a manager's."""
    if by.has_role(Role.MANAGER):
        return ""
    if holder_id not in (None, by.user_id):
        return (
            "This ticket is a colleague's; ask a manager to reassign it, or the colleague "
            "to hand it over."
        )
    if holder_id is None and assignee_id not in (None, by.user_id):
        return "You can claim a ticket for yourself; a manager assigns it."
    return ""


def ticket_assign(
    *,
    ticket: Ticket,
    by: Membership,
    assignee_id: int | None,
    change_team: bool = False,
    team_id: int | None = None,
) -> TicketEvent | None:
    """Assign, claim, reassign or unassign, and/or move the ticket to a team; recorded.

    A manager may do anything. An agent may claim a ticket nobody has (``assignee_id`` their
    own), and hand one of their own to a colleague or back to the team's queue; taking a ticket
    from a colleague is a manager's call. Nobody is given a ticket while away. With
    ``change_team`` the ticket moves to ``team_id`` (None: no team); a new team with nobody
    named puts it in the team's queue, or round-robin if the team assigns itself.
    """
    with transaction.atomic():
        locked = Ticket.objects.select_for_update(of=("self",)).get(pk=ticket.pk)
        if not locked.is_open:
            raise TeamworkError("This ticket is closed; there is nothing to assign.")
        holder = locked.assigned_to_id
        refusal = assignment_refusal(holder_id=holder, assignee_id=assignee_id, by=by)
        if refusal:
            raise TeamworkError(refusal)
        team: Team | None = locked.team
        if change_team:
            team = None
            if team_id is not None:
                team = Team.objects.filter(
                    organization_id=locked.organization_id, pk=team_id
                ).first()
                if team is None:
                    raise TeamworkError("There is no such team in this organisation.")
        if assignee_id is None:
            if team is not None and team.pk != locked.team_id:
                return _route_to_team(locked, team, by=by.user, reason="sent to the team")
            return locked.assign(None, team=team, by=by.user, reason="unassigned")
        member = _member(locked, assignee_id)
        if member.is_away:
            raise TeamworkError(f"{member.user} is away and gets no new tickets.")
        claimed = assignee_id == by.user_id and holder is None
        how = "claimed" if claimed else ("reassigned" if holder else "assigned")
        event = locked.assign(member.user, team=team, by=by.user, reason=how)
        _tell_assignee(locked, member.user, by.user, event)
        return event


def route_new_ticket(event: TicketEvent) -> None:
    """Event handler (opened): a new ticket goes to the team that takes new tickets, if there is
    one, and round-robin within it if the team assigns itself. Idempotent: a ticket that has a
    team or a person already is left alone."""
    route_new_tickets([event])


def route_new_tickets(batch: list[TicketEvent]) -> None:
    """``route_new_ticket`` for several events (its many form on the event seam): the
    organisations' routing is read once (an organisation without one, the usual case, costs
    nothing more); the rest, per ticket, in order."""
    routings = {
        routing.organization_id: routing
        for routing in TeamRouting.objects.filter(
            organization_id__in={event.organization_id for event in batch},
            takes_new_tickets=True,  # one per organisation at most (a constraint)
        ).select_related("team")
    }
    for event in batch:
        routing = routings.get(event.organization_id)
        if routing is not None:
            _route_opened(event, routing)


def _route_opened(event: TicketEvent, routing: TeamRouting) -> None:
    ticket = Ticket.objects.select_for_update(of=("self",)).get(pk=event.ticket_id)
    if ticket.team_id is not None or ticket.assigned_to_id is not None or not ticket.is_open:
        return
    _route_to_team(ticket, routing.team, by=None, reason="new ticket")


@dataclass(frozen=True)
class Redistribution:
    reassigned: int
    queued: int  # back in a team's queue: nobody in the team was free


def redistribute_open_tickets(*, membership: Membership, by: User) -> Redistribution:
    """Hand an away member's open tickets to the rest of their ticket's team, round-robin within
    capacity; a ticket nobody can take goes back to its team's queue. Recorded per ticket."""
    if not membership.is_away:
        raise TeamworkError(f"{membership.user} is not away: their tickets stay with them.")
    reassigned = queued = 0
    fallback = membership.teams.order_by("name").first()
    with transaction.atomic():
        tickets = list(
            Ticket.objects.filter(
                organization_id=membership.organization_id, assigned_to_id=membership.user_id
            )
            .open()
            .select_for_update(of=("self",))
            .order_by("sla_risk_at", "pk")
        )
        for ticket in tickets:
            team = ticket.team or fallback
            reason = f"redistributed: {membership.user} is away"
            if team is None:
                ticket.assign(None, team=None, by=by, reason=reason)
                queued += 1
                continue
            routing = TeamRouting.objects.select_for_update().get(pk=routing_for(team).pk)
            member = next_in_rotation(team, routing, exclude_user_id=membership.user_id)
            if member is None:
                ticket.assign(None, team=team, by=by, reason=f"{reason}; nobody in {team} free")
                queued += 1
                continue
            routing.last_assigned = member
            routing.save(update_fields=["last_assigned", "updated_at"])
            event = ticket.assign(member.user, team=team, by=by, reason=reason)
            _tell_assignee(ticket, member.user, by, event)
            reassigned += 1
    return Redistribution(reassigned=reassigned, queued=queued)


# --- Notes -----------------------------------------------------------------------------------

# A Django username: letters, digits and @ . + - _ (a trailing "." or "-" is punctuation).
MENTION = re.compile(r"(?<![\w@.+-])@([\w.@+-]{1,150})")


def mentioned_members(organization_id: int, body: str) -> list[Membership]:
    """The organisation's active members named as ``@username`` in ``body`` (any case)."""
    names: set[str] = set()
    for match in MENTION.finditer(body):
        name = match.group(1).lower()
        names.update({name, name.rstrip(".-")})
    if not names:
        return []
    return list(
        Membership.objects.filter(organization_id=organization_id, is_active=True)
        .annotate(name=Lower("user__username"))
        .filter(name__in=names)
        .select_related("user")
    )


def note_add(*, ticket: Ticket, by: User, body: str) -> Note:
    """An internal note (never sent to the customer); each @mentioned colleague is notified
    once, with a link to the note. Recorded."""
    body = body.strip()
    if not body:
        raise TeamworkError("A note cannot be empty.")
    if len(body) > NOTE_MAX_LENGTH:
        raise TeamworkError(
            f"A note can be at most {NOTE_MAX_LENGTH:,} characters; this one is {len(body):,}."
        )
    with transaction.atomic():
        note = Note.objects.create(
            organization_id=ticket.organization_id, ticket=ticket, author=by, body=body
        )
        members = mentioned_members(ticket.organization_id, body)
        users = [m.user for m in members]
        note.mentions.set(users)
        ticket.record(
            EventKind.NOTE_ADDED,
            actor=by,
            note_id=note.pk,
            mentions=sorted(u.username for u in users),
            summary=body[:120],
        )
        others = [u for u in users if u.pk != by.pk]
        if others:
            notify(
                ticket.organization,
                others,
                f"{by} mentioned you on ticket #{ticket.pk}",
                body=body[:500],
                url=ticket_url(ticket, f"note-{note.pk}"),
                kind="mention",
                dedupe_key=f"mention:note:{note.pk}",
            )
    return note


# --- The steps: skipping one, closing without a public close-out ------------------------------


def _check_nothing_on_its_way(ticket: Ticket) -> None:
    # Skipping past a reply still on its way would leave a refusal nothing to reopen.
    if pending_replies(ticket).exists():
        raise StepError(
            "The last reply is still on its way (or unchecked); skip once it is delivered, "
            "refused or settled."
        )


def ticket_skip_step(
    *, ticket: Ticket, step: str, by: User, reason: str, note: str = ""
) -> TicketEvent:
    """Skip the ticket's next care step with a reason (``SkipReason``); StepError otherwise."""
    with transaction.atomic():
        locked = Ticket.objects.select_for_update(of=("self",)).get(pk=ticket.pk)
        _check_nothing_on_its_way(locked)
        return locked.skip_step(step, reason=reason, by=by, note=note.strip())


def ticket_close_without_close_out(
    *, ticket: Ticket, by: User, reason: str, note: str = ""
) -> TicketEvent:
    """Close the ticket with no public close-out, with a reason; StepError otherwise (the
    one path: ``Ticket.close_without_reply``)."""
    with transaction.atomic():
        locked = Ticket.objects.select_for_update(of=("self",)).get(pk=ticket.pk)
        if not locked.is_open:
            raise StepError("This ticket is closed already.")
        _check_nothing_on_its_way(locked)
        event = locked.close_without_reply(reason=reason, by=by, note=note.strip())
        assert event is not None  # open, and locked
        return event


# --- Moderation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModerationAction:
    """What one moderation does: its outbound and message kind, and its words."""

    outbound: OutboundKind
    message_kind: str
    verb: str  # "hide", "delete"
    requested: str  # the event recorded when asked
    pending: str  # "being hidden", "being deleted"


HIDE_ACTION = ModerationAction(
    OutboundKind.HIDE, MessageKind.HIDE, "hide", EventKind.MODERATION_REQUESTED, "hidden"
)
DELETE_ACTION = ModerationAction(
    OutboundKind.DELETE, MessageKind.DELETE, "delete", EventKind.DELETION_REQUESTED, "deleted"
)


def moderation_hide(*, ticket: Ticket, message_id: int, by: User, reason: str) -> Message:
    """Hide one of the customer's public posts for a community-guideline reason, through the
    outbox (``OutboundKind.HIDE``); recorded when asked, and again when the platform answers
    (``post_hidden`` or ``moderation_failed``)."""
    return _moderate(HIDE_ACTION, ticket=ticket, message_id=message_id, by=by, reason=reason)


def moderation_delete(*, ticket: Ticket, message_id: int, by: Membership, reason: str) -> Message:
    """Delete one of the customer's public posts (managers only), for a community-guideline
    reason, through the outbox (``OutboundKind.DELETE``); recorded when asked
    (``deletion_requested``) and when the platform answers (``post_deleted`` or
    ``deletion_failed``). A platform that never lets a brand delete (X) is refused here, in
    its adapter's words, before anything is queued."""
    if not by.has_role(Role.MANAGER):
        raise TeamworkError("Only a manager can delete a customer's post; an agent can hide it.")
    return _moderate(DELETE_ACTION, ticket=ticket, message_id=message_id, by=by.user, reason=reason)


def _moderate(
    action: ModerationAction, *, ticket: Ticket, message_id: int, by: User, reason: str
) -> Message:
    from tickets.tasks import send_outbox_item

    if reason not in ModerationReason.values:
        raise TeamworkError(
            f"{action.verb.capitalize()} a post only for a community-guideline reason: "
            + ", ".join(str(r.label).lower() for r in ModerationReason)
            + "."
        )
    with transaction.atomic():
        locked = (
            Ticket.objects.select_for_update(of=("self",))
            .select_related("social_account")
            .get(pk=ticket.pk)
        )
        target = locked.messages.filter(pk=message_id, direction=Direction.INBOUND).first()
        if target is None:
            raise TeamworkError("There is no such post from the customer in this ticket.")
        if not target.is_public or not target.external_id:
            raise TeamworkError(
                f"Only a public post can be {action.pending}; a private message cannot."
            )
        refusal = adapter_class(locked.platform).moderation_refusal(action.outbound)
        if refusal:
            raise TeamworkError(refusal)
        earlier = (
            Message.objects.filter(
                ticket=locked,
                kind=action.message_kind,
                in_reply_to_external_id=target.external_id,
            )
            .exclude(outbox__state=OutboxState.FAILED)
            .exists()
        )
        if earlier:
            raise TeamworkError(
                f"This post is {action.pending} already, or being {action.pending}."
            )
        if action.outbound == OutboundKind.DELETE and (target.raw or {}).get("removed_at"):
            raise TeamworkError("The customer removed this post themselves: nothing to delete.")
        label = ModerationReason(reason).label
        handle = locked.social_account
        moderation = Message.objects.create(
            organization_id=locked.organization_id,
            ticket=locked,
            platform=locked.platform,
            kind=action.message_kind,
            direction=Direction.OUTBOUND,
            is_public=False,
            in_reply_to_external_id=target.external_id,
            author_external_id=handle.external_id,
            author_username=handle.username,
            sent_by=by,
            text=f"{action.verb.capitalize()} @{target.author_username}'s post: {label}",
            created_at=timezone.now(),
            raw={"moderation_reason": reason, "target_message_id": target.pk},
        )
        item = OutboxItem.objects.create(organization_id=locked.organization_id, message=moderation)
        locked.refresh_last_message_direction()
        locked.record(
            action.requested,
            actor=by,
            message=moderation,
            reason=reason,
            target_message_id=target.pk,
            summary=f"{label}: \u201c{target.text[:80]}\u201d",
        )
        transaction.on_commit(lambda: send_outbox_item.delay(item.pk))
    return moderation
