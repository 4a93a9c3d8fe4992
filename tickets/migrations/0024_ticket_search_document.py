"""One search document per ticket (issue #11): ``tickets_ticketsearch`` holds, for every
ticket, the lexemes of all its messages' text (``to_tsvector('simple', text)`` of each message,
united and stripped of positions), kept by PostgreSQL triggers on ``tickets_message`` and
``tickets_ticket``. ``tickets.inbox.search`` checks a ticket's one document (one primary-key
lookup) before its messages when it walks a view for a common search: a ticket whose document
lacks a word cannot have a message with every word, and most tickets walked are such.

The document is a superset only: every lexeme of every message is in it, so a ticket that
matches through one of its messages always matches its document; the search still checks the
messages themselves (the same condition as without the document), so its results are the same.
Erasure rewrites a message's text, and the update trigger rebuilds the ticket's document from
the messages as they are then, so erased words leave the document too.

PostgreSQL only, outside the model state like migration 0010's full-text index: SQLite keeps
its plain ``icontains`` search.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

# A ticket's document from its messages as they are now (the text as the message GIN index of
# migration 0010 reads it: ``COALESCE(text, '')``).
DOCUMENT_OF = (
    "SELECT COALESCE(strip(tickets_tsvector_union("
    "to_tsvector('simple'::regconfig, COALESCE(m.text, '')))), ''::tsvector) "
    "FROM tickets_message m WHERE m.ticket_id = {ticket}"
)

CREATE = [
    # ``||`` on tsvectors as an aggregate: the union of the lexemes.
    "CREATE AGGREGATE tickets_tsvector_union(tsvector) "
    "(SFUNC = tsvector_concat, STYPE = tsvector, INITCOND = '')",
    "CREATE TABLE tickets_ticketsearch ("
    "ticket_id bigint PRIMARY KEY, document tsvector NOT NULL DEFAULT ''::tsvector)",
    # New tickets: an empty document (a message may have come first: then it stays).
    """
    CREATE FUNCTION tickets_ticketsearch_ticket_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO tickets_ticketsearch (ticket_id)
        SELECT id FROM new_rows ON CONFLICT (ticket_id) DO NOTHING;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION tickets_ticketsearch_ticket_delete() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM tickets_ticketsearch WHERE ticket_id IN (SELECT id FROM old_rows);
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION tickets_ticketsearch_ticket_truncate() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        TRUNCATE tickets_ticketsearch;
        RETURN NULL;
    END $$
    """,
    # New messages: their lexemes added to their tickets' documents, one row per ticket.
    """
    CREATE FUNCTION tickets_ticketsearch_message_insert() RETURNS trigger
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
    # A message's text changed (an edit, erasure's scrub) or it moved to another ticket (a
    # merge): those tickets' documents rebuilt from their messages, so a removed word leaves.
    """
    CREATE FUNCTION tickets_ticketsearch_message_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE tickets_ticketsearch s SET document = ("""
    + DOCUMENT_OF.format(ticket="s.ticket_id")
    + """)
        WHERE s.ticket_id IN (
            SELECT o.ticket_id FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE o.text IS DISTINCT FROM n.text OR o.ticket_id <> n.ticket_id
            UNION
            SELECT n.ticket_id FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE o.text IS DISTINCT FROM n.text OR o.ticket_id <> n.ticket_id
        );
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION tickets_ticketsearch_message_delete() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE tickets_ticketsearch s SET document = ("""
    + DOCUMENT_OF.format(ticket="s.ticket_id")
    + """)
        WHERE s.ticket_id IN (SELECT ticket_id FROM old_rows);
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER tickets_ticketsearch_ticket_insert AFTER INSERT ON tickets_ticket "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION tickets_ticketsearch_ticket_insert()",
    "CREATE TRIGGER tickets_ticketsearch_ticket_delete AFTER DELETE ON tickets_ticket "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION tickets_ticketsearch_ticket_delete()",
    "CREATE TRIGGER tickets_ticketsearch_ticket_truncate AFTER TRUNCATE ON tickets_ticket "
    "FOR EACH STATEMENT EXECUTE FUNCTION tickets_ticketsearch_ticket_truncate()",
    "CREATE TRIGGER tickets_ticketsearch_message_insert AFTER INSERT ON tickets_message "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION tickets_ticketsearch_message_insert()",
    "CREATE TRIGGER tickets_ticketsearch_message_update AFTER UPDATE ON tickets_message "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION tickets_ticketsearch_message_update()",
    "CREATE TRIGGER tickets_ticketsearch_message_delete AFTER DELETE ON tickets_message "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION tickets_ticketsearch_message_delete()",
]

# Every ticket's document from its messages, set-based; then the table's statistics.
BACKFILL = [
    "INSERT INTO tickets_ticketsearch (ticket_id, document) "
    "SELECT t.id, COALESCE(d.document, ''::tsvector) FROM tickets_ticket t LEFT JOIN ("
    "SELECT ticket_id, strip(tickets_tsvector_union("
    "to_tsvector('simple'::regconfig, COALESCE(text, '')))) AS document "
    "FROM tickets_message GROUP BY ticket_id) d ON d.ticket_id = t.id",
    "ANALYZE tickets_ticketsearch",
]

DROP = [
    "DROP TRIGGER IF EXISTS tickets_ticketsearch_message_delete ON tickets_message",
    "DROP TRIGGER IF EXISTS tickets_ticketsearch_message_update ON tickets_message",
    "DROP TRIGGER IF EXISTS tickets_ticketsearch_message_insert ON tickets_message",
    "DROP TRIGGER IF EXISTS tickets_ticketsearch_ticket_truncate ON tickets_ticket",
    "DROP TRIGGER IF EXISTS tickets_ticketsearch_ticket_delete ON tickets_ticket",
    "DROP TRIGGER IF EXISTS tickets_ticketsearch_ticket_insert ON tickets_ticket",
    "DROP FUNCTION IF EXISTS tickets_ticketsearch_message_delete()",
    "DROP FUNCTION IF EXISTS tickets_ticketsearch_message_update()",
    "DROP FUNCTION IF EXISTS tickets_ticketsearch_message_insert()",
    "DROP FUNCTION IF EXISTS tickets_ticketsearch_ticket_truncate()",
    "DROP FUNCTION IF EXISTS tickets_ticketsearch_ticket_delete()",
    "DROP FUNCTION IF EXISTS tickets_ticketsearch_ticket_insert()",
    "DROP TABLE IF EXISTS tickets_ticketsearch",
    "DROP AGGREGATE IF EXISTS tickets_tsvector_union(tsvector)",
]


def create_documents(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in CREATE:
        schema_editor.execute(statement)
    for statement in BACKFILL:
        schema_editor.execute(statement)


def drop_documents(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("tickets", "0023_open_due_index")]

    operations = [migrations.RunPython(create_documents, drop_documents)]
