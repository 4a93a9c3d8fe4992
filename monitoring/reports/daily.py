# ruff: noqa: S608 - every piece of the SQL text is ours (table and column names from the
# models, the dimensions' constants); every value is a parameter.
"""The dashboard's daily sums (``TicketDayStat``, ``SlaDayStat``): per organisation, per
organisation-local day and dimension, the additive parts of the figures (counts, sums, met and
breached counts), so that a figure over a period reads a few rows per day, not every ticket.

Kept with the facts (``monitoring.reports.rollups``): in the transaction that replaces a batch
of tickets' facts, their old facts are read, and each sum moves by (new - old), in one upsert
per table that adds to the stored value (``INSERT ... ON CONFLICT DO UPDATE SET n = n +
excluded.n``, the same on PostgreSQL and SQLite); the rows are taken in key order so that two
batches never wait on each other in a cycle. ``rebuild_daily`` makes them again from the facts
set-based (``INSERT ... SELECT ... GROUP BY``): the migration that adds them, ``bench/
scale_data.py --rollups-only`` and the ``rebuild_rollups`` command use it.

What they do not hold, and the report still reads from the facts: medians and percentiles
(a percentile over a week is not made of daily ones, and the figures are exact
``percentile_cont`` values), and what depends on the time of the request (a timer still
running past its due time is breached now; the backlog's ages; what is owed now).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection

from monitoring.models import (
    OpenHourStat,
    ResponseDayStat,
    RunningDueStat,
    SlaDayDimension,
    SlaDayStat,
    SlaOutcome,
    TicketDayDimension,
    TicketDayStat,
    TimeDayStat,
)
from monitoring.reports.backlog import OPEN_KEY, OPEN_SUMS, rebuild_open_hours
from monitoring.reports.histograms import TIME_KEY, TIME_SUMS, rebuild_time_days
from monitoring.reports.responsiveness import (
    RESPONSE_KEY,
    RESPONSE_SUMS,
    rebuild_response_days,
)
from monitoring.reports.running import RUNNING_KEY, RUNNING_SUMS, rebuild_running_days
from monitoring.reports.stats import organizations_clause

TICKET_KEY = (
    "organization_id",
    "dimension",
    "day",
    "brand_id",
    "social_account_id",
    "team_id",
    "platform",
    "value",
)
TICKET_SUMS = (
    "tickets",
    "answered",
    "resolved",
    "promises_kept",
    "promises_broken",
    "closed_publicly",
)
SLA_KEY = (
    "organization_id",
    "dimension",
    "day",
    "brand_id",
    "social_account_id",
    "team_id",
    "value",
    "priority",
    "metric",
)
SLA_SUMS = ("total", "met", "breached")

# What the contributions read of a fact (a ``.values()`` row or the new model's attributes).
TICKET_FACT_COLUMNS = (
    "organization_id",
    "brand_id",
    "social_account_id",
    "team_id",
    "agent_id",
    "platform",
    "sentiment",
    "opened_at",
    "opened_day",
    "opened_hour",
    "is_open",
    "first_response_seconds",
    "resolution_seconds",
    "promises_kept",
    "promises_broken",
    "closed_day",
    "closed_publicly",
    "closed_reason",
)
SLA_FACT_COLUMNS = (
    "organization_id",
    "brand_id",
    "social_account_id",
    "team_id",
    "agent_id",
    "priority",
    "metric",
    "started_day",
    "due_at",
    "outcome",
)

Deltas = dict[tuple[Any, ...], list[int]]


def fact_values(obj: Any, columns: Iterable[str]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in columns}


def _add(deltas: Deltas, key: tuple[Any, ...], sums: Iterable[int], sign: int) -> None:
    tally = deltas.get(key)
    values = [sign * n for n in sums]
    if tally is None:
        deltas[key] = values
    else:
        for n, value in enumerate(values):
            tally[n] += value


def add_ticket_fact(deltas: Deltas, f: Mapping[str, Any], sign: int) -> None:
    """One ticket fact's part of every daily row it counts in, times ``sign``."""
    org, brand = f["organization_id"], f["brand_id"]
    account, team = f["social_account_id"] or 0, f["team_id"] or 0
    opened = (
        1,
        int(f["first_response_seconds"] is not None),
        int(f["resolution_seconds"] is not None),
        f["promises_kept"],
        f["promises_broken"],
        0,
    )
    day = f["opened_day"]
    for dimension, platform, value in (
        (TicketDayDimension.OPENED, f["platform"], ""),
        (TicketDayDimension.HOUR, "", str(f["opened_hour"])),
        (TicketDayDimension.SENTIMENT, "", f["sentiment"] or ""),
        (TicketDayDimension.AGENT, "", "" if f["agent_id"] is None else str(f["agent_id"])),
    ):
        _add(
            deltas, (org, str(dimension), day, brand, account, team, platform, value), opened, sign
        )
    if f["closed_day"] is not None:
        closed = (1, 0, 0, 0, 0, int(bool(f["closed_publicly"])))
        key = (org, str(TicketDayDimension.CLOSED), f["closed_day"], brand, account, team, "")
        _add(deltas, (*key, f["closed_reason"] or ""), closed, sign)


def add_sla_fact(deltas: Deltas, f: Mapping[str, Any], sign: int) -> None:
    """One timer fact's part of every daily row it counts in, times ``sign``."""
    sums = (1, int(f["outcome"] == SlaOutcome.MET), int(f["outcome"] == SlaOutcome.BREACHED))
    base = (
        f["organization_id"],
        f["started_day"],
        f["brand_id"],
        f["social_account_id"] or 0,
        f["team_id"] or 0,
    )
    org, day, brand, account, team = base
    target = str(SlaDayDimension.TARGET)
    _add(
        deltas, (org, target, day, brand, account, team, "", f["priority"], f["metric"]), sums, sign
    )
    agent = "" if f["agent_id"] is None else str(f["agent_id"])
    key = (org, str(SlaDayDimension.AGENT), day, brand, account, team, agent, 0, "")
    _add(deltas, key, sums, sign)


UPSERT_CHUNK = 500


def _upsert(table: str, key: tuple[str, ...], sums: tuple[str, ...], deltas: Deltas) -> None:
    """Add ``deltas`` to the stored sums (a row made when missing), in key order."""
    rows = [(*k, *v) for k, v in sorted(deltas.items(), key=lambda kv: _sort_key(kv[0])) if any(v)]
    if not rows:
        return
    columns = (*key, *sums)
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            sql = (
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                + ", ".join([placeholder] * len(chunk))
                + f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
            )
            cursor.execute(sql, [value for row in chunk for value in row])


def _sort_key(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(part) for part in key)


def apply(
    ticket_deltas: Deltas,
    sla_deltas: Deltas,
    time_deltas: Deltas | None = None,
    response_deltas: Deltas | None = None,
    open_deltas: Deltas | None = None,
    running_deltas: Deltas | None = None,
) -> None:
    """The daily sums, the time and responsiveness histograms, the open counts and the running
    timers' counts moved by these deltas (six statements at most, per 500 rows; none for a
    table whose deltas are all zero, such as the histograms and open counts when only timers
    changed)."""
    _upsert(TicketDayStat._meta.db_table, TICKET_KEY, TICKET_SUMS, ticket_deltas)
    _upsert(SlaDayStat._meta.db_table, SLA_KEY, SLA_SUMS, sla_deltas)
    if time_deltas:
        _upsert(TimeDayStat._meta.db_table, TIME_KEY, TIME_SUMS, time_deltas)
    if response_deltas:
        _upsert(ResponseDayStat._meta.db_table, RESPONSE_KEY, RESPONSE_SUMS, response_deltas)
    if open_deltas:
        _upsert(OpenHourStat._meta.db_table, OPEN_KEY, OPEN_SUMS, open_deltas)
    if running_deltas:
        _upsert(RunningDueStat._meta.db_table, RUNNING_KEY, RUNNING_SUMS, running_deltas)


# Rebuild, set-based ------------------------------------------------------------------------------

_OPENED_SUMS = (
    "COUNT(*), COUNT(first_response_seconds), COUNT(resolution_seconds), "
    "SUM(promises_kept), SUM(promises_broken), 0"
)
_GROUP = "organization_id, brand_id, COALESCE(social_account_id, 0), COALESCE(team_id, 0)"


def _ticket_selects(where: str) -> list[str]:
    insert = f"INSERT INTO {{table}} ({', '.join(TICKET_KEY + TICKET_SUMS)}) "
    selects = []
    for dimension, platform, value in (
        (TicketDayDimension.OPENED, "platform", "''"),
        (TicketDayDimension.HOUR, "''", "CAST(opened_hour AS TEXT)"),
        (TicketDayDimension.SENTIMENT, "''", "COALESCE(sentiment, '')"),
        (TicketDayDimension.AGENT, "''", "COALESCE(CAST(agent_id AS TEXT), '')"),
    ):
        selects.append(
            insert + f"SELECT organization_id, '{dimension}', opened_day, brand_id, "
            f"COALESCE(social_account_id, 0), COALESCE(team_id, 0), {platform}, {value}, "
            f"{_OPENED_SUMS} FROM {{facts}} WHERE 1 = 1 {where} "
            f"GROUP BY {_GROUP}, opened_day"
            + "".join(f", {e}" for e in (platform, value) if e != "''")
        )
    selects.append(
        insert + f"SELECT organization_id, '{TicketDayDimension.CLOSED}', closed_day, brand_id, "
        "COALESCE(social_account_id, 0), COALESCE(team_id, 0), '', COALESCE(closed_reason, ''), "
        "COUNT(*), 0, 0, 0, 0, SUM(CASE WHEN closed_publicly THEN 1 ELSE 0 END) "
        f"FROM {{facts}} WHERE closed_day IS NOT NULL {where} "
        f"GROUP BY {_GROUP}, closed_day, COALESCE(closed_reason, '')"
    )
    return selects


def _sla_selects(where: str) -> list[str]:
    insert = f"INSERT INTO {{table}} ({', '.join(SLA_KEY + SLA_SUMS)}) "
    sums = (
        f"COUNT(*), SUM(CASE WHEN outcome = '{SlaOutcome.MET}' THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN outcome = '{SlaOutcome.BREACHED}' THEN 1 ELSE 0 END)"
    )
    return [
        insert + f"SELECT organization_id, '{SlaDayDimension.TARGET}', started_day, brand_id, "
        "COALESCE(social_account_id, 0), COALESCE(team_id, 0), '', priority, metric, "
        f"{sums} FROM {{facts}} WHERE 1 = 1 {where} "
        f"GROUP BY {_GROUP}, started_day, priority, metric",
        insert + f"SELECT organization_id, '{SlaDayDimension.AGENT}', started_day, brand_id, "
        "COALESCE(social_account_id, 0), COALESCE(team_id, 0), "
        "COALESCE(CAST(agent_id AS TEXT), ''), 0, '', "
        f"{sums} FROM {{facts}} WHERE 1 = 1 {where} "
        f"GROUP BY {_GROUP}, started_day, COALESCE(CAST(agent_id AS TEXT), '')",
    ]


def rebuild_daily(
    cursor: Any = None,
    *,
    organization_ids: Iterable[int] | None = None,
    tables: Mapping[str, str] | None = None,
    times: bool = True,
) -> dict[str, int]:
    """Every daily sum (of these organisations) made again from the facts, in seven
    statements of ``INSERT ... SELECT ... GROUP BY`` (and two deletes), and with ``times`` the
    time histograms (``TimeDayStat``: two more and a delete; ``histograms.rebuild_time_days``)
    the responsiveness histograms (``ResponseDayStat``: one more and a delete;
    ``responsiveness.rebuild_response_days``) and the open counts (``OpenHourStat``: one more
    and a delete; ``backlog.rebuild_open_hours``) and the running timers' counts
    (``RunningDueStat``: one more and a delete; ``running.rebuild_running_days``).
    ``tables`` names the tables (for a migration's historical models; the defaults
    otherwise)."""
    from monitoring.models import SlaFact, TicketFact

    names = {
        "ticket_facts": TicketFact._meta.db_table,
        "sla_facts": SlaFact._meta.db_table,
        "ticket_days": TicketDayStat._meta.db_table,
        "sla_days": SlaDayStat._meta.db_table,
        **(tables or {}),
    }
    clause = organizations_clause(organization_ids)
    if clause is None:
        return {names["ticket_days"]: 0, names["sla_days"]: 0}
    where, params = clause
    counts = {names["ticket_days"]: 0, names["sla_days"]: 0}
    own = cursor is None
    cur = connection.cursor() if own else cursor
    try:
        for table, facts, selects in (
            (names["ticket_days"], names["ticket_facts"], _ticket_selects(where)),
            (names["sla_days"], names["sla_facts"], _sla_selects(where)),
        ):
            cur.execute(f"DELETE FROM {table} WHERE 1 = 1 {where}", params)
            for sql in selects:
                cur.execute(sql.format(table=table, facts=facts), params)
                counts[table] += cur.rowcount
        if times:
            time_table = names.get("time_days", TimeDayStat._meta.db_table)
            counts[time_table] = rebuild_time_days(
                cur,
                organization_ids=None if organization_ids is None else params,
                tables={"ticket_facts": names["ticket_facts"], "time_days": time_table},
            )
            response_table = names.get("response_days", ResponseDayStat._meta.db_table)
            counts[response_table] = rebuild_response_days(
                cur,
                organization_ids=None if organization_ids is None else params,
                tables={"ticket_facts": names["ticket_facts"], "response_days": response_table},
            )
            open_table = names.get("open_hours", OpenHourStat._meta.db_table)
            counts[open_table] = rebuild_open_hours(
                cur,
                organization_ids=None if organization_ids is None else params,
                tables={"ticket_facts": names["ticket_facts"], "open_hours": open_table},
            )
            running_table = names.get("running_days", RunningDueStat._meta.db_table)
            counts[running_table] = rebuild_running_days(
                cur,
                organization_ids=None if organization_ids is None else params,
                tables={"sla_facts": names["sla_facts"], "running_days": running_table},
            )
    finally:
        if own:
            cur.close()
    return counts
