"""SLA sweep benchmark: one set-based pass over every running timer for warnings and breaches.

Bulk-inserts N open tickets (default 10,000 and 100,000), each with the three timers a ticket
opens with (first response, resolution, close-out), into a throwaway database (SQLite by
default, PostgreSQL when ``DATABASE_URL`` says so). Due times are spread so that each 5 s of
time (beat's sweep interval) brings ``--due-percent`` of the timers (default 0.1 %, a burst
well above steady traffic) past due and as many past their warning threshold. Each run moves
the clock on 5 s and times one ``sla_sweep``, as beat runs it; after a warm-up run, ``--runs``
runs give the median (p50) and p95. The sweep's two reads are shown with
``EXPLAIN (ANALYZE, BUFFERS)`` (``EXPLAIN QUERY PLAN`` on SQLite)::

    .venv/bin/python bench/sla_sweep_bench.py                  # 10,000 and 100,000 tickets
    .venv/bin/python bench/sla_sweep_bench.py --small          # 2,000 tickets, a smoke run
    .venv/bin/python bench/sla_sweep_bench.py --sizes 50000 --runs 20 --json var/sla.json

Exits non-zero when a check fails: every due timer breached once, every timer past its warning
warned once, one event each, nothing else touched.
"""

from __future__ import annotations

import argparse
import json
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
    percentile,
    print_rows,
    setup_django,
    throwaway_database,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=5)  # beat's sweep interval
WARN_SLOTS = 40  # a timer warns this many steps before it is due
BATCH = 5_000


def populate(tickets: int, due_percent: float) -> dict[str, Any]:
    """N open tickets with three running timers each, their due times spread so that each
    ``STEP`` of time brings ``due_percent`` of the timers past due and as many past their
    warning (75 % of the way there), as steady traffic does."""
    from django.db import connection

    from careinbox.accounts.models import Organization
    from channels_social.models import Brand, Platform, SocialAccount
    from monitoring.models import Metric, SlaPolicy, SlaTimer, TimerState
    from tickets.models import Priority, Ticket

    started = time.perf_counter()
    org = Organization.objects.create(name="Bench Co", slug=f"bench-{tickets}")
    brand = Brand.objects.create(organization=org, name="Bench Co")
    account = SocialAccount.objects.create(
        organization=org, brand=brand, platform=Platform.X, external_id="1", username="Bench"
    )
    policy = SlaPolicy.objects.create(
        organization=org,
        name="Bench",
        first_response_minutes=60,
        resolution_minutes=8 * 60,
        close_out_minutes=24 * 60,
    )
    priorities = list(Priority.values)
    for first in range(0, tickets, BATCH):
        Ticket.objects.bulk_create(
            [
                Ticket(
                    organization=org,
                    brand=brand,
                    social_account=account,
                    platform=Platform.X,
                    priority=priorities[n % len(priorities)],
                    customer_external_id=str(10_000_000 + n),
                    customer_username=f"customer{n}",
                    opened_at=NOW - timedelta(hours=1),
                )
                for n in range(first, min(first + BATCH, tickets))
            ]
        )
    ticket_ids = list(Ticket.objects.filter(organization=org).values_list("pk", flat=True))
    # Timer i falls due in slot (i * a prime) % slots: one slot per STEP, spread evenly. It
    # warns WARN_SLOTS slots earlier; one already past its warning was warned before we look.
    slots = max(2 * WARN_SLOTS, round(100 / due_percent))
    metrics = ((Metric.FIRST_RESPONSE, 60), (Metric.RESOLUTION, 480), (Metric.CLOSE_OUT, 1440))
    timers = []
    for n, ticket_id in enumerate(ticket_ids):
        for offset, (metric, minutes) in enumerate(metrics):
            slot = ((3 * n + offset) * 7919) % slots
            due_at = NOW + slot * STEP + timedelta(milliseconds=500)
            warn_at = due_at - WARN_SLOTS * STEP
            timers.append(
                SlaTimer(
                    organization=org,
                    ticket_id=ticket_id,
                    policy=policy,
                    metric=metric,
                    target_minutes=minutes,
                    started_at=NOW - timedelta(hours=1),
                    due_at=due_at,
                    warn_at=warn_at,
                    warned_at=warn_at if warn_at <= NOW else None,
                    state=TimerState.RUNNING,
                )
            )
    for first in range(0, len(timers), BATCH):
        SlaTimer.objects.bulk_create(timers[first : first + BATCH])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE monitoring_slatimer")
            cursor.execute("VACUUM ANALYZE tickets_ticket")
    return {
        "organization_id": org.pk,
        "timers": len(timers),
        "setup_seconds": time.perf_counter() - started,
    }


def expected(organization_id: int, now: datetime) -> tuple[int, int]:
    """What a sweep at ``now`` must find: (to warn, to breach)."""
    from monitoring.models import SlaTimer

    timers = SlaTimer.objects.filter(organization_id=organization_id)
    return timers.to_warn(now).count(), timers.overdue(now).count()


def explain(now: datetime) -> list[str]:
    """The sweep's two reads as the database runs them at ``now`` (nothing is changed)."""
    from django.db import connection

    from monitoring.services import sweep_queries

    lines = []
    for name, queryset in zip(("breaches", "warnings"), sweep_queries(now), strict=True):
        reads = queryset.values_list("pk", "organization_id", "ticket_id", "metric", "due_at")
        if connection.vendor == "postgresql":
            plan = reads.explain(analyze=True, buffers=True)
        else:
            plan = reads.explain()
        lines.append(f"-- {name}: {reads.query}")
        lines.extend(plan.splitlines())
    return lines


def measure(tickets: int, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    from monitoring.models import SlaEventKind, SlaTimer, TimerState
    from monitoring.services import sla_sweep
    from tickets.models import TicketEvent

    data = populate(tickets, args.due_percent)
    org_id = data["organization_id"]
    failures: list[str] = []
    times: list[float] = []
    found: list[tuple[int, int]] = []
    want_total = [0, 0]
    plan: list[str] = []
    for run in range(args.runs + 1):  # the first is a warm-up
        now = NOW + (run + 1) * STEP
        want = expected(org_id, now)
        if run == args.runs // 2:
            plan = explain(now)
        started = time.perf_counter()
        result = sla_sweep(now=now)
        elapsed = 1000 * (time.perf_counter() - started)
        if run:
            times.append(elapsed)
            found.append((result.warned, result.breached))
        want_total = [want_total[0] + want[0], want_total[1] + want[1]]
        if tuple(result) != want:
            failures.append(f"{tickets:,} tickets, sweep {run}: {tuple(result)}, not {want}")
        if sla_sweep(now=now) != (0, 0):
            failures.append(f"{tickets:,} tickets, sweep {run}: a second sweep found more")
    last = NOW + (args.runs + 1) * STEP
    idle = []
    for _ in range(args.runs):
        started = time.perf_counter()
        sla_sweep(now=last)  # nothing newly due
        idle.append(1000 * (time.perf_counter() - started))
    timers = SlaTimer.objects.filter(organization_id=org_id)
    breached = timers.filter(state=TimerState.BREACHED).count()
    warned = timers.filter(warned_at__gt=NOW).count()
    events = TicketEvent.objects.filter(
        organization_id=org_id, kind__in=[SlaEventKind.SLA_BREACHED, SlaEventKind.SLA_WARNING]
    ).count()
    if (warned, breached) != tuple(want_total):
        failures.append(f"{tickets:,} tickets: {warned} warned and {breached} breached")
    if events != sum(want_total):
        failures.append(f"{tickets:,} tickets: {events} events for {sum(want_total)} changes")
    return (
        {
            "tickets": tickets,
            "timers": data["timers"],
            "warnings_per_sweep": statistics.median(w for w, _ in found),
            "breaches_per_sweep": statistics.median(b for _, b in found),
            "setup_seconds": data["setup_seconds"],
            "sweep_ms": {
                "p50": statistics.median(times),
                "p95": percentile(times, 95),
                "max": max(times),
            },
            "idle_ms": {"p50": statistics.median(idle), "p95": percentile(idle, 95)},
            "failures": failures,
        },
        plan,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="open tickets, comma-separated")
    parser.add_argument("--small", action="store_true", help="2,000 tickets, 3 runs (smoke)")
    parser.add_argument("--runs", type=int, default=10, help="timed sweeps per size")
    parser.add_argument(
        "--due-percent",
        type=float,
        default=0.1,
        help="share of the timers that falls due (and as many that warn) per sweep",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = [2_000] if args.small else [int(size) for size in args.sizes.split(",")]
    if args.small:
        args.runs = 3
    args.runs = max(1, min(args.runs, WARN_SLOTS - 2))

    setup_django()
    results: list[dict[str, Any]] = []
    plans: dict[int, list[str]] = {}
    wall = time.perf_counter()
    with throwaway_database("sla_sweep_bench"):
        label = database_label()
        for size in sizes:
            result, plans[size] = measure(size, args)
            results.append(result)
    rows = [("database", label), ("machine", machine())]
    for r in results:
        sweep, idle = r["sweep_ms"], r["idle_ms"]
        rows += [
            (
                f"{r['tickets']:,} tickets ({r['timers']:,} running timers)",
                f"setup {r['setup_seconds']:.1f} s (bulk insert, not measured)",
            ),
            (
                f"  sweep: {r['breaches_per_sweep']:,.0f} breaches + "
                f"{r['warnings_per_sweep']:,.0f} warnings",
                f"p50 {sweep['p50']:.1f} ms, p95 {sweep['p95']:.1f} ms, max {sweep['max']:.1f} ms"
                f" ({args.runs} runs)",
            ),
            ("  sweep: nothing newly due", f"p50 {idle['p50']:.2f} ms, p95 {idle['p95']:.2f} ms"),
        ]
    rows.append(("wall time", f"{time.perf_counter() - wall:.1f} s"))
    failures = [failure for r in results for failure in r["failures"]]
    print_rows(
        f"CareInbox SLA sweep benchmark · {datetime.now(UTC):%Y-%m-%d}",
        rows,
        failures,
        "correctness: every due timer breached once, every warning once, one event each",
    )
    for size, plan in plans.items():
        print(f"\nThe sweep's reads at {size:,} tickets:")
        print("\n".join(plan))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "plans": plans}, indent=2))
        print(f"wrote {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
