"""The search document knows its ticket's organisation and whether it is open (issue #11).

``tickets_ticketsearch`` (migration 0024) gains ``organization_id`` and ``is_open`` (the
ticket's status one of the open ones, as the inbox's open views test it), kept by triggers:

- a ticket inserted: its document row made with both (or, when a message came first in the
  transaction, given both);
- a ticket updated: a row-level trigger, fired only when the organisation changes or the status
  moves between open and closed (``WHEN``), sets both on the ticket's document;
- a message inserted: a new document row (none should be new: the ticket's came first) takes
  both from its ticket.

With them, a common search whose words are rarely in one message ("refund late") is counted
from one organisation's documents of one state (migration 0027's index on organisation, state
and ticket), each document asked for every word on its own row, instead of walking every
ticket of the view (``tickets.inbox.search_count``). Every ticket gets a document here if it
had none (rows loaded with the triggers off, as ``bench/scale_data.py`` loads them).

And the message update trigger becomes a row-level one with ``WHEN (OLD.text IS DISTINCT FROM
NEW.text OR OLD.ticket_id IS DISTINCT FROM NEW.ticket_id)``: an update that changes neither
(most do not) no longer captures transition tables nor calls the function. It keeps 0025's
order: the documents it will rewrite are locked first (in ticket order), then rebuilt in a
second statement whose snapshot sees every message committed before the lock. A message
moved to another ticket (a merge) adds its lexemes to the new ticket's document (an ``UPDATE
… SET document = document || …``, which re-reads the row once it holds it, as the insert's
upsert does) and rebuilds the old one's, so a merge of N messages is N small updates, not N
rebuilds of a growing document.

PostgreSQL only, like 0024: SQLite keeps its substring search.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

# The ticket is in the open views (``OPEN_STATUSES``), as SQL over a ticket row ``{row}``.
IS_OPEN = "{row}.status IN ('new', 'acknowledged', 'offline', 'resolved')"

DOCUMENT_OF = (
    "SELECT COALESCE(strip(tickets_tsvector_union("
    "to_tsvector('simple'::regconfig, COALESCE(m.text, '')))), ''::tsvector) "
    "FROM tickets_message m WHERE m.ticket_id = s.ticket_id"
)

FORWARD = [
    "ALTER TABLE tickets_ticketsearch ADD COLUMN organization_id bigint, "
    "ADD COLUMN is_open boolean",
    # New tickets: their document rows with the organisation and the state.
    """
    CREATE OR REPLACE FUNCTION tickets_ticketsearch_ticket_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO tickets_ticketsearch AS s (ticket_id, organization_id, is_open)
        SELECT t.id, t.organization_id, """
    + IS_OPEN.format(row="t")
    + """ FROM new_rows t
        ON CONFLICT (ticket_id) DO UPDATE
        SET organization_id = EXCLUDED.organization_id, is_open = EXCLUDED.is_open;
        RETURN NULL;
    END $$
    """,
    # A ticket moved to another organisation (never, today) or between open and closed.
    """
    CREATE FUNCTION tickets_ticketsearch_ticket_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE tickets_ticketsearch
        SET organization_id = NEW.organization_id, is_open = """
    + IS_OPEN.format(row="NEW")
    + """
        WHERE ticket_id = NEW.id;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER tickets_ticketsearch_ticket_update "
    "AFTER UPDATE OF organization_id, status ON tickets_ticket FOR EACH ROW "
    "WHEN (OLD.organization_id IS DISTINCT FROM NEW.organization_id OR ("
    + IS_OPEN.format(row="OLD")
    + ") IS DISTINCT FROM ("
    + IS_OPEN.format(row="NEW")
    + ")) EXECUTE FUNCTION tickets_ticketsearch_ticket_update()",
    # New messages: as 0024's, a new row (its ticket's should exist) taking the ticket's state.
    """
    CREATE OR REPLACE FUNCTION tickets_ticketsearch_message_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO tickets_ticketsearch AS s (ticket_id, document, organization_id, is_open)
        SELECT n.ticket_id, n.document, t.organization_id, """
    + IS_OPEN.format(row="t")
    + """
        FROM (
            SELECT ticket_id, strip(tickets_tsvector_union(
                to_tsvector('simple'::regconfig, COALESCE(text, '')))) AS document
            FROM new_rows GROUP BY ticket_id
        ) n LEFT JOIN tickets_ticket t ON t.id = n.ticket_id
        ON CONFLICT (ticket_id) DO UPDATE SET document = s.document || EXCLUDED.document;
        RETURN NULL;
    END $$
    """,
    # A message's text changed, or it moved: lock the documents first, then rewrite them.
    """
    CREATE FUNCTION tickets_ticketsearch_message_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM tickets_ticketsearch
        WHERE ticket_id IN (OLD.ticket_id, NEW.ticket_id) ORDER BY ticket_id FOR UPDATE;
        IF OLD.ticket_id IS DISTINCT FROM NEW.ticket_id AND OLD.text IS NOT DISTINCT FROM NEW.text
        THEN
            UPDATE tickets_ticketsearch SET document = document || strip(
                to_tsvector('simple'::regconfig, COALESCE(NEW.text, '')))
            WHERE ticket_id = NEW.ticket_id;
            UPDATE tickets_ticketsearch s SET document = ("""
    + DOCUMENT_OF
    + """)
            WHERE s.ticket_id = OLD.ticket_id;
        ELSE
            UPDATE tickets_ticketsearch s SET document = ("""
    + DOCUMENT_OF
    + """)
            WHERE s.ticket_id IN (OLD.ticket_id, NEW.ticket_id);
        END IF;
        RETURN NULL;
    END $$
    """,
    "DROP TRIGGER tickets_ticketsearch_message_update ON tickets_message",
    "CREATE TRIGGER tickets_ticketsearch_message_update AFTER UPDATE ON tickets_message "
    "FOR EACH ROW WHEN (OLD.text IS DISTINCT FROM NEW.text "
    "OR OLD.ticket_id IS DISTINCT FROM NEW.ticket_id) "
    "EXECUTE FUNCTION tickets_ticketsearch_message_change()",
    # Every document's organisation and state from its ticket.
    "UPDATE tickets_ticketsearch s SET organization_id = t.organization_id, is_open = "
    + IS_OPEN.format(row="t")
    + " FROM tickets_ticket t WHERE t.id = s.ticket_id",
    # And a document for every ticket without one: the search now counts from the documents,
    # so a missing one would be a ticket never found. (Rows loaded with the triggers off, as
    # ``bench/scale_data.py`` loads them, have none: 0024's backfill ran on empty tables.)
    "INSERT INTO tickets_ticketsearch (ticket_id, document, organization_id, is_open) "
    "SELECT t.id, COALESCE(d.document, ''::tsvector), t.organization_id, "
    + IS_OPEN.format(row="t")
    + " FROM tickets_ticket t LEFT JOIN ("
    "SELECT ticket_id, strip(tickets_tsvector_union("
    "to_tsvector('simple'::regconfig, COALESCE(text, '')))) AS document "
    "FROM tickets_message WHERE ticket_id IN (SELECT id FROM tickets_ticket x WHERE NOT EXISTS "
    "(SELECT 1 FROM tickets_ticketsearch e WHERE e.ticket_id = x.id)) GROUP BY ticket_id"
    ") d ON d.ticket_id = t.id "
    "WHERE NOT EXISTS (SELECT 1 FROM tickets_ticketsearch e WHERE e.ticket_id = t.id)",
]

# Back to 0025's triggers (0024's insert functions, 0025's statement-level update).
CHANGED = """
    SELECT o.ticket_id FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.text IS DISTINCT FROM n.text OR o.ticket_id <> n.ticket_id
    UNION
    SELECT n.ticket_id FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.text IS DISTINCT FROM n.text OR o.ticket_id <> n.ticket_id
"""

BACKWARD = [
    "DROP TRIGGER IF EXISTS tickets_ticketsearch_message_update ON tickets_message",
    "DROP FUNCTION IF EXISTS tickets_ticketsearch_message_change()",
    f"""
    CREATE OR REPLACE FUNCTION tickets_ticketsearch_message_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM tickets_ticketsearch
        WHERE ticket_id IN ({CHANGED}) ORDER BY ticket_id FOR UPDATE;
        UPDATE tickets_ticketsearch s SET document = ({DOCUMENT_OF})
        WHERE s.ticket_id IN ({CHANGED});
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER tickets_ticketsearch_message_update AFTER UPDATE ON tickets_message "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION tickets_ticketsearch_message_update()",
    """
    CREATE OR REPLACE FUNCTION tickets_ticketsearch_message_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO tickets_ticketsearch AS s (ticket_id, document)
        SELECT ticket_id,
               strip(tickets_tsvector_union(to_tsvector('simple'::regconfig, COALESCE(text, ''))))
        FROM new_rows GROUP BY ticket_id
        ON CONFLICT (ticket_id) DO UPDATE SET document = s.document || EXCLUDED.document;
        RETURN NULL;
    END $$
    """,
    "DROP TRIGGER IF EXISTS tickets_ticketsearch_ticket_update ON tickets_ticket",
    "DROP FUNCTION IF EXISTS tickets_ticketsearch_ticket_update()",
    """
    CREATE OR REPLACE FUNCTION tickets_ticketsearch_ticket_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO tickets_ticketsearch (ticket_id)
        SELECT id FROM new_rows ON CONFLICT (ticket_id) DO NOTHING;
        RETURN NULL;
    END $$
    """,
    "ALTER TABLE tickets_ticketsearch DROP COLUMN IF EXISTS organization_id, "
    "DROP COLUMN IF EXISTS is_open",
]


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in FORWARD:
        schema_editor.execute(statement)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in BACKWARD:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("tickets", "0025_ticket_search_document_lock_first")]

    operations = [migrations.RunPython(forward, backward)]
