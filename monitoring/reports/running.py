# ruff: noqa: S608 - every piece of the SQL text is ours (table and column names from the
# models, the outcome a constant); every value is a parameter.
"""The SLA timers still running, counted (``RunningDueStat``): per organisation, UTC day they
fall due (whole days since the epoch), local day they started, priority, target, brand,
handle, team and assignee.

A timer running past its due time is breached as of the request, which the daily sums cannot
know. Here: every day before the request's (UTC) day is wholly past, so its running timers are
read from these counts; today's from the facts, those due from midnight to the request
(``sla_fact_running_due_idx``: a range). Kept like the daily sums: per batch of facts, new - old
in one upsert (``monitoring.reports.daily.apply``: a timer that is met, breached, paused or
moved to another ticket's team moves its count), and made again set-based
(``rebuild_running_days``). A team or user deleted: its rows are re-keyed to none in the
deleting transaction (``monitoring.reports.rekey``), with the daily sums' and histograms'."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, F, Sum, Value

from monitoring.models import RunningDueStat, SlaFact, SlaOutcome
from monitoring.reports.filters import ReportFilter
from monitoring.reports.stats import epoch_units_sql, organizations_clause

RUNNING_KEY = (
    "organization_id",
    "due_day",
    "started_day",
    "priority",
    "metric",
    "brand_id",
    "social_account_id",
    "team_id",
    "agent_id",
)
RUNNING_SUMS = ("timers",)
DAY = 86400

Deltas = dict[tuple[Any, ...], list[int]]


def day_of(at: datetime) -> int:
    """Whole days since the epoch (UTC) of an aware datetime."""
    return int(at.timestamp()) // DAY


def add_sla_fact(deltas: Deltas, f: Mapping[str, Any], sign: int) -> None:
    """One timer fact's part of the running counts, times ``sign`` (none unless running)."""
    if f["outcome"] != SlaOutcome.RUNNING:
        return
    key = (
        f["organization_id"],
        day_of(f["due_at"]),
        f["started_day"],
        f["priority"],
        f["metric"],
        f["brand_id"],
        f["social_account_id"] or 0,
        f["team_id"] or 0,
        f["agent_id"] or 0,
    )
    tally = deltas.setdefault(key, [0])
    tally[0] += sign


def rebuild_running_days(
    cursor: Any,
    *,
    organization_ids: Iterable[int] | None = None,
    tables: Mapping[str, str] | None = None,
) -> int:
    """Every row (of these organisations) made again from the timer facts: a delete and one
    ``INSERT ... SELECT ... GROUP BY``. Returns the rows made."""
    names = {
        "sla_facts": SlaFact._meta.db_table,
        "running_days": RunningDueStat._meta.db_table,
        **(tables or {}),
    }
    clause = organizations_clause(organization_ids)
    if clause is None:
        return 0
    where, params = clause
    table, facts = names["running_days"], names["sla_facts"]
    cursor.execute(f"DELETE FROM {table} WHERE 1 = 1 {where}", params)
    due_day = epoch_units_sql("due_at", DAY)
    columns = (
        f"organization_id, {due_day}, started_day, priority, metric, brand_id, "
        "COALESCE(social_account_id, 0), COALESCE(team_id, 0), COALESCE(agent_id, 0)"
    )
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(RUNNING_KEY + RUNNING_SUMS)}) "
        f"SELECT {columns}, COUNT(*) FROM {facts} "
        f"WHERE outcome = '{SlaOutcome.RUNNING.value}' {where} GROUP BY {columns}",
        params,
    )
    return int(cursor.rowcount)


# The figure ------------------------------------------------------------------------------------

GROUP = ("started_day", "priority", "metric", "agent_id", "team_id")


def running_late(filt: ReportFilter) -> list[dict[str, Any]]:
    """The period's timers still running past ``filt.now``, counted per day started, priority,
    target, agent and team (None for none), as ``Report`` read them from the facts, in one
    statement: a ``UNION ALL`` of the counts of the days before today (UTC) and the facts due
    today before the request."""
    today = day_of(filt.now)
    midnight = datetime.fromtimestamp(today * DAY, tz=UTC)
    counted = (
        RunningDueStat.objects.filter(
            filt.dimensions(),
            organization=filt.organization,
            started_day__gte=filt.start,
            started_day__lte=filt.end,
            timers__gt=0,
            due_day__lt=today,
        )
        .annotate(r_facts=Value(False))
        .values_list("r_facts", *GROUP)
        .annotate(n=Sum("timers"))
        .order_by()
    )
    due_today = (
        SlaFact.objects.filter(
            filt.dimensions(),
            organization=filt.organization,
            started_day__gte=filt.start,
            started_day__lte=filt.end,
            outcome=SlaOutcome.RUNNING,
            due_at__gte=min(midnight, filt.now),
            due_at__lt=filt.now,
        )
        .annotate(r_facts=Value(True), r_agent=F("agent_id"), r_team=F("team_id"))
        .values_list("r_facts", "started_day", "priority", "metric", "r_agent", "r_team")
        .annotate(n=Count("pk"))
        .order_by()
    )
    got: dict[tuple[Any, ...], dict[str, Any]] = {}
    for from_facts, day, priority, metric, agent_id, team_id, n in counted.union(
        due_today, all=True
    ):
        if not from_facts:
            agent_id, team_id = agent_id or None, team_id or None
        key = (day, priority, metric, agent_id, team_id)
        row = got.setdefault(key, {**dict(zip(GROUP, key, strict=True)), "n": 0})
        row["n"] += n
    return list(got.values())
