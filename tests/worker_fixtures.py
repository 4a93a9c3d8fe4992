"""A real Celery worker in a subprocess, on the test database and the configured broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def _test_database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def celery_worker_process(
    django_db_setup: None, django_db_blocker: object
) -> Iterator[subprocess.Popen[str]]:
    """One worker per test module that asks for it, stopped after the module: tests elsewhere
    send outbox items by hand and must not race a worker for them. Tasks queued meanwhile by
    other modules (their items long gone) are purged first."""
    _purge_queues()
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "CAREINBOX_TESTING": "1",
    }
    log_path = Path(settings.VAR_DIR) / "test-worker.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "careinbox",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Celery worker exited:\n{log_path.read_text()}")
        if "ready." in log_path.read_text():
            break
        time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"Celery worker did not start:\n{log_path.read_text()}")
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    _purge_queues()


def _purge_queues() -> None:
    for name in (settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_INTERACTIVE_QUEUE):
        _purge_queue(name)


def _purge_queue(name: str) -> None:
    """This run's queue is its own: leave nothing behind in the broker for later runs."""
    from careinbox.celery import app

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        try:
            channel.queue_purge(name)
            channel.queue_delete(name)
        except Exception:  # noqa: S110 - a queue never declared is already gone
            pass


def wait_for(
    condition: Callable[[], object], *, timeout: float = 30, what: str = "condition"
) -> object:
    """Poll until ``condition()`` is truthy; else fail naming ``what``, with the worker log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    worker_log = Path(settings.VAR_DIR) / "test-worker.log"
    tail = worker_log.read_text()[-3000:] if worker_log.exists() else ""
    raise AssertionError(f"Timed out waiting for {what}. Worker log tail:\n{tail}")
