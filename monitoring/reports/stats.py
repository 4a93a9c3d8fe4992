"""Medians and percentiles computed by the database, per group.

PostgreSQL: ``percentile_cont(p) WITHIN GROUP (ORDER BY value)``. SQLite has no such aggregate,
so the same continuous percentile (linear interpolation between the two nearest ranks, as
``percentile_cont`` does) is taken with window functions: each row's rank and its group's size,
then the two rows either side of ``p * (n - 1)``. Either way one query, and only one number per
group and fraction leaves the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Expression, F, FloatField, Func, QuerySet
from django.db.models.sql.compiler import SQLCompiler

# The group key used when the whole queryset is one group.
ALL = "__all__"


class SecondsBetween(Func):
    """``end - start`` in seconds (a float), on PostgreSQL and on SQLite, for a percentile of
    a time taken (``percentiles`` over an ``annotate``)."""

    output_field = FloatField()

    def __init__(self, end: Expression | str, start: Expression | str) -> None:
        super().__init__(end, start)

    def as_postgresql(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="EXTRACT(epoch FROM %(expressions)s)::float8",
            arg_joiner=" - ",
            **extra,
        )

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra: Any) -> Any:
        # Django keeps a datetime as text, "YYYY-MM-DD HH:MM:SS[.ffffff]": whole seconds by
        # strftime('%s'), then the fractions (from character 20) apart, so no microsecond is
        # lost to a float of the whole epoch.
        (end, end_params), (start, start_params) = (
            compiler.compile(e) for e in self.get_source_expressions()
        )
        sql = (
            f"((strftime('%%s', {end}) - strftime('%%s', {start}))"
            f" + (CAST(substr({end}, 20) AS REAL) - CAST(substr({start}, 20) AS REAL)))"
        )
        return sql, (*end_params, *start_params, *end_params, *start_params)


def percentiles(
    queryset: QuerySet[Any], value: str, fractions: Sequence[float], *, group: str | None = None
) -> dict[Any, list[float | None]]:
    """``{group value: [percentile for each fraction]}`` of ``value`` over ``queryset`` (rows
    whose value is NULL left out). Without ``group``, the one key is ``ALL``."""
    for fraction in fractions:
        if not 0 <= fraction <= 1:
            raise ValueError(f"A percentile is a fraction from 0 to 1, not {fraction!r}.")
    named = {"report_v": F(value)} | ({"report_g": F(group)} if group else {})
    inner = (
        queryset.filter(**{f"{value}__isnull": False})
        .annotate(**named)
        .values_list(*(["report_g", "report_v"] if group else ["report_v"]))
        .order_by()
    )
    sql, params = inner.query.sql_with_params()
    key = "s.report_g" if group else f"'{ALL}'"
    grouping = "s.report_g" if group else "1"
    if connection.vendor == "postgresql":
        aggregates = ", ".join(
            f"percentile_cont({float(f)}) WITHIN GROUP (ORDER BY s.report_v)" for f in fractions
        )
        query = f"SELECT {key}, {aggregates} FROM ({sql}) AS s GROUP BY {grouping}"  # noqa: S608
    else:
        partition = "t.report_g" if group else "1"
        ranked = (
            f"SELECT t.*, ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY t.report_v) - 1"  # noqa: S608
            f" AS i, COUNT(*) OVER (PARTITION BY {partition}) AS n FROM ({sql}) AS t"
        )
        parts = []
        for f in fractions:
            pos = f"({float(f)} * (s.n - 1))"
            low = f"CAST({pos} AS INTEGER)"
            high = f"({low} + ({pos} > {low}))"
            at_low = f"MAX(CASE WHEN s.i = {low} THEN s.report_v END)"
            at_high = f"MAX(CASE WHEN s.i = {high} THEN s.report_v END)"
            parts.append(f"{at_low} + ({at_high} - {at_low}) * MAX({pos} - {low})")
        query = f"SELECT {key}, {', '.join(parts)} FROM ({ranked}) AS s GROUP BY {grouping}"  # noqa: S608
    # Every piece of the text is ours: Django's compiled SQL (its values stay in ``params``),
    # fixed aliases, and fractions checked to be numbers from 0 to 1.
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    return {row[0]: [float(x) if x is not None else None for x in row[1:]] for row in rows}


# The roll-ups' rebuilds (``rebuild_*``): shared SQL pieces --------------------------------------


def organizations_clause(organization_ids: Iterable[int] | None) -> tuple[str, list[int]] | None:
    """``AND organization_id IN (…)`` and its parameters, for a rebuild of these organisations
    (``""`` and none: every organisation); ``None`` for an empty list (nothing to rebuild)."""
    if organization_ids is None:
        return "", []
    ids = [int(pk) for pk in organization_ids]
    if not ids:
        return None
    return "AND organization_id IN (" + ", ".join(["%s"] * len(ids)) + ")", ids


def epoch_units_sql(column: str, seconds: int) -> str:
    """Whole ``seconds``-long units since the epoch of a UTC time column, in SQL (an hour's or
    a day's number); SQLite stores the times as UTC text."""
    if connection.vendor == "postgresql":
        return f"CAST(floor(EXTRACT(epoch FROM {column}) / {seconds}) AS bigint)"
    return f"(CAST(strftime('%%s', {column}) AS INTEGER) / {seconds})"
