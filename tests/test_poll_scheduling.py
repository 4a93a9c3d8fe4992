"""Every handle is polled, whatever the load: beat picks the most overdue first and never queues
one twice; a task that expired frees its handle, which then goes first.

A deterministic model of the worker: a FIFO queue drained at a fixed rate per tick, on a
simulated clock, calling the same scheduling functions the real task calls. The real thing,
with a Celery worker and the emulator, is ``bench/poll_fairness.py``."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from channels_social.models import SocialAccount
from channels_social.services import accounts_to_poll, poll_started, poll_succeeded, requeue_after

INTERVAL = 5  # seconds, as in make run


@pytest.fixture
def accounts(make_account: Callable[..., SocialAccount], settings: object) -> list[int]:
    settings.POLL_INTERVAL_SECONDS = INTERVAL  # type: ignore[attr-defined]
    return [make_account().pk for _ in range(100)]


def _run(
    accounts: list[int], *, seconds: int, polls_per_second: int, expire: bool
) -> tuple[dict[int, list[datetime]], int, datetime]:
    """Beat every second; the worker takes up to ``polls_per_second`` tasks off the queue.

    Returns each account's poll times, how many tasks expired unrun, and the last tick.
    """
    start = timezone.now()
    queue: deque[tuple[int, datetime]] = deque()
    polled: dict[int, list[datetime]] = {pk: [] for pk in accounts}
    expired = 0
    for tick in range(seconds):
        now = start + timedelta(seconds=tick)
        for pk in accounts_to_poll(now=now):
            queue.append((pk, now))
        for _ in range(polls_per_second):
            if not queue:
                break
            pk, queued_at = queue.popleft()
            if expire and now - queued_at > requeue_after():
                expired += 1  # Celery drops an expired task without running it
                continue
            poll_started(pk)
            poll_succeeded(pk, now=now)
            polled[pk].append(now)
    return polled, expired, start + timedelta(seconds=seconds - 1)


def _worst_gap(times: list[datetime], end: datetime) -> timedelta:
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return max([*gaps, end - times[-1]]) if times else timedelta.max


def test_a_worker_that_keeps_up_polls_every_handle_every_interval(accounts: list[int]) -> None:
    polled, expired, end = _run(accounts, seconds=60, polls_per_second=50, expire=True)
    assert expired == 0
    assert all(len(times) >= 60 // INTERVAL - 1 for times in polled.values())
    assert max(_worst_gap(t, end) for t in polled.values()) <= timedelta(seconds=INTERVAL + 1)


def test_a_worker_that_lags_still_polls_every_handle_in_turn(accounts: list[int]) -> None:
    """10 polls a second for 100 handles at a 5 s interval: each waits about 10 s, none starves.

    (The old beat queued every handle in id order each interval with an expiry of 0.9 x the
    interval, so under the same load the same tail expired every cycle and was never polled.)"""
    polled, _expired, end = _run(accounts, seconds=120, polls_per_second=10, expire=True)
    assert all(polled.values()), "a handle was never polled"
    counts = sorted(len(times) for times in polled.values())
    assert counts[-1] - counts[0] <= 2  # fair shares
    worst = max(_worst_gap(times, end) for times in polled.values())
    assert worst <= timedelta(seconds=3 * INTERVAL)


def test_beat_tops_the_queue_up_to_the_backlog_and_no_further(
    accounts: list[int], settings: object
) -> None:
    settings.POLL_DISPATCH_BACKLOG = 10  # type: ignore[attr-defined]
    now = timezone.now()
    first = accounts_to_poll(now=now)
    assert len(first) == 10
    assert accounts_to_poll(now=now) == []  # ten wait in the broker: no room
    for pk in first[:4]:
        poll_started(pk)  # four started: four places free
    second = accounts_to_poll(now=now)
    assert len(second) == 4 and not set(second) & set(first)


def test_over_capacity_beat_queues_at_the_workers_pace_and_nothing_expires(
    accounts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two polls a second for 100 handles every 5 s (a tenth of what they ask). Queueing every
    due handle would leave tasks 50 s in the broker, three times their expiry; read off the
    polls that ended, the queue stays short: no task expires unrun and the handles share
    what the workers do, most overdue first."""
    # The floor (what may wait before any poll has ended) below these workers' 15 s of work.
    monkeypatch.setattr("channels_social.services.DISPATCH_FLOOR", 10)
    polled, expired, _end = _run(accounts, seconds=300, polls_per_second=2, expire=True)
    assert expired == 0
    counts = sorted(len(times) for times in polled.values())
    assert counts[0] >= 5 and counts[-1] - counts[0] <= 1


def test_a_handle_is_never_queued_twice_while_its_task_waits(accounts: list[int]) -> None:
    now = timezone.now()
    first = accounts_to_poll(now=now)
    assert sorted(first) == sorted(accounts)
    later = now + timedelta(seconds=2 * INTERVAL)  # due again, but still queued
    assert accounts_to_poll(now=later) == []
    # Its task was lost (expired): once requeue_after has passed, it is queued again.
    assert sorted(accounts_to_poll(now=now + requeue_after() + timedelta(seconds=1))) == sorted(
        accounts
    )


def test_the_most_overdue_handle_goes_first(accounts: list[int]) -> None:
    now = timezone.now()
    SocialAccount.objects.update(next_poll_at=now)
    oldest = accounts[57]
    SocialAccount.objects.filter(pk=oldest).update(next_poll_at=now - timedelta(minutes=5))
    assert accounts_to_poll(now=now, limit=1) == [oldest]


def test_disabled_and_future_handles_are_not_queued(accounts: list[int]) -> None:
    now = timezone.now()
    SocialAccount.objects.filter(pk=accounts[0]).update(enabled=False)
    SocialAccount.objects.filter(pk=accounts[1]).update(next_poll_at=now + timedelta(seconds=3))
    queued = accounts_to_poll(now=now)
    assert accounts[0] not in queued and accounts[1] not in queued and len(queued) == 98


def test_a_platform_can_ask_for_a_longer_interval(
    make_account: Callable[..., SocialAccount], settings: object
) -> None:
    """Facebook's webhooks are the fast path: its pages are polled once a minute at most."""
    settings.POLL_INTERVAL_SECONDS = INTERVAL  # type: ignore[attr-defined]
    x = make_account()
    page = make_account(platform="facebook", credentials={"page_access_token": "t"})
    now = timezone.now()
    assert sorted(accounts_to_poll(now=now)) == sorted([x.pk, page.pk])
    poll_started(x.pk)
    poll_started(page.pk)
    poll_succeeded(x.pk, now=now, platform="x")
    poll_succeeded(page.pk, now=now, platform="facebook")
    assert accounts_to_poll(now=now + timedelta(seconds=INTERVAL)) == [x.pk]
    assert page.pk not in accounts_to_poll(now=now + timedelta(seconds=30))
    assert page.pk in accounts_to_poll(now=now + timedelta(seconds=60))


def test_health_judges_each_handle_by_its_own_interval(
    make_account: Callable[..., SocialAccount], settings: object
) -> None:
    from channels_social.services import failing_channels

    settings.POLL_INTERVAL_SECONDS = INTERVAL  # type: ignore[attr-defined]
    now = timezone.now()
    x = make_account(last_polled_at=now - timedelta(seconds=90))
    make_account(
        platform="facebook",
        credentials={"page_access_token": "t"},
        last_polled_at=now - timedelta(seconds=90),
    )
    assert [c.account_id for c in failing_channels(now=now)] == [x.pk]
