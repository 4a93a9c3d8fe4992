"""The search document's rebuilds lock before they read (found in review).

Migration 0024's update and delete triggers rebuilt a ticket's document in one ``UPDATE … SET
document = (SELECT … FROM tickets_message …)``. When another transaction had just added a
message to the same ticket (its insert trigger upserts the document, holding the row), the
``UPDATE`` waited for that row and then, under READ COMMITTED, rebuilt it from the messages as
its own statement's snapshot saw them: without the message that had just committed. The
document lost that message's words, and search missed the ticket through them until the next
rewrite. Now each function locks the documents first (``PERFORM … FOR UPDATE``, in ticket
order) and rebuilds them in a second statement, whose snapshot is taken after the lock is
held and so sees every message committed before it.

PostgreSQL only, like 0024.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

DOCUMENT_OF = (
    "SELECT COALESCE(strip(tickets_tsvector_union("
    "to_tsvector('simple'::regconfig, COALESCE(m.text, '')))), ''::tsvector) "
    "FROM tickets_message m WHERE m.ticket_id = s.ticket_id"
)

CHANGED = """
    SELECT o.ticket_id FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.text IS DISTINCT FROM n.text OR o.ticket_id <> n.ticket_id
    UNION
    SELECT n.ticket_id FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.text IS DISTINCT FROM n.text OR o.ticket_id <> n.ticket_id
"""


def _rebuild(name: str, tickets: str) -> str:
    """``name``'s trigger function: lock the documents of ``tickets`` (a query over the
    statement's transition tables), then rebuild them from their messages."""
    return f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM tickets_ticketsearch
        WHERE ticket_id IN ({tickets}) ORDER BY ticket_id FOR UPDATE;
        UPDATE tickets_ticketsearch s SET document = ({DOCUMENT_OF})
        WHERE s.ticket_id IN ({tickets});
        RETURN NULL;
    END $$
    """


LOCK_FIRST = [
    _rebuild("tickets_ticketsearch_message_update", CHANGED),
    _rebuild("tickets_ticketsearch_message_delete", "SELECT ticket_id FROM old_rows"),
]


def lock_first(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in LOCK_FIRST:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("tickets", "0024_ticket_search_document")]

    # Backwards: the functions stay as they are (0024's own reverse drops them).
    operations = [migrations.RunPython(lock_first, migrations.RunPython.noop)]
