# ruff: noqa: S608 - every piece of the SQL text is ours (table and column names from the
# models, the buckets' bounds are integers we make); every value is a parameter.
"""Per-day histograms of the tickets' times (``TimeDayStat``), and exact percentiles from them.

A time in seconds ``v`` falls in one bucket: ``v`` itself below 16 s, then 8 buckets per
doubling (``[2**e + k * 2**(e-3), 2**e + (k+1) * 2**(e-3))`` for ``e >= 4``, ``k`` 0..7: about
9 % wide), so a time of up to 2**31 s is one of 232 buckets. The histogram rows are kept with the
daily sums (``monitoring.reports.daily``: the same new - old upsert per batch of facts) and made
again set-based (``rebuild_time_days``, one ``INSERT ... SELECT ... GROUP BY`` per time).

An exact percentile (``percentile_cont``: the value at rank ``p * (n - 1)``, interpolated
between the two ranks either side) is then: ``n`` and the bucket holding each of those ranks
from the histogram (a few rows per day), the facts of those buckets only (their values and
counts, from the period's facts in the bucket's range), and the value at the rank's offset in
its bucket. The same number as ``monitoring.reports.stats.percentiles`` on every backend; if
the facts read do not hold the counts the histogram said (a write committed between the two
reads), the caller computes it from the facts instead.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from monitoring.models import TimeDayStat, TimeMetric
from monitoring.reports.stats import organizations_clause

EXACT_BELOW = 16
PER_DOUBLING = 8
_EXACT_BITS = EXACT_BELOW.bit_length() - 1  # 4
_SUB_BITS = PER_DOUBLING.bit_length() - 1  # 3
MAX_SECONDS = 2**31 - 1  # a PositiveIntegerField

# metric -> the TicketFact column it counts
TIME_COLUMNS = {
    TimeMetric.FIRST_RESPONSE.value: "first_response_seconds",
    TimeMetric.RESOLUTION.value: "resolution_seconds",
}
TIME_KEY = (
    "organization_id",
    "day",
    "metric",
    "brand_id",
    "social_account_id",
    "team_id",
    "agent_id",
    "bucket",
)
TIME_SUMS = ("tickets",)


def bucket_of(seconds: int) -> int:
    """The bucket of a time in whole seconds (0 or more)."""
    if seconds < EXACT_BELOW:
        return max(seconds, 0)
    e = seconds.bit_length() - 1
    k = (seconds - (1 << e)) >> (e - _SUB_BITS)
    return EXACT_BELOW + (e - _EXACT_BITS) * PER_DOUBLING + k


def bounds(bucket: int) -> tuple[int, int]:
    """The times ``[low, high)`` of a bucket."""
    if bucket < EXACT_BELOW:
        return bucket, bucket + 1
    e = _EXACT_BITS + (bucket - EXACT_BELOW) // PER_DOUBLING
    k = (bucket - EXACT_BELOW) % PER_DOUBLING
    step = 1 << (e - _SUB_BITS)
    low = (1 << e) + k * step
    return low, low + step


def bucket_sql(column: str) -> str:
    """``bucket_of(column)`` in SQL that PostgreSQL and SQLite both run (integer division)."""
    parts = [f"WHEN {column} < {EXACT_BELOW} THEN {column}"]
    for e in range(_EXACT_BITS, 31):
        first = EXACT_BELOW + (e - _EXACT_BITS) * PER_DOUBLING
        parts.append(
            f"WHEN {column} < {1 << (e + 1)} "
            f"THEN {first} + ({column} - {1 << e}) / {1 << (e - _SUB_BITS)}"
        )
    return "CASE " + " ".join(parts) + " END"


# Kept with the daily sums ----------------------------------------------------------------------

Deltas = dict[tuple[Any, ...], list[int]]


def add_ticket_fact(deltas: Deltas, f: Mapping[str, Any], sign: int) -> None:
    """One ticket fact's times in their buckets, times ``sign``."""
    for metric, column in TIME_COLUMNS.items():
        seconds = f[column]
        if seconds is None:
            continue
        key = (
            f["organization_id"],
            f["opened_day"],
            metric,
            f["brand_id"],
            f["social_account_id"] or 0,
            f["team_id"] or 0,
            f["agent_id"] or 0,
            bucket_of(seconds),
        )
        tally = deltas.get(key)
        if tally is None:
            deltas[key] = [sign]
        else:
            tally[0] += sign


def rebuild_time_days(
    cursor: Any,
    *,
    organization_ids: Iterable[int] | None = None,
    tables: Mapping[str, str] | None = None,
) -> int:
    """Every histogram row (of these organisations) made again from the facts: a delete and
    one ``INSERT ... SELECT ... GROUP BY`` per time. Returns the rows made."""
    from monitoring.models import TicketFact

    names = {
        "ticket_facts": TicketFact._meta.db_table,
        "time_days": TimeDayStat._meta.db_table,
        **(tables or {}),
    }
    clause = organizations_clause(organization_ids)
    if clause is None:
        return 0
    where, params = clause
    table, facts = names["time_days"], names["ticket_facts"]
    cursor.execute(f"DELETE FROM {table} WHERE 1 = 1 {where}", params)
    rows = 0
    for metric, column in TIME_COLUMNS.items():
        bucket = bucket_sql(column)
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(TIME_KEY + TIME_SUMS)}) "
            f"SELECT organization_id, opened_day, '{metric}', brand_id, "
            "COALESCE(social_account_id, 0), COALESCE(team_id, 0), COALESCE(agent_id, 0), "
            f"{bucket}, COUNT(*) FROM {facts} WHERE {column} IS NOT NULL {where} "
            "GROUP BY organization_id, opened_day, brand_id, COALESCE(social_account_id, 0), "
            f"COALESCE(team_id, 0), COALESCE(agent_id, 0), {bucket}",
            params,
        )
        rows += cursor.rowcount
    return rows


# Exact percentiles -----------------------------------------------------------------------------

Histogram = dict[int, int]  # bucket -> count
Ranges = dict[Hashable, set[tuple[int, int]]]  # group -> the buckets' [low, high) to read
Values = dict[Hashable, dict[int, int]]  # group -> {value: count} read in those ranges


class Mismatch(Exception):
    """The facts read do not hold what the histogram counted (a write between the reads)."""


def _ranks(n: int, fraction: float) -> tuple[float, int, int]:
    pos = fraction * (n - 1)
    low = int(pos)
    return pos, low, low + (pos > low)


def _bucket_at(histogram: Histogram, rank: int) -> tuple[int, int]:
    """The bucket holding rank ``rank`` (0-based, in value order) and the ranks before it."""
    before = 0
    for bucket in sorted(histogram):
        if rank < before + histogram[bucket]:
            return bucket, before
        before += histogram[bucket]
    raise Mismatch(rank)


Fractions = Callable[[Hashable], Sequence[float]]  # group -> the fractions wanted of it


def ranges_needed(histograms: Mapping[Hashable, Histogram], fractions: Fractions) -> Ranges:
    """Per group, the buckets whose facts must be read (a bucket one second wide needs none)."""
    needed: Ranges = {}
    for group, histogram in histograms.items():
        n = sum(histogram.values())
        if n <= 0:
            continue
        for fraction in fractions(group):
            _pos, low, high = _ranks(n, fraction)
            for rank in {low, high}:
                bucket, _before = _bucket_at(histogram, rank)
                lo, hi = bounds(bucket)
                if hi - lo > 1:
                    needed.setdefault(group, set()).add((lo, hi))
    return needed


def _value_at(
    histogram: Histogram, values: Mapping[int, int], rank: int
) -> int:  # the value of rank ``rank``
    bucket, before = _bucket_at(histogram, rank)
    lo, hi = bounds(bucket)
    if hi - lo == 1:
        return lo
    inside = sorted((v, c) for v, c in values.items() if lo <= v < hi)
    if sum(c for _v, c in inside) != histogram[bucket]:
        raise Mismatch(bucket)
    offset = rank - before
    for value, count in inside:
        if offset < count:
            return value
        offset -= count
    raise Mismatch(bucket)  # pragma: no cover - the sum above says it is there


def exact_percentiles(
    histograms: Mapping[Hashable, Histogram],
    fractions: Fractions,
    read: Callable[[Ranges], Values],
) -> dict[Hashable, list[float | None]]:
    """``{group: [percentile for each of fractions(group)]}``, as ``percentile_cont`` makes
    them, from each group's histogram and ``read(ranges)``: the facts' values (and counts) in the
    buckets ``ranges`` names, per group (one query for all of them; not called when no bucket
    needs reading). Raises ``Mismatch`` when the two disagree."""
    needed = ranges_needed(histograms, fractions)
    values = read(needed) if needed else {}
    got: dict[Hashable, list[float | None]] = {}
    for group, histogram in histograms.items():
        n = sum(histogram.values())
        if n <= 0:
            continue
        mine = values.get(group, {})
        row: list[float | None] = []
        for fraction in fractions(group):
            pos, low, high = _ranks(n, fraction)
            at_low = float(_value_at(histogram, mine, low))
            at_high = float(_value_at(histogram, mine, high)) if high != low else at_low
            row.append(at_low + (at_high - at_low) * (pos - low))
        got[group] = row
    return got
