"""Where ingest's SQL statements come from: the poll path of ``bench/ingest_bench.py``, with
every statement attributed to the innermost CareInbox function that ran it, and a cProfile.

    DATABASE_URL=postgres://... .venv/bin/python bench/ingest_profile.py --mentions 400
    DATABASE_URL=postgres://... .venv/bin/pyinstrument bench/ingest_profile.py --plain

``--plain`` leaves out the attribution and the cProfile (each costs more than what it
measures): the polls' wall time and the time spent waiting on each kind of statement, for a
sampling profiler such as pyinstrument or py-spy to run over.

Not a benchmark (no figures to quote but statement counts): a tool to find the next statement
to take away. Uses the bench's own throwaway database, emulator and tenant; nothing replaced.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    ROOT,
    WAVE_MAX,
    Injected,
    database_label,
    inject_wave,
    make_tenant,
    running_emulator,
    setup_django,
    throwaway_database,
)

PROJECT_DIRS = ("careinbox", "channels_social", "tickets", "monitoring")


class Timing:
    """Time spent in the database by kind of statement (its first word and table), cheaply."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.total = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any
    ) -> Any:
        self.total += 1
        words = sql.split(None, 6) if sql else ["?"]
        table = next((w.strip('"') for w in words[1:] if w.startswith('"')), "")
        kind = f"{words[0]} {table}".strip()
        if words[0] in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
            kind = words[0]  # each savepoint has a name of its own
        started = time.perf_counter()
        try:
            return execute(sql, params, many, ctx)
        finally:
            self.seconds[kind] += time.perf_counter() - started
            self.counts[kind] += 1


class Attributing:
    """Counts statements by (innermost project function, its caller) and by phase."""

    def __init__(self) -> None:
        self.sites: Counter[str] = Counter()
        self.total = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any
    ) -> Any:
        self.total += 1
        frames = [
            f
            for f in traceback.extract_stack()
            if f.filename.startswith(str(ROOT))
            and Path(f.filename).relative_to(ROOT).parts[0] in PROJECT_DIRS
        ]
        inner = frames[-2:] if frames else []
        site = " <- ".join(f"{Path(f.filename).stem}.{f.name}:{f.lineno}" for f in reversed(inner))
        self.sites[f"{site} | {sql.split()[0] if sql else '?'}"] += 1
        return execute(sql, params, many, ctx)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=400)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--plain", action="store_true", help="no attribution, no cProfile")
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    from channels_social.services import account_poll

    rng = random.Random(args.seed)
    with running_emulator() as emu, throwaway_database("bench_profile"):
        print(database_label())
        tenant = make_tenant(emu.url)
        injected = Injected()
        counter: Attributing | Timing = Timing() if args.plain else Attributing()
        profile = cProfile.Profile()
        authors = max(20, args.mentions // 4)
        polling = 0.0
        with connection.execute_wrapper(counter):
            while len(injected.ids) < args.mentions:
                size = min(WAVE_MAX, args.mentions - len(injected.ids))
                inject_wave(emu, injected, size, authors=authors, rng=rng)
                if not args.plain:
                    profile.enable()
                started = time.perf_counter()
                print(account_poll(account_id=tenant.account.pk))
                polling += time.perf_counter() - started
                if not args.plain:
                    profile.disable()
        n = len(injected.ids)
        if isinstance(counter, Timing):
            waited = sum(counter.seconds.values())
            print(
                f"\n{counter.total} statements for {n} mentions: {counter.total / n:.2f} each; "
                f"polls {polling:.2f} s ({1000 * polling / n:.2f} ms per mention), of which "
                f"{waited:.2f} s waiting on the database\n"
            )
            for kind, seconds in counter.seconds.most_common(args.top):
                count = counter.counts[kind]
                print(f"{seconds:8.3f} s {count:6d} {1000 * seconds / count:7.3f} ms  {kind}")
            return 0
        print(f"\n{counter.total} statements for {n} mentions: {counter.total / n:.2f} each\n")
        for site, count in counter.sites.most_common(args.top):
            print(f"{count:6d} {count / n:6.2f}  {site}")
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(45)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
