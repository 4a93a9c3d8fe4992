"""Priority scoring cost per post: what ingest adds for each ticket it opens (issue #11).

Scores every post of the labelled set (``tests/data/sentiment_posts.tsv``) ``--rounds`` times
through ``tickets.priority.assess_signals`` (sentiment, every factor, organisation keywords,
hashtags and VIPs set), after one warm-up round that loads VADER's lexicon, and prints the
median and p95 per post. Pure CPU: the two indexed queries ``assess_new_post`` adds at ingest
(the organisation's rules, the customer's earlier tickets) are measured by
``bench/ingest_bench.py``, which runs the real ingest::

    .venv/bin/python bench/priority_bench.py               # 317 posts x 20 rounds
    .venv/bin/python bench/priority_bench.py --rounds 100
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careinbox.settings")
    os.environ.setdefault("CAREINBOX_TESTING", "1")
    import django

    django.setup()
    from django.utils import timezone

    from tickets.priority import Signals, assess_signals

    data = ROOT / "tests" / "data" / "sentiment_posts.tsv"
    with data.open(encoding="utf-8") as handle:
        rows = list(
            csv.DictReader(
                (line for line in handle if not line.startswith("#")),
                delimiter="\t",
                quoting=csv.QUOTE_NONE,
            )
        )
    now = timezone.now()
    signals = [
        Signals(
            text=row["text"],
            followers=1_000 + 97 * index,
            author_handle=f"customer{index}",
            metrics={"retweet_count": index % 7, "like_count": index % 23},
            posted_at=now - timedelta(minutes=5 + index % 50),
            now=now,
            earlier_tickets=index % 3,
            keywords=("refund", "recall", "order"),
            hashtags=("acmefail",),
            vip_handles=frozenset({"customer7", "customer70"}),
        )
        for index, row in enumerate(rows)
    ]
    for one in signals:  # warm-up: VADER's lexicon, the compiled patterns
        assess_signals(one)
    per_post: list[float] = []
    for _ in range(args.rounds):
        for one in signals:
            started = time.perf_counter()
            assess_signals(one)
            per_post.append((time.perf_counter() - started) * 1e6)
    per_post.sort()
    p95 = per_post[int(len(per_post) * 0.95)]
    print(f"priority scoring: {len(per_post):,} scorings of {len(signals)} posts")
    median = statistics.median(per_post)
    print(f"  median {median:.0f} µs, p95 {p95:.0f} µs, max {per_post[-1]:.0f} µs per post")
    print(f"  {1e6 / statistics.mean(per_post):,.0f} posts per second on one core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
