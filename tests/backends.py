"""A second, real PostgreSQL session, as a worker's would be: for claims whose holder dies."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection


def other_backend() -> tuple[Any, int]:
    """A new connection to the test database (psycopg2) and its backend pid."""
    import psycopg2

    db = connection.settings_dict
    other = psycopg2.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    )
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    return other, int(pid)


def close_and_wait_gone(other: Any, pid: int) -> None:
    """Close it as a killed process's socket would be; the backend exits a moment later."""
    other.close()
    with connection.cursor() as cursor:
        for _ in range(200):
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError(f"backend {pid} did not exit")
