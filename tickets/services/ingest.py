"""Ingest: the post sink that ``channels_social`` hands every batch to (polling, webhooks).

Each post is stored once per organisation, platform and id (a unique constraint), in its own
savepoint, and threaded into the customer's open ticket whichever of the organisation's handles
fetched it; a new ticket is filed under the handle the customer addressed, so replies go out
from that handle. The sink neither locks the account nor touches a cursor: polling moves the
cursor in the same transaction, webhooks have none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import IntegrityError, models, transaction

from channels_social.base import InboundPost, PostUpdate
from channels_social.intake import StoreResult, UpdateResult
from channels_social.models import SocialAccount
from tickets import priority
from tickets.models import (
    OPEN_STATUSES,
    Direction,
    EventKind,
    Message,
    OutboxItem,
    OutboxState,
    Status,
    Ticket,
)

log = logging.getLogger(__name__)


def ingest_posts(account: SocialAccount, posts: Sequence[InboundPost]) -> StoreResult:
    """Store each new post once and thread it into a ticket; return what happened.

    A post already stored changes nothing. A post that fails to store rolls back alone (its
    ticket included) and comes back in ``failed`` for the caller to set aside.
    """
    if not posts:
        return StoreResult()
    stored = tickets_opened = duplicates = 0
    failed: list[tuple[InboundPost, str]] = []
    with transaction.atomic():
        known = _stored_ids(account, [post.external_id for post in posts])
        handles = {
            handle.external_id: handle
            for handle in SocialAccount.objects.filter(
                organization_id=account.organization_id, platform=account.platform, enabled=True
            )
        }
        for post in posts:
            if post.external_id in known:
                duplicates += 1
                continue
            try:
                # One savepoint per post: a post stored meanwhile through another handle of the
                # same organisation, or one the database refuses, rolls back alone.
                with transaction.atomic():
                    opened = _store_post(account, post, handles)
            except IntegrityError as exc:
                if _stored_ids(account, [post.external_id]):
                    duplicates += 1
                else:
                    failed.append((post, f"{type(exc).__name__}: {exc}"))
                continue
            except Exception as exc:
                # A value the database or its driver refuses: set this post aside, go on.
                log.warning("could not store post %s: %s", post.external_id, exc)
                failed.append((post, f"{type(exc).__name__}: {exc}"))
                continue
            if opened is None:  # a pure repost, or a brand post outside any ticket
                continue
            known.add(post.external_id)
            stored += 1
            tickets_opened += opened
    return StoreResult(stored, tickets_opened, duplicates, failed)


def _stored_ids(account: SocialAccount, external_ids: list[str]) -> set[str]:
    return set(
        Message.objects.filter(
            organization_id=account.organization_id,
            platform=account.platform,
            external_id__in=external_ids,
        )
        .exclude(external_id="")  # lets the partial unique index serve this lookup
        .values_list("external_id", flat=True)
    )


def _find_thread_ticket(account: SocialAccount, post: InboundPost) -> Ticket | None:
    """The customer's open ticket this post continues, on any of the organisation's handles:
    it replies to a message of the ticket, or it is in the ticket's thread."""
    candidates = Ticket.objects.filter(
        organization_id=account.organization_id,
        platform=account.platform,
        customer_external_id=post.author.external_id,
        status__in=OPEN_STATUSES,
    )
    if post.in_reply_to_external_id:
        by_parent = candidates.filter(messages__external_id=post.in_reply_to_external_id).first()
        if by_parent is not None:
            return by_parent
    if post.conversation_id:
        return candidates.filter(conversation_id=post.conversation_id).order_by("pk").first()
    return None


def _addressed_handle(
    fetched_by: SocialAccount, post: InboundPost, handles: dict[str, SocialAccount]
) -> SocialAccount:
    """The organisation's handle the customer spoke to first (replied to, then mentioned)."""
    for external_id in post.addressed_account_ids:
        if external_id in handles:
            return handles[external_id]
    return fetched_by


def _open_ticket(account: SocialAccount, post: InboundPost) -> Ticket:
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
        # A direct message with no ticket to join opens a private one: every step is a DM.
        is_public=post.is_public,
        opened_at=post.created_at,
    )
    ticket.record(EventKind.OPENED, at=post.created_at, priority=level, reasons=reasons)
    return ticket


def _store_post(
    fetched_by: SocialAccount, post: InboundPost, handles: dict[str, SocialAccount]
) -> bool | None:
    """Store one new post in its ticket (opening one if needed); True if a ticket was opened,
    None if nothing was stored (a pure repost; a brand post in no open ticket)."""
    if post.reposted_external_id:
        _record_repost(fetched_by, post, handles)
        return None
    if post.author.external_id in handles:
        return _store_brand_post(fetched_by, post, handles)
    ticket = _find_thread_ticket(fetched_by, post)
    if ticket is None and not post.is_public:
        ticket = _customer_open_ticket(fetched_by, post.author.external_id)
    opened = ticket is None
    if ticket is None:
        ticket = _open_ticket(_addressed_handle(fetched_by, post, handles), post)
    message = Message.objects.create(
        organization_id=ticket.organization_id,
        ticket=ticket,
        platform=ticket.platform,
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
        author_verified=post.author.verified,
        found_by=post.found_by,
        text=post.text,
        created_at=post.created_at,
        raw=post.raw,
    )
    if opened:
        ticket.root_message = message
        ticket.save(update_fields=["root_message"])
    ticket.record(EventKind.MESSAGE_RECEIVED, message=message, at=post.created_at)
    return opened


# Direct messages, brand posts from outside CareInbox, reposts --------------------------------

# Taken offline: the ticket a customer's direct message most likely answers.
OFFLINE_FIRST = (Status.OFFLINE, Status.RESOLVED)


def _customer_open_ticket(account: SocialAccount, customer_external_id: str) -> Ticket | None:
    """The customer's open ticket a direct message joins when no thread says which: the one
    the brand took offline (latest first), else their latest open ticket."""
    candidates = Ticket.objects.filter(
        organization_id=account.organization_id,
        platform=account.platform,
        customer_external_id=customer_external_id,
        status__in=OPEN_STATUSES,
    ).order_by("-opened_at", "-pk")
    return candidates.filter(status__in=OFFLINE_FIRST).first() or candidates.first()


def _brand_ticket(
    account: SocialAccount, post: InboundPost, handles: dict[str, SocialAccount]
) -> Ticket | None:
    """The open ticket a post by one of the organisation's own handles belongs to: the one
    holding the post it replies to, else the customer's ticket in that thread or DM
    conversation. The customer is the first account it addresses that is not a handle."""
    tickets = Ticket.objects.filter(
        organization_id=account.organization_id,
        platform=account.platform,
        status__in=OPEN_STATUSES,
    )
    if post.in_reply_to_external_id:
        by_parent = tickets.filter(messages__external_id=post.in_reply_to_external_id).first()
        if by_parent is not None:
            return by_parent
    customers = [a for a in post.addressed_account_ids if a not in handles]
    if not customers:
        return None
    theirs = tickets.filter(customer_external_id=customers[0])
    if post.conversation_id:
        in_thread = (
            theirs.filter(conversation_id=post.conversation_id).order_by("pk").first()
            or theirs.filter(messages__conversation_id=post.conversation_id).order_by("pk").first()
        )
        if in_thread is not None:
            return in_thread
    if not post.is_public:
        return _customer_open_ticket(account, customers[0])
    return None


def _without_leading_mentions(text: str) -> str:
    words = text.split()
    while words and words[0].startswith("@"):
        words.pop(0)
    return " ".join(words)


def _sent_by_us_in_flight(ticket: Ticket, post: InboundPost) -> bool:
    """Our own reply read back before the outbox recorded its id (the send and the poll
    crossed): the outbox records it, so it must not be stored twice."""
    pending = Message.objects.filter(
        ticket=ticket,
        direction=Direction.OUTBOUND,
        is_public=post.is_public,
        external_id="",
        outbox__state__in=(OutboxState.QUEUED, OutboxState.SENDING, OutboxState.UNCERTAIN),
    ).values_list("text", flat=True)
    seen = _without_leading_mentions(post.text)
    return any(_without_leading_mentions(text) == seen for text in pending)


def _store_brand_post(
    account: SocialAccount, post: InboundPost, handles: dict[str, SocialAccount]
) -> bool | None:
    """A reply or DM the brand sent from X itself (outside CareInbox): the brand's message in
    its ticket, with no agent (``sent_by`` None), recorded as ``reply_sent`` so the SLA counts
    it like any delivered reply (the first public one is the first response). It never opens
    a ticket, and a post in no open ticket is skipped. Its care steps are not taken for it."""
    ticket = _brand_ticket(account, post, handles)
    if ticket is None or _sent_by_us_in_flight(ticket, post):
        return None
    message = Message.objects.create(
        organization_id=ticket.organization_id,
        ticket=ticket,
        platform=ticket.platform,
        kind=post.kind,
        direction=Direction.OUTBOUND,
        is_public=post.is_public,
        external_id=post.external_id,
        conversation_id=post.conversation_id,
        in_reply_to_external_id=post.in_reply_to_external_id,
        author_external_id=post.author.external_id,
        author_username=post.author.username,
        author_display_name=post.author.display_name,
        author_followers=post.author.followers_count,
        author_verified=post.author.verified,
        sent_by=None,
        text=post.text,
        created_at=post.created_at,
        raw=post.raw,
    )
    # Its delivery record, like every outbound message's (the ticket page and reports read
    # one per message): already sent, never attempted by CareInbox.
    OutboxItem.objects.create(
        organization_id=ticket.organization_id,
        message=message,
        state=OutboxState.SENT,
        attempts=0,
        sent_at=post.created_at,
    )
    ticket.record(
        EventKind.REPLY_SENT,
        message=message,
        at=post.created_at,
        external_id=post.external_id,
        sent_outside_careinbox=True,
    )
    return False


def _record_repost(
    account: SocialAccount, post: InboundPost, handles: dict[str, SocialAccount]
) -> None:
    """A pure repost opens no ticket and is not a message: it widens the reach of the open
    ticket whose post it reposts, by the reposter's followers (once per repost)."""
    from django.db.models import F

    if post.author.external_id in handles:
        return
    original = (
        Message.objects.filter(
            organization_id=account.organization_id,
            platform=account.platform,
            external_id=post.reposted_external_id,
        )
        .select_related("ticket")
        .first()
    )
    if original is None or not original.ticket.is_open:
        return
    ticket = original.ticket
    if ticket.events.filter(kind=EventKind.REPOSTED, data__repost_id=post.external_id).exists():
        return
    Ticket.objects.filter(pk=ticket.pk).update(
        reposts=F("reposts") + 1, repost_reach=F("repost_reach") + post.author.followers_count
    )
    ticket.record(
        EventKind.REPOSTED,
        message=original,
        at=post.created_at,
        repost_id=post.external_id,
        by=post.author.username,
        followers=post.author.followers_count,
    )


# Edits and removals of stored posts (the update sink) ----------------------------------------


class PostChangeKind(models.TextChoices):
    """Event kinds for a customer changing a post after it reached the ticket."""

    MESSAGE_EDITED = "message_edited", "Customer edited their post"
    MESSAGE_REMOVED = "message_removed", "Customer removed their post"


def apply_post_updates(account: SocialAccount, updates: Sequence[PostUpdate]) -> UpdateResult:
    """An edit replaces the stored text (the old one is kept in the ``message_edited`` event);
    a removal marks the message removed (``raw["removed_at"]``; the text stays for the team,
    in the ``message_removed`` event too). A repeated delivery changes nothing."""
    applied = unchanged = unknown = 0
    with transaction.atomic():
        for update in updates:
            message = (
                Message.objects.select_for_update(of=("self",))
                .select_related("ticket")
                .filter(
                    organization_id=account.organization_id,
                    platform=account.platform,
                    external_id=update.external_id,
                    direction=Direction.INBOUND,
                )
                .first()
            )
            if message is None:
                unknown += 1
                continue
            removed = bool((message.raw or {}).get("removed_at"))
            if update.change == "removed" and not removed:
                message.raw = {**(message.raw or {}), "removed_at": update.at.isoformat()}
                message.save(update_fields=["raw"])
                message.ticket.record(
                    PostChangeKind.MESSAGE_REMOVED,
                    message=message,
                    at=update.at,
                    text=message.text,
                )
                applied += 1
            elif update.change == "edited" and not removed and update.text != message.text:
                old_text = message.text
                message.text = update.text
                message.save(update_fields=["text"])
                message.ticket.record(
                    PostChangeKind.MESSAGE_EDITED,
                    message=message,
                    at=update.at,
                    old_text=old_text,
                    new_text=update.text,
                )
                applied += 1
            else:
                unchanged += 1
    return UpdateResult(applied, unchanged, unknown)
