"""The flush after each transactional test (tests/fast_flush.py: DELETE instead of TRUNCATE on
PostgreSQL) leaves what Django's TRUNCATE leaves: every table empty but django_migrations, and
the content types and permissions written again by post_migrate."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection

from monitoring.services import sla_start
from tests.conftest import Persona
from tests.factories import CustomerIdentityFactory, InboundMessageFactory, TicketFactory

pytestmark = pytest.mark.django_db(transaction=True)

REFILLED = {"django_content_type", "auth_permission"}


def _row_counts() -> dict[str, int]:
    tables = set(connection.introspection.table_names()) - {"django_migrations"}
    with connection.cursor() as cursor:
        counts = {}
        for table in sorted(tables):
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
            counts[table] = cursor.fetchone()[0]
    return counts


def _flush_as_a_transactional_test_does() -> None:
    """django.test.TransactionTestCase._fixture_teardown's call, as pytest-django makes it."""
    call_command(
        "flush",
        verbosity=0,
        interactive=False,
        database="default",
        reset_sequences=False,
        allow_cascade=False,
        inhibit_post_migrate=False,
    )


def test_the_flush_empties_every_table_and_keeps_the_migrations(agent: Persona) -> None:
    for n in range(3):
        ticket = TicketFactory(social_account__brand__organization=agent.organization)
        InboundMessageFactory(ticket=ticket, text=f"where is parcel {n}?")
        sla_start(ticket=ticket)
    CustomerIdentityFactory()
    if connection.vendor == "postgresql":
        # A search document with no ticket (a table no model owns): TRUNCATE's trigger
        # empties it, so must the DELETE.
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO tickets_ticketsearch (ticket_id) VALUES (987654321)")
    types = set(ContentType.objects.values_list("app_label", "model"))
    permissions = set(Permission.objects.values_list("content_type__model", "codename"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations")
        applied = cursor.fetchone()[0]
    before = _row_counts()
    filled = {t for t, n in before.items() if n and t not in REFILLED}
    # Enough of the schema to mean something: the tickets, their messages, search documents,
    # timers, events, customers, the organisation and its people.
    assert len(filled) >= 12, filled

    _flush_as_a_transactional_test_does()

    after = _row_counts()
    assert {t: n for t, n in after.items() if n and t not in REFILLED} == {}
    assert set(ContentType.objects.values_list("app_label", "model")) == types
    assert set(Permission.objects.values_list("content_type__model", "codename")) == permissions
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations")
        assert cursor.fetchone()[0] == applied > 0


def test_a_flush_that_resets_sequences_or_cascades_is_djangos_truncate() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the DELETE flush is PostgreSQL's (SQLite's flush deletes already)")
    from django.core.management.color import no_style

    tables = ["tickets_ticket", "tickets_message"]
    plain = connection.ops.sql_flush(no_style(), tables)
    assert plain[0] == "SET CONSTRAINTS ALL DEFERRED;"
    assert 'DELETE FROM "tickets_ticketsearch";' in plain
    assert 'DELETE FROM "django_migrations";' not in plain
    assert not any("TRUNCATE" in sql for sql in plain)
    reset = connection.ops.sql_flush(no_style(), tables, reset_sequences=True)
    assert reset == ['TRUNCATE "tickets_ticket", "tickets_message" RESTART IDENTITY;']
    cascade = connection.ops.sql_flush(no_style(), tables, allow_cascade=True)
    assert cascade == ['TRUNCATE "tickets_ticket", "tickets_message" CASCADE;']
