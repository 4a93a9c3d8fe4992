"""The search documents by organisation and open state (issue #11).

Migration 0026 rewrote every document row (its organisation and state). A VACUUM first marks
the old versions free (it cannot run in a transaction: this migration is not atomic), then the
index is built ``CONCURRENTLY`` (writes to the documents go on meanwhile; a build left invalid
by a failure is dropped and built again on a re-run), over the live rows only. ``tickets.inbox.
search_count`` reads it: a common search whose words are rarely in one message is counted
from one organisation's documents of one state, each asked for every word on its own row.

A btree, not a GIN on (organisation, state, lexemes) with ``btree_gin``: a GIN answers a
prefix ("late:*") by first reading every document with a word of that prefix into a bitmap,
all organisations' (at 1,000,000 tickets: 206,248 documents for "refund late", 307 ms, more
than the walk it was to replace; docs/benchmarks.md, 2026-12-03).
PostgreSQL only.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

INDEX = "tickets_ticketsearch_view_idx"


def create_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) tickets_ticketsearch")
        # A build that failed half-way (a CONCURRENTLY one leaves its index INVALID) is
        # dropped, so that IF NOT EXISTS does not take it for done.
        cursor.execute(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND NOT i.indisvalid",
            [INDEX],
        )
        if cursor.fetchone():
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        cursor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON tickets_ticketsearch "
            "(organization_id, is_open, ticket_id)"
        )
        cursor.execute("ANALYZE tickets_ticketsearch")


def drop_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("tickets", "0026_ticket_search_document_view")]

    operations = [migrations.RunPython(create_index, drop_index)]
