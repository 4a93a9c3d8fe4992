"""A real Celery worker SIGKILLed during a small storm, inside ``make test`` (``bench/faults.py
kills`` does it 20 times in the soak). Mentions are posted into the X emulator over HTTP, the
worker polls them in and sends the acknowledgements; it is killed twice, whole (the main
process and its pool, as the OOM killer would), at random points, and started again each
time. Afterwards, from the database and the emulator's own record of what it was sent:
nothing missing, nothing doubled, no reply posted twice (``bench/worker_kills.check_once``).

PostgreSQL and Redis only: SQLite's single writer and the filesystem broker are not what a
worker is killed on in production (the soak covers them)."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests.sandbox_fixtures import XSandbox
from tests.worker_fixtures import _purge_queues, _test_database_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from ingest_bench import BRAND_HANDLE, BRAND_ID, UNLIMITED, make_tenant
from soak import Load
from worker_kills import Worker, check_once, run_kills

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SEED = 20261202


@pytest.fixture
def postgres_and_redis() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("kills a worker on PostgreSQL only (DATABASE_URL is not PostgreSQL)")
    if not settings.REDIS_URL:
        pytest.skip("kills a worker on Redis only (REDIS_URL is not set)")


def test_a_worker_killed_twice_mid_storm_loses_and_doubles_nothing(
    postgres_and_redis: None, x_sandbox_clean: XSandbox, tmp_path: Path
) -> None:
    emu = x_sandbox_clean
    emu.app.configure_rate_limits(UNLIMITED)
    emu.control.upsert_user(id=BRAND_ID, username=BRAND_HANDLE, name="Bench Co", followers_count=1)
    tenant = make_tenant(emu.url)
    load = Load(emu, tenant, random.Random(SEED))  # type: ignore[arg-type]
    _purge_queues()
    worker = Worker(
        db_url=_test_database_url(),
        queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        log_dir=tmp_path,
        concurrency=1,
        pool_child_share=0.0,  # every kill takes the whole worker, which is started again
    )
    worker.start()
    try:
        run: dict[str, Any] = run_kills(
            load, worker, kills=2, rate=2, min_gap=1, max_gap=4, drain=60, seed=SEED
        )
    finally:
        worker.stop()
        _purge_queues()
    logs = "\n".join(p.read_text()[-1500:] for p in sorted(tmp_path.glob("*.log")))
    figures, failures = check_once(load, emu)
    print(run, figures)  # shown with -s, and on a failure
    assert run["kills"] == {"whole worker": 2} and worker.starts == 3
    assert run["drained"], f"the pipeline did not settle: {figures}\n{logs}"
    assert failures == [], f"{failures}\n{figures}"
    assert figures["mentions_posted"] >= 4 and figures["acknowledgements"] >= 1
    assert figures["mentions_missing"] == figures["mentions_doubled"] == 0
    assert figures["replies_twice"] == 0
