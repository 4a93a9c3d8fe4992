"""Killing a real Celery worker during a storm, and checking afterwards that nothing is missing,
nothing doubled and no reply posted twice: shared by ``bench/faults.py kills`` (the soak's
20 kills) and ``tests/test_worker_kills.py`` (a few kills inside ``make test``).

Needs Django set up and the X emulator running (``emu`` has ``.control`` and ``.app``, as
``ingest_bench.Emulator`` and the tests' ``XSandbox`` do); starts workers only through
``soak.start_worker`` and stops only the processes it started, by their ids."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak import Load, _children, enqueue_poll, start_worker, stop_worker

HOUSEKEEPING_EVERY_SECONDS = 5.0


# Killing ----------------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """The process and all its descendants (our worker and its pool), parents first."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop(0)
        found.append(current)
        todo += _children(current)
    return found


def sigkill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Worker:
    """The one worker, restarted whenever it was killed; every start logged to its own file.
    ``pool_child_share``: how often a kill takes one pool child rather than the whole worker."""

    def __init__(
        self,
        *,
        db_url: str,
        queue: str,
        log_dir: Path,
        concurrency: int,
        pool_child_share: float = 0.3,
    ) -> None:
        self.db_url = db_url
        self.pool_child_share = pool_child_share
        self.queue = queue
        self.log_dir = log_dir
        self.concurrency = concurrency
        self.starts = 0
        self.process: subprocess.Popen[str] | None = None
        self.restart_seconds: list[float] = []

    def start(self) -> None:
        started = time.monotonic()
        self.starts += 1
        self.process = start_worker(
            db_url=self.db_url,
            queue=self.queue,
            log_path=self.log_dir / f"faults-worker-{os.getpid()}-{self.starts}.log",
            concurrency=self.concurrency,
            pool="prefork",
        )
        if self.starts > 1:
            self.restart_seconds.append(time.monotonic() - started)

    def kill(self, rng: random.Random) -> str:
        """SIGKILL the whole worker (then start a new one), or one pool child (the worker
        replaces it itself); returns which."""
        assert self.process is not None
        pids = tree(self.process.pid)
        pool = pids[1:]
        if pool and rng.random() < self.pool_child_share:
            sigkill([rng.choice(pool)])
            return "pool child"
        sigkill(pids)
        self.process.wait(timeout=10)
        self.start()
        return "whole worker"

    def stop(self) -> None:
        if self.process is not None:
            pool = tree(self.process.pid)[1:]
            stop_worker(self.process)
            sigkill([pid for pid in pool if Path(f"/proc/{pid}").exists()])


def housekeeping() -> None:
    from tickets.tasks import outbox_housekeeping

    outbox_housekeeping.delay()


def settled(load: Load) -> bool:
    """Everything posted is stored, every ticket acknowledged, no reply waiting to go."""
    from tickets.models import Direction, Message, OutboxItem, OutboxState, Status, Ticket

    stored = Message.objects.filter(direction=Direction.INBOUND).count()
    waiting = OutboxItem.objects.filter(
        state__in=[OutboxState.QUEUED, OutboxState.SENDING]
    ).exists()
    return (
        stored >= len(load.posted)
        and not waiting
        and not Ticket.objects.filter(status=Status.NEW).exists()
    )


def run_kills(
    load: Load,
    worker: Worker,
    *,
    kills: int,
    rate: float,
    min_gap: float,
    max_gap: float,
    drain: float,
    seed: int,
) -> dict[str, Any]:
    """Storm (``rate`` mentions a second, every new ticket acknowledged, beat played: a poll
    a second, outbox housekeeping every few) while ``kills`` SIGKILLs hit the worker at random
    gaps of ``min_gap`` to ``max_gap`` seconds; then drain for up to ``drain`` seconds."""
    rng = random.Random(seed)
    account_id = load.tenant.account.pk
    kinds: Counter[str] = Counter()
    started = time.monotonic()
    next_poll = next_post = next_house = started
    next_kill = started + rng.uniform(min_gap, max_gap)
    interval = 1 / rate

    def beat(now: float) -> None:
        nonlocal next_poll, next_house
        if now >= next_poll:
            enqueue_poll(account_id)
            next_poll = now + 1
        if now >= next_house:
            housekeeping()
            next_house = now + HOUSEKEEPING_EVERY_SECONDS

    while sum(kinds.values()) < kills:
        now = time.monotonic()
        beat(now)
        while now >= next_post:
            load.post_one()
            next_post += interval
        load.acknowledge_new()
        if now >= next_kill:
            kinds[worker.kill(rng)] += 1
            # The storm went on while the worker started again; post at the rate from now.
            next_post = max(next_post, time.monotonic())
            next_kill = time.monotonic() + rng.uniform(min_gap, max_gap)
        time.sleep(max(0.0, min(next_poll, next_post, next_kill) - time.monotonic()))
    storm_seconds = time.monotonic() - started

    drain_started = time.monotonic()
    drained = False
    while time.monotonic() - drain_started < drain:
        beat(time.monotonic())
        load.acknowledge_new()
        if settled(load):
            drained = True
            break
        time.sleep(0.25)
    return {
        "storm_seconds": storm_seconds,
        "drain_seconds": time.monotonic() - drain_started,
        "drained": drained,
        "kills": dict(kinds),
        "worker_starts": worker.starts,
        "restart_seconds_max": max(worker.restart_seconds, default=0.0),
    }


def check_once(load: Load, emu: Any) -> tuple[dict[str, Any], list[str]]:
    """Nothing missing, nothing doubled, in the database and in the emulator."""
    from tickets.models import (
        Direction,
        EventKind,
        Message,
        OutboxItem,
        OutboxState,
        Ticket,
        TicketEvent,
    )

    failures: list[str] = []
    inbound = list(
        Message.objects.filter(direction=Direction.INBOUND).values_list("external_id", "ticket_id")
    )
    stored = Counter(external_id for external_id, _ in inbound)
    missing = set(load.posted) - set(stored)
    doubled = [i for i, n in stored.items() if n > 1]
    if missing or doubled:
        failures.append(f"mentions: {len(missing)} missing, {len(doubled)} stored twice")
    ticket_of = dict(inbound)
    misthreaded = sum(1 for r, p in load.follow_ups.items() if ticket_of.get(r) != ticket_of.get(p))
    if misthreaded:
        failures.append(f"{misthreaded} follow-ups not in their ticket")
    joined = TicketEvent.objects.filter(
        kind=EventKind.MESSAGE_RECEIVED, data__has_key="near_duplicate"
    ).count()
    tickets = Ticket.objects.count()
    expected = len(load.posted) - len(load.follow_ups) - joined
    if tickets != expected:
        failures.append(f"{tickets} tickets, expected {expected} (a ticket doubled or lost)")
    opened = Counter(
        TicketEvent.objects.filter(kind=EventKind.OPENED).values_list("ticket_id", flat=True)
    )
    if any(n > 1 for n in opened.values()):
        failures.append("a ticket was opened twice")

    items = list(
        OutboxItem.objects.values_list("state", "message__in_reply_to_external_id", "attempts")
    )
    states = Counter(state for state, _, _ in items)
    accepted = [
        entry
        for entry in emu.app.requests_log()
        if entry["method"] == "POST" and entry["path"] == "/2/tweets" and entry["status"] == 201
    ]
    posted_under = Counter(
        str((entry["json"] or {}).get("reply", {}).get("in_reply_to_tweet_id"))
        for entry in accepted
    )
    twice = [parent for parent, n in posted_under.items() if n > 1]
    if twice:
        failures.append(f"{len(twice)} mentions answered more than once on the platform")
    unexpected = {
        s: n for s, n in states.items() if s not in (OutboxState.SENT, OutboxState.UNCERTAIN)
    }
    if unexpected:
        failures.append(f"outbox items neither sent nor flagged for a check: {unexpected}")
    if len(items) != len(load.acknowledged) - len(load.step_errors):
        failures.append(f"{len(items)} outbox items for {len(load.acknowledged)} acknowledgements")
    if load.step_errors:
        failures.append(f"{len(load.step_errors)} step errors, e.g. {load.step_errors[0]}")
    sent_targets = {t for s, t, _ in items if s == OutboxState.SENT}
    not_on_platform = [t for t in sent_targets if posted_under.get(str(t), 0) != 1]
    if not_on_platform:
        failures.append(f"{len(not_on_platform)} sent replies not on the platform exactly once")
    uncertain = [t for s, t, _ in items if s == OutboxState.UNCERTAIN]
    uncertain_landed = sum(1 for t in uncertain if posted_under.get(str(t), 0) == 1)
    figures = {
        "mentions_posted": len(load.posted),
        "mentions_stored": sum(stored.values()),
        "mentions_missing": len(missing),
        "mentions_doubled": len(doubled),
        "tickets": tickets,
        "acknowledgements": len(load.acknowledged),
        "replies_sent": states.get(OutboxState.SENT, 0),
        "replies_in_emulator": len(accepted),
        "replies_twice": len(twice),
        "uncertain": len(uncertain),
        "uncertain_landed": uncertain_landed,
        "send_attempts_max": max((a for _, _, a in items), default=0),
    }
    return figures, failures
