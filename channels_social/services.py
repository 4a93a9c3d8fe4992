"""Polling: which accounts are due, and one poll of one account, stream by stream.

Fairness: beat calls ``accounts_to_poll`` every few seconds; it picks the accounts whose
``next_poll_at`` has come, most overdue first, and marks each as queued, so at most one poll task
per account waits in the broker. A task that expires or is lost frees its account after
``requeue_after``, and that account, now the most overdue, goes first. However many accounts
and however slow the workers, every account waits its turn; none is dropped every cycle.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from careinbox.audit import record_change
from careinbox.notifications.services import notify_admins
from channels_social.base import ChannelAdapter, ChannelError, RateLimit, RateObservation, Stream
from channels_social.intake import quarantine_unreadable, store_posts
from channels_social.models import PollCursor, RateBudget, SocialAccount, stale_after
from channels_social.registry import adapter_class, adapter_for
from channels_social.text import clean_text

log = logging.getLogger(__name__)

# Longer than the slowest possible poll (8 pages per stream, each up to the HTTP timeout), so
# that two polls of one account never overlap.
POLL_LEASE_SECONDS = 8 * settings.CHANNEL_HTTP_TIMEOUT_SECONDS + 60
# An account whose task has not started this long after it was queued is queued again.
REQUEUE_AFTER_INTERVALS = 3
# Poll tasks beat may keep waiting whatever the workers' measured pace (a fleet's first tick,
# or workers that have not finished a poll in a while); see ``accounts_to_poll``.
DISPATCH_FLOOR = 100


def poll_interval(platform: str = "") -> timedelta:
    """How long between two polls of an account: the configured interval, or longer where the
    platform's adapter asks for it (Facebook: webhooks are the fast path, polling the safety
    net, and a page's rate budget cannot afford a poll every few seconds)."""
    seconds = settings.POLL_INTERVAL_SECONDS
    if platform:
        with suppress(ChannelError):  # no adapter: its polls fail and say so
            seconds = max(seconds, adapter_class(platform).min_poll_interval_seconds)
    return timedelta(seconds=seconds)


def requeue_after() -> timedelta:
    return poll_interval() * REQUEUE_AFTER_INTERVALS


def accounts_to_poll(*, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """The ids of the accounts due for a poll, most overdue first; each is marked queued.

    Back-pressure: it only tops the broker up to what the workers can start before a task
    expires. The workers' pace is read off the polls that ended in the last ``requeue_after``
    (succeeded or failed); half of that many may wait at once (at least ``DISPATCH_FLOOR``, at
    most ``POLL_DISPATCH_BACKLOG``, or ``limit``). When the workers lag, the queue stays short,
    so no task expires unrun and each tick chooses afresh who has waited longest."""
    now = now or timezone.now()
    waiting_since = now - requeue_after()
    with transaction.atomic():
        pace = SocialAccount.objects.pollable().aggregate(
            in_flight=Count("pk", filter=Q(poll_queued_at__gte=waiting_since)),
            ended=Count(
                "pk",
                filter=Q(last_polled_at__gte=waiting_since)
                | Q(last_poll_error_at__gte=waiting_since),
            ),
        )
        cap = min(settings.POLL_DISPATCH_BACKLOG, max(DISPATCH_FLOOR, pace["ended"] // 2))
        room = cap - pace["in_flight"]
        if limit is not None:
            room = min(room, limit)
        if room <= 0:
            return []
        due = (
            SocialAccount.objects.pollable()
            .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
            .filter(Q(poll_queued_at__isnull=True) | Q(poll_queued_at__lt=waiting_since))
            .order_by(F("next_poll_at").asc(nulls_first=True), "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:room]
        )
        ids = list(due)
        platforms = set(
            SocialAccount.objects.filter(pk__in=ids).values_list("platform", flat=True).distinct()
        )
        for platform in platforms:
            SocialAccount.objects.filter(pk__in=ids, platform=platform).update(
                poll_queued_at=now, next_poll_at=now + poll_interval(platform)
            )
    return ids


@dataclass
class PollOutcome:
    stored: int = 0
    tickets_opened: int = 0
    duplicates: int = 0
    before_connection: int = 0
    set_aside: int = 0
    cut_short: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"ok: {self.stored} new, {self.tickets_opened} tickets, {self.duplicates} already "
            f"stored, {self.before_connection} from before the handle was connected, "
            f"{self.set_aside} set aside"
        )
        return text + "".join(f"; cut short: {reason}" for reason in self.cut_short)


def account_poll(*, account_id: int) -> str:
    """Poll one account once, every stream its platform polls. Returns what happened, for logs.

    Only one poll of an account runs at a time (an atomic lease). Each stream's cursor moves in
    the transaction that stores what was read up to it. Any failure, of any kind, is recorded on
    the account with its time, so health and the admins see it.
    """
    poll_started(account_id)
    account = SocialAccount.objects.filter(pk=account_id).first()
    if account is None or not account.enabled:
        return "skipped: account gone or disabled"
    now = timezone.now()
    reset_at = account.rate_limit_reset_at
    if account.rate_limit_remaining == 0 and reset_at and reset_at > now:
        SocialAccount.objects.filter(pk=account_id).update(next_poll_at=reset_at)
        return "skipped: rate limited until the window resets"
    lease = account.claim_poll(lease_seconds=POLL_LEASE_SECONDS)
    if lease is None:
        # Not due again before an interval has passed: a lease left by a stopped worker must
        # not bring a fresh task every dispatch tick until it runs out.
        SocialAccount.objects.filter(pk=account_id).update(
            next_poll_at=now + poll_interval(account.platform)
        )
        return "skipped: another poll is running"
    adapter: ChannelAdapter | None = None
    try:
        adapter = adapter_for(account)
        outcome = _poll_streams(account, adapter, started_at=now)
    except ChannelError as exc:
        if adapter is not None:
            _store_budgets(account, adapter.rate_observations())
        if exc.auth_failed:
            channel_auth_failed(account=account, reason=str(exc))
            log.warning("poll of %r: credentials refused, channel disabled: %s", account, exc)
            return f"disabled: {exc}"
        _record_failure(
            account, str(exc), retry_after=exc.retry_after if exc.status == 429 else None
        )
        log.warning("poll of %r failed: %s", account, exc)
        return f"error: {exc}"
    except Exception as exc:
        # A bug or a database fault must not hide: record it, and let the next poll try again.
        _record_failure(account, f"Unexpected {type(exc).__name__}: {exc}")
        log.exception("poll of %r failed unexpectedly", account)
        return f"error: {type(exc).__name__}: {exc}"
    finally:
        account.release_poll(lease)
    return str(outcome)


def _poll_streams(
    account: SocialAccount, adapter: ChannelAdapter, *, started_at: datetime | None = None
) -> PollOutcome:
    outcome = PollOutcome()
    rate_limit = None
    streams = [(s, key) for s in adapter.polled_streams for key in adapter.stream_keys(s)]
    for stream, key in streams:
        cursor, _ = PollCursor.objects.get_or_create(account=account, stream=stream, key=key)
        batch = adapter.fetch(stream, cursor=cursor.position or None, key=key)
        rate_limit = _tighter(batch.rate_limit, rate_limit)
        posts = batch.posts
        if not cursor.position:
            # First read of this stream: history from before the handle was connected is not
            # the team's backlog; nor, for a stream new to a handle that already reads others
            # (DMs after an upgrade, a new listening query), what came before its last good poll.
            since = account.connected_at
            last = account.last_polled_at
            if last is not None and last < cursor.updated_at and _reads_other_streams(cursor):
                since = max(since, last)
            posts = [post for post in posts if post.created_at >= since]
            outcome.before_connection += len(batch.posts) - len(posts)
        with transaction.atomic():
            result = store_posts(account=account, posts=posts, stream=stream)
            quarantine_unreadable(account=account, stream=stream, items=batch.unreadable)
            moved = batch.next_cursor and adapter.cursor_is_newer(
                batch.next_cursor, cursor.position
            )
            if moved:
                PollCursor.objects.filter(pk=cursor.pk).update(
                    position=batch.next_cursor, updated_at=timezone.now()
                )
        outcome.stored += result.stored
        outcome.tickets_opened += result.tickets_opened
        outcome.duplicates += result.duplicates
        outcome.set_aside += len(result.failed) + len(batch.unreadable)
        if batch.cut_short:
            outcome.cut_short.append(f"{stream}: {batch.cut_short}")
            log.warning("poll of %r, %s: %s", account, stream, batch.cut_short)
    now = timezone.now()
    budgets = _store_budgets(account, adapter.rate_observations())
    pacing = adapter.pacing(budgets, now=now, interval=poll_interval(account.platform))
    poll_succeeded(
        account.pk,
        now=now,
        started_at=started_at,
        rate_limit=rate_limit,
        platform=account.platform,
        not_before=pacing.not_before,
        pacing_reason=pacing.reason,
    )
    return outcome


def _store_budgets(
    account: SocialAccount, observations: list[RateObservation]
) -> list[RateObservation]:
    """Keep what the headers said, one row per budget; return every budget the account has
    (an endpoint this poll did not call keeps its last word until its reset)."""
    if observations:
        # One upsert for all of them (INSERT … ON CONFLICT DO UPDATE), whatever their number.
        RateBudget.objects.bulk_create(
            [
                RateBudget(
                    account=account,
                    endpoint=seen.endpoint[:120],
                    limit=seen.limit,
                    remaining=seen.remaining,
                    used_percent=seen.used_percent,
                    reset_at=seen.reset_at,
                    raw_headers=seen.raw,
                    observed_at=seen.observed_at,
                )
                for seen in {seen.endpoint[:120]: seen for seen in observations}.values()
            ],
            update_conflicts=True,
            unique_fields=["account", "endpoint"],
            update_fields=[
                "limit",
                "remaining",
                "used_percent",
                "reset_at",
                "raw_headers",
                "observed_at",
            ],
        )
    return [
        RateObservation(
            endpoint=row.endpoint,
            observed_at=row.observed_at,
            limit=row.limit,
            remaining=row.remaining,
            reset_at=row.reset_at,
            used_percent=row.used_percent,
        )
        for row in RateBudget.objects.filter(account=account)
    ]


def _reads_other_streams(cursor: PollCursor) -> bool:
    return (
        PollCursor.objects.filter(account_id=cursor.account_id)
        .exclude(pk=cursor.pk)
        .exclude(position="")
        .exists()
    )


def _tighter(new: RateLimit | None, old: RateLimit | None) -> RateLimit | None:
    """Of two streams' rate limits, the one with fewer calls left: the account is paused
    until the reset of whichever endpoint ran out first."""
    if new is None or new.remaining is None:
        return old or new
    if old is None or old.remaining is None or new.remaining < old.remaining:
        return new
    return old


def poll_started(account_id: int) -> None:
    """The account's queued task has started: the dispatcher may queue it again later."""
    SocialAccount.objects.filter(pk=account_id).update(poll_queued_at=None)


def poll_succeeded(
    account_id: int,
    *,
    now: datetime,
    started_at: datetime | None = None,
    rate_limit: RateLimit | None = None,
    platform: str = "",
    not_before: datetime | None = None,
    pacing_reason: str = "",
) -> None:
    """Record a successful poll; the next is due one interval (the platform's) after this one
    started (``started_at``, else ``now``), or later when the rate budgets say so
    (``not_before``). From the start, not the end: the interval is then the period between
    two reads of the platform (what its rate limit counts) instead of the interval plus the
    poll's own time, which made a 5 s interval a 6 to 7 s period (docs/benchmarks.md, "Arrival
    latency"). A poll that took longer than the interval is due again at once, at the
    dispatcher's pace."""
    due = (started_at or now) + poll_interval(platform)
    updates: dict[str, object] = {
        "last_polled_at": now,
        "last_poll_error": "",
        "next_poll_at": max(due, not_before) if not_before else due,
        "pacing_reason": pacing_reason[:300] if not_before and not_before > due else "",
    }
    if rate_limit is not None:
        updates["rate_limit_remaining"] = rate_limit.remaining
        updates["rate_limit_reset_at"] = rate_limit.reset_at
    SocialAccount.objects.filter(pk=account_id).update(**updates)


def _record_failure(
    account: SocialAccount, error: str, *, retry_after: float | None = None
) -> None:
    now = timezone.now()
    updates: dict[str, object] = {
        "last_poll_error": clean_text(error)[:2000],
        "last_poll_error_at": now,
        "next_poll_at": now + poll_interval(account.platform),
    }
    if retry_after:
        reset = now + timedelta(seconds=retry_after)
        updates.update(rate_limit_remaining=0, rate_limit_reset_at=reset, next_poll_at=reset)
    SocialAccount.objects.filter(pk=account.pk).update(**updates)


# Revoked or expired credentials ----------------------------------------------------------------

AUDIT_FIELDS = ("enabled", "disabled_reason")


def channel_auth_failed(*, account: SocialAccount, reason: str) -> bool:
    """The platform refused the account's credentials: disable it with the reason, record it,
    and tell the organisation's admins once. False if it was already disabled for this."""
    now = timezone.now()
    reason = clean_text(reason)[:2000]
    with transaction.atomic():
        changed = SocialAccount.objects.filter(pk=account.pk, auth_failed_at__isnull=True).update(
            enabled=False,
            auth_failed_at=now,
            disabled_reason=reason,
            last_poll_error=reason,
            last_poll_error_at=now,
            next_poll_at=None,
            pacing_reason="",
        )
        if not changed:
            return False
        fresh = SocialAccount.objects.select_related("organization").get(pk=account.pk)
        record_change(
            fresh.organization,
            None,
            "disabled",
            fresh,
            object_type="channel",
            before={"enabled": account.enabled, "disabled_reason": ""},
            after={"enabled": False, "disabled_reason": reason, "cause": "credentials refused"},
        )
        notify_admins(
            fresh.organization,
            f"{fresh} was disconnected: its credentials were refused",
            body=reason,
            url=_channel_url(fresh),
            kind="channel",
            dedupe_key=f"channel-auth-failed:{fresh.pk}:{now.isoformat()}",
        )
    return True


def channel_reconnected(*, account: SocialAccount, actor: object, how: str) -> None:
    """Credentials fixed (new ones saved, or a re-check the platform accepted): the channel is
    enabled and polled at once; recorded. Call inside the caller's transaction."""
    before = {"enabled": account.enabled, "disabled_reason": account.disabled_reason}
    SocialAccount.objects.filter(pk=account.pk).update(
        enabled=True,
        auth_failed_at=None,
        disabled_reason="",
        last_poll_error="",
        next_poll_at=timezone.now(),
        poll_lease_until=None,
        poll_lease_holder=None,
    )
    account.refresh_from_db()
    record_change(
        account.organization,
        actor,
        "reconnected",
        account,
        object_type="channel",
        before=before,
        after={"enabled": True, "disabled_reason": "", "how": how},
    )


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str


def channel_recheck(*, account: SocialAccount, actor: object) -> ProbeResult:
    """Ask the platform whether the stored credentials work now; reconnect the channel if so."""
    try:
        name = adapter_for(account).probe()
    except ChannelError as exc:
        if exc.auth_failed:
            SocialAccount.objects.filter(pk=account.pk).update(
                disabled_reason=clean_text(str(exc))[:2000]
            )
        return ProbeResult(False, str(exc))
    if account.auth_failed_at is None:
        return ProbeResult(True, f"The platform accepts the credentials of {name}.")
    with transaction.atomic():
        channel_reconnected(account=account, actor=actor, how="re-check accepted")
    return ProbeResult(True, f"The platform accepts the credentials of {name}: polling again.")


def _channel_url(account: SocialAccount) -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("channels_social:settings-channel", args=[account.pk])
    except NoReverseMatch:
        return ""


def cursor_position(account: SocialAccount, stream: Stream, key: str = "") -> str:
    """Where intake has read ``stream`` of ``account`` up to ('' before the first read)."""
    return (
        PollCursor.objects.filter(account=account, stream=stream, key=key)
        .values_list("position", flat=True)
        .first()
        or ""
    )


@dataclass(frozen=True)
class ChannelHealth:
    account_id: int
    username: str
    platform: str
    last_polled_at: datetime | None
    last_poll_error: str
    last_poll_error_at: datetime | None


def failing_channels(*, now: datetime | None = None) -> list[ChannelHealth]:
    """Enabled accounts with no successful poll for a few of their intervals, and accounts
    disconnected because their credentials were refused: intake has stalled there."""
    now = now or timezone.now()
    stalled = Q(pk__in=[])
    pollable = SocialAccount.objects.pollable()
    for platform in set(pollable.values_list("platform", flat=True).distinct()):
        cutoff = now - stale_after(int(poll_interval(platform).total_seconds()))
        stalled |= Q(platform=platform) & (
            Q(last_polled_at__lt=cutoff) | Q(last_polled_at__isnull=True, connected_at__lt=cutoff)
        )
    # A channel whose credentials were refused is off, but not by choice: intake has stopped.
    stale = SocialAccount.objects.filter(
        Q(pk__in=pollable.filter(stalled).values("pk")) | Q(auth_failed_at__isnull=False)
    )
    return [
        ChannelHealth(
            account_id=account.pk,
            username=account.username,
            platform=account.platform,
            last_polled_at=account.last_polled_at,
            last_poll_error=account.last_poll_error,
            last_poll_error_at=account.last_poll_error_at,
        )
        for account in stale.order_by("pk")[:100]
    ]
