# ruff: noqa: S608 - every piece of the SQL text is ours (table and column names from the
# models, the dimension a constant); every value is a parameter.
"""A deleted team or user re-keyed to none in the roll-ups, in the deleting transaction.

The facts' team and assignee are foreign keys (``SET_NULL``); the roll-ups keep plain ids (0, or
"" in the daily sums' ``agent`` value, for none) so that no key is NULL. Without this, the rows
of a deleted team or user kept its id while its tickets' facts went to none: the next refresh of
such a ticket (closed, answered, reassigned, breached) subtracted its old fact under none, so the
old id's row stayed +1 and none's went to -1, and the readers that count only rows above zero
(the open backlog, the timers running past due) counted the +1 for ever.

Here, on Django's delete of a ``Team`` or a ``User`` (``post_delete``: the service, the admin and
a queryset's delete all send it, inside the delete's own transaction, after the ``SET_NULL``
updates), every roll-up row keyed by that id is added into the row of the same key with none in
its place (``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE SET n = n + excluded.n``,
the same on PostgreSQL and SQLite) and then deleted: two statements per table. Afterwards the
rows equal the ones ``rebuild_report_days`` makes from the facts. ``ResponseDayStat`` has no
team or assignee in its key. Monitoring listens to accounts; accounts never imports monitoring.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import post_delete

from careinbox.accounts.models import Team
from monitoring.models import (
    OpenHourStat,
    RunningDueStat,
    SlaDayDimension,
    SlaDayStat,
    TicketDayDimension,
    TicketDayStat,
    TimeDayStat,
)
from monitoring.reports.backlog import OPEN_KEY, OPEN_SUMS
from monitoring.reports.daily import SLA_KEY, SLA_SUMS, TICKET_KEY, TICKET_SUMS
from monitoring.reports.histograms import TIME_KEY, TIME_SUMS
from monitoring.reports.running import RUNNING_KEY, RUNNING_SUMS

# (model, key, sums, the column that holds the id, the dimension whose rows hold it or None,
# what none is in that column).
Spec = tuple[Any, tuple[str, ...], tuple[str, ...], str, str | None, int | str]

TEAM_KEYED: list[Spec] = [
    (TicketDayStat, TICKET_KEY, TICKET_SUMS, "team_id", None, 0),
    (SlaDayStat, SLA_KEY, SLA_SUMS, "team_id", None, 0),
    (TimeDayStat, TIME_KEY, TIME_SUMS, "team_id", None, 0),
    (OpenHourStat, OPEN_KEY, OPEN_SUMS, "team_id", None, 0),
    (RunningDueStat, RUNNING_KEY, RUNNING_SUMS, "team_id", None, 0),
]
AGENT_KEYED: list[Spec] = [
    # The daily sums' assignee is the ``value`` of their ``agent`` dimension, as text.
    (TicketDayStat, TICKET_KEY, TICKET_SUMS, "value", str(TicketDayDimension.AGENT), ""),
    (SlaDayStat, SLA_KEY, SLA_SUMS, "value", str(SlaDayDimension.AGENT), ""),
    (TimeDayStat, TIME_KEY, TIME_SUMS, "agent_id", None, 0),
    (OpenHourStat, OPEN_KEY, OPEN_SUMS, "agent_id", None, 0),
    (RunningDueStat, RUNNING_KEY, RUNNING_SUMS, "agent_id", None, 0),
]


def _rekey(cursor: Any, spec: Spec, old: int, organization_id: int | None) -> int:
    """Merge the rows keyed by ``old`` into the rows keyed by none; returns the rows moved."""
    model, key, sums, column, dimension, none = spec
    table = model._meta.db_table
    where = f"{column} = %s"
    params: list[Any] = [str(old) if isinstance(none, str) else old]
    if dimension is not None:
        where += " AND dimension = %s"
        params.append(dimension)
    if organization_id is not None:
        where += " AND organization_id = %s"
        params.append(organization_id)
    others = [c for c in key if c != column]
    selected = ", ".join("%s" if c == column else c for c in key)
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in sums)
    # SQLite needs the WHERE before an upsert's ON CONFLICT (it is there); in key order, as the
    # roll-up writers take their rows.
    cursor.execute(
        f"INSERT INTO {table} ({', '.join((*key, *sums))}) "
        f"SELECT {selected}, {', '.join(f'SUM({c})' for c in sums)} FROM {table} "
        f"WHERE {where} GROUP BY {', '.join(others)} ORDER BY {', '.join(others)} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}",
        [none, *params],
    )
    cursor.execute(f"DELETE FROM {table} WHERE {where}", params)
    return int(cursor.rowcount)


def rekey_team(team_id: int, *, organization_id: int | None = None) -> int:
    """Every roll-up row of this team re-keyed to no team. Returns the rows moved."""
    with transaction.atomic(), connection.cursor() as cursor:
        return sum(_rekey(cursor, spec, team_id, organization_id) for spec in TEAM_KEYED)


def rekey_user(user_id: int) -> int:
    """Every roll-up row of this assignee re-keyed to none (in every organisation: a user may
    belong to several). Returns the rows moved."""
    with transaction.atomic(), connection.cursor() as cursor:
        return sum(_rekey(cursor, spec, user_id, None) for spec in AGENT_KEYED)


def on_team_deleted(sender: Any, instance: Team, **kwargs: Any) -> None:
    rekey_team(instance.pk, organization_id=instance.organization_id)


def on_user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    rekey_user(instance.pk)


def register() -> None:
    post_delete.connect(on_team_deleted, sender=Team, dispatch_uid="monitoring.rekey.team")
    post_delete.connect(
        on_user_deleted, sender=settings.AUTH_USER_MODEL, dispatch_uid="monitoring.rekey.user"
    )
