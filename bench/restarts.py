"""Restarts: Redis and PostgreSQL restarted under a running pipeline; it recovers by itself.

Never the machine's shared services: the script starts its own throwaway ``redis-server``
(``--redis-port``, no persistence, so a restart also loses every queued task, as a crashed
broker would) and its own PostgreSQL cluster (``initdb`` into a temporary folder, as the
``postgres`` user when run as root, on ``--pg-port``), then a real Celery worker and gunicorn
on them. For ``--seconds`` it posts mentions into the X emulator and acknowledges every new
ticket, plays beat (a poll a second, outbox housekeeping every 5 s), and restarts Redis and
PostgreSQL (fast shutdown: every connection cut) ``--restarts`` times each, alternating. The
worker and the web process are never restarted. Afterwards: the worker is still the same
process, ``/monitoring/health/`` answers 200 again, and the checks of ``bench/faults.py``
hold (no mention missing, no ticket doubled, no reply posted twice, every reply sent or
flagged for the agent)::

    .venv/bin/python bench/restarts.py                  # 90 s, 2 restarts of each
    .venv/bin/python bench/restarts.py --small          # 40 s, 1 of each

Exits non-zero when a check fails. Everything it started is stopped, by its id.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soak
from ingest_bench import (
    database_label,
    database_url,
    machine,
    make_tenant,
    print_rows,
    running_emulator,
    setup_django,
    throwaway_database,
)
from load import start_gunicorn
from soak import Load, enqueue_poll, start_worker, stop_worker
from worker_kills import check_once, housekeeping, settled

soak.WORKER_READY_SECONDS = 180
_PG_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
PG_BIN = _PG_BINS[-1] if _PG_BINS else None
REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"


def as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.getuid() == 0 else command


class OwnPostgres:
    def __init__(self, port: int) -> None:
        assert PG_BIN is not None, "PostgreSQL's server binaries are not installed"
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix=f"careinbox-pg{port}-"))
        if os.getuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        subprocess.run(  # noqa: S603
            as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                         "--auth=trust", "-E", "UTF8"]),
            check=True, capture_output=True,
        )  # fmt: skip

    def ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        subprocess.run(  # noqa: S603
            as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "120",
                         "-m", "fast", "-o", options, "-l", str(self.folder / "log"), action]),
            check=True, capture_output=True,
        )  # fmt: skip

    def remove(self) -> None:
        try:
            self.ctl("stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class OwnRedis:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = subprocess.run(  # noqa: S603
                [REDIS_CLI, "-p", str(self.port), "ping"], capture_output=True, text=True
            )
            if probe.stdout.strip() == "PONG":
                return
            time.sleep(0.2)
        raise RuntimeError("our redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def guarded(what: str, errors: dict[str, int], call: Any) -> None:
    """The script is beat and an agent: while a service is down its calls fail, as theirs
    would; it counts them and goes on."""
    from django.db import close_old_connections, connection

    try:
        call()
    except Exception:
        errors[what] = errors.get(what, 0) + 1
        close_old_connections()
        connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--restarts", type=int, default=2, help="of each service")
    parser.add_argument("--rate", type=float, default=2)
    parser.add_argument("--drain", type=float, default=300)
    parser.add_argument("--redis-port", type=int, default=9651)
    parser.add_argument("--pg-port", type=int, default=9652)
    parser.add_argument("--web-port", type=int, default=9653)
    parser.add_argument("--small", action="store_true", help="40 s, 1 restart of each")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.small:
        args.seconds, args.restarts = 40, 1

    pg = OwnPostgres(args.pg_port)
    redis = OwnRedis(args.redis_port)
    pg.ctl("start")
    redis.start()
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{args.pg_port}/postgres"
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{args.redis_port}/0"
    queue = f"careinbox-restarts-{os.getpid()}"
    results: dict[str, Any] = {"scenario": "restarts"}
    try:
        setup_django(queue=queue)
        from django.conf import settings

        var = Path(settings.VAR_DIR)
        with throwaway_database("bench_restarts"), running_emulator() as emu:
            results["database"] = database_label()
            tenant = make_tenant(emu.url)
            load = Load(emu, tenant, random.Random(7))
            worker = start_worker(
                db_url=database_url(), queue=queue, concurrency=2, pool="prefork",
                log_path=var / f"restarts-worker-{os.getpid()}.log",
            )  # fmt: skip
            web_log = var / f"restarts-gunicorn-{os.getpid()}.log"
            web = start_gunicorn(port=args.web_port, queue=queue, log_path=web_log, workers=1)
            health = f"http://127.0.0.1:{args.web_port}/monitoring/health/"
            errors: dict[str, int] = {}
            health_codes: dict[str, int] = {}
            events = []
            plan = []
            for n in range(args.restarts):
                plan += [("redis", n), ("postgresql", n)]
            gap = args.seconds / (len(plan) + 1)
            try:
                started = time.monotonic()
                next_restart = started + gap
                next_house = started
                # Every planned restart happens, however slow the machine.
                while plan or time.monotonic() - started < args.seconds:
                    now = time.monotonic()
                    guarded("poll enqueue", errors, lambda: enqueue_poll(tenant.account.pk))
                    for _ in range(max(1, round(args.rate))):
                        guarded("post", errors, load.post_one)
                    guarded("acknowledge", errors, load.acknowledge_new)
                    if now >= next_house:
                        guarded("housekeeping enqueue", errors, housekeeping)
                        next_house = now + 5
                    try:
                        code = str(requests.get(health, timeout=10).status_code)
                    except requests.RequestException as exc:
                        code = type(exc).__name__
                    health_codes[code] = health_codes.get(code, 0) + 1
                    if plan and now >= next_restart:
                        service, _ = plan.pop(0)
                        restart_started = time.monotonic()
                        if service == "redis":
                            redis.stop()
                            time.sleep(2)
                            redis.start()
                        else:
                            pg.ctl("restart")
                        events.append((service, round(time.monotonic() - restart_started, 1)))
                        next_restart = now + gap
                    time.sleep(max(0.0, 1 - (time.monotonic() - now)))
                drain_started = time.monotonic()
                drained = False
                while time.monotonic() - drain_started < args.drain:
                    guarded("poll enqueue", errors, lambda: enqueue_poll(tenant.account.pk))
                    guarded("housekeeping enqueue", errors, housekeeping)
                    guarded("acknowledge", errors, load.acknowledge_new)
                    if settled(load):
                        drained = True
                        break
                    time.sleep(2)
                final_health = requests.get(health, timeout=10)
                worker_alive = worker.poll() is None
                web_alive = web.poll() is None
            finally:
                stop_worker(web)
                stop_worker(worker)
            figures, failures = check_once(load, emu)
            if not drained:
                failures.insert(0, f"the pipeline did not settle within {args.drain:g} s")
            if not worker_alive:
                failures.append("the worker exited")
            if not web_alive:
                failures.append("gunicorn exited")
            if final_health.status_code != 200:
                failures.append(
                    f"/monitoring/health/ answers {final_health.status_code} at the end"
                )
            results.update(
                restarts=events, figures=figures, failures=failures, script_errors=errors,
                health_codes=health_codes, drain_seconds=time.monotonic() - drain_started,
                final_health=final_health.json(),
            )  # fmt: skip
    finally:
        redis.stop()
        pg.remove()

    f = results["figures"]
    rows = [
        ("services", f"own {results['database']} :{args.pg_port}, own redis :{args.redis_port}"),
        ("restarts (seconds each)", ", ".join(f"{s} {t} s" for s, t in results["restarts"])),
        ("worker / web restarted", "never (still the same processes at the end)"),
        ("health during the run", str(results["health_codes"])),
        ("calls that failed meanwhile", str(results["script_errors"])),
        ("mentions posted / stored", f"{f['mentions_posted']} / {f['mentions_stored']}"),
        (
            "missing / doubled / tickets",
            f"{f['mentions_missing']} / {f['mentions_doubled']} / {f['tickets']}",
        ),
        (
            "acknowledged / sent / uncertain",
            f"{f['acknowledgements']} / {f['replies_sent']} / {f['uncertain']}",
        ),
        ("replies in emulator / twice", f"{f['replies_in_emulator']} / {f['replies_twice']}"),
        ("drain", f"{results['drain_seconds']:.0f} s"),
    ]
    print_rows(
        f"CareInbox restarts · {datetime.now(UTC):%Y-%m-%d %H:%M} · {machine()}",
        rows,
        results["failures"],
        "checks: recovered without a restart of worker or web; nothing missing or doubled",
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
