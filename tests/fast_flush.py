"""Transactional tests on PostgreSQL: the database emptied after each one by DELETE, not TRUNCATE.

Django empties the database after every ``transaction=True`` test (browser, live-server,
worker and race tests: about 210 of the suite) with one ``TRUNCATE`` of all its tables. A
TRUNCATE gives every table, index and TOAST table a new file: with 62 tables and 284 indexes
that took 1.7 s per test on the shared 2-core machine (0.5-0.8 s on a quiet one), most of the
suite's time outside the tests themselves. The same tables hold a few dozen rows by then, and
deleting them takes 0.05 s.

What is left is the same: every table empty. Also emptied here: tables the project made with raw
SQL (``tickets_ticketsearch``, which ``tickets_ticket``'s TRUNCATE trigger empties after a
TRUNCATE); only ``django_migrations`` is kept, as TRUNCATE keeps it. Sequences go on counting in
both. Django's foreign keys are ``DEFERRABLE INITIALLY DEFERRED``, so the order of the DELETEs
does not matter (``SET CONSTRAINTS ALL DEFERRED`` first; a key that cannot be deferred would fail
the flush loudly, never leave rows). A flush that resets sequences or cascades (``reset_sequences``,
``available_apps``) is Django's TRUNCATE as before. ``tests/test_fast_flush.py`` checks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.backends.postgresql.operations import DatabaseOperations

_truncate = DatabaseOperations.sql_flush

KEPT = frozenset({"django_migrations"})


def sql_flush_by_delete(
    self: DatabaseOperations,
    style: Any,
    tables: list[str],
    *,
    reset_sequences: bool = False,
    allow_cascade: bool = False,
) -> list[str]:
    if reset_sequences or allow_cascade or not tables:
        return _truncate(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
    everything = set(tables) | (set(self.connection.introspection.table_names()) - KEPT)
    delete_from = f"{style.SQL_KEYWORD('DELETE')} {style.SQL_KEYWORD('FROM')}"
    return [
        f"{style.SQL_KEYWORD('SET CONSTRAINTS ALL DEFERRED')};",
        *(f"{delete_from} {style.SQL_FIELD(self.quote_name(t))};" for t in sorted(everything)),
    ]


def flush_by_delete() -> Iterator[None]:
    """Install the DELETE flush for the test session (a generator for a session fixture)."""
    DatabaseOperations.sql_flush = sql_flush_by_delete  # type: ignore[method-assign]
    try:
        yield
    finally:
        DatabaseOperations.sql_flush = _truncate  # type: ignore[method-assign]
