"""Polling: fetch what is new for a handle and hand it to the tickets ingest."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from channels_social.base import ChannelError
from channels_social.models import SocialAccount
from channels_social.registry import adapter_for

log = logging.getLogger(__name__)


def account_poll(*, account_id: int) -> str:
    """Poll one account once. Returns what happened, for the task log.

    Only one poll of an account runs at a time (an atomic lease). The cursor advances inside
    ``ingest_posts``' transaction, after the batch is stored.
    """
    from tickets.services import ingest_posts

    account = SocialAccount.objects.select_related("organization").filter(pk=account_id).first()
    if account is None or not account.enabled:
        return "skipped: account gone or disabled"
    reset_at = account.rate_limit_reset_at
    if account.rate_limit_remaining == 0 and reset_at and reset_at > timezone.now():
        return "skipped: rate limited until the window resets"
    if not account.claim_poll():
        return "skipped: another poll is running"
    try:
        adapter = adapter_for(account)
        try:
            batch = adapter.fetch_mentions(since_id=account.mentions_since_id or None)
        except ChannelError as exc:
            updates: dict[str, object] = {"last_poll_error": str(exc)}
            if exc.status == 429 and exc.retry_after:
                updates["rate_limit_remaining"] = 0
                updates["rate_limit_reset_at"] = timezone.now() + timedelta(seconds=exc.retry_after)
            SocialAccount.objects.filter(pk=account.pk).update(**updates)
            log.warning("poll of %r failed: %s", account, exc)
            return f"error: {exc}"
        result = ingest_posts(account=account, batch=batch)
        return (
            f"ok: {result.messages_created} new, {result.tickets_created} tickets, "
            f"{result.duplicates} already stored"
        )
    finally:
        account.release_poll()
