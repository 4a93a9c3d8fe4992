"""Trigram indexes for the inbox search's customer side: a handle or a name searched by a part
of it (``customer_username__icontains``, ``customer_display_name__icontains``:
``UPPER(col) LIKE UPPER('%word%')``) is answered from the index instead of reading every ticket
of the view. PostgreSQL only (``pg_trgm``); like migration 0010's full-text index the indexes
live outside the model state, and SQLite keeps its plain ``icontains`` scan.

``CREATE EXTENSION pg_trgm`` needs a role allowed to create it (a superuser, or the database's
owner on PostgreSQL 13+, where pg_trgm is a trusted extension).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

# The expressions are the ones Django's ``icontains`` queries on PostgreSQL: UPPER(col::text).
INDEXES = {
    "ticket_customer_username_trgm": "customer_username",
    "ticket_customer_name_trgm": "customer_display_name",
}


# (Written as SQL: Django's ``OpClass(Upper(...))`` in an index renders ``(UPPER(col)
# gin_trgm_ops)`` in parentheses, which PostgreSQL rejects.)
def create_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for name, column in INDEXES.items():
            schema_editor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "tickets_ticket" '
                f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
            )


def drop_indexes(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for name in INDEXES:
            schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("tickets", "0020_vacuum_after_turn_backfill")]

    # Not Django's TrigramExtension: unapplied on SQLite it looks the extension up in
    # pg_extension (no vendor check), so migrating back past here failed there. The extension
    # stays when unapplied: other things may use it, and dropping it needs a superuser.
    operations = [migrations.RunPython(create_indexes, drop_indexes)]
