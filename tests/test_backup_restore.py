"""Backup and restore with pg_dump/pg_restore, once in the suite: what goes in comes back out,
encrypted credentials included (they decrypt with the same CREDENTIALS_KEYS)."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection

from channels_social.models import SocialAccount
from tests.factories import InboundMessageFactory, SocialAccountFactory, TicketFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed"),
]

TABLES = [
    "accounts_organization",
    "channels_social_socialaccount",
    "tickets_ticket",
    "tickets_message",
    "tickets_ticketevent",
]


def _counts(cursor: psycopg2.extensions.cursor) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (our own table names)
        counts[table] = cursor.fetchone()[0]
    return counts


def test_a_backup_restores_into_an_empty_database(tmp_path: Path) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("backup and restore are PostgreSQL tools")
    account = SocialAccountFactory(credentials={"bearer_token": "restore-me-7781"})
    ticket = TicketFactory(social_account=account)
    InboundMessageFactory.create_batch(3, ticket=ticket, text="Ünïcødé ✓ <b>kept</b> 🎉")
    ticket.record("opened")

    dump_file = tmp_path / "careinbox.dump"
    call_command("backup", "--output", str(dump_file))
    assert dump_file.stat().st_size > 0

    db = connection.settings_dict
    restored = f"{db['NAME']}_restored"
    admin = psycopg2.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"], dbname="postgres"
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{restored}"')
        cursor.execute(f'CREATE DATABASE "{restored}"')
    try:
        from careinbox.backup import restore

        restore(db, dump_file, into=restored)
        with connection.cursor() as cursor:
            expected = _counts(cursor.cursor)  # type: ignore[attr-defined]
        copy = psycopg2.connect(
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
            user=db["USER"],
            dbname=restored,
        )
        with copy, copy.cursor() as cursor:
            assert _counts(cursor) == expected
            assert expected["tickets_message"] == 3
            cursor.execute("SELECT text FROM tickets_message ORDER BY id")
            assert {row[0] for row in cursor.fetchall()} == {"Ünïcødé ✓ <b>kept</b> 🎉"}
            cursor.execute(
                "SELECT credentials FROM channels_social_socialaccount WHERE id = %s", [account.pk]
            )
            token = cursor.fetchone()[0]
        copy.close()
        assert "restore-me-7781" not in token  # still encrypted in the dump
        field = SocialAccount._meta.get_field("credentials")
        assert field.to_python(token) == {"bearer_token": "restore-me-7781"}
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
        admin.close()


def test_restore_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    if connection.vendor != "postgresql":
        pytest.skip("backup and restore are PostgreSQL tools")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("restore", str(tmp_path / "nope.dump"), "--yes")
