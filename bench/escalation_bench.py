"""Escalation benchmark: every enabled rule evaluated over N open tickets, as beat's sweep does.

Bulk-inserts N open tickets (default 10,000) into a throwaway database (SQLite by default,
PostgreSQL when ``DATABASE_URL`` says so), each with the customer's post and a running
first-response timer; a share of the tickets are warned or breached, loud (10,000 followers
and more), on Facebook with a Messenger window about to close, unassigned for long, or say
"refund". Five rules, one per kind of condition (the demo's SLA rule with two levels, VIP
authors, keywords, unassigned for 30 min, a reply window closing within an hour). Timed:

- the first sweep, which matches and fires level 1 everywhere it applies (the burst);
- ``--runs`` steady sweeps with nothing new (what beat does every 5 s most of the time);
- the sweep at which level 2 of the SLA rule falls due for all its matches.

::

    .venv/bin/python bench/escalation_bench.py                  # 10,000 tickets
    .venv/bin/python bench/escalation_bench.py --small          # 2,000 tickets, a smoke run
    .venv/bin/python bench/escalation_bench.py --sizes 10000,100000 --runs 20

Exits non-zero when a check fails: each rule fires level 1 on exactly the tickets its dry run
(``matching_tickets``) lists, once; a steady sweep fires nothing; level 2 fires once per match.
The actions (run by the ``run_escalation_actions`` task) are not part of the sweep's time.
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

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BATCH = 5_000


def populate(tickets: int) -> dict[str, Any]:
    from django.db import connection

    from careinbox.accounts.models import Organization, Role
    from channels_social.models import Brand, Platform, SocialAccount
    from monitoring.models import EscalationRule, Metric, SlaPolicy, SlaTimer, TimerState
    from tickets.models import Direction, Message, MessageKind, Priority, Ticket

    started = time.perf_counter()
    org = Organization.objects.create(name="Bench Co", slug=f"bench-esc-{tickets}")
    brand = Brand.objects.create(organization=org, name="Bench Co")
    x = SocialAccount.objects.create(
        organization=org, brand=brand, platform=Platform.X, external_id="1", username="Bench"
    )
    page = SocialAccount.objects.create(
        organization=org, brand=brand, platform=Platform.FACEBOOK, external_id="2", username="Page"
    )
    policy = SlaPolicy.objects.create(organization=org, name="Bench", first_response_minutes=60)
    opened = NOW - timedelta(hours=2)
    priorities = list(Priority.values)
    for first in range(0, tickets, BATCH):
        Ticket.objects.bulk_create(
            [
                Ticket(
                    organization=org,
                    brand=brand,
                    social_account=page if n % 10 == 0 else x,
                    platform=Platform.FACEBOOK if n % 10 == 0 else Platform.X,
                    is_public=n % 10 != 0,
                    priority=priorities[n % len(priorities)],
                    customer_external_id=str(10_000_000 + n),
                    customer_username=f"customer{n}",
                    customer_followers=25_000 if n % 50 == 0 else 300,
                    opened_at=opened if n % 7 == 0 else NOW - timedelta(minutes=5),
                )
                for n in range(first, min(first + BATCH, tickets))
            ]
        )
    rows = list(
        Ticket.objects.filter(organization=org).order_by("pk").values_list("pk", "platform")
    )
    messages, timers = [], []
    for n, (ticket_id, platform) in enumerate(rows):
        facebook = platform == Platform.FACEBOOK
        # Every 20th Facebook ticket's customer wrote on Messenger 23 h 30 min ago: its
        # 24-hour window closes within the hour.
        written = NOW - timedelta(hours=23, minutes=30) if facebook and n % 200 == 0 else NOW
        messages.append(
            Message(
                organization=org,
                ticket_id=ticket_id,
                platform=platform,
                kind=MessageKind.MESSENGER if facebook else MessageKind.POST,
                direction=Direction.INBOUND,
                is_public=not facebook,
                external_id=f"m{n}",
                author_external_id=str(10_000_000 + n),
                author_username=f"customer{n}",
                text="I want a refund, now" if n % 40 == 0 else "Where is my parcel?",
                created_at=written,
            )
        )
        warned = n % 25 == 0
        breached = n % 100 == 0
        timers.append(
            SlaTimer(
                organization=org,
                ticket_id=ticket_id,
                policy=policy,
                metric=Metric.FIRST_RESPONSE,
                target_minutes=60,
                started_at=NOW - timedelta(minutes=50),
                due_at=NOW - timedelta(minutes=1) if breached else NOW + timedelta(minutes=10),
                warn_at=NOW - timedelta(minutes=5),
                warned_at=NOW - timedelta(minutes=5) if warned or breached else None,
                state=TimerState.BREACHED if breached else TimerState.RUNNING,
                breached_at=NOW - timedelta(minutes=1) if breached else None,
            )
        )
    for first in range(0, len(messages), BATCH):
        Message.objects.bulk_create(messages[first : first + BATCH])
        SlaTimer.objects.bulk_create(timers[first : first + BATCH])
    sla_rule = EscalationRule.objects.create(
        organization=org,
        name="First response at risk",
        conditions=[{"kind": "sla", "metric": Metric.FIRST_RESPONSE, "state": "warning"}],
        levels=[
            {"after_minutes": 0, "actions": {"notify_roles": [Role.AGENT], "add_tag": "at-risk"}},
            {"after_minutes": 15, "actions": {"notify_roles": [Role.MANAGER], "raise_priority": 1}},
        ],
    )
    one_level = [{"after_minutes": 0, "actions": {"notify_roles": [Role.MANAGER]}}]
    for name, conditions in (
        ("VIP", [{"kind": "followers", "at_least": 10_000}, {"kind": "priority", "at_least": 2}]),
        ("Refunds", [{"kind": "keyword", "words": ["refund", "chargeback", "#thissucks"]}]),
        ("Nobody on it", [{"kind": "unassigned", "minutes": 30}]),
        ("Window closing", [{"kind": "reply_window", "within_minutes": 60}]),
    ):
        EscalationRule.objects.create(
            organization=org, name=name, conditions=conditions, levels=one_level
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in ("tickets_ticket", "tickets_message", "monitoring_slatimer"):
                cursor.execute(f"VACUUM ANALYZE {table}")
    return {
        "organization_id": org.pk,
        "sla_rule_id": sla_rule.pk,
        "setup_seconds": time.perf_counter() - started,
    }


def timed(now: datetime) -> tuple[float, Any, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monitoring.escalation.engine import escalation_sweep

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        result = escalation_sweep(now=now)
        elapsed = 1000 * (time.perf_counter() - started)
    return elapsed, result, len(queries.captured_queries)


def measure(tickets: int, runs: int) -> dict[str, Any]:
    from monitoring.escalation.engine import matching_tickets
    from monitoring.models import EscalationFiring, EscalationRule

    data = populate(tickets)
    org_id = data["organization_id"]
    failures: list[str] = []
    rules = list(EscalationRule.objects.filter(organization_id=org_id).order_by("pk"))
    dry = {
        rule.name: set(
            matching_tickets(org_id, rule.conditions, now=NOW).values_list("pk", flat=True)
        )
        for rule in rules
    }
    first_ms, first, first_queries = timed(NOW)
    for rule in rules:
        fired = list(
            EscalationFiring.objects.filter(rule=rule, level=1).values_list("ticket_id", flat=True)
        )
        if sorted(fired) != sorted(dry[rule.name]):
            failures.append(
                f"{rule.name}: fired on {len(fired)}, its dry run lists {len(dry[rule.name])}"
            )
        if not fired:
            failures.append(f"{rule.name}: matched nothing (the bench data misses it)")
    steady, steady_queries = [], 0
    for run in range(runs):
        elapsed, result, steady_queries = timed(NOW + timedelta(seconds=5 * (run + 1)))
        steady.append(elapsed)
        if result.fired:
            failures.append(f"steady sweep {run}: fired {len(result.fired)}")
    level2_ms, level2, _ = timed(NOW + timedelta(minutes=15, seconds=1))
    want = len(dry["First response at risk"])
    got = EscalationFiring.objects.filter(rule_id=data["sla_rule_id"], level=2).count()
    if len(level2.fired) != want or got != want:
        failures.append(f"level 2: fired {len(level2.fired)} ({got} stored), not {want}")
    return {
        "tickets": tickets,
        "setup_seconds": data["setup_seconds"],
        "matches": {name: len(ids) for name, ids in dry.items()},
        "first_sweep": {"ms": first_ms, "fired": len(first.fired), "queries": first_queries},
        "steady_ms": {
            "p50": statistics.median(steady),
            "p95": percentile(steady, 95),
            "max": max(steady),
        },
        "steady_queries": steady_queries,
        "level2_sweep": {"ms": level2_ms, "fired": len(level2.fired)},
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000", help="open tickets, comma-separated")
    parser.add_argument("--small", action="store_true", help="2,000 tickets, 3 runs (smoke)")
    parser.add_argument("--runs", type=int, default=10, help="timed steady sweeps per size")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sizes = [2_000] if args.small else [int(size) for size in args.sizes.split(",")]
    runs = 3 if args.small else max(1, args.runs)

    setup_django()
    results: list[dict[str, Any]] = []
    wall = time.perf_counter()
    with throwaway_database("escalation_bench"):
        label = database_label()
        for size in sizes:
            results.append(measure(size, runs))
    rows = [("database", label), ("machine", machine()), ("rules", "5 (6 levels)")]
    for r in results:
        first, steady = r["first_sweep"], r["steady_ms"]
        rows += [
            (
                f"{r['tickets']:,} open tickets",
                f"setup {r['setup_seconds']:.1f} s (bulk insert, not measured)",
            ),
            ("  matches per rule", ", ".join(f"{name} {n:,}" for name, n in r["matches"].items())),
            (
                "  first sweep (match + fire level 1)",
                f"{first['ms']:.0f} ms, {first['fired']:,} firings, {first['queries']} queries",
            ),
            (
                "  steady sweep (nothing new)",
                f"p50 {steady['p50']:.0f} ms, p95 {steady['p95']:.0f} ms, "
                f"max {steady['max']:.0f} ms ({runs} runs, {r['steady_queries']} queries)",
            ),
            (
                "  level 2 falls due",
                f"{r['level2_sweep']['ms']:.0f} ms, {r['level2_sweep']['fired']:,} firings",
            ),
        ]
    rows.append(("wall time", f"{time.perf_counter() - wall:.1f} s"))
    failures = [failure for r in results for failure in r["failures"]]
    print_rows(
        f"CareInbox escalation sweep benchmark · {datetime.now(UTC):%Y-%m-%d}",
        rows,
        failures,
        "correctness: each rule fired level 1 on exactly its dry run's tickets, once; steady "
        "sweeps fired nothing; level 2 once per match",
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results}, indent=2))
        print(f"wrote {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
