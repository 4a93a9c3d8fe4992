"""Poll fairness: does beat's dispatcher reach every handle, every interval, under real load?

Real components only: a throwaway database, the X emulator over HTTP in a thread with N brand
handles registered, a real ``celery worker`` subprocess (prefork x2 as in ``Procfile.dev``) and
a real ``celery beat`` subprocess, which runs ``poll_due_accounts`` on its own schedule (every
min(interval, 1) s). Beat, worker and this script share ``POLL_INTERVAL_SECONDS`` (default 5).
For ``--seconds`` the script posts ``--rate`` mentions per second to random handles through the
emulator's HTTP control API; the worker polls and stores them. Then it drains (bounded) and
stops beat and the worker (always, in ``finally``)::

    .venv/bin/python bench/poll_fairness.py                    # 100 handles for 120 s
    .venv/bin/python bench/poll_fairness.py --handles 74
    .venv/bin/python bench/poll_fairness.py --small            # 20 handles for 30 s (CI)
    .venv/bin/python bench/poll_fairness.py --handles 74 --dispatcher legacy   # before b072127

When was each handle polled? The emulator's own request log has no times, so the emulator here
is ``XSandboxApp`` with a note of the time each ``GET /2/users/{id}/mentions`` was answered; a
poll is a first page (no ``pagination_token``) answered 200. ``last_polled_at`` is sampled from
the database every second as a cross-check. Gaps are measured inside the load window: from its
start to the first poll, between polls, and from the last poll to its end.

Two more dispatchers, without beat, for comparison on the same machine: ``--dispatcher script``
calls ``poll_due_accounts`` in this process on beat's schedule (so the dispatch is never queued
behind the polls it sent), and ``--dispatcher legacy`` sends what ``poll_all_accounts`` sent
before b072127 (every handle every interval, each task expiring after 0.9 x interval).

Exits 1 when a handle was never polled, a gap exceeded ``--max-gap-intervals`` (4) x interval,
or a mention was lost, stored twice or filed under another handle.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    ROOT,
    UNLIMITED,
    complaint,
    database_label,
    database_url,
    machine,
    percentile,
    print_rows,
    setup_django,
    throwaway_database,
)
from soak import start_worker, stop_worker

sys.path.insert(0, str(ROOT))
from careinbox.celery import DISPATCH_TICK_SECONDS  # beat's dispatch tick

if TYPE_CHECKING:
    from channels_social.sandbox.x.app import XSandboxApp
    from channels_social.sandbox.x.control import SandboxControl
    from channels_social.sandbox.x.server import RunningServer

BRAND_ID_BASE = 2_000_000
AUTHOR_ID_BASE = 7_000_000
BEAT_READY_SECONDS = 60
MENTIONS_PATH = re.compile(r"/2/users/(?P<user_id>[0-9]+)/mentions")
# Celery's worker log lines (celery/app/trace.py, celery/worker/request.py).
SUCCEEDED = re.compile(
    r"Task (?P<task>[\w.]+)\[[^\]]+\] succeeded in (?P<secs>[0-9.]+)s: (?P<r>.*)"
)
DISCARDED = re.compile(r"Discarding revoked task: (?P<task>[\w.]+)\[")
POLL_TASK = "channels_social.tasks.poll_account"
DISPATCH_TASK = "channels_social.tasks.poll_due_accounts"


# The emulator, with the time of every mentions read -----------------------------------------


@dataclass(frozen=True)
class MentionsRead:
    at: float  # wall clock (time.time()), when the emulator answered
    user_id: str
    status: int
    first_page: bool


def timed_sandbox() -> XSandboxApp:
    """The X emulator (limits lifted) that also notes when each mentions read was answered."""
    from channels_social.sandbox.x.app import XSandboxApp
    from channels_social.sandbox.x.store import XStore

    class TimedSandbox(XSandboxApp):
        def __init__(self) -> None:
            super().__init__(XStore(), UNLIMITED)
            self.mention_reads: list[MentionsRead] = []
            self._reads_lock = threading.Lock()

        def __call__(
            self, environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            statuses: list[int] = []

            def noting_start(status: str, headers: Any, exc_info: Any = None) -> Any:
                statuses.append(int(status.split()[0]))
                return start_response(status, headers, exc_info)

            body = super().__call__(environ, noting_start)
            match = MENTIONS_PATH.fullmatch(environ.get("PATH_INFO", ""))
            if match and environ.get("REQUEST_METHOD") == "GET":
                read = MentionsRead(
                    at=time.time(),
                    user_id=match["user_id"],
                    status=statuses[0] if statuses else 0,
                    first_page="pagination_token" not in environ.get("QUERY_STRING", ""),
                )
                with self._reads_lock:
                    self.mention_reads.append(read)
            return body

        def reads(self) -> list[MentionsRead]:
            with self._reads_lock:
                return list(self.mention_reads)

    return TimedSandbox()


@dataclass
class Emulator:
    app: Any  # TimedSandbox
    server: RunningServer
    control: SandboxControl

    @property
    def url(self) -> str:
        return self.server.url


@contextmanager
def running_emulator(port: int) -> Iterator[Emulator]:
    from channels_social.sandbox.x.control import SandboxControl
    from channels_social.sandbox.x.server import start_in_thread

    app = timed_sandbox()
    server = start_in_thread(app, port=port)
    control = SandboxControl(server.url)
    try:
        control.wait_until_up(5)
        yield Emulator(app=app, server=server, control=control)
    finally:
        server.stop()


# The handles --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handle:
    account_id: int
    user_id: str
    username: str


def make_handles(emu: Emulator, count: int) -> list[Handle]:
    """``count`` organisations, each with one brand and one X handle pointed at the emulator."""
    from careinbox.accounts.models import Organization
    from channels_social.models import Brand, Platform, SocialAccount

    handles = []
    for number in range(count):
        user_id = str(BRAND_ID_BASE + number)
        username = f"PollBrand{number:03d}"
        emu.app.store.upsert_user(id=user_id, username=username, name=username, followers_count=1)
        org = Organization.objects.create(name=f"Poll Co {number}", slug=f"poll-co-{number}")
        brand = Brand.objects.create(organization=org, name=f"Poll Co {number}")
        account = SocialAccount(
            organization=org,
            brand=brand,
            platform=Platform.X,
            external_id=user_id,
            username=username,
            api_base_url=emu.url,
        )
        account.credentials = {
            "consumer_key": "ck",
            "consumer_secret": "cs",
            "access_token": f"{user_id}-bench-token",
            "access_token_secret": "ts",
        }
        account.save()
        handles.append(Handle(account_id=account.pk, user_id=user_id, username=username))
    return handles


# Beat ---------------------------------------------------------------------------------------


def start_beat(*, db_url: str, queue: str, log_path: Path, schedule: Path) -> subprocess.Popen[str]:
    """A real ``celery beat`` with a schedule file of its own; returns once it has started."""
    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_QUEUE": queue, "CAREINBOX_TESTING": "1"}
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "careinbox",
        "beat",
        "--schedule",
        str(schedule),
        "--loglevel",
        "INFO",
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    deadline = time.monotonic() + BEAT_READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery beat exited:\n{log_path.read_text()[-3000:]}")
        if "beat: Starting..." in log_path.read_text():
            return process
        time.sleep(0.1)
    stop_worker(process)  # the same warm-then-hard stop, by this process's id only
    raise RuntimeError(f"celery beat did not start:\n{log_path.read_text()[-3000:]}")


# The load -----------------------------------------------------------------------------------


@dataclass
class Load:
    """Mentions posted to random handles over HTTP; the database's poll state sampled."""

    emu: Emulator
    handles: list[Handle]
    rng: random.Random
    posted: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # id -> handle, time
    polled_at: dict[int, set[float]] = field(default_factory=lambda: defaultdict(set))
    max_pending: int = 0  # accounts with a poll task queued and not started
    max_overdue: int = 0  # accounts due more than one interval ago

    def post_one(self) -> None:
        handle = self.rng.choice(self.handles)
        n = len(self.posted)
        author = str(AUTHOR_ID_BASE + self.rng.randrange(500))
        tweet = self.emu.control.post_mention(
            handle.username,
            author,
            f"fair{author}",
            self.rng.choice([15, 800, 3_000, 60_000]),
            complaint(self.rng, n),
        )
        created = datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00"))
        self.posted[str(tweet["id"])] = (handle.username, created)

    def sample(self, interval: float) -> None:
        from django.utils import timezone

        from channels_social.models import SocialAccount

        now = timezone.now()
        pending = overdue = 0
        for pk, last, queued, due in SocialAccount.objects.values_list(
            "pk", "last_polled_at", "poll_queued_at", "next_poll_at"
        ):
            if last is not None:
                self.polled_at[pk].add(last.timestamp())
            pending += queued is not None
            overdue += due is not None and (now - due).total_seconds() > interval
        self.max_pending = max(self.max_pending, pending)
        self.max_overdue = max(self.max_overdue, overdue)

    def stored_count(self) -> int:
        from tickets.models import Direction, Message

        return Message.objects.filter(direction=Direction.INBOUND).count()


class ScriptDispatcher(ABC):
    """A dispatcher this script runs itself, every ``period`` seconds, instead of beat."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.next_run: float | None = None
        self.sent: list[int] = []  # poll tasks sent, per run

    def tick(self) -> None:
        now = time.monotonic()
        if self.next_run is not None and now < self.next_run:
            return
        self.next_run = (self.next_run or now) + self.period
        self.sent.append(self.run_once())

    @abstractmethod
    def run_once(self) -> int:
        """Dispatch once; how many poll tasks were sent."""


class InProcessDispatch(ScriptDispatcher):
    """Today's ``poll_due_accounts`` on beat's schedule (every min(interval, 1) s), but called
    here rather than sent through the broker: on time, never queued behind the polls it sent
    (``--dispatcher script``)."""

    def run_once(self) -> int:
        from channels_social.tasks import poll_due_accounts

        return int(poll_due_accounts())


class LegacyFanOut(ScriptDispatcher):
    """The dispatcher before b072127, on beat's old schedule: every interval,
    ``poll_all_accounts`` sent one ``poll_account`` per enabled handle, each expiring after
    0.9 x interval. For comparison only (``--dispatcher legacy``)."""

    def run_once(self) -> int:
        from channels_social.models import SocialAccount
        from channels_social.tasks import poll_account

        # In pk order, as the old query came back: the schema then had no index on ``enabled``;
        # today's (enabled, next_poll_at) index makes SQLite return least recently polled first,
        # which would make the old dispatcher look fair by accident.
        handles = SocialAccount.objects.pollable().order_by("pk").values_list("pk", flat=True)
        sent = 0
        for account_id in handles:
            poll_account.apply_async((account_id,), expires=self.period * 0.9)
            sent += 1
        return sent


def run_load(
    args: argparse.Namespace,
    load: Load,
    start_dispatcher: Callable[[], Any],
    tick: Callable[[], None],
) -> dict[str, Any]:
    """Start the dispatcher, post for ``args.seconds``, then drain (bounded) with it running.

    ``tick`` is called at least every 0.1 s (a script dispatcher runs from it; beat needs none).
    """
    start_dispatcher()
    started = time.time()
    next_post = next_sample = time.monotonic()
    gap = 1 / args.rate if args.rate > 0 else float("inf")
    late_posts = 0
    while time.time() - started < args.seconds:
        tick()
        now = time.monotonic()
        if now >= next_sample:
            load.sample(args.interval)
            next_sample += 1
        while now >= next_post and time.time() - started < args.seconds:
            load.post_one()
            next_post += gap
            if time.monotonic() - next_post > 1:
                late_posts += 1
        time.sleep(min(0.1, max(0.0, min(next_sample, next_post) - time.monotonic())))
    ended = time.time()
    drained = False
    next_sample = time.monotonic()
    while time.time() - ended < args.drain:
        tick()
        if time.monotonic() >= next_sample:
            load.sample(args.interval)
            next_sample += 1
        if load.stored_count() >= len(load.posted):
            drained = True
            break
        time.sleep(0.1)
    return {
        "started": started,
        "ended": ended,
        "drain_seconds": time.time() - ended,
        "drained": drained,
        "late_posts": late_posts,
    }


def code_version() -> str:
    """The commit measured, and how many files of the apps differ from it (others' edits)."""
    git = ["git", "-C", str(ROOT)]
    try:
        head = subprocess.run(  # noqa: S603 - fixed arguments
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603 - fixed arguments
            [
                *git,
                "status",
                "--porcelain",
                "--",
                "careinbox",
                "channels_social",
                "tickets",
                "monitoring",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (f" + {len(dirty)} changed files" if dirty else "")


# The figures --------------------------------------------------------------------------------


@dataclass
class HandleFigures:
    username: str
    polls: int
    db_polls: int
    first_poll_s: float | None  # from the start of the load window
    largest_gap_s: float  # between polls, or since the last one at the end of the window
    shortest_gap_s: float | None
    gaps_s: list[float]  # every gap between two polls


def handle_figures(
    handles: list[Handle], reads: list[MentionsRead], load: Load, started: float, ended: float
) -> list[HandleFigures]:
    polls: dict[str, list[float]] = defaultdict(list)
    for read in reads:
        if read.first_page and read.status == 200 and started <= read.at <= ended:
            polls[read.user_id].append(read.at)
    figures = []
    for handle in handles:
        times = sorted(polls.get(handle.user_id, []))
        between = [later - earlier for earlier, later in itertools.pairwise(times)]
        db_polls = sum(
            1 for t in load.polled_at.get(handle.account_id, ()) if started <= t <= ended
        )
        figures.append(
            HandleFigures(
                username=handle.username,
                polls=len(times),
                db_polls=db_polls,
                first_poll_s=times[0] - started if times else None,
                largest_gap_s=max([*between, ended - times[-1]]) if times else ended - started,
                shortest_gap_s=min(between) if between else None,
                gaps_s=between,
            )
        )
    return figures


def worker_log_counts(log_path: Path) -> dict[str, Any]:
    """What the worker did, from its log: poll outcomes and durations, dispatches, expiries."""
    outcomes: Counter[str] = Counter()
    poll_seconds: list[float] = []
    dispatched: list[int] = []
    expired: Counter[str] = Counter()
    errors = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if " ERROR/" in line:
            errors += 1
        if match := SUCCEEDED.search(line):
            result = match["r"].strip("'\"")
            if match["task"] == POLL_TASK:
                poll_seconds.append(float(match["secs"]))
                outcomes[result.split(":", 1)[0] if result.startswith("ok") else result[:40]] += 1
            elif match["task"] == DISPATCH_TASK and result.isdigit():
                dispatched.append(int(result))
        elif match := DISCARDED.search(line):
            expired[match["task"]] += 1
    return {
        "poll_outcomes": dict(outcomes),
        "poll_task_seconds": poll_seconds,
        "dispatches": len(dispatched),
        "poll_tasks_sent": sum(dispatched),
        "largest_dispatch": max(dispatched, default=0),
        "poll_tasks_expired": expired.get(POLL_TASK, 0),
        "dispatch_tasks_expired": expired.get(DISPATCH_TASK, 0),
        "errors": errors,
    }


def check_mentions(load: Load) -> tuple[list[float], list[str]]:
    """Every mention stored once, under the handle it named; latencies mention -> stored."""
    from tickets.models import Direction, Message

    failures = []
    rows = list(
        Message.objects.filter(direction=Direction.INBOUND).values_list(
            "external_id", "ticket__social_account__username", "received_at"
        )
    )
    counts = Counter(external_id for external_id, _, _ in rows)
    missing = set(load.posted) - set(counts)
    twice = [i for i, n in counts.items() if n > 1]
    unexpected = set(counts) - set(load.posted)
    if missing or twice or unexpected:
        failures.append(
            f"mentions: {len(missing)} missing, {len(twice)} stored twice, "
            f"{len(unexpected)} unexpected"
        )
    misfiled = sum(
        1
        for external_id, username, _ in rows
        if load.posted.get(external_id, (username,))[0] != username
    )
    if misfiled:
        failures.append(f"{misfiled} mentions filed under another handle")
    latencies = [
        (received - load.posted[external_id][1]).total_seconds()
        for external_id, _, received in rows
        if external_id in load.posted
    ]
    return latencies, failures


def spread(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values, default=0.0),
    }


# Run, report --------------------------------------------------------------------------------


def run(args: argparse.Namespace, queue: str) -> dict[str, Any]:
    from django.conf import settings

    from careinbox.celery import app as celery_app

    var = Path(settings.VAR_DIR)
    worker_log = var / f"poll-fairness-worker-{os.getpid()}.log"
    beat_log = var / f"poll-fairness-beat-{os.getpid()}.log"
    schedule = var / f"poll-fairness-beat-{os.getpid()}.schedule"
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join([".venv/bin/python", "bench/poll_fairness.py", *sys.argv[1:]]),
        "handles": args.handles,
        "interval": args.interval,
        "seconds": args.seconds,
        "rate": args.rate,
        "dispatcher": args.dispatcher,
        "broker": "redis" if os.environ.get("REDIS_URL") else "filesystem",
        "worker": f"{args.pool}" + (f" x{args.concurrency}" if args.pool == "prefork" else ""),
        "processes": args.concurrency if args.pool == "prefork" else 1,
        "worker_log": str(worker_log),
        "beat_log": str(beat_log),
        "load_average_before": os.getloadavg(),
        "code": code_version(),
    }
    failures: list[str] = []
    wall = time.monotonic()
    with throwaway_database("bench_polling"), running_emulator(args.port) as emu:
        results["database"] = database_label()
        handles = make_handles(emu, args.handles)
        load = Load(emu=emu, handles=handles, rng=random.Random(20240603))
        db_url = database_url()
        worker = start_worker(
            db_url=db_url,
            queue=queue,
            log_path=worker_log,
            concurrency=args.concurrency,
            pool=args.pool,
        )
        beat: subprocess.Popen[str] | None = None
        script: ScriptDispatcher | None = None
        if args.dispatcher == "legacy":
            script = LegacyFanOut(args.interval)
        elif args.dispatcher == "script":
            script = InProcessDispatch(min(args.interval, DISPATCH_TICK_SECONDS))

        def launch_beat() -> None:
            nonlocal beat
            if script is None:
                beat = start_beat(db_url=db_url, queue=queue, log_path=beat_log, schedule=schedule)

        try:
            window = run_load(args, load, launch_beat, script.tick if script else lambda: None)
        finally:
            if beat is not None:
                stop_worker(beat)
            stop_worker(worker)
            results["purged"] = celery_app.control.purge()
            for leftover in var.glob(f"{schedule.name}*"):
                leftover.unlink(missing_ok=True)
        started, ended = window["started"], window["ended"]
        reads = emu.app.reads()
        figures = handle_figures(handles, reads, load, started, ended)
        latencies, mention_failures = check_mentions(load)
        results["load_average_after"] = os.getloadavg()
        if script is not None:
            results["script_runs"], results["script_sent"] = len(script.sent), sum(script.sent)
            results["script_largest_batch"] = max(script.sent, default=0)

    interval = args.interval
    limit = args.max_gap_intervals * interval
    never = [f.username for f in figures if f.polls == 0]
    over = [f for f in figures if f.polls and f.largest_gap_s > limit]
    first_late = [f for f in figures if f.first_poll_s is not None and f.first_poll_s > limit]
    if never:
        failures.append(f"{len(never)} of {len(figures)} handles never polled: {never[:10]}")
    if over:
        worst = max(over, key=lambda f: f.largest_gap_s)
        failures.append(
            f"{len(over)} handles went more than {limit:g} s ({args.max_gap_intervals:g} "
            f"intervals) without a poll; worst @{worst.username}, {worst.largest_gap_s:.1f} s"
        )
    if first_late:
        failures.append(f"{len(first_late)} handles first polled more than {limit:g} s in")
    if not window["drained"]:
        failures.append(f"mentions not all stored within {args.drain:g} s after the load")
    failures += mention_failures
    counts = worker_log_counts(worker_log)
    gaps = [f.largest_gap_s for f in figures if f.polls]
    results.update(
        {
            "load_seconds": ended - started,
            "drain_seconds": window["drain_seconds"],
            "late_posts": window["late_posts"],
            "mentions_posted": len(load.posted),
            "mention_to_stored_s": spread(latencies),
            "polls": spread([float(f.polls) for f in figures]),
            "polls_min": min((f.polls for f in figures), default=0),
            "polls_total": sum(f.polls for f in figures),
            "db_polls_total": sum(f.db_polls for f in figures),
            "largest_gap_s": spread(gaps),
            "every_gap_s": spread([gap for f in figures for gap in f.gaps_s]),
            "polls_per_second": sum(f.polls for f in figures) / (ended - started),
            "first_poll_s": spread([f.first_poll_s for f in figures if f.first_poll_s is not None]),
            "double_polls": sum(
                1
                for f in figures
                if f.shortest_gap_s is not None and f.shortest_gap_s < interval / 2
            ),
            "never_polled": never,
            "max_pending": load.max_pending,
            "max_overdue": load.max_overdue,
            "worker_log_counts": {k: v for k, v in counts.items() if k != "poll_task_seconds"},
            "poll_task_ms": spread([1000 * x for x in counts["poll_task_seconds"]]),
            "per_handle": [{k: v for k, v in f.__dict__.items() if k != "gaps_s"} for f in figures],
            "failures": failures,
            "wall_seconds": time.monotonic() - wall,
        }
    )
    return results


def print_report(r: dict[str, Any]) -> None:
    interval = r["interval"]
    c = r["worker_log_counts"]

    def secs(stats: dict[str, float], unit: str = "s") -> str:
        p50, p95, top = stats["p50"], stats["p95"], stats["max"]
        return f"p50 {p50:.1f} {unit}, p95 {p95:.1f} {unit}, max {top:.1f} {unit}"

    expected = r["load_seconds"] / interval
    processes = r.get("processes", 1)
    per_process = r["polls_per_second"] / processes
    tick = min(interval, DISPATCH_TICK_SECONDS)
    if r["dispatcher"] in ("legacy", "script"):
        dispatcher = (
            f"the script: every enabled handle every {interval:g} s (before b072127)"
            if r["dispatcher"] == "legacy"
            else f"the script calls poll_due_accounts every {tick:g} s (no beat)"
        )
        sent = r["script_sent"]
        runs = f"{r['script_runs']} / - (largest batch {r['script_largest_batch']})"
    else:
        dispatcher = f"celery beat: poll_due_accounts every {tick:g} s"
        sent = c["poll_tasks_sent"]
        runs = (
            f"{c['dispatches']} / {c['dispatch_tasks_expired']} "
            f"(largest batch {c['largest_dispatch']})"
        )
    rows = [
        ("code", r["code"]),
        ("database / broker", f"{r['database']} / {r['broker']}"),
        ("worker / dispatcher", f"{r['worker']} / {dispatcher}"),
        ("handles / interval", f"{r['handles']} / {interval:g} s"),
        ("load", f"{r['mentions_posted']} mentions to random handles in {r['load_seconds']:.0f} s"),
        (
            "load average before -> after",
            " -> ".join(f"{a[0]:.1f}" for a in (r["load_average_before"], r["load_average_after"])),
        ),
        (
            "polls per handle",
            f"min {r['polls_min']}, p50 {r['polls']['p50']:.0f}, max {r['polls']['max']:.0f} "
            f"(at most {expected:.0f} in {r['load_seconds']:.0f} s)",
        ),
        ("polls: emulator / last_polled_at", f"{r['polls_total']} / {r['db_polls_total']}"),
        (
            "poll throughput",
            f"{r['polls_per_second']:.1f} polls/s (the interval asks for "
            f"{r['handles'] / interval:.1f})",
        ),
        (
            "worker processes this asks for",
            # Each process did polls_per_second / processes; the handles ask handles / interval.
            f"{math.ceil((r['handles'] / interval) / per_process)} at "
            f"{per_process:.1f} polls/s per process (measured with {processes})"
            if per_process
            else "-",
        ),
        ("every gap between two polls", secs(r["every_gap_s"])),
        (
            "largest gap between polls",
            secs(r["largest_gap_s"]) + f" ({r['largest_gap_s']['max'] / interval:.1f} intervals)",
        ),
        ("first poll after start", secs(r["first_poll_s"])),
        ("handles never polled", f"{len(r['never_polled'])}"),
        ("handles polled twice within interval/2", f"{r['double_polls']}"),
        ("poll tasks sent / expired", f"{sent} / {c['poll_tasks_expired']}"),
        ("dispatcher runs / expired", runs),
        (
            "poll outcomes (worker log)",
            ", ".join(f"{k}: {v}" for k, v in sorted(c["poll_outcomes"].items())) or "none",
        ),
        ("poll task duration (worker)", secs(r["poll_task_ms"], "ms")),
        (
            "most pending / overdue (>1 interval)",
            f"{r['max_pending']} / {r['max_overdue']} handles",
        ),
        ("mention -> stored", secs(r["mention_to_stored_s"])),
        ("drain after the load", f"{r['drain_seconds']:.1f} s"),
        ("worker log errors", f"{c['errors']}  ({r['worker_log']})"),
        ("wall time", f"{r['wall_seconds']:.0f} s"),
    ]
    print_rows(
        f"CareInbox poll fairness · {r['date']} · {r['machine']}",
        rows,
        r["failures"],
        f"checks: every handle polled, no gap over {r['max_gap_intervals']:g} intervals, "
        "every mention stored once under its handle",
    )
    per_handle = sorted(r["per_handle"], key=lambda f: -f["largest_gap_s"])
    shown = per_handle if len(per_handle) <= 200 else per_handle[:40]
    print(
        f"\nper handle (largest gap first{'' if shown is per_handle else ', the worst 40'}): "
        "handle polls/largest gap s"
    )
    per_handle = shown
    cells = [f"{f['username']} {f['polls']:>3}/{f['largest_gap_s']:5.1f}" for f in per_handle]
    for start in range(0, len(cells), 4):
        print("  " + "   ".join(cells[start : start + 4]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handles", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=120, help="how long to post and poll")
    parser.add_argument("--interval", type=int, default=5, help="POLL_INTERVAL_SECONDS (>= 2)")
    parser.add_argument("--rate", type=float, default=2, help="mentions per second, in all")
    parser.add_argument("--small", action="store_true", help="20 handles for 30 s (CI)")
    parser.add_argument("--drain", type=float, default=None, help="max s to wait at the end")
    parser.add_argument("--max-gap-intervals", type=float, default=4)
    parser.add_argument(
        "--dispatcher",
        choices=["beat", "script", "legacy"],
        default="beat",
        help="beat: real celery beat sends poll_due_accounts; script: this script calls it on "
        "beat's schedule; legacy: the fan-out before b072127",
    )
    parser.add_argument("--pool", choices=["prefork", "solo"], default="prefork")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes")
    parser.add_argument("--port", type=int, default=0, help="emulator port (0: a free one)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.small:
        args.handles, args.seconds = 20, 30
    args.interval = max(2, args.interval)
    if args.drain is None:
        args.drain = 4 * args.interval + 10
    args.handles = max(1, args.handles)

    queue = f"careinbox-polling-{os.getpid()}"
    # Beat, the worker and this process must agree on the interval.
    os.environ["POLL_INTERVAL_SECONDS"] = str(args.interval)
    setup_django(queue=queue)
    results = run(args, queue)
    results["max_gap_intervals"] = args.max_gap_intervals
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
