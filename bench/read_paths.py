"""Read paths at scale: every inbox view, a saved view, search, the ticket page and the dashboard
over the data set ``bench/scale_data.py`` made, each beside the bare SQL it runs.

Signs in (Django's test client, the whole middleware stack, templates and all) as an agent of
the largest organisation (40 % of the tickets), and as its manager for the dashboard, and asks
for each page ``--requests`` times after ``--warmup`` requests. Each page's SQL statements are
captured on its first request (``CaptureQueriesContext``: the statements exactly as the
database received them) and then replayed alone on a raw cursor the same number of times:
"SQL" is that replay (the database's own time for what the page needs, plus the round trips),
the ratio is the page's time over it; "queries" is the page's statement count; "CPU" is this
process's CPU time per request (Python's own work, which a shared machine's load inflates less
than wall time). The slowest
statement is printed with ``EXPLAIN (ANALYZE, BUFFERS)`` when ``--explain`` is given.

Before the first request the process warms up as a gunicorn worker does
(``careinbox.warmup.warm_up``, called by ``careinbox/wsgi.py``: the URL conf and every
template built, then what start-up made frozen out of the garbage collector's sight), so the
figures are what gunicorn serves; ``--no-warmup`` measures a process without it.
``--breakdown`` splits each page's requests into the time in SQL (every statement, timed
round the database call), in templates (the outermost ``Template.render``: what a template
reads from the database lazily counts as SQL), in the garbage collector's pauses
(``gc.callbacks``; full collections, generation 2, counted apart) and the rest, and says what
the slowest request was made of::

    .venv/bin/python bench/scale_data.py --tickets 20000 --database careinbox_bench_20k
    .venv/bin/python bench/read_paths.py --database careinbox_bench_20k
    .venv/bin/python bench/read_paths.py                       # careinbox_bench (1,000,000)
    .venv/bin/python bench/read_paths.py --explain --json var/read_paths.json
    .venv/bin/python bench/read_paths.py --only Inbox --requests 100 --warmup 5 --breakdown

The server is the one ``DATABASE_URL`` names (its database name is replaced by
``--database``). Exits non-zero if a page does not answer 200 or shows no rows where the data
has them (each view's count is checked against a plain count).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scale_data import with_database  # noqa: E402

TARGETS_MS = {"inbox": 50.0, "ticket": 50.0, "search": 200.0, "dashboard": 200.0}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Page:
    label: str
    kind: str  # which target applies: inbox, ticket, search, dashboard
    urls: list[str]  # asked for in turn (the ticket page: a different ticket each time)
    manager: bool = False
    htmx: bool = False


@dataclass
class Parts:
    """One request's time by where it went (milliseconds), for ``--breakdown``."""

    total: float = 0.0
    sql: float = 0.0
    templates: float = 0.0
    gc: float = 0.0  # every collection's pause
    gc_full: float = 0.0  # the full (generation-2) collections' part of it
    full_collections: int = 0
    collections: int = 0

    @property
    def other(self) -> float:
        return max(0.0, self.total - self.sql - self.templates - self.gc)

    def line(self) -> str:
        return (
            f"{self.total:.1f} ms = SQL {self.sql:.1f} + templates {self.templates:.1f}"
            f" + GC {self.gc:.1f} ({self.collections} collections, {self.full_collections} full:"
            f" {self.gc_full:.1f} ms) + other {self.other:.1f}"
        )


class Breakdown:
    """Times one request at a time: SQL through ``connection.execute_wrapper``, templates by
    wrapping ``django.template.base.Template.render`` (the outermost call only: an include
    is inside its page; the SQL and collections in it taken out), the collector through
    ``gc.callbacks``."""

    def __init__(self) -> None:
        self.current = Parts()
        self._depth = 0
        self._gc_started = 0.0

    def _sql(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.current.sql += (time.perf_counter() - started) * 1000

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = (time.perf_counter() - self._gc_started) * 1000
        self.current.gc += pause
        self.current.collections += 1
        if info.get("generation") == 2:
            self.current.gc_full += pause
            self.current.full_collections += 1

    @contextmanager
    def installed(self) -> Iterator[None]:
        from django.db import connection
        from django.template import base

        real_render = base.Template.render
        breakdown = self

        def render(template: Any, context: Any) -> Any:
            if breakdown._depth:
                return real_render(template, context)
            breakdown._depth += 1
            part = breakdown.current
            started, sql_before, gc_before = time.perf_counter(), part.sql, part.gc
            try:
                return real_render(template, context)
            finally:
                breakdown._depth -= 1
                # What the template read from the database lazily counts as SQL, and a
                # collection during it as GC: not twice.
                spent = (time.perf_counter() - started) * 1000
                part.templates += spent - (part.sql - sql_before) - (part.gc - gc_before)

        base.Template.render = render  # type: ignore[method-assign]
        gc.callbacks.append(self._gc)
        try:
            with connection.execute_wrapper(self._sql):
                yield
        finally:
            gc.callbacks.remove(self._gc)
            base.Template.render = real_render  # type: ignore[method-assign]

    def request(self) -> Parts:
        self.current = Parts()
        return self.current


@dataclass
class Result:
    page: Page
    times_ms: list[float]
    cpu_ms: list[float]  # this process's CPU time per request (the page's own work)
    sql_ms: list[float]
    queries: int
    bytes: int
    slowest_sql: str
    slowest_ms: float
    statements: list[str]
    parts: list[Parts] = field(default_factory=list)  # per request, with --breakdown

    def row(self) -> dict[str, Any]:
        p50, p95 = statistics.median(self.times_ms), percentile(self.times_ms, 95)
        sql50, sql95 = statistics.median(self.sql_ms), percentile(self.sql_ms, 95)
        target = TARGETS_MS[self.page.kind]
        return {
            "page": self.page.label,
            "p50_ms": round(p50, 1),
            "p95_ms": round(p95, 1),
            "cpu_p50_ms": round(statistics.median(self.cpu_ms), 1),
            "sql_p50_ms": round(sql50, 1),
            "sql_p95_ms": round(sql95, 1),
            "ratio": round(p50 / sql50, 2) if sql50 else None,
            "queries": self.queries,
            "kib": round(self.bytes / 1024, 1),
            "target_p95_ms": target,
            "meets_target": p95 <= target,
            "slowest_statement_ms": round(self.slowest_ms, 1),
        }


def setup(database: str) -> None:
    os.environ["DATABASE_URL"] = with_database(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"), database
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careinbox.settings")
    os.environ["CAREINBOX_TESTING"] = "1"
    os.environ.pop("PYTEST_VERSION", None)
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


def pages_for(meta: dict[str, Any], rng: random.Random, tickets: int) -> list[Page]:
    from tickets.models import OPEN_STATUSES, Ticket

    org = meta["organisations"][0]
    ids = list(
        Ticket.objects.filter(organization_id=org["id"], status__in=OPEN_STATUSES)
        .order_by("?")
        .values_list("pk", flat=True)[: max(tickets, 1)]
    )
    rng.shuffle(ids)
    inbox = [
        ("Inbox: Mine", "mine"),
        ("Inbox: Unassigned", "unassigned"),
        ("Inbox: All open", "open"),
        ("Inbox: Breaching soon", "breaching"),
        ("Inbox: Waiting on customer", "waiting"),
        ("Inbox: Awaiting approval", "approval"),
        ("Inbox: Closed", "closed"),
    ]
    pages = [Page(label, "inbox", [f"/?view={key}"]) for label, key in inbox]
    pages.append(
        Page(
            "Inbox: saved view (X, High, 1k+ followers)", "inbox", [f"/?saved={org['saved_view']}"]
        )
    )
    pages.append(
        Page(
            "Inbox: live poll (htmx, All open)", "inbox", ["/?view=open&live=1&token=x"], htmx=True
        )
    )
    pages.append(Page("Search: open, 'refund late'", "search", ["/?view=open&q=refund+late"]))
    pages.append(Page("Search: closed, 'refu'", "search", ["/?view=closed&q=refu"]))
    pages.append(
        Page(
            "Search: open, a customer's handle",
            "search",
            [f"/?view=open&q=user{meta['organisations'][0]['first_ticket'] + 77}"],
        )
    )
    pages.append(Page("Ticket page", "ticket", [f"/tickets/{pk}/" for pk in ids]))
    pages.append(Page("Dashboard (manager)", "dashboard", ["/monitoring/dashboard/"], manager=True))
    return pages


def replay(statements: list[str]) -> float:
    """The page's statements alone on a raw cursor, every row fetched, in one transaction so
    that the page's ``SET LOCAL``s (the search's ``jit = off``) hold for what follows them as
    they did on the page (until the transaction's end: a statement the page ran after its
    own block ended gets them too): milliseconds."""
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
            if cursor.description is not None:
                cursor.fetchall()
    return (time.perf_counter() - started) * 1000


def statement_ms(sql: str, settings: Sequence[str] = ()) -> float:
    """One statement alone, after the page's ``SET LOCAL``s (not timed), in a transaction."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        for setting in settings:
            cursor.execute(setting)
        started = time.perf_counter()
        cursor.execute(sql)
        if cursor.description is not None:
            cursor.fetchall()
        return (time.perf_counter() - started) * 1000


def measure(
    page: Page, client: Any, *, requests: int, warmup: int, breakdown: Breakdown | None = None
) -> Result:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HX-Request": "true"} if page.htmx else {}
    for n in range(warmup):
        client.get(page.urls[n % len(page.urls)], headers=headers)
    with CaptureQueriesContext(connection) as captured:
        first = client.get(page.urls[0], headers=headers)
    queries = len(captured.captured_queries)  # the next request resets the log
    if first.status_code not in (200, 204):
        raise SystemExit(f"{page.label}: {page.urls[0]} answered {first.status_code}")
    # The statements that read, and the page's SET LOCALs (the search runs its capped count
    # with JIT off: replayed without it, the "SQL" would include JIT compiling the page never
    # pays); writes (the session's touch) and transaction control replay as nothing useful.
    statements = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().lstrip("(").upper().startswith(("SELECT", "WITH", "SET LOCAL"))
    ]
    settings = [sql for sql in statements if sql.lstrip().upper().startswith("SET LOCAL")]
    reads = [sql for sql in statements if sql not in settings]
    times, cpu = [], []
    parts: list[Parts] = []
    size = 0
    for n in range(requests):
        url = page.urls[(n + 1) % len(page.urls)]
        if breakdown is not None:
            part = breakdown.request()
            parts.append(part)
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        if breakdown is not None:
            part.total = times[-1]
            breakdown.current = Parts()  # what follows (the replays) is no request's
        size = max(size, len(response.content))
        if response.status_code not in (200, 204):
            raise SystemExit(f"{page.label}: {url} answered {response.status_code}")
    sql_times = [replay(statements) for _ in range(requests)]
    slowest = max(reads, key=lambda sql: statement_ms(sql, settings)) if reads else ""
    slowest_ms = min(statement_ms(slowest, settings) for _ in range(3)) if slowest else 0.0
    return Result(page, times, cpu, sql_times, queries, size, slowest, slowest_ms, reads, parts)


def breakdown_lines(parts: list[Parts]) -> list[str]:
    """A page's requests by where their time went: each part's p50 and p95, the full
    collections, and the slowest request and the slowest without a full collection."""

    def spread(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} / {percentile(values, 95):.1f}"

    full = [p for p in parts if p.full_collections]
    without = [p for p in parts if not p.full_collections]
    lines = [
        f"p50 / p95 ms: SQL {spread([p.sql for p in parts])}, templates"
        f" {spread([p.templates for p in parts])}, GC {spread([p.gc for p in parts])},"
        f" other {spread([p.other for p in parts])}",
        f"full collections: {sum(p.full_collections for p in parts)} in {len(full)} of"
        f" {len(parts)} requests"
        + (
            f" (their pauses {min(p.gc_full for p in full):.1f}-{max(p.gc_full for p in full):.1f}"
            f" ms; those requests p50 {statistics.median([p.total for p in full]):.1f} ms)"
            if full
            else ""
        ),
        f"slowest: {max(parts, key=lambda p: p.total).line()}",
    ]
    if full and without:
        lines.append(
            f"slowest without a full collection: {max(without, key=lambda p: p.total).line()}"
        )
    return lines


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def explain_all(statements: list[str]) -> list[str]:
    """Every statement's plan in a line: its time, buffers, and each scan and sort it makes
    (a ``Seq Scan`` marked: on which table, how many rows)."""
    import re

    lines = []
    for n, sql in enumerate(statements):
        plan = explain(sql).splitlines()
        took = next(
            (line.split(":", 1)[1].strip() for line in plan if "Execution Time" in line), ""
        )
        buffers = next((line.strip() for line in plan if "Buffers:" in line), "")
        nodes = [
            re.sub(
                r"\s+\(cost=.*?\)\s*(\(actual time=[\d.]+\.\.[\d.]+ (rows=\d+).*\))?", r" \2", line
            ).strip(" ->")
            for line in plan
            if re.search(r"Scan|Sort  \(|Aggregate  \(", line)
        ]
        seq = " SEQ" if any("Seq Scan" in node for node in nodes) else ""
        lines.append(f"{n:>2} {took:>10}{seq} [{buffers}] " + " | ".join(nodes))
    return lines


def check_counts(meta: dict[str, Any], agent_id: int, client: Any) -> list[str]:
    """Each view's count on the page against a plain count of the same rows ("Waiting on
    customer" against the latest message's direction looked up per ticket, as it was
    computed before ``Ticket.last_message_direction`` kept it: a check of the backfill)."""
    from django.db.models import OuterRef, Subquery
    from django.utils import timezone

    from careinbox.accounts.models import Organization, User
    from tickets.inbox import VIEWS, view_counts
    from tickets.models import OPEN_STATUSES, Direction, Message, Status, Ticket

    org = Organization.objects.get(pk=meta["organisations"][0]["id"])
    user = User.objects.get(pk=agent_id)
    counts = view_counts(org, user=user, now=timezone.now())
    tickets = Ticket.objects.filter(organization=org)
    plain = {
        "open": tickets.filter(status__in=OPEN_STATUSES).count(),
        "closed": tickets.filter(status=Status.CLOSED).count(),
        "mine": tickets.filter(status__in=OPEN_STATUSES, assigned_to=user).count(),
        "unassigned": tickets.filter(status__in=OPEN_STATUSES, assigned_to__isnull=True).count(),
        "waiting": tickets.filter(status__in=OPEN_STATUSES)
        .exclude(status=Status.NEW)
        .annotate(
            latest=Subquery(
                Message.objects.filter(ticket=OuterRef("pk"))
                .order_by("-created_at", "-pk")
                .values("direction")[:1]
            )
        )
        .filter(latest=Direction.OUTBOUND)
        .count(),
    }
    failures = [
        f"view {k}: {counts[k]} shown, {v} in the data" for k, v in plain.items() if counts[k] != v
    ]
    failures += [f"view {view.key}: empty" for view in VIEWS if not counts[view.key]]
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="careinbox_bench")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN the slowest statement")
    parser.add_argument(
        "--explain-all",
        action="store_true",
        help="EXPLAIN (ANALYZE, BUFFERS) every statement of each page, a line each",
    )
    parser.add_argument("--only", help="only the pages whose label contains one of these (a,b)")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="split each request into SQL, templates, garbage collection and the rest",
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip careinbox.warmup.warm_up (which careinbox/wsgi.py runs in every worker)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    meta_path = ROOT / "var" / f"{args.database}.json"
    if not meta_path.exists():
        raise SystemExit(f"{meta_path} not found: make the data first (bench/scale_data.py)")
    meta = json.loads(meta_path.read_text())
    setup(args.database)
    from django.test import Client

    warmed = None
    if not args.no_warmup:  # what gunicorn's worker does before its first request (wsgi.py)
        from careinbox.warmup import warm_up

        warmed = warm_up()

    from careinbox.accounts.models import User

    big = meta["organisations"][0]
    agent = User.objects.get(pk=big["agents"][1])
    manager = User.objects.get(pk=big["agents"][0])
    agent_client, manager_client = Client(), Client()
    agent_client.force_login(agent)
    manager_client.force_login(manager)
    rng = random.Random(args.seed)
    pages = pages_for(meta, rng, args.requests + args.warmup)
    if args.only:
        wanted = [part.strip().lower() for part in args.only.split(",")]
        pages = [p for p in pages if any(part in p.label.lower() for part in wanted)]
    print(
        f"{meta['database']}: {meta['tickets']:,} tickets ({meta['rows']['tickets_message']:,} "
        f"messages) in {len(meta['organisations'])} organisations; signed in to the largest "
        f"({big['tickets']:,} tickets); {args.requests} requests per page after {args.warmup}"
    )
    print(
        "warm-up: none (--no-warmup)"
        if warmed is None
        else f"warm-up as careinbox/wsgi.py: {warmed.templates} templates compiled,"
        f" {warmed.frozen:,} objects frozen (gc.freeze)"
    )
    breakdown = Breakdown() if args.breakdown else None
    failures = check_counts(meta, agent.pk, agent_client)
    results = []
    for page in pages:
        client = manager_client if page.manager else agent_client
        if breakdown is not None:
            with breakdown.installed():
                result = measure(
                    page, client, requests=args.requests, warmup=args.warmup, breakdown=breakdown
                )
        else:
            result = measure(page, client, requests=args.requests, warmup=args.warmup)
        results.append(result)
        row = result.row()
        print(
            f"{row['page']:<44} p50 {row['p50_ms']:>7.1f}  p95 {row['p95_ms']:>7.1f} ms"
            f"  (CPU p50 {row['cpu_p50_ms']:>6.1f})"
            f"  | SQL p50 {row['sql_p50_ms']:>6.1f} ms  ratio {row['ratio'] or 0:>5.2f}"
            f"  | {row['queries']:>2} queries  {row['kib']:>6.1f} KiB"
            f"  | target {row['target_p95_ms']:.0f} {'ok' if row['meets_target'] else 'MISSED'}"
            f"  | slowest statement {row['slowest_statement_ms']:.1f} ms",
            flush=True,
        )
        if result.parts:
            print("  " + "\n  ".join(breakdown_lines(result.parts)), flush=True)
        if args.explain and result.slowest_sql:
            print("  slowest: " + result.slowest_sql[:400])
            print("  " + explain(result.slowest_sql).replace("\n", "\n  "))
        if args.explain_all:
            print("  every statement (EXPLAIN ANALYZE, BUFFERS):")
            print("  " + "\n  ".join(explain_all(result.statements)))
    if args.json:
        args.json.parent.mkdir(exist_ok=True)
        args.json.write_text(
            json.dumps({"database": meta, "pages": [r.row() for r in results]}, indent=2)
        )
    if failures:
        print("FAILED:\n  - " + "\n  - ".join(failures))
        return 1
    print("all pages answered; every view's count matches the data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
