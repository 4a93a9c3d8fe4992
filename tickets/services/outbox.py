"""The outbox: the only way a reply leaves, sent once, its outcome recorded once.

A sender claims an item with one UPDATE from queued to sending that sets a fresh claim token;
only the holder of the current token may record an outcome. Housekeeping takes the claim away
from a send that stalled (it becomes ``uncertain``, for the agent to check), and a stalled
send that finishes after that records a ``late_result`` event and changes nothing else, so a
settle and a late answer can never both move the ticket.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from careinbox.liveness import current_backend_pid, holder_gone
from channels_social.base import (
    MODERATION_KINDS,
    ChannelError,
    OutboundKind,
    PostFact,
    ReplyFacts,
    SendTarget,
    SentMessage,
    Window,
)
from channels_social.registry import adapter_class, adapter_for
from tickets.models import (
    MODERATION_MESSAGE_KINDS,
    Direction,
    EventKind,
    Message,
    MessageKind,
    OutboxItem,
    OutboxState,
    StepError,
    Ticket,
)

if TYPE_CHECKING:
    from careinbox.accounts.models import User

log = logging.getLogger(__name__)

# However the tries were scheduled (task retries, housekeeping requeues), an item gives up here.
MAX_SEND_ATTEMPTS = 8
# A retried send waits at most this long (X's rate-limit window) before its task runs again.
LONGEST_RETRY_WAIT = timedelta(minutes=16)


class TransientSendError(Exception):
    """The platform could not take the message now; the outbox item is queued again."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _finish_item(item_id: int, token: uuid.UUID, **values: object) -> bool:
    """Record a send's outcome, only if this sender still holds the current claim."""
    return (
        OutboxItem.objects.filter(pk=item_id, state=OutboxState.SENDING, claim_token=token).update(
            **values
        )
        == 1
    )


def reply_facts(
    ticket: Ticket,
    *,
    reply_to_external_id: str | None = None,
    exclude_message_id: int | None = None,
    conversation: Sequence[Message] | None = None,
) -> ReplyFacts:
    """What the platform's reply windows need, from the ticket's messages: the customer's last
    private message, the post a reply would answer (their latest public post unless named),
    and the posts already answered privately (a reply on its way counts; a failed one not).

    Three queries; none when the ticket's whole ``conversation`` is given, already loaded with
    each message's outbox item (the ticket page has it: ``select_related("outbox")``)."""
    if conversation is not None:
        return _reply_facts_of(
            ticket,
            conversation,
            reply_to_external_id=reply_to_external_id,
            exclude_message_id=exclude_message_id,
        )
    inbound = ticket.messages.filter(direction=Direction.INBOUND).exclude(external_id="")
    last_private = (
        inbound.filter(is_public=False).order_by("-created_at").values_list("created_at", flat=True)
    ).first()
    public = inbound.filter(is_public=True)
    if reply_to_external_id is not None:
        public = public.filter(external_id=reply_to_external_id)
    target = (
        public.order_by("-created_at", "-pk")
        .values_list("external_id", "created_at", "kind")
        .first()
    )
    answered = ticket.messages.filter(
        direction=Direction.OUTBOUND, kind=MessageKind.PRIVATE_REPLY
    ).exclude(outbox__state=OutboxState.FAILED)
    if exclude_message_id is not None:
        answered = answered.exclude(pk=exclude_message_id)
    return ReplyFacts(
        now=timezone.now(),
        customer_name=ticket.customer_display_name or ticket.customer_username,
        last_private_from_customer_at=last_private,
        reply_to=PostFact(*target) if target else None,
        privately_answered=frozenset(answered.values_list("in_reply_to_external_id", flat=True)),
    )


def _reply_facts_of(
    ticket: Ticket,
    conversation: Sequence[Message],
    *,
    reply_to_external_id: str | None,
    exclude_message_id: int | None,
) -> ReplyFacts:
    """``reply_facts`` from the loaded messages: the same three answers as its queries."""
    inbound = [m for m in conversation if m.direction == Direction.INBOUND and m.external_id != ""]
    last_private = max((m.created_at for m in inbound if not m.is_public), default=None)
    public = [
        m
        for m in inbound
        if m.is_public and (reply_to_external_id is None or m.external_id == reply_to_external_id)
    ]
    target = max(public, key=lambda m: (m.created_at, m.pk), default=None)
    answered = frozenset(
        m.in_reply_to_external_id
        for m in conversation
        if m.direction == Direction.OUTBOUND
        and m.kind == MessageKind.PRIVATE_REPLY
        and m.pk != exclude_message_id
        # No outbox item (sent on the platform itself) counts, as the query's exclude does.
        and getattr(getattr(m, "outbox", None), "state", None) != OutboxState.FAILED
    )
    return ReplyFacts(
        now=timezone.now(),
        customer_name=ticket.customer_display_name or ticket.customer_username,
        last_private_from_customer_at=last_private,
        reply_to=PostFact(target.external_id, target.created_at, target.kind) if target else None,
        privately_answered=answered,
    )


def _kind_of(message: Message) -> OutboundKind:
    if message.kind == MessageKind.HIDE:
        return OutboundKind.HIDE
    if message.kind == MessageKind.DELETE:
        return OutboundKind.DELETE
    if message.kind == MessageKind.PRIVATE_REPLY:
        return OutboundKind.PRIVATE_REPLY
    return OutboundKind.PUBLIC_REPLY if message.is_public else OutboundKind.PRIVATE_MESSAGE


def _window_now(message: Message, ticket: Ticket) -> Window:
    """The platform's reply window for this queued message, checked just before it is sent."""
    kind = _kind_of(message)
    facts = reply_facts(
        ticket,
        reply_to_external_id=message.in_reply_to_external_id or None,
        exclude_message_id=message.pk,
    )
    return adapter_class(ticket.platform).reply_window(kind, facts)


def _kind_and_target(
    message: Message, ticket: Ticket, window: Window
) -> tuple[OutboundKind, SendTarget]:
    kind = _kind_of(message)
    if kind in (OutboundKind.PUBLIC_REPLY, OutboundKind.PRIVATE_REPLY) or kind in MODERATION_KINDS:
        return kind, SendTarget(in_reply_to_external_id=message.in_reply_to_external_id)
    return kind, SendTarget(
        recipient_external_id=ticket.customer_external_id, message_tag=window.tag
    )


def outbox_send(*, item_id: int, final_attempt: bool = False) -> str:
    """Send one outbox item if this caller wins the claim; return the item's resulting state.

    Outcomes, each its own event:
    - delivered: the platform id is stored, ``reply_sent`` recorded (monitoring meets the SLA);
    - refused for good: ``reply_refused``; out of retries: ``reply_failed``; either way the
      item is failed and the ticket goes back before the step (``step_reopened``);
    - unknown (the request went out, no answer came back): ``reply_uncertain``, never resent;
    - refused for now: back to ``queued``, and TransientSendError tells the task to retry;
    - the claim was taken away meanwhile: ``late_result``, nothing else changes.
    """
    item = (
        OutboxItem.objects.select_related("message__ticket__social_account")
        .filter(pk=item_id)
        .first()
    )
    if item is None:
        return "missing"
    token = uuid.uuid4()
    claimed = OutboxItem.objects.filter(pk=item_id, state=OutboxState.QUEUED).update(
        state=OutboxState.SENDING,
        claim_token=token,
        claimed_at=timezone.now(),
        claim_holder=current_backend_pid(),
        attempts=F("attempts") + 1,
    )
    if claimed != 1:
        return OutboxItem.objects.values_list("state", flat=True).get(pk=item_id)
    message = item.message
    ticket = message.ticket
    attempts = item.attempts + 1  # this one included (the claim counted it)
    try:
        window = _window_now(message, ticket)
        if not window.open:
            # The platform's rule forbids it now (a window closed while it waited): refused
            # before sending, with the reason and what is still open.
            raise ChannelError(window.refusal, permanent=True)
        kind, target = _kind_and_target(message, ticket, window)
        adapter = adapter_for(ticket.social_account)
        sent = adapter.send(kind, target, message.text, first_attempt=attempts == 1)
    except ChannelError as exc:
        return _record_failure(item_id, token, message, exc, attempts, final_attempt)

    sent_at = timezone.now()
    with transaction.atomic():
        if not _finish_item(item_id, token, state=OutboxState.SENT, sent_at=sent_at, last_error=""):
            url = adapter.post_url(
                ticket.social_account, sent.external_id, ticket.social_account.username
            )
            ticket.record(
                EventKind.LATE_RESULT,
                message=message,
                at=sent_at,
                outcome="posted",
                external_id=sent.external_id,
                url=url if message.is_public else "",
            )
            log.warning("outbox item %s: a late answer after the claim was taken", item_id)
            return OutboxItem.objects.values_list("state", flat=True).get(pk=item_id)
        if kind == OutboundKind.HIDE:
            # A hide sends nothing new: the platform id is the customer's post's, kept on it.
            ticket.record(
                EventKind.POST_HIDDEN,
                message=message,
                at=sent_at,
                external_id=sent.external_id,
                reason=(message.raw or {}).get("moderation_reason", ""),
                summary=message.text,
            )
            return OutboxState.SENT
        if kind == OutboundKind.DELETE:
            _record_post_deleted(ticket, message, sent, sent_at)
            return OutboxState.SENT
        message.external_id = sent.external_id
        if sent.conversation_id:
            message.conversation_id = sent.conversation_id
        message.raw = {**(message.raw or {}), **sent.raw}
        message.save(update_fields=["external_id", "conversation_id", "raw"])
        ticket.record(
            EventKind.REPLY_SENT, message=message, at=sent_at, external_id=sent.external_id
        )
    return OutboxState.SENT


def _record_post_deleted(
    ticket: Ticket, message: Message, sent: SentMessage, sent_at: datetime
) -> None:
    """The platform deleted the customer's post: the message stays in the ticket (its text is
    the ticket's history), marked deleted by the brand, and ``post_deleted`` is recorded."""
    target_id = int((message.raw or {}).get("target_message_id") or 0)
    target = Message.objects.filter(pk=target_id, organization_id=ticket.organization_id)
    for post in target.select_for_update():
        post.raw = {**(post.raw or {}), "deleted_by_brand_at": sent_at.isoformat()}
        post.save(update_fields=["raw"])
    ticket.record(
        EventKind.POST_DELETED,
        message=message,
        at=sent_at,
        external_id=sent.external_id,
        reason=(message.raw or {}).get("moderation_reason", ""),
        target_message_id=target_id,
        summary=message.text,
    )


def _record_failure(
    item_id: int,
    token: uuid.UUID,
    message: Message,
    exc: ChannelError,
    attempts: int,
    final_attempt: bool,
) -> str:
    error = str(exc)
    ticket = message.ticket
    if message.kind in MODERATION_MESSAGE_KINDS:
        return _record_moderation_failure(item_id, token, message, exc, attempts, final_attempt)
    if exc.maybe_delivered:
        with transaction.atomic():
            if _finish_item(item_id, token, state=OutboxState.UNCERTAIN, last_error=error):
                ticket.record(
                    EventKind.REPLY_UNCERTAIN, message=message, error=error, status=exc.status
                )
            else:
                ticket.record(
                    EventKind.LATE_RESULT, message=message, outcome="unknown", error=error
                )
        log.warning("outbox item %s: outcome unknown: %s", item_id, error)
        return OutboxState.UNCERTAIN
    if exc.permanent or final_attempt or attempts >= MAX_SEND_ATTEMPTS:
        with transaction.atomic():
            if _finish_item(item_id, token, state=OutboxState.FAILED, last_error=error):
                locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
                cause = EventKind.REPLY_REFUSED if exc.permanent else EventKind.REPLY_FAILED
                locked.record(
                    cause,
                    message=message,
                    error=error,
                    status=exc.status,
                    attempts=attempts,
                )
                if message.step:
                    locked.reopen_step(message.step, message=message, reason=error, cause=cause)
            else:
                ticket.record(
                    EventKind.LATE_RESULT, message=message, outcome="refused", error=error
                )
        log.warning("outbox item %s failed: %s", item_id, error)
        return OutboxState.FAILED
    if not _finish_item(item_id, token, state=OutboxState.QUEUED, last_error=error):
        return OutboxItem.objects.values_list("state", flat=True).get(pk=item_id)
    raise TransientSendError(error, exc.retry_after) from exc


def _record_moderation_failure(
    item_id: int,
    token: uuid.UUID,
    message: Message,
    exc: ChannelError,
    attempts: int,
    final_attempt: bool,
) -> str:
    """A hide or delete that did not go through. Hiding twice changes nothing on the platform
    (and a repeated delete of what is gone counts as done, in the adapter), so an answer that
    never came back is simply tried again; a refusal is recorded as ``moderation_failed`` (a
    hide) or ``deletion_failed`` (no care step moves: moderation is not a step)."""
    error = str(exc)
    give_up = final_attempt or attempts >= MAX_SEND_ATTEMPTS
    if exc.permanent or give_up:
        with transaction.atomic():
            if _finish_item(item_id, token, state=OutboxState.FAILED, last_error=error):
                message.ticket.record(
                    EventKind.DELETION_FAILED
                    if message.kind == MessageKind.DELETE
                    else EventKind.MODERATION_FAILED,
                    message=message,
                    error=error,
                    status=exc.status,
                    attempts=attempts,
                )
        log.warning("outbox item %s (%s) failed: %s", item_id, message.kind, error)
        return OutboxState.FAILED
    if not _finish_item(item_id, token, state=OutboxState.QUEUED, last_error=error):
        return OutboxItem.objects.values_list("state", flat=True).get(pk=item_id)
    raise TransientSendError(error, exc.retry_after) from exc


def outbox_flag_interrupted(*, older_than: timedelta = timedelta(minutes=5)) -> int:
    """Items left ``sending`` (a worker stopped, or the send stalled): take the claim away and
    mark them uncertain, for the agent to check. Never resent blindly.

    Stalled: claimed more than ``older_than`` ago. Killed: on PostgreSQL, at once, when the
    claimant's database connection has gone (``careinbox.liveness``)."""
    cutoff = timezone.now() - older_than
    stuck = list(
        OutboxItem.objects.filter(state=OutboxState.SENDING)
        .filter(Q(claimed_at__lt=cutoff) | holder_gone("claim_holder"))
        .select_related("message__ticket")
    )
    flagged = 0
    for item in stuck:
        if item.message.kind in MODERATION_MESSAGE_KINDS:
            # Hiding twice is harmless, and a repeated delete of what is gone counts as done:
            # a stalled moderation is queued again (requeue_lost sends it).
            OutboxItem.objects.filter(
                pk=item.pk, state=OutboxState.SENDING, claim_token=item.claim_token
            ).update(state=OutboxState.QUEUED)
            continue
        with transaction.atomic():
            taken = OutboxItem.objects.filter(
                pk=item.pk, state=OutboxState.SENDING, claim_token=item.claim_token
            ).update(state=OutboxState.UNCERTAIN)
            if taken:
                flagged += 1
                item.message.ticket.record(
                    EventKind.SEND_INTERRUPTED,
                    message=item.message,
                    error="The send stopped or stalled midway; check the platform before "
                    "sending again.",
                )
    return flagged


def outbox_requeue_lost(*, older_than: timedelta = timedelta(minutes=1)) -> list[int]:
    """Queued items whose task never reached the broker (it was down): their ids to enqueue.

    A never-tried item is lost after ``older_than``; a retried one once its longest retry wait
    has passed. Enqueuing one that was not lost is harmless: the claim lets one send through.
    """
    now = timezone.now()
    return list(
        OutboxItem.objects.filter(state=OutboxState.QUEUED)
        .filter(
            Q(attempts=0, created_at__lt=now - older_than)
            | Q(attempts__gt=0, claimed_at__lt=now - LONGEST_RETRY_WAIT)
        )
        .values_list("pk", flat=True)
    )


class SettleOutcome:
    POSTED = "posted"
    NOT_POSTED = "not_posted"
    CHOICES = (POSTED, NOT_POSTED)


def outbox_settle_uncertain(
    *, ticket: Ticket, message_id: int, by: User, outcome: str, post: str = ""
) -> Message:
    """The agent checked the platform for a reply whose fate was unknown, and says what they saw.

    ``posted``: the reply is recorded as delivered with the link (or id) of the brand's own post
    they found, at the time it was sent, and the SLA takes it into account. ``not_posted``: the
    reply is failed and, if its step is still the ticket's latest, the step reopens. Anything
    else, or a link that is not the brand's own post, raises StepError and changes nothing.
    """
    if outcome not in SettleOutcome.CHOICES:
        raise StepError(
            "Say what you found on the platform: the reply was posted (with its link), or it "
            "was not posted."
        )
    with transaction.atomic():
        locked = (
            Ticket.objects.select_for_update(of=("self",))
            .select_related("social_account")
            .get(pk=ticket.pk)
        )
        item = (
            OutboxItem.objects.select_for_update(of=("self",))
            .select_related("message")
            .filter(message__ticket=locked, message_id=message_id, state=OutboxState.UNCERTAIN)
            .first()
        )
        if item is None:
            raise StepError("That reply is not waiting for a check any more.")
        message = item.message
        if outcome == SettleOutcome.NOT_POSTED:
            item.state = OutboxState.FAILED
            item.save(update_fields=["state"])
            note = f"Checked by {by}: it was not posted."
            locked.record(EventKind.SETTLED_NOT_POSTED, actor=by, message=message)
            if message.step:
                locked.reopen_step(
                    message.step,
                    message=message,
                    reason=note,
                    cause=EventKind.SETTLED_NOT_POSTED,
                )
            return message
        try:
            external_id = adapter_class(locked.platform).post_id_from_reference(
                locked.social_account, post
            )
        except ValueError as exc:
            raise StepError(str(exc)) from None
        duplicate = Message.objects.filter(
            organization_id=locked.organization_id,
            platform=locked.platform,
            external_id=external_id,
        ).exists()
        if duplicate:
            raise StepError(f"Post {external_id} is already in CareInbox; check the link.")
        sent_at = item.claimed_at or timezone.now()
        item.state = OutboxState.SENT
        item.sent_at = sent_at
        item.save(update_fields=["state", "sent_at"])
        message.external_id = external_id
        message.save(update_fields=["external_id"])
        locked.record(
            EventKind.REPLY_SENT,
            actor=by,
            message=message,
            at=sent_at,
            external_id=external_id,
            confirmed_by_agent=True,
        )
    return message
