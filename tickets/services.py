"""Work that spans tickets, messages, the outbox and SLA timers.

Each service runs in one transaction and sends its side effects (Celery enqueues) only once the
transaction has committed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from channels_social.base import ChannelError, InboundPost, MentionBatch
from channels_social.models import SocialAccount
from channels_social.registry import adapter_class, adapter_for
from monitoring.models import SlaPolicy
from monitoring.services import sla_fulfil_first_response, sla_start
from tickets import priority
from tickets.models import (
    OPEN_STATUSES,
    STEP_RULES,
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


@dataclass(frozen=True)
class IngestResult:
    messages_created: int
    tickets_created: int
    duplicates: int
    before_connection: int = 0


def _id_is_newer(candidate: str, current: str) -> bool:
    """Platform ids are decimal strings that grow with time; compare them as numbers."""
    if not current:
        return True
    try:
        return int(candidate) > int(current)
    except ValueError:
        return candidate > current


def _find_thread_ticket(account: SocialAccount, post: InboundPost) -> Ticket | None:
    """An open ticket this post continues: it replies into the ticket's messages or thread."""
    candidates = Ticket.objects.for_org(account.organization).filter(
        social_account=account,
        status__in=OPEN_STATUSES,
        customer_external_id=post.author.external_id,
    )
    if post.in_reply_to_external_id:
        by_parent = candidates.filter(messages__external_id=post.in_reply_to_external_id).first()
        if by_parent is not None:
            return by_parent
    if post.conversation_id:
        return candidates.filter(conversation_id=post.conversation_id).first()
    return None


def _open_ticket(account: SocialAccount, post: InboundPost, policy: SlaPolicy) -> Ticket:
    level, reasons = priority.assess(text=post.text, followers=post.author.followers_count)
    ticket = Ticket.objects.create(
        organization_id=account.organization_id,
        brand_id=account.brand_id,
        social_account=account,
        platform=account.platform,
        priority=level,
        priority_reasons=reasons,
        customer_external_id=post.author.external_id,
        customer_username=post.author.username,
        customer_display_name=post.author.display_name,
        customer_followers=post.author.followers_count,
        conversation_id=post.conversation_id or post.external_id,
        opened_at=post.created_at,
        first_response_due_at=policy.first_response_due(post.created_at),
    )
    ticket.record(EventKind.OPENED, at=post.created_at, priority=level, reasons=reasons)
    sla_start(ticket=ticket, policy=policy)
    return ticket


def _store_post(account: SocialAccount, post: InboundPost, policy: SlaPolicy) -> bool:
    """Store one new post in its ticket (opening one if needed); True if a ticket was opened."""
    ticket = _find_thread_ticket(account, post)
    opened = ticket is None
    if ticket is None:
        ticket = _open_ticket(account, post, policy)
    message = Message.objects.create(
        organization_id=account.organization_id,
        ticket=ticket,
        platform=account.platform,
        kind=post.kind,
        direction=Direction.INBOUND,
        is_public=post.is_public,
        external_id=post.external_id,
        conversation_id=post.conversation_id,
        in_reply_to_external_id=post.in_reply_to_external_id,
        author_external_id=post.author.external_id,
        author_username=post.author.username,
        author_display_name=post.author.display_name,
        author_followers=post.author.followers_count,
        text=post.text,
        created_at=post.created_at,
        raw=post.raw,
    )
    if opened:
        ticket.root_message = message
        ticket.save(update_fields=["root_message"])
    ticket.record(EventKind.MESSAGE_RECEIVED, message=message, at=post.created_at)
    return opened


def ingest_posts(*, account: SocialAccount, batch: MentionBatch) -> IngestResult:
    """Store each new post once, thread it into a ticket, and advance the cursor, atomically.

    A post already stored (same organisation, platform and external id) changes nothing. The
    cursor moves in the same transaction as the rows, so a crash loses nothing and a re-poll of
    the same page creates nothing twice.
    """
    created = tickets_created = duplicates = old = 0
    with transaction.atomic():
        locked = SocialAccount.objects.select_for_update().get(pk=account.pk)
        posts = batch.posts
        if not locked.mentions_since_id:
            # First poll: history from before the handle was connected is not the team's backlog.
            posts = [post for post in posts if post.created_at >= locked.connected_at]
            old = len(batch.posts) - len(posts)
        policy = SlaPolicy.for_org(account.organization)
        known = set(
            Message.objects.filter(
                organization_id=account.organization_id,
                platform=account.platform,
                external_id__in=[post.external_id for post in posts],
            )
            .exclude(external_id="")  # lets the partial unique index serve this lookup
            .values_list("external_id", flat=True)
        )
        for post in posts:
            if post.external_id in known:
                duplicates += 1
                continue
            try:
                # One savepoint per post: a post stored meanwhile through another handle of the
                # same organisation rolls back alone, ticket included.
                with transaction.atomic():
                    opened = _store_post(account, post, policy)
            except IntegrityError:
                duplicates += 1
                continue
            known.add(post.external_id)
            created += 1
            tickets_created += opened
        if batch.newest_id and _id_is_newer(batch.newest_id, locked.mentions_since_id):
            locked.mentions_since_id = batch.newest_id
        locked.last_polled_at = timezone.now()
        locked.last_poll_error = ""
        if batch.rate_limit is not None:
            locked.rate_limit_remaining = batch.rate_limit.remaining
            locked.rate_limit_reset_at = batch.rate_limit.reset_at
        locked.save(
            update_fields=[
                "mentions_since_id",
                "last_polled_at",
                "last_poll_error",
                "rate_limit_remaining",
                "rate_limit_reset_at",
            ]
        )
    return IngestResult(created, tickets_created, duplicates, old)


def _reply_target(ticket: Ticket) -> Message | None:
    """The customer's latest public post in the ticket: a public reply goes under it."""
    return (
        ticket.messages.filter(direction=Direction.INBOUND, is_public=True)
        .exclude(external_id="")
        .order_by("-created_at", "-pk")
        .first()
    )


def ticket_take_step(*, ticket: Ticket, step: str, by: User, text: str) -> Message:
    """Take the ticket's next care step with the agent's text, sent through the outbox.

    Raises StepError (out of order, unknown step, bad text, the previous reply still on its
    way) and changes nothing in that case.
    """
    from tickets.tasks import send_outbox_item

    text = text.strip()
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        public = ticket.check_step(step)
        if OutboxItem.objects.filter(message__ticket=ticket, state__in=PENDING).exists():
            raise StepError(
                "The previous reply is still being sent; the next step opens once it is "
                "delivered (or refused)."
            )
        try:
            problem = adapter_class(ticket.platform).text_problem(public=public, text=text)
        except ChannelError as exc:
            raise StepError(str(exc)) from None
        if problem:
            raise StepError(problem)
        target = _reply_target(ticket) if public else None
        if public and target is None:
            raise StepError("There is no public post from the customer to reply to.")
        message = Message.objects.create(
            organization_id=ticket.organization_id,
            ticket=ticket,
            platform=ticket.platform,
            kind=MessageKind.REPLY if public else MessageKind.DM,
            direction=Direction.OUTBOUND,
            is_public=public,
            conversation_id=ticket.conversation_id if public else "",
            in_reply_to_external_id=target.external_id if target else "",
            author_external_id=ticket.social_account.external_id,
            author_username=ticket.social_account.username,
            sent_by=by,
            step=step,
            text=text,
            created_at=timezone.now(),
        )
        item = OutboxItem.objects.create(organization_id=ticket.organization_id, message=message)
        ticket.take_step(step, by=by, message=message)
        transaction.on_commit(lambda: send_outbox_item.delay(item.pk))
    return message


PENDING = (OutboxState.QUEUED, OutboxState.SENDING)
# However the tries were scheduled (task retries, housekeeping requeues), an item gives up here.
MAX_SEND_ATTEMPTS = 8


class TransientSendError(Exception):
    """The platform could not take the message now; the outbox item is queued again."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _finish_item(item_id: int, **values: object) -> bool:
    """Record a send's outcome, only if this sender still holds the claim."""
    return OutboxItem.objects.filter(pk=item_id, state=OutboxState.SENDING).update(**values) == 1


def outbox_send(*, item_id: int, final_attempt: bool = False) -> str:
    """Send one outbox item if this caller wins the claim; return the item's resulting state.

    The claim is a single UPDATE from queued to sending: of two workers given the same item only
    one calls the platform. Outcomes:
    - delivered: the platform id is stored, ``reply_sent`` recorded, the SLA fulfilled;
    - refused for good (or out of retries): ``failed``, and the ticket goes back to the step
      so the agent can send a new reply;
    - unknown (the request went out, no answer came back): ``uncertain``, never resent blindly;
    - refused for now: back to ``queued``, and TransientSendError tells the task to retry.
    """
    item = (
        OutboxItem.objects.select_related("message__ticket__social_account")
        .filter(pk=item_id)
        .first()
    )
    if item is None:
        return "missing"
    claimed = OutboxItem.objects.filter(pk=item_id, state=OutboxState.QUEUED).update(
        state=OutboxState.SENDING, claimed_at=timezone.now(), attempts=F("attempts") + 1
    )
    if claimed != 1:
        return OutboxItem.objects.values_list("state", flat=True).get(pk=item_id)
    message = item.message
    ticket = message.ticket
    try:
        adapter = adapter_for(ticket.social_account)
        if message.is_public:
            sent = adapter.send_public_reply(
                text=message.text, in_reply_to_external_id=message.in_reply_to_external_id
            )
        else:
            sent = adapter.send_private_message(
                text=message.text, recipient_external_id=ticket.customer_external_id
            )
    except ChannelError as exc:
        error = str(exc)
        attempts = item.attempts + 1  # this one included (the claim counted it)
        if attempts > 1 and exc.status == 403 and "duplicate" in error.lower():
            # X refuses a repeat of a post it already has: most likely our own earlier attempt,
            # whose answer was lost, went through after all.
            exc.maybe_delivered = True
        if exc.maybe_delivered:
            with transaction.atomic():
                if _finish_item(item_id, state=OutboxState.UNCERTAIN, last_error=error):
                    ticket.record(
                        EventKind.REPLY_FAILED,
                        message=message,
                        error=f"{error} It may have been posted: check before sending again.",
                        status=exc.status,
                    )
            log.warning("outbox item %s: outcome unknown: %s", item_id, error)
            return OutboxState.UNCERTAIN
        if exc.permanent or final_attempt or attempts >= MAX_SEND_ATTEMPTS:
            with transaction.atomic():
                if _finish_item(item_id, state=OutboxState.FAILED, last_error=error):
                    locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
                    if message.step:
                        locked.undo_step(message.step, message=message, error=error)
                    else:
                        locked.record(EventKind.REPLY_FAILED, message=message, error=error)
            log.warning("outbox item %s failed: %s", item_id, error)
            return OutboxState.FAILED
        _finish_item(item_id, state=OutboxState.QUEUED, last_error=error)
        raise TransientSendError(error, exc.retry_after) from exc

    sent_at = timezone.now()
    with transaction.atomic():
        if not _finish_item(item_id, state=OutboxState.SENT, sent_at=sent_at, last_error=""):
            # Housekeeping declared this send interrupted meanwhile; it did go out after all.
            OutboxItem.objects.filter(pk=item_id).update(
                state=OutboxState.SENT, sent_at=sent_at, last_error=""
            )
        message.external_id = sent.external_id
        if sent.conversation_id:
            message.conversation_id = sent.conversation_id
        message.raw = sent.raw
        message.save(update_fields=["external_id", "conversation_id", "raw"])
        ticket.record(
            EventKind.REPLY_SENT, message=message, at=sent_at, external_id=sent.external_id
        )
        if message.is_public:
            sla_fulfil_first_response(ticket=ticket, at=sent_at)
    return OutboxState.SENT


def outbox_flag_interrupted(*, older_than: timedelta = timedelta(minutes=5)) -> int:
    """Items left ``sending`` by a crashed worker: mark them uncertain, never resend blindly."""
    cutoff = timezone.now() - older_than
    stuck = list(
        OutboxItem.objects.filter(state=OutboxState.SENDING, claimed_at__lt=cutoff).select_related(
            "message__ticket"
        )
    )
    flagged = 0
    for item in stuck:
        with transaction.atomic():
            if _finish_item(item.pk, state=OutboxState.UNCERTAIN):
                flagged += 1
                item.message.ticket.record(
                    EventKind.REPLY_FAILED,
                    message=item.message,
                    error="The sender stopped mid-send; check the platform before resending.",
                )
    return flagged


# A retried send waits at most this long (X's rate-limit window) before its task runs again.
LONGEST_RETRY_WAIT = timedelta(minutes=16)


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


_POST_ID = re.compile(r"(?:/status(?:es)?/)?(\d{1,25})/?(?:[?#].*)?$")


def outbox_settle_uncertain(
    *, ticket: Ticket, message_id: int, by: User, posted: bool, post: str = ""
) -> Message:
    """The agent checked the platform for a reply whose fate was unknown, and says what they saw.

    Posted: the reply is recorded as delivered with the id (or link) they found, at the time it
    was sent, and the SLA takes it into account. Not posted: the reply is failed and, if its step
    is still the ticket's latest, the step reopens for a new reply. Raises StepError otherwise.
    """
    with transaction.atomic():
        locked = Ticket.objects.select_for_update().get(pk=ticket.pk)
        item = (
            OutboxItem.objects.select_for_update()
            .select_related("message")
            .filter(message__ticket=locked, message_id=message_id, state=OutboxState.UNCERTAIN)
            .first()
        )
        if item is None:
            raise StepError("That reply is not waiting for a check any more.")
        message = item.message
        if not posted:
            item.state = OutboxState.FAILED
            item.save(update_fields=["state"])
            note = f"Checked by {by}: it was not posted."
            if message.step and locked.status == STEP_RULES[message.step][1]:
                locked.undo_step(message.step, message=message, error=note)
            else:
                locked.record(EventKind.REPLY_FAILED, actor=by, message=message, error=note)
            return message
        match = _POST_ID.search(post.strip())
        if not match:
            raise StepError("Paste the post's id or its link (…/status/1234567890).")
        external_id = match.group(1)
        duplicate = Message.objects.filter(
            organization_id=locked.organization_id,
            platform=locked.platform,
            external_id=external_id,
        ).exists()
        if duplicate:
            raise StepError(f"Post {external_id} is already in CareInbox; check the id.")
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
        if message.is_public:
            sla_fulfil_first_response(ticket=locked, at=sent_at)
    return message
