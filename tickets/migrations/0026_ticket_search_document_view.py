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
(most do not) no longer captures transition tables nor calls the function. Each row's call
locks its (at most two) documents in ticket order, then rebuilds them; a message moved to
another ticket (a merge) adds its lexemes to the new ticket's document (an ``UPDATE … SET
document = document || …``, which re-reads the row once it holds it, as the insert's upsert
does) and rebuilds the old one's, so a merge of N messages is N small updates, not N rebuilds
of a growing document. Unlike 0025's statement-level trigger, a statement updating many rows
therefore locks their documents in the order it meets the rows, two at a time, not all first
in ticket order: such a statement (erasure's ``bulk_update``, a merge, a split) could deadlock
with a batch ingest that locks documents in ticket order. So every caller that changes many
messages' text or ticket in one statement locks their documents first, in ticket order
(``tickets.models.lock_search_documents``).

Not atomic (issue #11's review): at 1,000,000 tickets the one transaction held ACCESS
EXCLUSIVE on the documents and the triggers' locks on tickets and messages for 2 min 25 s, and
ingest, closes and inbox pages waited. Now each DDL step is a short transaction of its own
(with ``lock_timeout``), and the backfill runs in ticket id ranges of ``BATCH``, each its own
transaction, while the triggers already keep new and changed rows right. Every step skips what
is done (``IF NOT EXISTS``, ``CREATE OR REPLACE``, ``DROP … IF EXISTS`` before ``CREATE``, the
backfill's ``IS NULL`` / ``NOT EXISTS``), so a re-run after a failure completes. Until the
backfill is done some documents have no organisation (NULL); ``tickets.inbox.search_count``
then does not count from the documents (it walks), so a count is never wrong meanwhile.

PostgreSQL only, like 0024: SQLite keeps its substring search.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, transaction

# The ticket is in the open views (``OPEN_STATUSES``), as SQL over a ticket row ``{row}``.
IS_OPEN = "{row}.status IN ('new', 'acknowledged', 'offline', 'resolved')"

DOCUMENT_OF = (
    "SELECT COALESCE(strip(tickets_tsvector_union("
    "to_tsvector('simple'::regconfig, COALESCE(m.text, '')))), ''::tsvector) "
    "FROM tickets_message m WHERE m.ticket_id = s.ticket_id"
)

# Quick DDL, each step its own short transaction (``lock_timeout``: a step that cannot get its
# lock soon fails, and the migration is re-run, rather than queueing every writer behind it).
# Every step may run again: a re-run after a failure completes.
ADD_COLUMNS = (
    "ALTER TABLE tickets_ticketsearch ADD COLUMN IF NOT EXISTS organization_id bigint, "
    "ADD COLUMN IF NOT EXISTS is_open boolean"
)

FUNCTIONS_AND_TRIGGERS: list[list[str]] = [
    # New tickets: their document rows with the organisation and the state.
    [
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
    """
    ],
    # A ticket moved to another organisation (never, today) or between open and closed.
    [
        """
    CREATE OR REPLACE FUNCTION tickets_ticketsearch_ticket_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE tickets_ticketsearch
        SET organization_id = NEW.organization_id, is_open = """
        + IS_OPEN.format(row="NEW")
        + """
        WHERE ticket_id = NEW.id;
        RETURN NULL;
    END $$
    """
    ],
    [
        "DROP TRIGGER IF EXISTS tickets_ticketsearch_ticket_update ON tickets_ticket",
        "CREATE TRIGGER tickets_ticketsearch_ticket_update "
        "AFTER UPDATE OF organization_id, status ON tickets_ticket FOR EACH ROW "
        "WHEN (OLD.organization_id IS DISTINCT FROM NEW.organization_id OR ("
        + IS_OPEN.format(row="OLD")
        + ") IS DISTINCT FROM ("
        + IS_OPEN.format(row="NEW")
        + ")) EXECUTE FUNCTION tickets_ticketsearch_ticket_update()",
    ],
    # New messages: as 0024's, a new row (its ticket's should exist) taking the ticket's state.
    [
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
    """
    ],
    # A message's text changed, or it moved: lock its two documents (in ticket order), then
    # rewrite them.
    [
        """
    CREATE OR REPLACE FUNCTION tickets_ticketsearch_message_change() RETURNS trigger
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
    """
    ],
    # Dropped and made in one transaction: no moment without a message update trigger.
    [
        "DROP TRIGGER IF EXISTS tickets_ticketsearch_message_update ON tickets_message",
        "CREATE TRIGGER tickets_ticketsearch_message_update AFTER UPDATE ON tickets_message "
        "FOR EACH ROW WHEN (OLD.text IS DISTINCT FROM NEW.text "
        "OR OLD.ticket_id IS DISTINCT FROM NEW.ticket_id) "
        "EXECUTE FUNCTION tickets_ticketsearch_message_change()",
    ],
]

# The backfill, one ticket id range [%s, %s) a transaction.
#
# First a document for every ticket without one (rows loaded with the triggers off, as
# ``bench/scale_data.py`` loads them: 0024's backfill ran on empty tables). It runs before the
# columns exist, so every document the columns find is one to fill (NULL) until the second
# pass: while any document's organisation is NULL, ``tickets.inbox.search_count`` does not
# count from the documents (it walks), so no ticket is missed while the backfill runs. A
# message inserted meanwhile (its trigger's upsert) and this insert meet on the ticket's row:
# the later appends its lexemes to the earlier's.
MISSING_DOCUMENTS = (
    "INSERT INTO tickets_ticketsearch AS s (ticket_id, document) "
    "SELECT t.id, COALESCE(d.document, ''::tsvector) FROM tickets_ticket t LEFT JOIN ("
    "SELECT m.ticket_id, strip(tickets_tsvector_union("
    "to_tsvector('simple'::regconfig, COALESCE(m.text, '')))) AS document "
    "FROM tickets_message m WHERE m.ticket_id >= %s AND m.ticket_id < %s AND NOT EXISTS "
    "(SELECT 1 FROM tickets_ticketsearch e WHERE e.ticket_id = m.ticket_id) GROUP BY m.ticket_id"
    ") d ON d.ticket_id = t.id "
    "WHERE t.id >= %s AND t.id < %s "
    "AND NOT EXISTS (SELECT 1 FROM tickets_ticketsearch e WHERE e.ticket_id = t.id) "
    "ON CONFLICT (ticket_id) DO UPDATE SET document = s.document || EXCLUDED.document"
)
# Then every document's organisation and state from its ticket, the range's documents locked
# first in ticket order (as every writer of several documents locks them). A ticket closed
# meanwhile: its trigger sets the document's state, and this update, which re-checks ``IS NULL``
# on the row it waited for, leaves it alone.
LOCK_UNFILLED = (
    "SELECT 1 FROM tickets_ticketsearch WHERE ticket_id >= %s AND ticket_id < %s "
    "AND organization_id IS NULL ORDER BY ticket_id FOR UPDATE"
)
FILL_STATE = (
    "UPDATE tickets_ticketsearch s SET organization_id = t.organization_id, is_open = "
    + IS_OPEN.format(row="t")
    + " FROM tickets_ticket t WHERE t.id = s.ticket_id AND s.ticket_id >= %s "
    "AND s.ticket_id < %s AND s.organization_id IS NULL"
)
BATCH = 20_000
LOCK_TIMEOUT = "5s"

# Back to 0025's triggers (0024's insert functions, 0025's statement-level update).
CHANGED = """
    SELECT o.ticket_id FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.text IS DISTINCT FROM n.text OR o.ticket_id <> n.ticket_id
    UNION
    SELECT n.ticket_id FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.text IS DISTINCT FROM n.text OR o.ticket_id <> n.ticket_id
"""

BACKWARD: list[list[str]] = [
    [
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
    """
    ],
    [
        "DROP TRIGGER IF EXISTS tickets_ticketsearch_message_update ON tickets_message",
        "CREATE TRIGGER tickets_ticketsearch_message_update AFTER UPDATE ON tickets_message "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION tickets_ticketsearch_message_update()",
    ],
    ["DROP FUNCTION IF EXISTS tickets_ticketsearch_message_change()"],
    [
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
    """
    ],
    ["DROP TRIGGER IF EXISTS tickets_ticketsearch_ticket_update ON tickets_ticket"],
    ["DROP FUNCTION IF EXISTS tickets_ticketsearch_ticket_update()"],
    [
        """
    CREATE OR REPLACE FUNCTION tickets_ticketsearch_ticket_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO tickets_ticketsearch (ticket_id)
        SELECT id FROM new_rows ON CONFLICT (ticket_id) DO NOTHING;
        RETURN NULL;
    END $$
    """
    ],
    [
        "ALTER TABLE tickets_ticketsearch DROP COLUMN IF EXISTS organization_id, "
        "DROP COLUMN IF EXISTS is_open"
    ],
]


def _run(connection: Any, statements: list[str], params: list[Any] | None = None) -> Any:
    """``statements`` in one short transaction of their own; the last one's rowcount."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        for statement in statements:
            cursor.execute(statement, params)
        return cursor.rowcount


def _ranges(connection: Any, table: str, column: str) -> list[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min({column}), max({column}) FROM {table}")  # noqa: S608
        low, high = cursor.fetchone()
    if low is None:
        return []
    return [(start, start + BATCH) for start in range(low, high + 1, BATCH)]


def backfill(connection: Any) -> None:
    """The missing documents, the columns and the triggers, then the documents' organisation and
    state; the documents' work in ticket id ranges of
    ``BATCH``, each its own transaction; every step skips what is done, so it may run again."""
    for low, high in _ranges(connection, "tickets_ticket", "id"):
        _run(connection, [MISSING_DOCUMENTS], [low, high, low, high])
    _run(connection, [ADD_COLUMNS])
    for statements in FUNCTIONS_AND_TRIGGERS:
        _run(connection, statements)
    # The ranges read after the triggers are in place: documents made since have their state.
    for low, high in _ranges(connection, "tickets_ticketsearch", "ticket_id"):
        _run(connection, [LOCK_UNFILLED, FILL_STATE], [low, high])
    # A document made by a transaction that began before the triggers changed and committed
    # behind the ranges (a NULL left keeps the count walking: slower, never wrong).
    _run(
        connection,
        [
            "SELECT 1 FROM tickets_ticketsearch WHERE organization_id IS NULL "
            "ORDER BY ticket_id FOR UPDATE",
            FILL_STATE.replace("s.ticket_id >= %s AND s.ticket_id < %s AND ", ""),
        ],
    )


def forward(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    # The missing documents first, before the columns: from then on every document to fill
    # has a NULL organisation (see MISSING_DOCUMENTS).
    backfill(connection)


def backward(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    for statements in BACKWARD:
        _run(connection, statements)


class Migration(migrations.Migration):
    # Not atomic: each step commits on its own, none holds a lock for long (module docstring).
    atomic = False

    dependencies = [("tickets", "0025_ticket_search_document_lock_first")]

    operations = [migrations.RunPython(forward, backward)]
