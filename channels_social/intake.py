"""Where posts go once an adapter has read them, and what happens to those that cannot be stored.

``channels_social`` reads platforms; it does not know what a ticket is. The app that stores
posts (``tickets``) registers a *post sink* at start-up, and polling (and, next, webhooks) hand
every batch to ``store_posts``. So the dependency points one way: ``tickets`` imports
``channels_social``, never the reverse.

A post the sink could not store (or the adapter could not read) is set aside as a
``QuarantinedPost`` with its error and the raw item, listed for admins and retried on demand; the
rest of the batch, and the cursor, move on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from channels_social.base import Author, InboundPost, PostUpdate, UnreadableItem
from channels_social.models import QuarantinedPost, SocialAccount
from channels_social.text import clean_text, lossless_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreResult:
    """What a sink did with a batch. ``failed`` are the posts it could not store, with why."""

    stored: int = 0
    tickets_opened: int = 0
    duplicates: int = 0
    failed: list[tuple[InboundPost, str]] = field(default_factory=list)


PostSink = Callable[[SocialAccount, Sequence[InboundPost]], StoreResult]
_sink: PostSink | None = None


def register_post_sink(sink: PostSink) -> None:
    """Called once by the storing app's ``AppConfig.ready``."""
    global _sink
    _sink = sink


@dataclass(frozen=True)
class UpdateResult:
    """What the update sink did: ``applied`` changed a stored message; ``unchanged`` were
    already applied (a repeated delivery); ``unknown`` name posts never stored here."""

    applied: int = 0
    unchanged: int = 0
    unknown: int = 0


UpdateSink = Callable[[SocialAccount, Sequence[PostUpdate]], UpdateResult]
_update_sink: UpdateSink | None = None


def register_update_sink(sink: UpdateSink) -> None:
    """Called once by the storing app's ``AppConfig.ready``: where edits and removals go."""
    global _update_sink
    _update_sink = sink


def store_updates(*, account: SocialAccount, updates: Sequence[PostUpdate]) -> UpdateResult:
    """Apply edits and removals of stored posts (in the caller's transaction)."""
    if not updates:
        return UpdateResult()
    if _update_sink is None:
        raise RuntimeError("No update sink registered: is the tickets app installed?")
    return _update_sink(account, updates)


# The longest name the columns hold (Ticket.customer_*, Message.author_*, CustomerIdentity):
# a longer one (Facebook's names are free text) is cut, never a reason to set the post aside.
USERNAME_MAX = 100
DISPLAY_NAME_MAX = 200


def _fitted(post: InboundPost) -> InboundPost:
    author = post.author
    if len(author.username) <= USERNAME_MAX and len(author.display_name) <= DISPLAY_NAME_MAX:
        return post
    return dataclasses.replace(
        post,
        author=dataclasses.replace(
            author,
            username=author.username[:USERNAME_MAX],
            display_name=author.display_name[:DISPLAY_NAME_MAX],
        ),
    )


def store_posts(
    *, account: SocialAccount, posts: Sequence[InboundPost], stream: str
) -> StoreResult:
    """Store each post once (the sink's savepoint per post), and set aside what fails.

    Runs in the caller's transaction: polling wraps it together with the cursor's move.
    Neither locks the account nor touches a cursor, so webhooks can call it too.
    """
    if _sink is None:
        raise RuntimeError("No post sink registered: is the tickets app installed?")
    result = _sink(account, [_fitted(post) for post in posts])
    for post, error in result.failed:
        quarantine(
            account=account,
            stream=stream,
            external_id=post.external_id,
            error=error,
            raw=post.raw,
            post=post,
        )
    return result


def quarantine_unreadable(
    *, account: SocialAccount, stream: str, items: Sequence[UnreadableItem]
) -> None:
    for item in items:
        quarantine(
            account=account,
            stream=stream,
            external_id=item.external_id,
            error=item.error,
            raw=item.raw,
        )


def quarantine(
    *,
    account: SocialAccount,
    stream: str,
    external_id: str,
    error: str,
    raw: Any,
    post: InboundPost | None = None,
) -> QuarantinedPost:
    """Set one item aside (once while it waits: a repeat counts another attempt)."""
    log.warning("set aside %s %s from %r: %s", stream, external_id or "?", account, error)
    values = {
        "error": clean_text(error)[:4000],
        "payload": lossless_json(raw),
        "post": _post_to_json(post) if post is not None else "",
    }
    with transaction.atomic():
        existing = (
            QuarantinedPost.objects.select_for_update()
            .filter(account=account, stream=stream, external_id=external_id, resolved_at=None)
            .exclude(external_id="")
            .first()
        )
        if existing is not None:
            QuarantinedPost.objects.filter(pk=existing.pk).update(
                attempts=F("attempts") + 1, last_tried_at=timezone.now(), **values
            )
            return existing
        return QuarantinedPost.objects.create(
            organization_id=account.organization_id,
            account=account,
            stream=stream,
            external_id=external_id,
            **values,
        )


def quarantine_retry(*, item_id: int) -> str:
    """Try a set-aside post again; returns what happened, in words, for the admin."""
    item = QuarantinedPost.objects.select_related("account").filter(pk=item_id).first()
    if item is None or item.resolved_at is not None:
        return "Nothing to retry: that post is not waiting any more."
    if not item.post:
        QuarantinedPost.objects.filter(pk=item.pk).update(
            attempts=F("attempts") + 1, last_tried_at=timezone.now()
        )
        return "The platform's item could not be read as a post; it stays set aside."
    post = _post_from_json(item.post)
    with transaction.atomic():
        # A failure is set aside again by store_posts itself: the same row, one more attempt.
        result = store_posts(account=item.account, posts=[post], stream=item.stream)
        if result.failed:
            return f"Still failing: {result.failed[0][1]}"
        QuarantinedPost.objects.filter(pk=item.pk).update(resolved_at=timezone.now())
    return "Stored." if result.stored else "Already stored: nothing to do."


def _post_to_json(post: InboundPost) -> str:
    return lossless_json(dataclasses.asdict(post))


def _post_from_json(text: str) -> InboundPost:
    data = json.loads(text)
    data["author"] = Author(**data["author"])
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    data["addressed_account_ids"] = tuple(data.get("addressed_account_ids", ()))
    return InboundPost(**data)
