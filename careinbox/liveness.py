"""Whether the process holding a claim is still alive, from the database's point of view.

Leases and claims (a poll's lease, an outbox item being sent) carry a time limit, for a holder
that stalls. A holder that was killed outright (SIGKILL, the OOM killer, a lost container)
cannot release anything, but its database connection closes with it: on PostgreSQL a claim
records the holder's backend pid (``pg_backend_pid()``) and anyone may treat a claim whose
backend is no longer in ``pg_stat_activity`` as abandoned at once. Needs a session per worker
connection (no transaction-mode pgbouncer in between). SQLite (the embedded default, one
machine) has no such view: there the time limit alone applies.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL


def current_backend_pid() -> int | None:
    """This connection's backend pid on PostgreSQL; None elsewhere."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    return int(row[0])


def holder_gone(field: str) -> Q:
    """Rows whose ``field`` names a backend that has gone (never matches on SQLite)."""
    if connection.vendor != "postgresql":
        return Q(pk__in=[])
    return Q(**{f"{field}__isnull": False}) & ~Q(
        **{f"{field}__in": RawSQL("SELECT pid FROM pg_stat_activity", ())}
    )
