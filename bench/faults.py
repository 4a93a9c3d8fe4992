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
import json
import os
import random
import sys
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
from soak import Load
from worker_kills import Worker, check_once, run_kills

# On a busy machine a worker can take a minute to start; a slow start is not what we measure.
soak.WORKER_READY_SECONDS = 180


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
        worker = Worker(
            db_url=database_url(), queue=queue, log_dir=Path(settings.VAR_DIR), concurrency=2
        )
        worker.start()
        try:
            results["run"] = run_kills(
                load,
                worker,
                kills=args.kills,
                rate=args.rate,
                min_gap=args.min_gap,
                max_gap=args.max_gap,
                drain=args.drain,
                seed=args.seed,
            )
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
