"""Backup and restore of a PostgreSQL database with ``pg_dump``/``pg_restore`` (custom format).

Used by ``manage.py backup`` / ``manage.py restore`` and proven by ``tests/test_backup_restore.py``.
Channel credentials are stored encrypted: a restore is readable only with the same
``CREDENTIALS_KEYS`` (keep the keys with the backups, in a different place).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any


class BackupError(RuntimeError):
    pass


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (Debian: apt-get install postgresql-client).")
    return path


def _conninfo(db: dict[str, Any], name: str | None = None) -> tuple[list[str], dict[str, str]]:
    args = ["--host", str(db.get("HOST") or "127.0.0.1"), "--port", str(db.get("PORT") or 5432)]
    if db.get("USER"):
        args += ["--username", str(db["USER"])]
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return [*args, "--dbname", name or str(db["NAME"])], env


def dump(db: dict[str, Any], target: Path) -> Path:
    """Write a consistent snapshot (one transaction) of ``db`` to ``target``."""
    if "postgresql" not in db["ENGINE"]:
        raise BackupError("backup needs PostgreSQL (set DATABASE_URL); SQLite: copy var/*.sqlite3.")
    args, env = _conninfo(db)
    cmd = [_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(target), *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)  # noqa: S603 (our argv)
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    return target


def restore(db: dict[str, Any], source: Path, *, into: str | None = None) -> None:
    """Restore ``source`` into the database ``into`` (default: ``db``'s own), which must be empty
    or will be cleaned of the dumped objects first."""
    if not source.exists():
        raise BackupError(f"{source} does not exist.")
    args, env = _conninfo(db, into)
    cmd = [
        _tool("pg_restore"),
        "--clean",
        "--if-exists",
        "--no-owner",
        "--exit-on-error",
        "--single-transaction",
        *args,
        str(source),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)  # noqa: S603 (our argv)
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.strip()}")
