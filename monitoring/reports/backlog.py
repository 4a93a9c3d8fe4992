# ruff: noqa: S608 - every piece of the SQL text is ours (table and column names from the
# models); every value is a parameter.
"""The open backlog, counted (``OpenHourStat``): per organisation, hour a ticket opened (whole
hours since the epoch, UTC), brand, handle, team and assignee, how many are open now.

Kept like the daily sums: per batch of facts, new - old in one upsert
(``monitoring.reports.daily.apply``; a ticket that closes, reopens, moves team or assignee
moves its count), and made again set-based (``rebuild_open_hours``). The backlog's ages are as
of the request (under 1 h ... over 3 days): an hour that no bucket's edge cuts lies wholly in
one bucket, so its count is read here; the facts are read only for the hours that hold an edge
(at most five). A team or user deleted: its rows are re-keyed to none in the deleting
transaction (``monitoring.reports.rekey``), as its tickets' facts go to none (``SET_NULL``), so
the next refresh of such a ticket subtracts its old count from the row it is in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import BigIntegerField, Case, Count, F, Q, Sum, Value, When

from monitoring.models import OpenHourStat, TicketFact
from monitoring.reports.filters import ReportFilter
from monitoring.reports.stats import epoch_units_sql, organizations_clause

OPEN_KEY = ("organization_id", "hour", "brand_id", "social_account_id", "team_id", "agent_id")
OPEN_SUMS = ("tickets",)

Deltas = dict[tuple[Any, ...], list[int]]


def hour_of(at: datetime) -> int:
    """Whole hours since the epoch (UTC) of an aware datetime."""
    return int(at.timestamp()) // 3600


def hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, tz=UTC)


def add_ticket_fact(deltas: Deltas, f: Mapping[str, Any], sign: int) -> None:
    """One ticket fact's part of the open counts, times ``sign`` (none when closed)."""
    if not f["is_open"]:
        return
    key = (
        f["organization_id"],
        hour_of(f["opened_at"]),
        f["brand_id"],
        f["social_account_id"] or 0,
        f["team_id"] or 0,
        f["agent_id"] or 0,
    )
    tally = deltas.setdefault(key, [0])
    tally[0] += sign


def rebuild_open_hours(
    cursor: Any,
    *,
    organization_ids: Iterable[int] | None = None,
    tables: Mapping[str, str] | None = None,
) -> int:
    """Every row (of these organisations) made again from the facts: a delete and one
    ``INSERT ... SELECT ... GROUP BY``. Returns the rows made."""
    names = {
        "ticket_facts": TicketFact._meta.db_table,
        "open_hours": OpenHourStat._meta.db_table,
        **(tables or {}),
    }
    clause = organizations_clause(organization_ids)
    if clause is None:
        return 0
    where, params = clause
    table, facts = names["open_hours"], names["ticket_facts"]
    cursor.execute(f"DELETE FROM {table} WHERE 1 = 1 {where}", params)
    hour = epoch_units_sql("opened_at", 3600)
    dims = "COALESCE(social_account_id, 0), COALESCE(team_id, 0), COALESCE(agent_id, 0)"
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(OPEN_KEY + OPEN_SUMS)}) "
        f"SELECT organization_id, {hour}, brand_id, {dims}, COUNT(*) FROM {facts} "
        f"WHERE is_open {where} GROUP BY organization_id, {hour}, brand_id, {dims}",
        params,
    )
    return int(cursor.rowcount)


# The figure ------------------------------------------------------------------------------------


def open_groups(filt: ReportFilter) -> list[dict[str, Any]]:
    """The open backlog per assignee and team (``agent_id``, ``team_id``: None for none) with
    its age buckets as of ``filt.now`` (``total``, ``b0`` ...), as ``FactReport`` counts them
    from the facts, in one statement: a ``UNION ALL`` of the counts of every hour no bucket's
    edge cuts (``open_hour_stat_open_idx``) and the open facts of the hours that hold an edge
    (``ticket_fact_backlog_idx``, a range per hour), counted per bucket in SQL."""
    from monitoring.reports.figures import AGE_BUCKETS

    now = filt.now
    edges = [now - timedelta(hours=low) for _label, low, _high in AGE_BUCKETS]
    edges += [now - timedelta(hours=high) for _label, _low, high in AGE_BUCKETS if high]
    cut = sorted({hour_of(edge) for edge in edges})
    whole = (
        OpenHourStat.objects.filter(filt.dimensions(), organization=filt.organization)
        .filter(tickets__gt=0)
        .exclude(hour__in=cut)
        .annotate(o_facts=Value(False), o_key=F("hour"))
        .values_list("o_facts", "o_key", "agent_id", "team_id")
        .annotate(n=Sum("tickets"))
        .order_by()
    )
    bucket = Case(
        When(opened_at__gt=now, then=Value(-1)),  # opened after the request: in no bucket
        *(
            When(opened_at__gt=now - timedelta(hours=high), then=Value(n))
            for n, (_label, _low, high) in enumerate(AGE_BUCKETS)
            if high is not None
        ),
        default=Value(len(AGE_BUCKETS) - 1),
        output_field=BigIntegerField(),
    )
    in_cut = Q(pk__in=[])
    for hour in cut:
        in_cut |= Q(opened_at__gte=hour_start(hour), opened_at__lt=hour_start(hour + 1))
    edge = (
        TicketFact.objects.filter(
            filt.dimensions(), in_cut, organization=filt.organization, is_open=True
        )
        .annotate(o_facts=Value(True), o_key=bucket, o_agent=F("agent_id"), o_team=F("team_id"))
        .values_list("o_facts", "o_key", "o_agent", "o_team")
        .annotate(n=Count("pk"))
        .order_by()
    )
    groups: dict[tuple[int | None, int | None], dict[str, Any]] = {}
    names = ["total", *(f"b{n}" for n in range(len(AGE_BUCKETS)))]
    buckets_of_hours: dict[int, int] = {}  # an hour no edge cuts -> its one bucket
    for from_facts, key, agent_id, team_id, n in whole.union(edge, all=True):
        if not from_facts:
            agent_id, team_id = agent_id or None, team_id or None
            hour = key
            key = buckets_of_hours.get(hour)
            if key is None:
                key = buckets_of_hours[hour] = _bucket_of(hour_start(hour), now)
        group = groups.setdefault(
            (agent_id, team_id),
            {"agent_id": agent_id, "team_id": team_id, **dict.fromkeys(names, 0)},
        )
        group["total"] += n
        if key >= 0:
            group[f"b{key}"] += n
    return list(groups.values())


def _bucket_of(opened_at: datetime, now: datetime) -> int:
    """The age bucket of a ticket opened then, as of ``now`` (-1: opened after it)."""
    from monitoring.reports.figures import AGE_BUCKETS

    if opened_at > now:
        return -1
    for n, (_label, _low, high) in enumerate(AGE_BUCKETS):
        if high is not None and opened_at > now - timedelta(hours=high):
            return n
    return len(AGE_BUCKETS) - 1
