"""Ingest benchmark: poll + ingest throughput, re-poll cost, inbox render, step + send latency.

Runs on real components only: a throwaway database (SQLite by default, PostgreSQL when
``DATABASE_URL`` says so), the X emulator over HTTP in a thread, the real tweepy adapter and the
real services. Mentions are injected straight into the emulator's store (setup only), in waves
of at most 800 because X exposes only the newest 800 mentions::

    .venv/bin/python bench/ingest_bench.py                 # 5,000 mentions
    .venv/bin/python bench/ingest_bench.py --small         # 300 mentions, a smoke run
    .venv/bin/python bench/ingest_bench.py --json var/bench.json

Exits non-zero when a correctness check fails (every mention stored once, counts match).
``bench/soak.py`` reuses the setup helpers below.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from careinbox.accounts.models import Organization, User
    from channels_social.models import SocialAccount
    from channels_social.sandbox.x.app import XSandboxApp
    from channels_social.sandbox.x.control import SandboxControl
    from channels_social.sandbox.x.server import RunningServer

BRAND_ID = "1000"
BRAND_HANDLE = "BenchCare"
AUTHOR_ID_BASE = 5_000_000
WAVE_MAX = 800  # X keeps only the newest 800 mentions reachable
# The benchmarks measure CareInbox, not X's quotas: lift the emulator's 15-minute limits.
UNLIMITED = {"mentions": 1_000_000, "create_tweet": 1_000_000, "create_dm": 1_000_000}
COMPLAINTS = [
    "my order #{n} is two weeks late, still waiting",
    "the app has been down all morning, not working at all",
    "I was charged twice for order {n}. Refund please",
    "where is my parcel? tracking says delivered but nothing here",
    "thanks for the quick fix yesterday, great service",
    "can you tell me when the store on Main St opens?",
    "worst support ever, nobody answers. #fail",
    "the replacement part you sent is broken too",
]


# Setup shared with bench/soak.py ------------------------------------------------------------


def setup_django(*, queue: str | None = None) -> None:
    """Configure Django as the tests do (dev keys apply); ``queue`` names the Celery queue."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careinbox.settings")
    os.environ["CAREINBOX_TESTING"] = "1"
    os.environ.pop("PYTEST_VERSION", None)
    if queue:
        os.environ["CELERY_QUEUE"] = queue
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


def database_label() -> str:
    """``sqlite`` or ``postgresql``, with the server version for PostgreSQL."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return f"postgresql {cursor.fetchone()[0]}"
    import sqlite3

    return f"sqlite {sqlite3.sqlite_version}"


@contextmanager
def throwaway_database(label: str) -> Iterator[str]:
    """Create a migrated database of our own (unique name), yield its name, then drop it."""
    from django.conf import settings
    from django.db import connection

    test = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        test["NAME"] = str(Path(settings.VAR_DIR) / f"{label}-{os.getpid()}.sqlite3")
    else:
        test["NAME"] = f"{label}_{os.getpid()}"
    old_name = connection.settings_dict["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield name
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)
        if connection.vendor == "sqlite":
            for suffix in ("-wal", "-shm"):
                Path(name + suffix).unlink(missing_ok=True)


def database_url() -> str:
    """The current (throwaway) database as a ``DATABASE_URL`` for a worker subprocess."""
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Emulator:
    app: XSandboxApp
    server: RunningServer
    control: SandboxControl

    @property
    def url(self) -> str:
        return self.server.url


@contextmanager
def running_emulator() -> Iterator[Emulator]:
    """The X emulator in a daemon thread on a free port, limits lifted, brand registered."""
    from channels_social.sandbox.x.app import create_app
    from channels_social.sandbox.x.control import SandboxControl
    from channels_social.sandbox.x.server import start_in_thread

    app = create_app(rate_limits=UNLIMITED)
    server = start_in_thread(app)
    control = SandboxControl(server.url)
    try:
        control.wait_until_up(5)
        control.upsert_user(id=BRAND_ID, username=BRAND_HANDLE, name="Bench Co", followers_count=1)
        yield Emulator(app=app, server=server, control=control)
    finally:
        server.stop()


@dataclass
class Tenant:
    organization: Organization
    account: SocialAccount
    agent: User


def make_tenant(emulator_url: str) -> Tenant:
    """An organisation, a brand, its X handle pointed at the emulator, and one agent."""
    from careinbox.accounts.models import Membership, Organization, Role, User
    from channels_social.models import Brand, Platform, SocialAccount

    org = Organization.objects.create(name="Bench Co", slug="bench-co")
    brand = Brand.objects.create(organization=org, name="Bench Co")
    account = SocialAccount(
        organization=org,
        brand=brand,
        platform=Platform.X,
        external_id=BRAND_ID,
        username=BRAND_HANDLE,
        api_base_url=emulator_url,
    )
    # The emulator accepts any OAuth 1.0a keys whose access token starts with a known user id.
    account.credentials = {
        "consumer_key": "ck",
        "consumer_secret": "cs",
        "access_token": f"{BRAND_ID}-bench-token",
        "access_token_secret": "ts",
    }
    account.save()
    agent = User.objects.create_user(username="bench-agent")
    Membership.objects.create(user=agent, organization=org, role=Role.AGENT)
    return Tenant(organization=org, account=account, agent=agent)


def complaint(rng: random.Random, n: int) -> str:
    return rng.choice(COMPLAINTS).format(n=n)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values) if values else 0.0,
        "p95": percentile(values, 95),
        "max": max(values) if values else 0.0,
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def machine() -> str:
    return (
        f"{platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores"
    )


# Instrumentation (timing wrappers around the real functions, never replacements) -----------


class Phases:
    """Seconds spent inside named functions while ``wrap`` is active, and the SQL statements
    they ran when a ``counter`` (a QueryCounter on the connection) is set."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.queries: dict[str, int] = defaultdict(int)
        self.counter: QueryCounter | None = None

    @contextmanager
    def wrap(self, owner: Any, name: str, label: str) -> Iterator[None]:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            counter = self.counter
            queries = counter.count if counter else 0
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                if counter:
                    self.queries[label] += counter.count - queries

        setattr(owner, name, timed)
        try:
            yield
        finally:
            setattr(owner, name, original)


@contextmanager
def poll_phases(phases: Phases) -> Iterator[None]:
    """Time a poll's parts: ``fetch`` (the adapter: HTTP + tweepy), ``ingest`` (the post sink's
    transaction work: tickets, messages, events) and ``events`` (the after-commit handlers, which
    start the SLA timers)."""
    from channels_social import services as polling
    from channels_social.x.adapter import XAdapter
    from tickets import events

    with (
        phases.wrap(XAdapter, "fetch", "fetch"),
        phases.wrap(polling, "store_posts", "ingest"),
        phases.wrap(events, "dispatch", "events"),
    ):
        yield


def wait_for_count(queryset: Any, expected: int, *, seconds: float) -> int:
    """``queryset.count()`` once it reaches ``expected``, or when ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    count = queryset.count()
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        count = queryset.count()
    return count


class QueryCounter:
    """Counts SQL statements on the default connection (``connection.execute_wrapper``)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any
    ) -> Any:
        self.count += 1
        return execute(sql, params, many, ctx)


# The benchmark ----------------------------------------------------------------------------


@dataclass
class Injected:
    ids: list[str] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)  # reply id -> parent id
    last_by_author: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def inject_wave(
    emu: Emulator, injected: Injected, count: int, *, authors: int, rng: random.Random
) -> None:
    """Put ``count`` mentions into the emulator's store: new posts and follow-up replies."""
    store = emu.app.store
    started = time.perf_counter()
    for _ in range(count):
        n = len(injected.ids)
        author_id = str(AUTHOR_ID_BASE + rng.randrange(authors))
        parent = injected.last_by_author.get(author_id)
        reply = parent is not None and rng.random() < 0.15
        if store.get_user(author_id) is None:
            store.upsert_user(
                id=author_id,
                username=f"cust{author_id}",
                name=f"Customer {author_id}",
                followers_count=rng.choice([12, 340, 2_500, 48_000]),
            )
        text = f"@{BRAND_HANDLE} " + (f"any news on this? ({n})" if reply else complaint(rng, n))
        tweet = store.add_tweet(
            author_id=author_id, text=text, in_reply_to_tweet_id=parent if reply else None
        )
        injected.ids.append(tweet.id)
        injected.last_by_author[author_id] = tweet.id
        if reply:
            assert parent is not None
            injected.replies[tweet.id] = parent
    injected.seconds += time.perf_counter() - started


def run(args: argparse.Namespace) -> dict[str, Any]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from careinbox.celery import app as celery_app
    from channels_social.services import account_poll
    from monitoring.models import Metric, SlaTimer
    from tickets.models import (
        Direction,
        EventKind,
        Message,
        OutboxItem,
        OutboxState,
        Step,
        Ticket,
        TicketEvent,
    )
    from tickets.services import outbox_send, ticket_take_step

    rng = random.Random(20240601)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "python": platform.python_version(),
        "mentions": args.mentions,
        "command": " ".join([".venv/bin/python", "bench/ingest_bench.py", *sys.argv[1:]]),
    }
    failures: list[str] = []
    wall = time.perf_counter()
    with throwaway_database("bench_ingest"), running_emulator() as emu:
        results["database"] = database_label()
        results["broker"] = "redis" if os.environ.get("REDIS_URL") else "filesystem"
        tenant = make_tenant(emu.url)
        if args.no_text_threading:
            # The workload of releases before near-duplicate threading: every new post opens
            # a ticket (for comparing figures across them).
            from tickets.models import ThreadingSettings

            ThreadingSettings.objects.create(
                organization=tenant.account.organization, duplicate_window_hours=0
            )
        account_id = tenant.account.pk
        injected = Injected()
        authors = max(20, args.mentions // 4)

        # (a) poll + ingest, wave by wave
        phases = Phases()
        counter = phases.counter = QueryCounter()
        polls: list[dict[str, float]] = []
        with poll_phases(phases), connection.execute_wrapper(counter):
            while len(injected.ids) < args.mentions:
                size = min(args.wave, args.mentions - len(injected.ids))
                inject_wave(emu, injected, size, authors=authors, rng=rng)
                for _attempt in range(5):  # "until all are stored"; one poll should do
                    before = dict(phases.seconds)
                    queries_before = counter.count
                    started = time.perf_counter()
                    outcome = account_poll(account_id=account_id)
                    total = time.perf_counter() - started
                    polls.append(
                        {
                            "size": size,
                            "total": total,
                            "fetch": phases.seconds["fetch"] - before.get("fetch", 0.0),
                            "ingest": phases.seconds["ingest"] - before.get("ingest", 0.0),
                            "events": phases.seconds["events"] - before.get("events", 0.0),
                            "queries": counter.count - queries_before,
                        }
                    )
                    if not outcome.startswith("ok"):
                        failures.append(f"poll failed: {outcome}")
                        break
                    stored = Message.objects.filter(direction=Direction.INBOUND).count()
                    if stored >= len(injected.ids):
                        break
        stored_total = sum(p["total"] for p in polls)
        fetch_total = sum(p["fetch"] for p in polls)
        ingest_total = sum(p["ingest"] for p in polls)
        events_total = sum(p["events"] for p in polls)
        queries_total = sum(p["queries"] for p in polls)
        n = args.mentions
        results["poll"] = {
            "polls": len(polls),
            "inject_seconds": injected.seconds,
            "total_seconds": stored_total,
            "fetch_seconds": fetch_total,
            "ingest_seconds": ingest_total,
            "events_seconds": events_total,
            "mentions_per_second": n / stored_total,
            "ms_per_mention": 1000 * stored_total / n,
            "fetch_ms_per_mention": 1000 * fetch_total / n,
            "ingest_ms_per_mention": 1000 * ingest_total / n,
            "events_ms_per_mention": 1000 * events_total / n,
            "queries_per_mention": queries_total / n,
            "ingest_queries_per_mention": phases.queries["ingest"] / n,
            "events_queries_per_mention": phases.queries["events"] / n,
            "first_wave_ms_per_mention": 1000 * polls[0]["total"] / polls[0]["size"],
            "last_wave_ms_per_mention": 1000 * polls[-1]["total"] / polls[-1]["size"],
        }

        # (b) idempotence: re-poll the newest page (all stored), and an idle poll
        tenant.account.cursors.all().delete()  # as if never polled: the newest page again
        counter = phases.counter = QueryCounter()
        with poll_phases(phases), connection.execute_wrapper(counter):
            before = dict(phases.seconds)
            started = time.perf_counter()
            outcome = account_poll(account_id=account_id)
            repoll = time.perf_counter() - started
            repoll_ingest = phases.seconds["ingest"] - before["ingest"]
            repoll_queries = counter.count
            started = time.perf_counter()
            idle_outcome = account_poll(account_id=account_id)
            idle = time.perf_counter() - started
        repoll_size = min(WAVE_MAX, n)
        if f"0 new, 0 tickets, {repoll_size} already stored" not in outcome:
            failures.append(f"re-poll stored something or saw the wrong page: {outcome}")
        if "0 new" not in idle_outcome:
            failures.append(f"idle poll: {idle_outcome}")
        results["repoll"] = {
            "mentions": repoll_size,
            "seconds": repoll,
            "ingest_seconds": repoll_ingest,
            "ms_per_mention": 1000 * repoll / repoll_size,
            "ingest_ms_per_mention": 1000 * repoll_ingest / repoll_size,
            "queries": repoll_queries,
            "idle_poll_ms": 1000 * idle,
        }

        # correctness of the ingest, before the replies change anything
        inbound = Message.objects.filter(direction=Direction.INBOUND)
        stored_ids = list(inbound.values_list("external_id", flat=True))
        if len(stored_ids) != n or set(stored_ids) != set(injected.ids):
            failures.append(
                f"stored {len(stored_ids)} inbound messages ({len(set(stored_ids))} distinct) "
                f"for {n} injected mentions"
            )
        # The same customer posting the same complaint again within the window joins their
        # open ticket (near-duplicate threading): one ticket fewer for each.
        joined_by_text = TicketEvent.objects.filter(
            kind=EventKind.MESSAGE_RECEIVED, data__has_key="near_duplicate"
        ).count()
        expected_tickets = n - len(injected.replies) - joined_by_text
        tickets = Ticket.objects.count()
        if tickets != expected_tickets:
            failures.append(f"{tickets} tickets, expected {expected_tickets}")
        ticket_of = dict(inbound.values_list("external_id", "ticket_id"))
        misthreaded = sum(
            1
            for child, parent in injected.replies.items()
            if ticket_of.get(child) != ticket_of.get(parent)
        )
        if misthreaded:
            failures.append(f"{misthreaded} follow-up replies not threaded into their ticket")
        # Timers are started by an event handler once the ingest has committed: in this
        # process that is at once, but give an after-commit handler a bounded moment anyway.
        first_response = SlaTimer.objects.filter(metric=Metric.FIRST_RESPONSE)
        timers = wait_for_count(first_response, tickets, seconds=10)
        if timers != tickets:
            failures.append(
                f"{timers} first-response SLA timers for {tickets} tickets, not one per ticket"
            )
        results["counts"] = {
            "injected": n,
            "follow_up_replies": len(injected.replies),
            "joined_as_near_duplicates": joined_by_text,
            "stored": len(stored_ids),
            "tickets": tickets,
            "expected_tickets": expected_tickets,
        }

        # (c) the inbox with every ticket open
        client = Client()
        client.force_login(tenant.agent)
        url = reverse("tickets:inbox")
        inbox: dict[str, Any] = {"open_tickets": tickets}
        for variant, headers in (("full", {}), ("htmx", {"HX-Request": "true"})):
            client.get(url, headers=headers)  # warm caches and the template loader
            times: list[float] = []
            queries: list[int] = []
            for _ in range(args.inbox_requests):
                with CaptureQueriesContext(connection) as captured:
                    started = time.perf_counter()
                    response = client.get(url, headers=headers)
                    times.append(1000 * (time.perf_counter() - started))
                queries.append(len(captured))
                if response.status_code != 200:
                    failures.append(f"inbox ({variant}) answered {response.status_code}")
                    break
            body = response.content.decode()
            inbox[variant] = {
                "median_ms": statistics.median(times),
                "p95_ms": percentile(times, 95),
                "queries": max(queries),
                "kilobytes": len(body) / 1024,
            }
            marker = '<strong id="open-count">'
            shown = body.split(marker, 1)[1].split("<", 1)[0] if marker in body else "?"
            inbox["open_count_shown"] = shown
        results["inbox"] = inbox

        # (d) acknowledge + send, one ticket at a time
        step_ms: list[float] = []
        send_ms: list[float] = []
        first_tickets = list(Ticket.objects.filter(status="new").order_by("pk")[: args.replies])
        for ticket in first_tickets:
            started = time.perf_counter()
            message = ticket_take_step(
                ticket=ticket,
                step=Step.ACKNOWLEDGE,
                by=tenant.agent,
                text=f"Hi @{ticket.customer_username}, sorry - we're on it (#{ticket.pk}).",
            )
            step_ms.append(1000 * (time.perf_counter() - started))
            item_id = OutboxItem.objects.get(message=message).pk
            started = time.perf_counter()
            state = outbox_send(item_id=item_id)
            send_ms.append(1000 * (time.perf_counter() - started))
            if state != OutboxState.SENT:
                failures.append(f"outbox item {item_id} ended {state}")
        purged = celery_app.control.purge()  # the send tasks on_commit enqueued: already done
        sent = OutboxItem.objects.filter(state=OutboxState.SENT).count()
        brand_tweets = [t for t in emu.app.store.tweets.values() if t.author_id == BRAND_ID]
        parents = [t.in_reply_to_tweet_id for t in brand_tweets]
        if not (sent == len(first_tickets) == len(brand_tweets) == len(set(parents))):
            failures.append(
                f"{len(first_tickets)} steps, {sent} sent, {len(brand_tweets)} replies in the "
                f"emulator ({len(set(parents))} distinct parents)"
            )
        results["reply"] = {
            "replies": len(first_tickets),
            "take_step_ms": summary(step_ms),
            "outbox_send_ms": summary(send_ms),
            "purged_send_tasks": purged,
        }
        results["peak_rss_mb"] = peak_rss_mb()
    results["wall_seconds"] = time.perf_counter() - wall
    results["failures"] = failures
    return results


def _latency(stats: dict[str, float]) -> str:
    return f"median {stats['median']:.1f} ms, p95 {stats['p95']:.1f} ms, max {stats['max']:.1f} ms"


def _page(stats: dict[str, Any]) -> str:
    return (
        f"{stats['median_ms']:.1f} ms median, p95 {stats['p95_ms']:.1f} ms, "
        f"{stats['queries']} queries, {stats['kilobytes']:.0f} KiB"
    )


def print_table(r: dict[str, Any]) -> None:
    p, rp, ib, rep, c = r["poll"], r["repoll"], r["inbox"], r["reply"], r["counts"]
    first, last = p["first_wave_ms_per_mention"], p["last_wave_ms_per_mention"]
    repoll = (
        f"{rp['mentions']} mentions in {1000 * rp['seconds']:.0f} ms "
        f"({rp['ms_per_mention']:.2f} ms/mention, ingest {rp['ingest_ms_per_mention']:.2f})"
    )
    rows = [
        ("database / broker", f"{r['database']} / {r['broker']}"),
        ("mentions (follow-up replies)", f"{c['injected']:,} ({c['follow_up_replies']:,})"),
        ("tickets opened", f"{c['tickets']:,}"),
        ("joined as near-duplicates", f"{c.get('joined_as_near_duplicates', 0):,}"),
        ("emulator setup (not measured)", f"{p['inject_seconds']:.2f} s"),
        ("(a) polls", f"{p['polls']}"),
        (
            "(a) poll + ingest",
            f"{p['mentions_per_second']:,.0f} mentions/s, {p['ms_per_mention']:.2f} ms/mention",
        ),
        (
            "(a)   fetch (HTTP + tweepy)",
            f"{p['fetch_ms_per_mention']:.2f} ms/mention ({p['fetch_seconds']:.2f} s)",
        ),
        (
            "(a)   ingest (DB)",
            f"{p['ingest_ms_per_mention']:.2f} ms/mention ({p['ingest_seconds']:.2f} s)",
        ),
        (
            "(a)   after commit: event handlers",
            f"{p['events_ms_per_mention']:.2f} ms/mention ({p['events_seconds']:.2f} s)",
        ),
        (
            "(a)   SQL statements",
            f"{p['queries_per_mention']:.1f} per mention (ingest "
            f"{p['ingest_queries_per_mention']:.1f}, after commit "
            f"{p['events_queries_per_mention']:.1f})",
        ),
        ("(a)   first / last wave", f"{first:.2f} / {last:.2f} ms/mention"),
        ("(b) re-poll of a stored page", repoll),
        ("(b)   SQL statements", f"{rp['queries']}"),
        ("(b) idle poll (nothing new)", f"{rp['idle_poll_ms']:.1f} ms"),
        ("(c) inbox, full page", _page(ib["full"])),
        ("(c) inbox, htmx partial", _page(ib["htmx"])),
        ("(c)   open tickets / count shown", f"{ib['open_tickets']:,} / {ib['open_count_shown']}"),
        (f"(d) ticket_take_step (x{rep['replies']})", _latency(rep["take_step_ms"])),
        (f"(d) outbox_send (x{rep['replies']})", _latency(rep["outbox_send_ms"])),
        ("(e) peak RSS (bench + emulator)", f"{r['peak_rss_mb']:.0f} MiB"),
        ("wall time", f"{r['wall_seconds']:.1f} s"),
    ]
    print_rows(
        f"CareInbox ingest benchmark · {r['date']} · {r['machine']}",
        rows,
        r["failures"],
        "correctness: every mention stored exactly once, counts match",
    )


def print_rows(title: str, rows: list[tuple[str, str]], failures: list[str], passed: str) -> None:
    """A result table, then each failed check, or the line that says every check passed."""
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 60))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("-" * (width + 60))
    if failures:
        print("FAILED:")
        for failure in failures:
            print(f"  - {failure}")
    else:
        print(passed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=5_000, help="mentions to inject")
    parser.add_argument("--small", action="store_true", help="300 mentions (a smoke run)")
    parser.add_argument("--wave", type=int, default=WAVE_MAX, help="mentions per poll (<= 800)")
    parser.add_argument("--replies", type=int, default=200, help="tickets to acknowledge")
    parser.add_argument("--inbox-requests", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--no-text-threading",
        action="store_true",
        help="no near-duplicate joins (every new post opens a ticket, as before them)",
    )
    args = parser.parse_args(argv)
    if args.small:
        args.mentions = 300
    args.wave = max(1, min(args.wave, WAVE_MAX))
    args.replies = min(args.replies, args.mentions // 2)

    setup_django()
    results = run(args)
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
