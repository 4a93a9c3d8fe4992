"""Load: 50 agents working tickets in the browser's way on gunicorn while a storm is ingested.

A throwaway database, the X emulator in a thread, a real Celery worker ingesting mentions posted
at ``--rate`` a second (and sending the replies), and gunicorn on loopback. ``--agents`` simulated
agents (threads, each a ``requests`` session that signed in through the login form, CSRF token
and all) each do ``--rounds`` rounds of: open the inbox (all open), open a ticket from it, add an
internal note, assign it to themselves, take its next care step with a reply. Bounded: a fixed
request count and ``--time-limit`` seconds. Afterwards: no 5xx, no transport error, no
``deadlock detected`` (or any traceback) in gunicorn's log, every reply sent, and the page times
(inbox, ticket) as median / p95 / max::

    .venv/bin/python bench/load.py                   # 50 agents x 6 rounds
    .venv/bin/python bench/load.py --small           # 10 agents x 3 rounds (CI)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/careinbox REDIS_URL=redis://127.0.0.1:6379/6 \\
      .venv/bin/python bench/load.py --port 9641

A step another agent took first is refused with its reason (a 4xx page): counted as
"refused", which is the product working, not an error. Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    ROOT,
    database_label,
    database_url,
    machine,
    make_tenant,
    print_rows,
    running_emulator,
    setup_django,
    summary,
    throwaway_database,
)
from soak import Load, enqueue_poll, start_worker, stop_worker

PASSWORD = "load-agent-pass-4821"  # noqa: S105 - a throwaway database's bench users
TICKET_LINK = re.compile(r'href="/tickets/(\d+)/"')
NEXT_STEP = re.compile(r'action="/tickets/\d+/steps/([a-z_]+)/"')


def start_gunicorn(*, port: int, queue: str, log_path: Path, workers: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_QUEUE": queue,
        "CAREINBOX_TESTING": "1",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    command = [
        sys.executable, "-m", "gunicorn", "careinbox.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--worker-class", "gthread", "--threads", "8", "--timeout", "60",
    ]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.3)
    stop_worker(process)
    raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")


class Agent(threading.Thread):
    """One simulated agent: a signed-in session doing a fixed number of rounds."""

    def __init__(self, base: str, username: str, rounds: int, deadline: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.username = username
        self.rounds = rounds
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.session = requests.Session()
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.statuses: Counter[str] = Counter()
        self.errors: list[str] = []

    def call(self, kind: str, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        started = time.monotonic()
        try:
            response = self.session.request(
                method, self.base + path, timeout=60, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            self.errors.append(f"{kind} {path}: {type(exc).__name__}: {exc}")
            return None
        self.timings[kind].append(time.monotonic() - started)
        self.statuses[f"{kind} {response.status_code}"] += 1
        if response.status_code >= 500:
            self.errors.append(f"{kind} {path}: HTTP {response.status_code}")
        return response

    def post(self, kind: str, path: str, data: dict[str, str]) -> requests.Response | None:
        token = self.session.cookies.get("csrftoken", "")
        return self.call(
            kind, "POST", path, data={"csrfmiddlewaretoken": token, **data},
            headers={"Referer": self.base + path},
        )  # fmt: skip

    def sign_in(self) -> bool:
        page = self.call("login page", "GET", "/login/")
        if page is None:
            return False
        done = self.post("login", "/login/", {"username": self.username, "password": PASSWORD})
        if done is None or done.status_code != 302:
            self.errors.append(f"login of {self.username}: {done and done.status_code}")
            return False
        return True

    def run(self) -> None:
        if not self.sign_in():
            return
        for n in range(self.rounds):
            if time.monotonic() > self.deadline:
                self.statuses["stopped by the time limit"] += 1
                return
            inbox = self.call("inbox", "GET", "/?view=open")
            if inbox is None or inbox.status_code != 200:
                if inbox is not None:
                    self.errors.append(f"inbox: HTTP {inbox.status_code}")
                continue
            ids = TICKET_LINK.findall(inbox.text)
            if not ids:
                time.sleep(0.5)  # nothing ingested yet
                continue
            pk = self.rng.choice(ids[:30])
            page = self.call("ticket", "GET", f"/tickets/{pk}/")
            if page is None or page.status_code != 200:
                if page is not None:
                    self.errors.append(f"ticket {pk}: HTTP {page.status_code}")
                continue
            self.post("note", f"/tickets/{pk}/notes/", {"body": f"{self.username} looked ({n})"})
            self.post("assign", f"/tickets/{pk}/assign-to-me/", {})
            steps = NEXT_STEP.findall(page.text)
            if steps:
                text = f"Hi, {self.username} here: sorry about this, we are on it ({n}-{pk})."
                self.post("step", f"/tickets/{pk}/steps/{steps[0]}/", {"text": text})


def gunicorn_log_problems(log_path: Path) -> dict[str, int]:
    text = log_path.read_text(errors="replace")
    return {
        "deadlocks": text.lower().count("deadlock detected"),
        "tracebacks": text.count("Traceback"),
        "worker timeouts": text.count("WORKER TIMEOUT"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    queue = f"careinbox-load-{os.getpid()}"
    setup_django(queue=queue)
    from django.conf import settings

    from careinbox.accounts.models import Membership, Role, User
    from careinbox.celery import app as celery_app
    from tickets.models import OutboxItem, OutboxState

    var = Path(settings.VAR_DIR)
    results: dict[str, Any] = {"scenario": "load", "agents": args.agents, "rounds": args.rounds}
    with throwaway_database("bench_load"), running_emulator() as emu:
        results["database"] = database_label()
        tenant = make_tenant(emu.url)
        usernames = []
        for n in range(args.agents):
            user = User.objects.create_user(username=f"agent{n:02d}", password=PASSWORD)
            Membership.objects.create(user=user, organization=tenant.organization, role=Role.AGENT)
            usernames.append(user.username)
        load = Load(emu, tenant, random.Random(args.seed))
        for _ in range(args.backlog):
            load.post_one()
        worker = start_worker(
            db_url=database_url(), queue=queue, log_path=var / f"load-worker-{os.getpid()}.log",
            concurrency=2, pool="prefork",
        )  # fmt: skip
        web_log = var / f"load-gunicorn-{os.getpid()}.log"
        web = start_gunicorn(port=args.port, queue=queue, log_path=web_log, workers=args.workers)
        stop_storm = threading.Event()

        def storm() -> None:
            interval = 1 / args.rate
            while not stop_storm.is_set():
                enqueue_poll(tenant.account.pk)
                for _ in range(max(1, round(args.rate))):
                    load.post_one()
                stop_storm.wait(max(interval * round(args.rate), 1.0))

        storm_thread = threading.Thread(target=storm, daemon=True)
        try:
            storm_thread.start()
            started = time.monotonic()
            deadline = started + args.time_limit
            agents = [
                Agent(f"http://127.0.0.1:{args.port}", name, args.rounds, deadline, args.seed + i)
                for i, name in enumerate(usernames)
            ]
            for agent in agents:
                agent.start()
            for agent in agents:
                agent.join(timeout=max(1.0, deadline + 30 - time.monotonic()))
            wall = time.monotonic() - started
            stop_storm.set()
            storm_thread.join(timeout=10)
            # Let the worker send what the agents queued, then count.
            settle = time.monotonic() + args.drain
            while time.monotonic() < settle:
                enqueue_poll(tenant.account.pk)
                if not OutboxItem.objects.filter(
                    state__in=[OutboxState.QUEUED, OutboxState.SENDING]
                ).exists():
                    break
                time.sleep(1)
            outbox = Counter(OutboxItem.objects.values_list("state", flat=True))
        finally:
            stop_storm.set()
            stop_worker(web)
            stop_worker(worker)
            celery_app.control.purge()

    timings: dict[str, list[float]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    for agent in agents:
        for kind, values in agent.timings.items():
            timings[kind] += values
        statuses.update(agent.statuses)
        errors += agent.errors
    stuck = [a.username for a in agents if a.is_alive()]
    pages = timings["inbox"] + timings["ticket"]
    results.update(
        wall_seconds=wall,
        requests=sum(len(v) for v in timings.values()),
        statuses=dict(sorted(statuses.items())),
        errors=errors[:20],
        error_count=len(errors),
        page_s=summary(pages),
        by_kind={kind: summary(values) for kind, values in sorted(timings.items())},
        mentions_posted=len(load.posted),
        outbox=dict(outbox),
        gunicorn_log=gunicorn_log_problems(web_log),
    )
    failures = []
    if errors:
        failures.append(f"{len(errors)} errors, e.g. {errors[0]}")
    if stuck:
        failures.append(f"{len(stuck)} agents still running after the time limit")
    problems = {k: v for k, v in results["gunicorn_log"].items() if v}
    if problems:
        failures.append(f"gunicorn log: {problems} ({web_log})")
    unsent = {s: n for s, n in outbox.items() if s != OutboxState.SENT}
    if unsent:
        failures.append(f"replies not sent: {unsent}")
    if not pages:
        failures.append("no page was served")
    results["failures"] = failures
    return results


def print_report(r: dict[str, Any]) -> None:
    def ms(stats: dict[str, float]) -> str:
        return (
            f"median {1000 * stats['median']:.0f} ms, p95 {1000 * stats['p95']:.0f} ms, "
            f"max {1000 * stats['max']:.0f} ms (n={stats['n']:.0f})"
        )

    rows = [
        ("database / web", f"{r['database']} / gunicorn gthread, loopback"),
        ("agents x rounds", f"{r['agents']} x {r['rounds']} in {r['wall_seconds']:.0f} s"),
        ("requests / errors", f"{r['requests']} / {r['error_count']}"),
        ("mentions ingested meanwhile", str(r["mentions_posted"])),
        ("page time (inbox + ticket)", ms(r["page_s"])),
        *[(f"  {kind}", ms(stats)) for kind, stats in r["by_kind"].items()],
        ("replies (outbox states)", str(r["outbox"])),
        ("statuses", ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())),
        ("gunicorn log", str(r["gunicorn_log"])),
    ]
    print_rows(
        f"CareInbox load · {datetime.now(UTC):%Y-%m-%d %H:%M} · {machine()}",
        rows,
        r["failures"],
        "checks: no 5xx, no transport error, no deadlock or traceback, every reply sent",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--rate", type=float, default=2, help="mentions per second meanwhile")
    parser.add_argument("--backlog", type=int, default=60, help="mentions waiting at the start")
    parser.add_argument("--time-limit", type=float, default=300)
    parser.add_argument("--drain", type=float, default=120)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--port", type=int, default=9641)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--small", action="store_true", help="10 agents x 3 rounds")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.small:
        args.agents, args.rounds, args.backlog, args.time_limit = 10, 3, 20, 120
    results = run(args)
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
