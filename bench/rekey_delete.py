"""Time the deletion of a team and of a user (``team_delete``, ``User.delete``) on a large data
set, with and without the roll-ups' re-keying (``monitoring.reports.rekey``), each in a
transaction that is rolled back, so the data set is unchanged.

    DATABASE_URL=postgres://…/careinbox_bench_NAME .venv/bin/python bench/rekey_delete.py \
        [--repeat 3] [--explain]

The team and the user are the ones with the most roll-up rows (``OpenHourStat``). Prints the
median wall time of each, with the receivers connected (``after``) and disconnected
(``before``), interleaved so that both see the same load; ``--explain`` prints EXPLAIN (ANALYZE,
BUFFERS) of the re-keying statements of the largest table."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careinbox.settings")
os.environ.setdefault("CAREINBOX_TESTING", "1")

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.db.models.signals import post_delete  # noqa: E402

from careinbox.accounts.models import Team, User  # noqa: E402
from careinbox.accounts.services import team_delete  # noqa: E402
from monitoring.models import OpenHourStat  # noqa: E402
from monitoring.reports import rekey  # noqa: E402


class Rollback(Exception):
    pass


def _timed(action: object) -> float:
    start = time.perf_counter()
    try:
        with transaction.atomic():
            action()  # type: ignore[operator]
            raise Rollback
    except Rollback:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    team_id = (
        OpenHourStat.objects.exclude(team_id=0)
        .values("team_id")
        .annotate(n=Count("pk"))
        .order_by("-n")
        .values_list("team_id", flat=True)
        .first()
    )
    user_id = (
        OpenHourStat.objects.exclude(agent_id=0)
        .values("agent_id")
        .annotate(n=Count("pk"))
        .order_by("-n")
        .values_list("agent_id", flat=True)
        .first()
    )
    team = Team.objects.get(pk=team_id)
    assert User.objects.filter(pk=user_id).exists()
    print(f"team {team_id} ({team.tickets.count()} tickets), user {user_id}")
    for name, action in (
        ("team_delete", lambda: team_delete(team=Team.objects.get(pk=team_id), actor=None)),
        ("user delete", lambda: User.objects.filter(pk=user_id).delete()),
    ):
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.repeat):
            for label in ("before", "after"):
                if label == "before":
                    post_delete.disconnect(sender=Team, dispatch_uid="monitoring.rekey.team")
                    post_delete.disconnect(sender=User, dispatch_uid="monitoring.rekey.user")
                else:
                    rekey.register()
                times[label].append(_timed(action))
        rekey.register()
        print(
            f"{name}: before {statistics.median(times['before']) * 1000:.0f} ms "
            f"after {statistics.median(times['after']) * 1000:.0f} ms "
            f"(runs {args.repeat}: {[round(t * 1000) for t in times['before']]} / "
            f"{[round(t * 1000) for t in times['after']]})"
        )
    if args.explain:
        _explain(team_id, team.organization_id, user_id)


def _explain(team_id: int, organization_id: int, user_id: int) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the re-keying of the open counts (rolled back)."""
    captured: list[tuple[str, list[object]]] = []

    class Recorder:
        def __init__(self, cursor: object) -> None:
            self.cursor = cursor
            self.rowcount = 0

        def execute(self, sql: str, params: list[object]) -> None:
            captured.append((sql, params))

    spec = next(s for s in rekey.TEAM_KEYED if s[0] is OpenHourStat)
    rekey._rekey(Recorder(None), spec, team_id, organization_id)
    spec = next(s for s in rekey.AGENT_KEYED if s[0] is OpenHourStat)
    rekey._rekey(Recorder(None), spec, user_id, None)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for sql, params in captured:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                print(sql % tuple(repr(p) for p in params))
                print("\n".join(row[0] for row in cursor.fetchall()))
                print()
            raise Rollback
    except Rollback:
        pass


if __name__ == "__main__":
    main()
