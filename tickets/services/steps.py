"""The care steps: the agent's text checked, stored, queued in the outbox, the step taken."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from channels_social.base import ChannelError, OutboundKind
from channels_social.registry import adapter_class
from channels_social.text import clean_text
from tickets import reply_guard
from tickets.models import (
    MODERATION_MESSAGE_KINDS,
    ApprovalRequest,
    Direction,
    EventKind,
    Message,
    MessageKind,
    OutboxItem,
    OutboxState,
    Sentiment,
    StepError,
    Ticket,
)
from tickets.services.approval import approval_hold, approval_reasons, is_manager
from tickets.services.outbox import reply_facts

if TYPE_CHECKING:
    from careinbox.accounts.models import User


class GuardRefused(StepError):
    """The reply guard stopped the reply: a blocking flag, or warnings not yet confirmed.

    ``flags`` say why, each; ``needs_confirmation`` is true when only warnings stand in the
    way (the agent may send anyway), false when a flag blocks (a manager may override the
    ones that allow it).
    """

    def __init__(self, message: str, flags: list[reply_guard.Flag], *, needs_confirmation: bool):
        super().__init__(message)
        self.flags = flags
        self.needs_confirmation = needs_confirmation


OUTBOUND_MESSAGE_KINDS = {
    OutboundKind.PUBLIC_REPLY: MessageKind.REPLY,
    OutboundKind.PRIVATE_MESSAGE: MessageKind.DM,
    OutboundKind.PRIVATE_REPLY: MessageKind.PRIVATE_REPLY,
}
# A step waits until the previous step's reply has gone out, failed, or been settled.
UNSETTLED = (OutboxState.QUEUED, OutboxState.SENDING, OutboxState.UNCERTAIN)


def pending_replies(ticket: Ticket) -> QuerySet[OutboxItem]:
    """The ticket's replies still on their way or unsettled (a hide is not a reply: it never
    holds a step back)."""
    return OutboxItem.objects.filter(message__ticket=ticket, state__in=UNSETTLED).exclude(
        message__kind__in=MODERATION_MESSAGE_KINDS
    )


def _reply_target(ticket: Ticket) -> Message | None:
    """The customer's latest public post in the ticket: a public reply goes under it."""
    return (
        ticket.messages.filter(direction=Direction.INBOUND, is_public=True)
        .exclude(external_id="")
        .order_by("-created_at", "-pk")
        .first()
    )


def ticket_take_step(
    *,
    ticket: Ticket,
    step: str,
    by: User,
    text: str,
    override_guard: bool = False,
    confirm_warnings: bool = True,
    approval: ApprovalRequest | None = None,
    approver: User | None = None,
) -> Message | ApprovalRequest:
    """Take the ticket's next care step with the agent's text, sent through the outbox.

    Raises StepError (out of order, unknown step, bad text, the previous reply still on its
    way or unsettled, or a reply already waiting for approval) and changes nothing in that case.
    The reply guard runs first: a blocking flag raises GuardRefused unless ``override_guard``
    comes from a manager (or the ``approver``) and every blocking flag allows it; warnings raise
    it while ``confirm_warnings`` is false. If an approval rule matches, the reply is held:
    an ApprovalRequest is returned and nothing is queued, until ``approval_decide`` calls this
    again with the ``approval`` and its ``approver``. A manager's own replies are not held.
    """
    from tickets.tasks import send_outbox_item

    text = clean_text(text).strip()
    with transaction.atomic():
        ticket = (
            Ticket.objects.select_for_update(of=("self",))
            .select_related("social_account")
            .get(pk=ticket.pk)
        )
        public = ticket.check_step(step)
        pending = pending_replies(ticket)
        if pending.filter(state=OutboxState.UNCERTAIN).exists():
            raise StepError(
                "The previous reply may not have been posted: check the platform and say "
                "whether it was, before the next step."
            )
        if pending.exists():
            raise StepError(
                "The previous reply is still being sent; the next step opens once it is "
                "delivered (or refused)."
            )
        try:
            adapter = adapter_class(ticket.platform)
        except ChannelError as exc:
            raise StepError(str(exc)) from None
        # The platform's reply rules (Facebook's Messenger and private-reply windows) decide
        # how a private step goes out, and refuse it here, before anything is queued.
        facts = reply_facts(ticket)
        kind = OutboundKind.PUBLIC_REPLY if public else adapter.private_kind(facts)
        window = adapter.reply_window(kind, facts)
        if not window.open:
            raise StepError(window.refusal)
        problem = adapter.text_problem(kind, text)
        if problem:
            raise StepError(problem)
        if approval is None and ApprovalRequest.objects.pending().filter(ticket=ticket).exists():
            raise StepError(
                "A reply on this ticket is waiting for a manager's approval; the next one can "
                "be written once it is approved or sent back."
            )
        flags = reply_guard.check_reply(
            text,
            platform=ticket.platform,
            kind=kind,
            ticket_negative=ticket.sentiment == Sentiment.NEGATIVE,
            step=step,
        )
        blocking = [flag for flag in flags if flag.blocks]
        warnings = [flag for flag in flags if not flag.blocks]
        authority = approver if approval is not None else by
        manager = is_manager(authority, ticket.organization_id)
        if blocking:
            if not override_guard:
                raise GuardRefused(
                    " ".join(flag.why for flag in blocking)
                    + (
                        " A manager can override this."
                        if not manager and all(f.manager_may_override for f in blocking)
                        else ""
                    ),
                    flags,
                    needs_confirmation=False,
                )
            if not manager or not all(flag.manager_may_override for flag in blocking):
                raise GuardRefused(
                    "Only a manager can send a reply the guard blocks. "
                    + " ".join(flag.why for flag in blocking),
                    flags,
                    needs_confirmation=False,
                )
        if warnings and not confirm_warnings:
            raise GuardRefused(
                "Check before sending: " + " ".join(flag.why for flag in warnings),
                flags,
                needs_confirmation=True,
            )
        if approval is None and not manager:
            reasons = approval_reasons(ticket, text)
            if reasons:
                return approval_hold(
                    ticket=ticket,
                    step=step,
                    by=by,
                    text=text,
                    reasons=reasons,
                    flags=[flag.as_json() for flag in flags],
                )
        target = _reply_target(ticket) if kind != OutboundKind.PRIVATE_MESSAGE else None
        if public and target is None:
            raise StepError("There is no public post from the customer to reply to.")
        # Replies go out from the handle the customer addressed when the ticket opened.
        handle = ticket.social_account
        message = Message.objects.create(
            organization_id=ticket.organization_id,
            ticket=ticket,
            platform=ticket.platform,
            kind=OUTBOUND_MESSAGE_KINDS[kind],
            direction=Direction.OUTBOUND,
            is_public=public,
            conversation_id=ticket.conversation_id if public else "",
            in_reply_to_external_id=target.external_id if target else "",
            author_external_id=handle.external_id,
            author_username=handle.username,
            sent_by=by,
            step=step,
            text=text,
            created_at=timezone.now(),
            # How it goes out when that is worth saying (the human-agent tag), for the agent.
            raw={"window_note": window.reason} if window.reason else {},
        )
        item = OutboxItem.objects.create(organization_id=ticket.organization_id, message=message)
        ticket.refresh_last_message_direction()
        ticket.take_step(step, by=by, message=message)
        if blocking:
            ticket.record(
                EventKind.GUARD_OVERRIDDEN,
                actor=authority,
                message=message,
                flags=[flag.as_json() for flag in blocking],
            )
        if warnings:
            ticket.record(
                EventKind.GUARD_WARNINGS_SENT,
                actor=authority,
                message=message,
                flags=[flag.as_json() for flag in warnings],
            )
        transaction.on_commit(lambda: send_outbox_item.delay(item.pk))
    return message
