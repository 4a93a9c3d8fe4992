"""Faults: the pipeline keeps every mention and sends every reply once while it is hurt.

``kills``: a storm of mentions (posted into the X emulator over HTTP) and acknowledgements
(replies through the outbox) while the real Celery worker (prefork) is SIGKILLed at random
points, ``--kills`` times: mostly the whole worker (main process and pool children, as the
kernel's OOM killer or a lost container would), sometimes one pool child only (Celery's
``task_reject_on_worker_lost`` path). A dead worker is started again at once. The script plays
beat (a poll every second, outbox housekeeping every few seconds). Afterwards it checks, from
the database and the emulator's own record of what it was sent::

    every mention stored exactly once, no ticket doubled, every follow-up in its ticket
    no reply posted twice (one accepted POST /2/tweets per mention at most)
    every acknowledgement sent, or, if a kill hit it mid-request, marked uncertain for the
    agent (never resent blindly) and in the emulator at most once

    .venv/bin/python bench/faults.py kills                  # 20 kills
    .venv/bin/python bench/faults.py kills --kills 3        # the CI size (make soak --small)
    REDIS_URL=redis://127.0.0.1:6379/0 DATABASE_URL=postgres://... \\
      .venv/bin/python bench/faults.py kills

Exits non-zero when a check fails. Every process it started is stopped, by its id.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak
from ingest_bench import (
    database_label,
    database_url,
    machine,
    make_tenant,
    print_rows,
    running_emulator,
    setup_django,
    throwaway_database,
)
from soak import Load, _children, enqueue_poll, start_worker, stop_worker

# On a busy machine a worker can take a minute to start; a slow start is not what we measure.
soak.WORKER_READY_SECONDS = 180

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
    """The one worker, restarted whenever it was killed; every start logged to its own file."""

    def __init__(self, *, queue: str, log_dir: Path, concurrency: int) -> None:
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
            db_url=database_url(),
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
        if pool and rng.random() < 0.3:
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


def run_kills(args: argparse.Namespace, load: Load, worker: Worker) -> dict[str, Any]:
    rng = random.Random(args.seed)
    account_id = load.tenant.account.pk
    kinds: Counter[str] = Counter()
    started = time.monotonic()
    next_poll = next_post = next_house = started
    next_kill = started + rng.uniform(args.min_gap, args.max_gap)
    interval = 1 / args.rate

    def beat(now: float) -> None:
        nonlocal next_poll, next_house
        if now >= next_poll:
            enqueue_poll(account_id)
            next_poll = now + 1
        if now >= next_house:
            housekeeping()
            next_house = now + HOUSEKEEPING_EVERY_SECONDS

    while sum(kinds.values()) < args.kills:
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
            next_kill = time.monotonic() + rng.uniform(args.min_gap, args.max_gap)
        time.sleep(max(0.0, min(next_poll, next_post, next_kill) - time.monotonic()))
    storm_seconds = time.monotonic() - started

    drain_started = time.monotonic()
    drained = False
    while time.monotonic() - drain_started < args.drain:
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


def kills_main(args: argparse.Namespace) -> dict[str, Any]:
    queue = f"careinbox-faults-{os.getpid()}"
    setup_django(queue=queue)
    from django.conf import settings

    from careinbox.celery import app as celery_app

    results: dict[str, Any] = {"scenario": "kills"}
    with throwaway_database("bench_faults"), running_emulator() as emu:
        results["database"] = database_label()
        tenant = make_tenant(emu.url)
        load = Load(emu, tenant, random.Random(args.seed))
        worker = Worker(queue=queue, log_dir=Path(settings.VAR_DIR), concurrency=2)
        worker.start()
        try:
            results["run"] = run_kills(args, load, worker)
        finally:
            worker.stop()
            celery_app.control.purge()
        figures, failures = check_once(load, emu)
        if not results["run"]["drained"]:
            failures.insert(0, f"the pipeline did not settle within {args.drain:g} s")
        results["figures"] = figures
        results["failures"] = failures
    r, f = results["run"], results["figures"]
    rows = [
        ("database / broker", f"{results['database']} / {broker()}"),
        ("kills", f"{sum(r['kills'].values())} {r['kills']}; {r['worker_starts']} worker starts"),
        ("storm / drain", f"{r['storm_seconds']:.0f} s / {r['drain_seconds']:.1f} s"),
        ("mentions posted / stored", f"{f['mentions_posted']} / {f['mentions_stored']}"),
        (
            "missing / doubled / tickets",
            f"{f['mentions_missing']} / {f['mentions_doubled']} / {f['tickets']}",
        ),
        (
            "acknowledged / sent / uncertain",
            f"{f['acknowledgements']} / {f['replies_sent']} / "
            f"{f['uncertain']} ({f['uncertain_landed']} of them landed)",
        ),
        ("replies in emulator / twice", f"{f['replies_in_emulator']} / {f['replies_twice']}"),
    ]
    print_rows(
        f"CareInbox faults: worker SIGKILL · {datetime.now(UTC):%Y-%m-%d %H:%M} · {machine()}",
        rows,
        results["failures"],
        "checks: no mention missing, no ticket doubled, no reply posted twice",
    )
    return results


def broker() -> str:
    return "redis" if os.environ.get("REDIS_URL") else "filesystem"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="scenario", required=True)
    kills = sub.add_parser("kills", help="SIGKILL the Celery worker during a storm")
    kills.add_argument("--kills", type=int, default=20)
    kills.add_argument("--rate", type=float, default=5, help="mentions per second")
    kills.add_argument("--min-gap", type=float, default=1.0, help="seconds between kills, least")
    kills.add_argument("--max-gap", type=float, default=6.0, help="seconds between kills, most")
    kills.add_argument("--drain", type=float, default=120)
    kills.add_argument("--seed", type=int, default=20261201)
    for p in (kills,):
        p.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = kills_main(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
