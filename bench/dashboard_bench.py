"""Dashboard benchmark: every figure of the manager dashboard over N tickets of roll-ups.

Bulk-inserts N tickets spread over the last 30 days (default 10,000) into a throwaway database
(SQLite by default, PostgreSQL when ``DATABASE_URL`` says so), each with a first-response timer
and their report rows (``TicketFact``, ``SlaFact``) as the roll-up handler writes them, then
times ``Report(filter).all()`` (every table the page shows) for the 7- and 30-day periods.

::

    .venv/bin/python bench/dashboard_bench.py                      # 10,000 tickets
    .venv/bin/python bench/dashboard_bench.py --sizes 1000,10000,100000 --runs 5

Exits non-zero when a check fails: the number of queries is the same at every size, and the
30-day volume equals the number of tickets inserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest_bench import (  # noqa: E402
    database_label,
    machine,
    print_rows,
    setup_django,
    throwaway_database,
)

BATCH = 5_000


def populate(size: int) -> Any:
    from careinbox.accounts.models import Organization, Team, User
    from channels_social.models import Brand, Platform, SocialAccount
    from monitoring.models import Metric, SlaFact, SlaOutcome, SlaTimer, TicketFact, TimerState
    from tickets.models import Status, Ticket

    rng = random.Random(size)
    org = Organization.objects.create(name=f"Bench {size}", slug=f"bench-{size}")
    brand = Brand.objects.create(organization=org, name="Bench")
    accounts = [
        SocialAccount.objects.create(
            organization=org,
            brand=brand,
            platform=Platform.X,
            external_id=f"{size}{n}",
            username=f"bench{n}",
        )
        for n in range(3)
    ]
    team = Team.objects.create(organization=org, name="Care")
    agents = [User.objects.create(username=f"bench-{size}-{n}") for n in range(5)]
    now = datetime.now(UTC)
    for start in range(0, size, BATCH):
        count = min(BATCH, size - start)
        opened = [now - timedelta(minutes=rng.randint(30, 29 * 24 * 60)) for _ in range(count)]
        tickets = Ticket.objects.bulk_create(
            Ticket(
                organization=org,
                brand=brand,
                social_account=accounts[n % 3],
                platform="x",
                status=Status.CLOSED if n % 3 else Status.NEW,
                customer_external_id=f"c{start + n}",
                customer_username=f"c{start + n}",
                opened_at=at,
                assigned_to=agents[n % 5],
                team=team,
            )
            for n, at in enumerate(opened)
        )
        answer = [rng.randint(60, 7200) if n % 7 else None for n in range(count)]
        timers = SlaTimer.objects.bulk_create(
            SlaTimer(
                organization=org,
                ticket=ticket,
                metric=Metric.FIRST_RESPONSE,
                target_minutes=60,
                started_at=ticket.opened_at,
                due_at=ticket.opened_at + timedelta(minutes=60),
                state=(TimerState.MET if seconds < 3600 else TimerState.BREACHED)
                if seconds
                else TimerState.BREACHED,
                fulfilled_at=ticket.opened_at + timedelta(seconds=seconds) if seconds else None,
            )
            for ticket, seconds in zip(tickets, answer, strict=True)
        )
        TicketFact.objects.bulk_create(
            TicketFact(
                organization=org,
                ticket=ticket,
                brand=brand,
                social_account=ticket.social_account,
                platform="x",
                team=team,
                agent=ticket.assigned_to,
                priority=ticket.priority,
                sentiment=rng.choice(["negative", "neutral", "positive"]),
                opened_at=ticket.opened_at,
                opened_day=ticket.opened_at.date(),
                opened_hour=ticket.opened_at.hour,
                opened_weekday=ticket.opened_at.weekday(),
                first_response_seconds=seconds,
                is_open=ticket.status == Status.NEW,
                closed_at=ticket.opened_at + timedelta(hours=5)
                if ticket.status == "closed"
                else None,
                closed_day=ticket.opened_at.date() if ticket.status == "closed" else None,
                closed_publicly=(n % 2 == 0) if ticket.status == "closed" else None,
                refreshed_at=now,
            )
            for n, (ticket, seconds) in enumerate(zip(tickets, answer, strict=True))
        )
        SlaFact.objects.bulk_create(
            SlaFact(
                organization=org,
                ticket=timer.ticket,
                timer=timer,
                metric=timer.metric,
                brand=brand,
                social_account=timer.ticket.social_account,
                team=team,
                agent=timer.ticket.assigned_to,
                priority=timer.ticket.priority,
                started_at=timer.started_at,
                started_day=timer.started_at.date(),
                due_at=timer.due_at,
                outcome=SlaOutcome.MET if timer.state == TimerState.MET else SlaOutcome.BREACHED,
                owed=timer.fulfilled_at is None,
                elapsed_seconds=round((timer.fulfilled_at - timer.started_at).total_seconds())
                if timer.fulfilled_at
                else None,
            )
            for timer in timers
        )
    return org


def measure(size: int, runs: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monitoring.reports.daily import rebuild_daily
    from monitoring.reports.figures import Report
    from monitoring.reports.filters import parse_filter

    started = time.perf_counter()
    org = populate(size)
    rebuild_daily(organization_ids=[org.pk])  # the daily sums of the facts just inserted
    setup = time.perf_counter() - started
    result: dict[str, Any] = {"tickets": size, "setup_seconds": setup, "failures": []}
    for period in ("7d", "30d"):
        times, queries, volume = [], 0, 0
        for _ in range(runs):
            filt = parse_filter({"period": period}, org)
            with CaptureQueriesContext(connection) as captured:
                t0 = time.perf_counter()
                tables = Report(filt).all()
                times.append((time.perf_counter() - t0) * 1000)
            queries = len(captured)
            volume = sum(row[1].value for row in tables["volume_brand"].rows)
        result[period] = {
            "p50": statistics.median(times),
            "max": max(times),
            "queries": queries,
            "volume": volume,
        }
    if result["30d"]["volume"] != size:
        result["failures"].append(f"30-day volume {result['30d']['volume']} != {size}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000", help="tickets, comma-separated")
    parser.add_argument("--runs", type=int, default=5, help="timed renders per size and period")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    setup_django()
    results: list[dict[str, Any]] = []
    wall = time.perf_counter()
    with throwaway_database("dashboard_bench"):
        label = database_label()
        for size in sizes:
            results.append(measure(size, max(1, args.runs)))
    rows = [("database", label), ("machine", machine())]
    for r in results:
        rows.append((f"{r['tickets']:,} tickets", f"setup {r['setup_seconds']:.1f} s (bulk)"))
        for period in ("7d", "30d"):
            got = r[period]
            rows.append(
                (
                    f"  every figure, {period}",
                    f"p50 {got['p50']:.0f} ms, max {got['max']:.0f} ms, {got['queries']} queries",
                )
            )
    rows.append(("wall time", f"{time.perf_counter() - wall:.1f} s"))
    failures = [failure for r in results for failure in r["failures"]]
    counts = {r[period]["queries"] for r in results for period in ("7d", "30d")}
    if len(counts) != 1:
        failures.append(f"the query count varies with the size: {sorted(counts)}")
    print_rows(
        f"CareInbox dashboard benchmark · {datetime.now(UTC):%Y-%m-%d}",
        rows,
        failures,
        "correctness: the same number of queries at every size; the 30-day volume is every ticket",
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
