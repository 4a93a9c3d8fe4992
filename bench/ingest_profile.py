"""Where ingest's SQL statements come from: the poll path of ``bench/ingest_bench.py``, with
every statement attributed to the innermost CareInbox function that ran it, and a cProfile.

    DATABASE_URL=postgres://... .venv/bin/python bench/ingest_profile.py --mentions 400

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
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    from channels_social.services import account_poll

    rng = random.Random(args.seed)
    with running_emulator() as emu, throwaway_database("bench_profile"):
        print(database_label())
        tenant = make_tenant(emu.url)
        injected = Injected()
        counter = Attributing()
        profile = cProfile.Profile()
        authors = max(20, args.mentions // 4)
        with connection.execute_wrapper(counter):
            while len(injected.ids) < args.mentions:
                size = min(WAVE_MAX, args.mentions - len(injected.ids))
                inject_wave(emu, injected, size, authors=authors, rng=rng)
                profile.enable()
                print(account_poll(account_id=tenant.account.pk))
                profile.disable()
        n = len(injected.ids)
        print(f"\n{counter.total} statements for {n} mentions: {counter.total / n:.2f} each\n")
        for site, count in counter.sites.most_common(args.top):
            print(f"{count:6d} {count / n:6.2f}  {site}")
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(45)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
