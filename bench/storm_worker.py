"""The Celery app for ``bench/ingest_storm.py``'s workers: CareInbox's own app, plus a count.

``celery -A storm_worker worker`` (with ``bench/`` on ``PYTHONPATH``) runs the real app and the
real tasks; this module only adds, in each pool process, a ``connection.execute_wrapper`` that
counts the SQL statements it runs, and after each task adds the count, the task's id, its
outcome and the worker's name to Redis (``STORM_REDIS_KEY``), where the benchmark reads them.
Nothing is replaced.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import redis
from celery.signals import task_postrun, worker_process_init

from careinbox.celery import app

__all__ = ["app"]

KEY = os.environ.get("STORM_REDIS_KEY", "storm")
_client = redis.Redis.from_url(os.environ["REDIS_URL"])
_count = [0]


def _counting(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any) -> Any:
    _count[0] += 1
    return execute(sql, params, many, ctx)


@worker_process_init.connect
def _install(**_: object) -> None:
    from django.db import connection

    connection.execute_wrappers.append(_counting)


@task_postrun.connect
def _report(task_id: str = "", task: Any = None, retval: Any = None, **_: object) -> None:
    statements, _count[0] = _count[0], 0
    pipe = _client.pipeline()
    pipe.incrby(f"{KEY}:statements", statements)
    # The worker's name last: with two workers on one broker, the bench checks each task ran
    # once across both and counts what each worker took.
    hostname = getattr(getattr(task, "request", None), "hostname", "") or ""
    line = f"{task_id}\t{getattr(task, 'name', '')}\t{retval}\t{hostname}"
    pipe.rpush(f"{KEY}:tasks", line)
    pipe.execute()
