# ruff: noqa: S608 - every piece of the SQL text is ours (table and column names from the
# models, the reasons are constants, the buckets' bounds are integers we make); every value is
# a parameter.
"""The responsiveness badge's last 7 days from day histograms (``ResponseDayStat``).

The figure (``FactReport.responsiveness``, the reference) counts per handle the tickets opened
since ``now - 7 days`` that are on a handle and were not closed as not owed (spam, duplicate,
merged): how many, how many answered, the p90 of their first response (``percentile_cont``) and
the sum and count of the first responses at or under it. Read per ticket, that is every fact of
the last 7 days, twice. Here: the whole days after the first (local) day from the histogram
rows (a few per day and handle), the partial first day from its facts (opened at or after the
cut), and the exact p90 from the facts of the bucket that holds its rank
(``histograms.exact_percentiles``); the sum under the cut-off is the sums of the buckets below
it plus the values read in its bucket. The same numbers on every backend; ``None`` (the caller
reads the facts) when the reads disagree (a write committed between them).

Kept like the time histograms: per batch of facts, new - old in one upsert
(``monitoring.reports.daily.apply``), and made again set-based (``rebuild_response_days``). The
key has no team or assignee (the figure has neither), and a handle with tickets cannot be
deleted (``Ticket.social_account`` is protected), so no row is left keyed on a vanished id; a
brand's rows go with it (cascade). A ticket that moves handle or brand, reopens, closes as
spam or is answered moves its count with the (new - old) of its fact.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from datetime import date, timedelta
from typing import Any, cast

from django.db.models import Count, F, QuerySet, Sum, Value

from monitoring.models import ResponseDayStat, TicketFact
from monitoring.reports import histograms
from monitoring.reports.filters import ReportFilter
from monitoring.reports.stats import organizations_clause
from tickets.closing import NOT_OWED_REASONS

UNANSWERED = -1  # the bucket of the tickets with no first response yet
RESPONSE_KEY = ("organization_id", "day", "brand_id", "social_account_id", "bucket")
RESPONSE_SUMS = ("tickets", "seconds")
P90 = 0.9

Deltas = dict[tuple[Any, ...], list[int]]
Counts = dict[int, dict[str, Any]]  # handle -> total, answered, fast_sum, fast_n


def counted(f: Mapping[str, Any]) -> bool:
    """Whether the badge counts this ticket fact (on a handle, not closed as not owed)."""
    return f["social_account_id"] is not None and f["closed_reason"] not in NOT_OWED_REASONS


def add_ticket_fact(deltas: Deltas, f: Mapping[str, Any], sign: int) -> None:
    """One ticket fact's part of its histogram row, times ``sign`` (none if not counted)."""
    if not counted(f):
        return
    seconds = f["first_response_seconds"]
    bucket = UNANSWERED if seconds is None else histograms.bucket_of(seconds)
    key = (f["organization_id"], f["opened_day"], f["brand_id"], f["social_account_id"], bucket)
    tally = deltas.setdefault(key, [0, 0])
    tally[0] += sign
    tally[1] += sign * (seconds or 0)


def rebuild_response_days(
    cursor: Any,
    *,
    organization_ids: Iterable[int] | None = None,
    tables: Mapping[str, str] | None = None,
) -> int:
    """Every row (of these organisations) made again from the facts: a delete and one
    ``INSERT ... SELECT ... GROUP BY``. Returns the rows made."""
    names = {
        "ticket_facts": TicketFact._meta.db_table,
        "response_days": ResponseDayStat._meta.db_table,
        **(tables or {}),
    }
    clause = organizations_clause(organization_ids)
    if clause is None:
        return 0
    where, params = clause
    table, facts = names["response_days"], names["ticket_facts"]
    cursor.execute(f"DELETE FROM {table} WHERE 1 = 1 {where}", params)
    bucket = f"COALESCE({histograms.bucket_sql('first_response_seconds')}, {UNANSWERED})"
    reasons = ", ".join(["%s"] * len(NOT_OWED_REASONS))
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(RESPONSE_KEY + RESPONSE_SUMS)}) "
        f"SELECT organization_id, opened_day, brand_id, social_account_id, {bucket}, "
        f"COUNT(*), COALESCE(SUM(first_response_seconds), 0) FROM {facts} "
        f"WHERE social_account_id IS NOT NULL AND closed_reason NOT IN ({reasons}) {where} "
        f"GROUP BY organization_id, opened_day, brand_id, social_account_id, {bucket}",
        [*NOT_OWED_REASONS, *params],
    )
    return int(cursor.rowcount)


# The figure ------------------------------------------------------------------------------------


def _counted_facts(filt: ReportFilter) -> QuerySet[TicketFact]:
    facts = TicketFact.objects.filter(
        organization=filt.organization, social_account__isnull=False
    ).exclude(closed_reason__in=NOT_OWED_REASONS)
    if filt.brand_id:
        facts = facts.filter(brand_id=filt.brand_id)
    if filt.channel_id:
        facts = facts.filter(social_account_id=filt.channel_id)
    return facts


def window_counts(filt: ReportFilter, days: int) -> Counts | None:
    """Per handle, over the tickets opened since ``filt.now - days``: ``total``, ``answered``,
    ``fast_sum`` and ``fast_n`` (the first responses at or under the handle's p90), as the
    facts give them; None if the histogram and the facts read disagreed."""
    since = filt.now - timedelta(days=days)
    first_day = since.astimezone(filt.zone).date()
    # Per handle: bucket -> [tickets, seconds], from the whole days' histogram rows and the
    # partial first day's facts, in one statement (a ``UNION ALL``; ``time`` is the bucket of
    # a histogram row and the first response itself, or NULL, of the facts).
    rows = ResponseDayStat.objects.filter(organization=filt.organization, day__gt=first_day)
    if filt.brand_id:
        rows = rows.filter(brand_id=filt.brand_id)
    if filt.channel_id:
        rows = rows.filter(social_account_id=filt.channel_id)
    whole_days = (
        rows.annotate(r_facts=Value(False), r_time=F("bucket"))
        .values_list("r_facts", "day", "social_account_id", "r_time")
        .annotate(n=Sum("tickets"), s=Sum("seconds"))
        .filter(n__gt=0)
        .order_by()
    )
    first = (
        _counted_facts(filt)
        .filter(opened_day=first_day, opened_at__gte=since)
        .annotate(r_facts=Value(True), r_time=F("first_response_seconds"))
        .values_list("r_facts", "opened_day", "social_account_id", "r_time")
        .annotate(n=Count("pk"), s=Sum("first_response_seconds"))
        .order_by()
    )
    sums: dict[int, dict[int, list[int]]] = {}
    first_values: histograms.Values = {}  # the first day's times, each with its count
    whole = set()
    for from_facts, day, account, time, n, seconds in whole_days.union(first, all=True):
        if from_facts:
            bucket = UNANSWERED if time is None else histograms.bucket_of(time)
            if time is not None:
                first_values.setdefault(account, {})[time] = n
        else:
            whole.add(day)
            bucket = time
        tally = sums.setdefault(account, {}).setdefault(bucket, [0, 0])
        tally[0] += n
        tally[1] += seconds or 0
    hists: dict[Hashable, histograms.Histogram] = {
        account: {b: t[0] for b, t in buckets.items() if b != UNANSWERED and t[0]}
        for account, buckets in sums.items()
    }

    values: histograms.Values = {}

    def read(ranges: histograms.Ranges) -> histograms.Values:
        # The whole days' times in those buckets from the facts, the first day's as read.
        values.update(_read_buckets(filt, sorted(whole), ranges) if whole else {})
        for account, spans in ranges.items():
            mine = values.setdefault(account, {})
            for value, n in first_values.get(cast(int, account), {}).items():
                if any(low <= value < high for low, high in spans):
                    mine[value] = mine.get(value, 0) + n
        return values

    try:
        cutoffs = histograms.exact_percentiles(hists, lambda _group: [P90], read)
    except histograms.Mismatch:
        return None
    got: Counts = {}
    for account, buckets in sums.items():
        total = sum(t[0] for t in buckets.values())
        answered = total - buckets.get(UNANSWERED, [0, 0])[0]
        if total <= 0:
            continue
        fast_sum = fast_n = 0
        if account in cutoffs:
            cutoff = cast(float, cutoffs[account][0])
            mine = values.get(account, {})
            for bucket, (n, seconds) in buckets.items():
                if bucket == UNANSWERED or not n:
                    continue
                low, high = histograms.bounds(bucket)
                if high - 1 <= cutoff:  # every time in it is at or under the cut-off
                    fast_sum, fast_n = fast_sum + seconds, fast_n + n
                elif low <= cutoff:  # the cut-off inside it: only its bucket can be read
                    inside = [(v, c) for v, c in mine.items() if low <= v < high and v <= cutoff]
                    fast_sum += sum(v * c for v, c in inside)
                    fast_n += sum(c for _v, c in inside)
        got[account] = {
            "total": total,
            "answered": answered,
            "fast_sum": fast_sum if fast_n else None,
            "fast_n": fast_n,
        }
    return got


def _read_buckets(
    filt: ReportFilter, days: list[date], ranges: histograms.Ranges
) -> histograms.Values:
    """The first responses (and how many of each) on these whole days in the buckets
    ``ranges`` names per handle, in one statement: a ``UNION ALL`` of one grouped read per
    handle and bucket, each a time range of ``ticket_fact_first_response_idx`` on each day,
    index-only (the handle and the closing reason are in the index)."""
    selects: list[QuerySet[Any, Any]] = []
    for account, spans in sorted(ranges.items(), key=lambda item: cast(int, item[0])):
        for low, high in sorted(spans):
            selects.append(
                _counted_facts(filt)
                .filter(
                    opened_day__in=days,
                    social_account_id=cast(int, account),
                    first_response_seconds__gte=low,
                    first_response_seconds__lt=high,
                )
                .values_list("social_account_id", "first_response_seconds")
                .annotate(n=Count("pk"))
                .order_by()
            )
    query = selects[0].union(*selects[1:], all=True) if len(selects) > 1 else selects[0]
    values: histograms.Values = {}
    for account, value, n in query:
        got = values.setdefault(account, {})
        got[value] = got.get(value, 0) + n
    return values
