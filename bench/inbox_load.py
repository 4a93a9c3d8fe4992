"""Throughput: the inbox served by gunicorn under a bounded load from a second process.

Starts gunicorn (``--workers``, production settings: ``DEBUG`` off) on 127.0.0.1 over a data
set of ``bench/scale_data.py``, signs in the largest organisation's agents (sessions made with
Django's test client, in the same database and cache the server uses), and runs locust
headless in a second process (``bench/inbox_locustfile.py``: ``--users`` agents, each loading
the inbox and then polling it as the page does, with no wait) for ``--seconds``. Prints the
requests per second, p50, p95 and failures per request kind from locust's own statistics, and
exits non-zero on any failure or error::

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python bench/inbox_load.py --database careinbox_bench_20k --seconds 30
    .venv/bin/python bench/inbox_load.py --users 8 --seconds 60 --json var/inbox_load.json

gunicorn listens on ``--port`` (default 9300) and is stopped at the end, always.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.read_paths import setup  # noqa: E402


def wait_for(url: str, seconds: float, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - our own loopback server
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer {url} (see var/inbox_load/gunicorn.log)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="careinbox_bench")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=9300)
    parser.add_argument("--view", default="open")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    meta = json.loads((ROOT / "var" / f"{args.database}.json").read_text())
    # One key for the sessions made here and the server that reads them.
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(40)
    setup(args.database)
    from cryptography.fernet import Fernet
    from django.test import Client

    from careinbox.accounts.models import User

    sessions = []
    for user in User.objects.filter(pk__in=meta["organisations"][0]["agents"]).order_by("pk"):
        client = Client()
        client.force_login(user)
        sessions.append(client.cookies["sessionid"].value)
    env = {
        **os.environ,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "CREDENTIALS_KEYS": Fernet.generate_key().decode(),
    }
    env.pop("CAREINBOX_TESTING", None)
    bin_dir = Path(sys.executable).parent
    out = ROOT / "var" / "inbox_load"
    out.mkdir(parents=True, exist_ok=True)
    # DEBUG off serves the hashed static files' manifest: collect them once, as a deploy does.
    if not (ROOT / "var" / "staticfiles" / "staticfiles.json").exists():
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
    server = subprocess.Popen(  # noqa: S603 - a fixed command
        [
            str(bin_dir / "gunicorn"),
            "careinbox.wsgi",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--workers",
            str(args.workers),
            "--access-logfile",
            "-",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(out / "gunicorn.log", "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{args.port}/monitoring/health/", 60, server)
        started = time.perf_counter()
        subprocess.run(  # noqa: S603 - a fixed command
            [
                str(bin_dir / "locust"),
                "-f",
                str(ROOT / "bench" / "inbox_locustfile.py"),
                "--headless",
                "--users",
                str(args.users),
                "--spawn-rate",
                str(args.users),
                "--run-time",
                f"{args.seconds}s",
                "--host",
                f"http://127.0.0.1:{args.port}",
                "--csv",
                str(out / "locust"),
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            env={
                **os.environ,
                "INBOX_LOAD_SESSIONS": ",".join(sessions),
                "INBOX_LOAD_VIEW": args.view,
            },
            check=False,
            cwd=ROOT,
        )
        elapsed = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    with open(out / "locust_stats.csv") as handle:
        stats = list(csv.DictReader(handle))
    rows = []
    for row in stats:
        rows.append(
            {
                "name": row["Name"],
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 1),
                "p50_ms": float(row["50%"]),
                "p95_ms": float(row["95%"]),
                "max_ms": round(float(row["Max Response Time"]), 1),
            }
        )
    print(
        f"\n{meta['database']} ({meta['tickets']:,} tickets), view {args.view}: gunicorn "
        f"{args.workers} workers, locust {args.users} users, {args.seconds} s "
        f"({elapsed:.0f} s with start and stop)"
    )
    for row in rows:
        print(
            f"{row['name']:<12} {row['requests']:>6} requests  {row['rps']:>6.1f}/s  "
            f"p50 {row['p50_ms']:>6.0f} ms  p95 {row['p95_ms']:>6.0f} ms  max "
            f"{row['max_ms']:>7.0f} ms  failures {row['failures']}"
        )
    if args.json:
        args.json.write_text(json.dumps({"database": args.database, "rows": rows}, indent=2))
    total = next((r for r in rows if r["name"] == "Aggregated"), None)
    if total is None or total["failures"] or not total["requests"]:
        print("FAILED: failures, or no requests")
        return 1
    print("no failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
