"""Polling: fetch what is new for a handle and hand it to the tickets ingest."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from channels_social.base import ChannelError
from channels_social.models import SocialAccount
from channels_social.registry import adapter_for

log = logging.getLogger(__name__)

# Longer than the slowest possible poll (8 pages, each up to the HTTP timeout), so that two
# polls of one account never overlap.
POLL_LEASE_SECONDS = 8 * settings.CHANNEL_HTTP_TIMEOUT_SECONDS + 60


def account_poll(*, account_id: int) -> str:
    """Poll one account once. Returns what happened, for the task log.

    Only one poll of an account runs at a time (an atomic lease). The cursor advances inside
    ``ingest_posts``' transaction, after the batch is stored.
    """
    from tickets.services import ingest_posts

    account = SocialAccount.objects.filter(pk=account_id).first()
    if account is None or not account.enabled:
        return "skipped: account gone or disabled"
    reset_at = account.rate_limit_reset_at
    if account.rate_limit_remaining == 0 and reset_at and reset_at > timezone.now():
        return "skipped: rate limited until the window resets"
    lease = account.claim_poll(lease_seconds=POLL_LEASE_SECONDS)
    if lease is None:
        return "skipped: another poll is running"
    try:
        account.refresh_from_db()  # the cursor as the previous poll left it
        try:
            adapter = adapter_for(account)
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
            f"{result.duplicates} already stored, {result.before_connection} from before the "
            "handle was connected"
        )
    finally:
        account.release_poll(lease)
