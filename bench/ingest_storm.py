"""Ingest storm: a viral complaint's mentions across many handles and organisations, drained by
real Celery workers through the real poll path, against a raw ``COPY`` of the same rows.

PostgreSQL and Redis only (``COPY`` is PostgreSQL's; the workers need a broker)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/careinbox REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/ingest_storm.py                  # 100,000 mentions
    ... bench/ingest_storm.py --small                           # 400 mentions (CI)
    ... bench/ingest_storm.py --workers 2                       # scale-out: two workers
    ... bench/ingest_storm.py --mentions 20000 --json var/storm.json

Setup (not timed): a throwaway database, ``--orgs`` organisations with ``--handles-per-org`` X
handles each, all in one X emulator served from a thread (limits lifted, as in every bench);
a history wave (5 % of the storm) from the authors who will come back, polled and ingested
first. Then the storm goes into the emulator's store: 10 % of the posts name two handles of
one organisation (each handle's poll fetches it: delivered twice, stored once), 20 % come from
authors with earlier tickets (half of them replies in their earlier conversation), 5 % are
retweets of earlier posts (no message: the original's ticket gains reach), the rest new
authors, some replying under their own post. Timed: one ``poll_account`` task per handle sent
to ``--workers`` real ``celery worker`` processes (prefork, ``--concurrency`` each) until every
post is stored and every event dispatched (timers started, SLA and escalation checked).

Then, in the same run, the rows the storm wrote (every table that grew) are read out with
``COPY ... TO``, deleted, vacuumed, and loaded again with ``COPY ... FROM`` in one transaction
with every index and constraint in place: the database's own speed for the same rows. The
ratio (storm throughput / ``COPY`` throughput) is printed.

Checks (exit 1): every post stored exactly once (ids compared), every reply in its parent's
ticket, one ``reposted`` event per retweet, every ticket opened with its first-response timer,
no event left undispatched, each poll task ran exactly once, and after the ``COPY`` every table
holds what it held.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    COMPLAINTS,
    ROOT,
    UNLIMITED,
    database_label,
    database_url,
    machine,
    setup_django,
    throwaway_database,
)
from soak import _children, stop_worker, tree_rss_mb

HANDLE_ID_BASE = 7_000_000
AUTHOR_ID_BASE = 9_000_000
WORKER_READY_SECONDS = 90
MENTIONS_REACHABLE = 800  # X keeps the newest 800 mentions of a handle reachable
# Events a handler failed on in the workers, delivered by the bench as beat would (reported).
LEFT_FOR_DISPATCH_PENDING: list[int] = []


@dataclass
class Handle:
    pk: int
    external_id: str
    username: str
    org_index: int


@dataclass
class Storm:
    """What was put into the emulator, to check against what was stored."""

    posts: list[str] = field(default_factory=list)  # every post (not retweets), unique ids
    retweets: list[str] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)  # reply id -> parent id
    twice: int = 0  # posts naming two handles of one organisation
    returning: int = 0  # posts by authors with earlier tickets
    per_handle: Counter[str] = field(default_factory=Counter)


# Setup ------------------------------------------------------------------------------------


def make_tenants(emulator: Any, *, orgs: int, per_org: int) -> list[list[Handle]]:
    """``orgs`` organisations, each with a brand and ``per_org`` X handles on the emulator."""
    from careinbox.accounts.models import Organization
    from channels_social.models import Brand, Platform, SocialAccount

    tenants: list[list[Handle]] = []
    for o in range(orgs):
        org = Organization.objects.create(name=f"Storm {o}", slug=f"storm-{o}")
        brand = Brand.objects.create(organization=org, name=f"Storm {o}")
        handles = []
        for h in range(per_org):
            external_id = str(HANDLE_ID_BASE + o * 100 + h)
            username = f"Storm{o}Care{h}"
            emulator.store.upsert_user(id=external_id, username=username, name=username)
            account = SocialAccount(
                organization=org,
                brand=brand,
                platform=Platform.X,
                external_id=external_id,
                username=username,
                api_base_url=emulator.url,
            )
            account.credentials = {
                "consumer_key": "ck",
                "consumer_secret": "cs",
                "access_token": f"{external_id}-storm-token",
                "access_token_secret": "ts",
            }
            account.save()
            handles.append(Handle(account.pk, external_id, username, o))
        tenants.append(handles)
    return tenants


def author(store: Any, rng: random.Random, author_id: str) -> None:
    if store.get_user(author_id) is None:
        store.upsert_user(
            id=author_id,
            username=f"fan{author_id}",
            name=f"Fan {author_id}",
            followers_count=rng.choice([3, 12, 340, 2_500, 48_000]),
        )


def text_for(rng: random.Random, n: int) -> str:
    # A number in every text keeps near-duplicate joins to the customers who repeat themselves.
    return rng.choice(COMPLAINTS).format(n=n) + f" (ref {n})"


def inject_history(
    store: Any, tenants: list[list[Handle]], count: int, rng: random.Random
) -> dict[str, tuple[str, int]]:
    """Earlier posts by the authors who come back: author id -> (their post, organisation)."""
    history: dict[str, tuple[str, int]] = {}
    for n in range(count):
        org = rng.randrange(len(tenants))
        handle = rng.choice(tenants[org])
        author_id = str(AUTHOR_ID_BASE + n)
        author(store, rng, author_id)
        tweet = store.add_tweet(author_id=author_id, text=f"@{handle.username} {text_for(rng, n)}")
        history[author_id] = (tweet.id, org)
    return history


def inject_storm(
    store: Any,
    tenants: list[list[Handle]],
    history: dict[str, tuple[str, int]],
    count: int,
    rng: random.Random,
) -> Storm:
    storm = Storm()
    returning = list(history)
    new_authors = max(50, count // 3)
    own_last: dict[str, tuple[str, int]] = {}  # a new author's latest post, and its organisation
    posted: list[str] = []  # customers' posts so far, for retweets
    n = len(history)
    while len(storm.posts) + len(storm.retweets) < count:
        n += 1
        roll = rng.random()
        if roll < 0.05 and posted:  # a retweet of an earlier post
            original = store.get_tweet(rng.choice(posted))
            retweeter = str(AUTHOR_ID_BASE + 5_000_000 + rng.randrange(new_authors))
            author(store, rng, retweeter)
            tweet = store.add_tweet(author_id=retweeter, text="", retweet_of=original.id)
            storm.retweets.append(tweet.id)
            for mention in tweet.mentions:
                storm.per_handle[mention["username"]] += 1
            continue
        if roll < 0.25 and returning:  # an author with an earlier ticket
            author_id = rng.choice(returning)
            earlier, org = history[author_id]
            storm.returning += 1
            parent = earlier if rng.random() < 0.5 else None
        else:
            author_id = str(AUTHOR_ID_BASE + 1_000_000 + rng.randrange(new_authors))
            author(store, rng, author_id)
            last = own_last.get(author_id)
            org = last[1] if last else rng.randrange(len(tenants))
            parent = last[0] if last and rng.random() < 0.3 else None
        handles = tenants[org]
        named = [rng.choice(handles)]
        if rng.random() < 0.10 and len(handles) > 1:  # names two handles: fetched twice
            named = rng.sample(handles, 2)
            storm.twice += 1
        text = " ".join(f"@{h.username}" for h in named) + " " + text_for(rng, n)
        tweet = store.add_tweet(author_id=author_id, text=text, in_reply_to_tweet_id=parent)
        storm.posts.append(tweet.id)
        if parent:
            storm.replies[tweet.id] = parent
            # A reply also reaches the handle its parent named (X: in_reply_to_user_id is the
            # customer, so only the names in the text count here).
        for h in named:
            storm.per_handle[h.username] += 1
        own_last[author_id] = (tweet.id, org)
        posted.append(tweet.id)
    return storm


# Workers ----------------------------------------------------------------------------------


def start_workers(
    *, count: int, concurrency: int, queue: str, key: str, log_dir: Path
) -> list[tuple[subprocess.Popen[str], Path]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_QUEUE": queue,
        "CAREINBOX_TESTING": "1",
        "STORM_REDIS_KEY": key,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
    }
    workers = []
    for i in range(count):
        log_path = log_dir / f"storm-worker-{os.getpid()}-{i}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "storm_worker",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"storm{i}-{os.getpid()}@%h",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        with log_path.open("w") as log:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
            )
        workers.append((process, log_path))
    return workers


def wait_ready(celery_app: Any, workers: list[tuple[subprocess.Popen[str], Path]]) -> None:
    deadline = time.monotonic() + WORKER_READY_SECONDS
    names = {f"storm{i}-{os.getpid()}" for i in range(len(workers))}
    while time.monotonic() < deadline:
        for process, log_path in workers:
            if process.poll() is not None:
                raise RuntimeError(f"a worker exited:\n{log_path.read_text()[-3000:]}")
        replies = celery_app.control.ping(timeout=1.0) or []
        seen = {name.split("@")[0] for reply in replies for name in reply}
        if names <= seen:
            return
    raise RuntimeError("the workers did not answer a ping in time")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of one process (``/proc/<pid>/stat``), None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def tree_pids(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += _children(current)
    return found


class RssSampler(threading.Thread):
    """Every half second: VmRSS of each worker process (main and pool), and the CPU time of the
    workers' processes and of the PostgreSQL backends serving the storm's database (any but
    the bench's own), so a loaded machine's waits do not hide what the storm cost: CPU seconds
    per mention, for the workers, the database and the emulator apart (``cpu``)."""

    def __init__(self, pids: list[int], *, bench_backends: set[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.max_process = 0.0
        self.max_total = 0.0
        self.stopped = threading.Event()
        self.bench_backends = set(bench_backends)
        self.first: dict[str, dict[int, float]] = {"workers": {}, "postgres": {}}
        self.last: dict[str, dict[int, float]] = {"workers": {}, "postgres": {}}
        self.own_cpu = 0.0

    def _backends(self) -> list[int]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            return [row[0] for row in cursor.fetchall() if row[0] not in self.bench_backends]

    def sample_cpu(self, *, initial: bool = False) -> None:
        """``initial``: the starting point. A process first seen later (a backend opened
        during the storm: connections are recycled after 60 s) counts from zero."""
        for group, pids in (
            ("workers", [p for pid in self.pids for p in tree_pids(pid)]),
            ("postgres", self._backends()),
        ):
            for pid in pids:
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    self.first[group].setdefault(pid, seconds if initial else 0.0)
                    self.last[group][pid] = seconds

    def cpu(self) -> dict[str, float]:
        return {
            group: sum(last - self.first[group][pid] for pid, last in self.last[group].items())
            for group in self.last
        }

    def run(self) -> None:
        from django.db import connection

        started = time.thread_time()
        try:
            while not self.stopped.wait(0.5):
                self.sample_cpu()
                total = 0.0
                for pid in self.pids:
                    sizes = tree_rss_mb(pid)
                    if sizes:
                        self.max_process = max(self.max_process, *sizes.values())
                    total += sum(sizes.values())
                self.max_total = max(self.max_total, total)
            self.sample_cpu()
        finally:
            self.own_cpu = time.thread_time() - started
            connection.close()


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# The raw database baseline ----------------------------------------------------------------


def table_high_water() -> dict[str, int]:
    """max(id) of every table with an integer ``id``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.table_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = 'public' AND c.column_name = 'id' "
            "AND c.data_type IN ('integer', 'bigint') AND t.table_type = 'BASE TABLE'"
        )
        tables = [row[0] for row in cursor.fetchall()]
        marks = {}
        for table in tables:
            cursor.execute(f'SELECT coalesce(max(id), 0) FROM "{table}"')  # noqa: S608
            marks[table] = cursor.fetchone()[0]
    return marks


def copy_baseline(before: dict[str, int]) -> dict[str, Any]:
    """COPY the storm's rows out, delete them, vacuum, COPY them back in one transaction."""
    from django.db import connection, transaction

    after = table_high_water()
    grown = [t for t in after if after[t] > before.get(t, 0)]
    dumps: dict[str, bytes] = {}
    rows: dict[str, int] = {}
    with connection.cursor() as cursor:
        raw = cursor.connection
        for table in grown:
            buffer = io.BytesIO()
            cursor.copy_expert(
                f'COPY (SELECT * FROM "{table}" WHERE id > {before.get(table, 0)}) '  # noqa: S608
                "TO STDOUT WITH (FORMAT binary)",
                buffer,
            )
            dumps[table] = buffer.getvalue()
            cursor.execute(
                f'SELECT count(*) FROM "{table}" WHERE id > %s',  # noqa: S608
                [before.get(table, 0)],
            )
            rows[table] = cursor.fetchone()[0]
        with transaction.atomic():
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for table in grown:
                cursor.execute(
                    f'DELETE FROM "{table}" WHERE id > %s',  # noqa: S608
                    [before.get(table, 0)],
                )
        old_autocommit = raw.autocommit
        raw.autocommit = True
        for table in grown:
            cursor.execute(f'VACUUM ANALYZE "{table}"')
        raw.autocommit = old_autocommit
        started = time.perf_counter()
        with transaction.atomic():
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for table in grown:
                cursor.copy_expert(
                    f'COPY "{table}" FROM STDIN WITH (FORMAT binary)', io.BytesIO(dumps[table])
                )
        seconds = time.perf_counter() - started
        restored = {}
        for table in grown:
            cursor.execute(
                f'SELECT count(*) FROM "{table}" WHERE id > %s',  # noqa: S608
                [before.get(table, 0)],
            )
            restored[table] = cursor.fetchone()[0]
    return {
        "seconds": seconds,
        "rows": rows,
        "restored": restored,
        "bytes": sum(len(d) for d in dumps.values()),
    }


# The run ----------------------------------------------------------------------------------


def poll_everything(
    celery_app: Any, redis_client: Any, key: str, handles: list[Handle], *, timeout: float
) -> tuple[float, bool]:
    """Send one poll task per handle; wait until every task ran and every event is dispatched."""
    from channels_social.tasks import poll_account
    from tickets.events import dispatch_pending
    from tickets.models import TicketEvent

    done_before = redis_client.llen(f"{key}:tasks")
    started = time.perf_counter()
    for handle in handles:
        poll_account.apply_async((handle.pk,))
    deadline = time.monotonic() + timeout
    polls_done_at: float | None = None
    while time.monotonic() < deadline:
        # A poll task returns after its transaction committed and its after-commit handlers
        # ran; an event a handler failed on stays undispatched, for beat's dispatch_pending.
        if redis_client.llen(f"{key}:tasks") - done_before >= len(handles):
            polls_done_at = polls_done_at or time.monotonic()
            if not TicketEvent.objects.filter(dispatched_at__isnull=True).exists():
                return time.perf_counter() - started, True
            if time.monotonic() - polls_done_at > 25:  # beat is not running here: do its part
                LEFT_FOR_DISPATCH_PENDING.append(dispatch_pending())
                polls_done_at = time.monotonic()
        time.sleep(0.05)
    return time.perf_counter() - started, False


def run(args: argparse.Namespace) -> dict[str, Any]:
    import redis
    from django.db import connection

    from careinbox.celery import app as celery_app
    from channels_social.sandbox.x.app import create_app
    from channels_social.sandbox.x.server import start_in_thread
    from monitoring.models import Metric, SlaTimer
    from tickets.models import Direction, EventKind, Message, Ticket, TicketEvent

    rng = random.Random(args.seed)
    key = f"storm-{os.getpid()}"
    redis_client = redis.Redis.from_url(os.environ["REDIS_URL"])
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join([".venv/bin/python", "bench/ingest_storm.py", *sys.argv[1:]]),
        "mentions": args.mentions,
        "workers": f"{args.workers} x prefork {args.concurrency}",
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }
    failures: list[str] = []
    from django.conf import settings

    wall = time.perf_counter()
    app = create_app(rate_limits=UNLIMITED)
    server = start_in_thread(app)
    workers: list[tuple[subprocess.Popen[str], Path]] = []
    try:
        with throwaway_database("bench_storm"):
            results["database"] = database_label()
            tenants = make_tenants(
                type("E", (), {"store": app.store, "url": server.url})(),
                orgs=args.orgs,
                per_org=args.handles_per_org,
            )
            # Round-robin over the organisations, as beat's most-overdue-first order comes to
            # once polls have spread out (polls of one organisation's handles take turns: the
            # ingest lock, tickets/services/ingest.py).
            handles = [org[i] for i in range(args.handles_per_org) for org in tenants]
            results["handles"] = len(handles)
            workers = start_workers(
                count=args.workers,
                concurrency=args.concurrency,
                queue=os.environ["CELERY_QUEUE"],
                key=key,
                log_dir=Path(settings.VAR_DIR),
            )
            wait_ready(celery_app, workers)

            # History: the returning authors' earlier tickets (setup, not timed).
            history_count = max(20, args.mentions // 20)
            history = inject_history(app.store, tenants, history_count, rng)
            seconds, ok = poll_everything(
                celery_app, redis_client, key, handles, timeout=args.timeout
            )
            if not ok:
                failures.append("the history wave did not drain")
            results["history"] = {"posts": history_count, "seconds": seconds}
            tickets_before = Ticket.objects.count()
            events_before = TicketEvent.objects.count()

            started = time.perf_counter()
            storm = inject_storm(app.store, tenants, history, args.mentions, rng)
            results["inject_seconds"] = time.perf_counter() - started
            crowded = [h for h, n in storm.per_handle.items() if n > MENTIONS_REACHABLE]
            if crowded:
                raise SystemExit(
                    f"{len(crowded)} handles hold more than {MENTIONS_REACHABLE} mentions "
                    "(X shows no more): raise --orgs or --handles-per-org"
                )
            marks = table_high_water()
            redis_client.delete(f"{key}:statements")
            tasks_before = redis_client.llen(f"{key}:tasks")
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                bench_backend = cursor.fetchone()[0]
            sampler = RssSampler([p.pid for p, _ in workers], bench_backends={bench_backend})
            sampler.sample_cpu(initial=True)  # the starting point, before any task is sent
            sampler.start()
            process_before, main_before = process_cpu(), time.thread_time()
            seconds, ok = poll_everything(
                celery_app, redis_client, key, handles, timeout=args.timeout
            )
            main_cpu = time.thread_time() - main_before
            sampler.stopped.set()
            sampler.join()
            cpu = sampler.cpu()
            # The bench process's other threads: the X emulator's HTTP server, and the sampler.
            cpu["emulator"] = process_cpu() - process_before - main_cpu - sampler.own_cpu
            cpu["bench_main_thread"] = main_cpu
            if not ok:
                failures.append(f"the storm did not drain within {args.timeout:g} s")
            statements = int(redis_client.get(f"{key}:statements") or 0)
            task_lines = [
                line.decode().split("\t")
                for line in redis_client.lrange(f"{key}:tasks", tasks_before, -1)
            ]
            n = args.mentions
            deliveries = sum(storm.per_handle.values())
            results["storm"] = {
                "posts": len(storm.posts),
                "retweets": len(storm.retweets),
                "named_two_handles": storm.twice,
                "returning_authors": storm.returning,
                "replies": len(storm.replies),
                "deliveries": deliveries,
                "seconds": seconds,
                "mentions_per_second": n / seconds,
                "statements": statements,
                "statements_per_mention": statements / n,
                "worker_rss_max_process_mb": sampler.max_process,
                "worker_rss_max_total_mb": sampler.max_total,
                "left_for_dispatch_pending": sum(LEFT_FOR_DISPATCH_PENDING),
                "cpu_seconds": cpu,
                "cpu_ms_per_mention": {group: 1000 * t / n for group, t in cpu.items()},
                "tickets_opened": Ticket.objects.count() - tickets_before,
                "events": TicketEvent.objects.count() - events_before,
            }

            # Checks
            ids = task_lines and [line[0] for line in task_lines]
            if len(task_lines) != len(handles) or len(set(ids or [])) != len(task_lines):
                failures.append(f"{len(task_lines)} poll tasks ran for {len(handles)} sent")
            errors = [line for line in task_lines if not line[2].startswith("ok")]
            # Which worker ran each poll (the name its storm_worker reported): with two
            # workers on one broker, each task ran once across both, and both took a share.
            per_worker = Counter(
                line[-1].split("@")[0] if len(line) >= 4 else "?" for line in task_lines
            )
            results["storm"]["tasks_per_worker"] = dict(sorted(per_worker.items()))
            if args.workers > 1 and len(per_worker) < args.workers:
                failures.append(f"only {len(per_worker)} of {args.workers} workers ran a poll")
            if errors:
                failures.append(f"{len(errors)} polls did not succeed, e.g. {errors[0][2]}")
            stored = list(
                Message.objects.filter(
                    direction=Direction.INBOUND, external_id__in=storm.posts
                ).values_list("external_id", "ticket_id")
            )
            if len(stored) != len(storm.posts) or {e for e, _ in stored} != set(storm.posts):
                failures.append(f"{len(stored)} messages stored for {len(storm.posts)} posts")
            ticket_of = dict(
                Message.objects.filter(
                    external_id__in=[*storm.replies.values(), *storm.replies]
                ).values_list("external_id", "ticket_id")
            )
            astray = [r for r, p in storm.replies.items() if ticket_of.get(r) != ticket_of.get(p)]
            if astray:
                failures.append(f"{len(astray)} replies not in their parent's ticket")
            reposted = TicketEvent.objects.filter(
                kind=EventKind.REPOSTED, data__repost_id__in=storm.retweets
            ).count()
            if reposted != len(storm.retweets):
                failures.append(f"{reposted} reposted events for {len(storm.retweets)} retweets")
            without_timer = Ticket.objects.exclude(
                pk__in=SlaTimer.objects.filter(metric=Metric.FIRST_RESPONSE).values("ticket_id")
            ).count()
            if without_timer:
                failures.append(f"{without_timer} tickets without a first-response timer")
            opened = TicketEvent.objects.filter(kind=EventKind.OPENED).count()
            if opened != Ticket.objects.count():
                failures.append(f"{opened} opened events for {Ticket.objects.count()} tickets")

            # The database's own speed for the same rows.
            baseline = copy_baseline(marks)
            if baseline["restored"] != baseline["rows"]:
                failures.append("the COPY did not restore every row")
            copy_rate = n / baseline["seconds"]
            results["copy"] = {
                "seconds": baseline["seconds"],
                "rows": sum(baseline["rows"].values()),
                "tables": baseline["rows"],
                "mb": baseline["bytes"] / 2**20,
                "mentions_per_second": copy_rate,
                "ratio": (n / seconds) / copy_rate,
            }
    finally:
        for process, _ in workers:
            stop_worker(process)
        if workers:
            results["purged"] = celery_app.control.purge()
        server.stop()
        redis_client.delete(f"{key}:statements", f"{key}:tasks")
    results["failures"] = failures
    results["wall_seconds"] = time.perf_counter() - wall
    return results


def cpu_bound(storm: dict[str, Any]) -> float:
    """Mentions per second were the machine's cores busy with nothing but the product."""
    per_mention = storm.get("cpu_ms_per_mention", {})
    ms = per_mention.get("workers", 0) + per_mention.get("postgres", 0)
    return 1000 * (os.cpu_count() or 1) / ms if ms else 0.0


def print_report(r: dict[str, Any]) -> None:
    s = r.get("storm", {})
    c = r.get("copy", {})
    line = "-" * 94
    print(f"\nCareInbox ingest storm · {r['date']} · {r['machine']} · {r['commit']}\n{line}")
    rows = [
        ("database", r.get("database", "?")),
        ("workers", r["workers"]),
        ("handles (organisations)", f"{r.get('handles')} ({r['orgs']})"),
        (
            "storm mentions",
            f"{r['mentions']:,}: {s.get('posts', 0):,} posts, {s.get('retweets', 0):,} "
            f"retweets; {s.get('named_two_handles', 0):,} delivered twice, "
            f"{s.get('returning_authors', 0):,} by returning authors, "
            f"{s.get('replies', 0):,} replies",
        ),
        ("tickets opened / events", f"{s.get('tickets_opened', 0):,} / {s.get('events', 0):,}"),
        ("drain (poll+ingest+events)", f"{s.get('seconds', 0):.1f} s"),
        ("throughput", f"{s.get('mentions_per_second', 0):,.0f} mentions/s"),
        ("SQL statements per mention", f"{s.get('statements_per_mention', 0):.2f}"),
        (
            "poll tasks per worker",
            ", ".join(f"{w} {n}" for w, n in s.get("tasks_per_worker", {}).items()),
        ),
        (
            "CPU per mention",
            ", ".join(
                f"{group.replace('_', ' ')} {ms:.2f} ms"
                for group, ms in s.get("cpu_ms_per_mention", {}).items()
            ),
        ),
        (
            "CPU-bound throughput",
            f"{cpu_bound(s):,.0f} mentions/s on {os.cpu_count()} cores (workers + PostgreSQL"
            " CPU alone, no waits, no emulator)",
        ),
        (
            "events a handler failed on",
            f"{s.get('left_for_dispatch_pending', 0)} (delivered by dispatch_pending, as beat"
            " does)",
        ),
        (
            "worker RSS, max",
            f"{s.get('worker_rss_max_process_mb', 0):.0f} MiB per process, "
            f"{s.get('worker_rss_max_total_mb', 0):.0f} MiB all processes",
        ),
        (
            "raw COPY of the same rows",
            f"{c.get('rows', 0):,} rows ({c.get('mb', 0):.1f} MiB) in {c.get('seconds', 0):.2f} "
            f"s = {c.get('mentions_per_second', 0):,.0f} mentions/s",
        ),
        ("ratio storm / COPY", f"{100 * c.get('ratio', 0):.1f} % (target >= 25 %)"),
        ("wall time", f"{r['wall_seconds']:.0f} s"),
    ]
    for label, value in rows:
        print(f"{label:<30} {value}")
    if c.get("tables"):
        print("rows per table: " + ", ".join(f"{t} {n:,}" for t, n in c["tables"].items()))
    print(line)
    if r["failures"]:
        print("FAILED:\n  " + "\n  ".join(r["failures"]))
    else:
        print(
            "correctness: every post stored once, replies threaded, retweets counted, timers "
            "started, events dispatched, each poll ran once, COPY restored every row"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=100_000)
    parser.add_argument("--orgs", type=int, default=50)
    parser.add_argument("--handles-per-org", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="celery worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork pool per worker")
    parser.add_argument("--small", action="store_true", help="400 mentions, 4 organisations")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to drain, at most")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.small:
        args.mentions, args.orgs, args.handles_per_org = 400, 4, 2
    if not os.environ.get("REDIS_URL") or "postgres" not in os.environ.get("DATABASE_URL", ""):
        print("ingest_storm needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)", file=sys.stderr)
        return 2
    # SIGTERM unwinds like Ctrl-C, so the workers are stopped and the database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    setup_django(queue=f"careinbox-storm-{os.getpid()}")
    results = run(args)
    results["orgs"] = args.orgs
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
