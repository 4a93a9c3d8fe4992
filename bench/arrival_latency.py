"""Arrival latency: how long from a customer's post on the platform to its message stored?

Everything runs as the real processes, on a throwaway PostgreSQL (or SQLite) database and the
Redis (or filesystem) broker the environment names: the X emulator and the Facebook emulator
(``manage.py run_x_sandbox`` / ``run_facebook_sandbox``, their real rate limits), gunicorn
serving ``/webhooks/facebook/``, a Celery worker and ``celery beat`` at the poll interval.
One organisation has an X handle and a Facebook page pointing at them. Then, at a steady rate:

- **X**: ``--posts`` mentions of the handle go into the X emulator; beat's dispatcher polls the
  handle every ``--interval`` seconds (within the mentions budget the adapter keeps); measured:
  post -> ``Message.received_at`` (the row's own insert time). Target p95 < 5 s.
- **Facebook**: ``--posts`` customers' comments go into the Facebook emulator, which delivers
  each as a signed webhook to gunicorn; measured: comment -> message stored. Target p95 < 1 s.

Both streams run at the same time, each at ``--rate`` posts a second. It prints a table and
exits non-zero if any post was never stored (or stored twice) within ``--drain`` seconds of
the last one: a correctness check. The timings are figures for docs/benchmarks.md, not
assertions::

    .venv/bin/python bench/arrival_latency.py --small          # 20 posts each, < 60 s
    REDIS_URL=redis://127.0.0.1:6379/0 DATABASE_URL=postgres://postgres@127.0.0.1:5432/careinbox \\
      .venv/bin/python bench/arrival_latency.py --posts 100

Ports: ``--port-base`` (default 9910) and the next two, 127.0.0.1 only. Every process it
started is stopped (by its id) and its queue purged, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    BRAND_HANDLE,
    BRAND_ID,
    ROOT,
    database_label,
    database_url,
    machine,
    make_tenant,
    print_rows,
    setup_django,
    summary,
    throwaway_database,
)
from poll_fairness import start_beat
from soak import start_worker, stop_worker

PAGE_ID = "1910000000000001"
PAGE_TOKEN = "EAAbench-arrival-page-token"  # noqa: S105 - an emulator's made-up token
APP_SECRET = "bench-arrival-app-secret"  # noqa: S105 - signs the emulator's webhooks
READY_SECONDS = 120  # a busy machine can take long to start a process; not what we measure
X_TARGET_P95 = 5.0
FACEBOOK_TARGET_P95 = 1.0


def child_env(queue: str, interval: int) -> dict[str, str]:
    """What every process we start shares: our database, queue, poll interval and app secret."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_QUEUE": queue,
        "CAREINBOX_TESTING": "1",
        "POLL_INTERVAL_SECONDS": str(interval),
        "FACEBOOK_APP_SECRET": APP_SECRET,
        "ALLOWED_HOSTS": "127.0.0.1",
    }


def start_listening(
    command: list[str], *, port: int, env: dict[str, str], log_path: Path, name: str
) -> subprocess.Popen[str]:
    """Start ``command`` and return once something accepts connections on ``port``."""
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log_path.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    stop_worker(process)
    raise RuntimeError(f"{name} did not start on :{port}:\n{log_path.read_text()[-3000:]}")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def make_page(tenant: Any, facebook_url: str) -> Any:
    """The organisation's Facebook page, pointed at the emulator, connected a minute ago
    (Graph's times are whole seconds; nothing before the connection is taken in)."""
    from django.utils import timezone

    from channels_social.models import Platform, SocialAccount

    page = SocialAccount(
        organization=tenant.organization,
        brand=tenant.account.brand,
        platform=Platform.FACEBOOK,
        external_id=PAGE_ID,
        username="Bench Co",
        api_base_url=facebook_url,
        connected_at=timezone.now() - timedelta(minutes=1),
    )
    page.credentials = {"page_access_token": PAGE_TOKEN}
    page.save()
    return page


def post_both(
    args: argparse.Namespace, x: Any, fb: Any, fb_post_id: str
) -> tuple[dict[str, float], dict[str, float], int]:
    """Post ``args.posts`` mentions and comments, interleaved, each stream at ``args.rate`` a
    second; returns the wall-clock time just before each post, by its id, and how many posts
    were late by more than a second (the script could not keep the rate)."""
    x_posted: dict[str, float] = {}
    fb_posted: dict[str, float] = {}
    interval = 1 / args.rate
    started = time.monotonic()
    late = 0
    for n in range(args.posts):
        due = started + n * interval
        time.sleep(max(0.0, due - time.monotonic()))
        if time.monotonic() - due > 1:
            late += 1
        author = str(7_000_000 + n)
        before = time.time()
        tweet = x.post_mention(
            BRAND_HANDLE, author, f"arrival{n}", 500, f"Order {n} is a week late, any news?"
        )
        x_posted[str(tweet["id"])] = before
        before = time.time()
        comment = fb.comment(
            fb_post_id,
            person_id=str(8_000_000 + n),
            name=f"Customer {n}",
            message=f"Where is my parcel, order {n}?",
        )
        fb_posted[str(comment["id"])] = before
    return x_posted, fb_posted, late


def stored(posted: dict[str, float], platform: str) -> dict[str, list[float]]:
    """Each posted id's stored messages, as Unix times of their insert."""
    from tickets.models import Direction, Message

    found: dict[str, list[float]] = {}
    rows = Message.objects.filter(
        platform=platform, direction=Direction.INBOUND, external_id__in=list(posted)
    ).values_list("external_id", "received_at")
    for external_id, received in rows:
        found.setdefault(external_id, []).append(received.timestamp())
    return found


def wait_all(posted: dict[str, dict[str, float]], drain: float) -> float:
    """Wait until every post is stored, at most ``drain`` seconds; returns the wait."""
    started = time.monotonic()
    while time.monotonic() - started < drain:
        if all(len(stored(p, platform)) >= len(p) for platform, p in posted.items()):
            break
        time.sleep(0.5)
    return time.monotonic() - started


def measure(platform: str, posted: dict[str, float]) -> tuple[dict[str, Any], list[str]]:
    found = stored(posted, platform)
    failures: list[str] = []
    missing = [i for i in posted if i not in found]
    twice = [i for i, times in found.items() if len(times) > 1]
    if missing:
        failures.append(f"{platform}: {len(missing)} of {len(posted)} posts never stored")
    if twice:
        failures.append(f"{platform}: {len(twice)} posts stored more than once")
    latencies = [min(times) - posted[i] for i, times in found.items()]
    return {"posted": len(posted), "stored": len(found), "latency_s": summary(latencies)}, failures


def webhook_outcomes(fb: Any) -> dict[str, int]:
    return dict(Counter(d["outcome"] for d in fb.webhook_deliveries()))


def x_request_counts(x: Any) -> dict[str, int]:
    """The X emulator's own record: the handle's mention reads, and how many it refused (429)."""
    log = x.requests_log()
    reads = [e for e in log if e["method"] == "GET" and "/mentions" in e["path"]]
    return {
        "mention_reads": len(reads),
        "refused_429": sum(1 for e in log if e["status"] == 429),
        "requests": len(log),
    }


def log_counts(paths: dict[str, Path]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, path in paths.items():
        text = path.read_text(errors="replace") if path.exists() else ""
        counts[name] = text.count("Traceback")
    return counts


def run(args: argparse.Namespace) -> dict[str, Any]:
    queue = f"careinbox-arrival-{os.getpid()}"
    os.environ["POLL_INTERVAL_SECONDS"] = str(args.interval)
    setup_django(queue=queue)
    from django.conf import settings

    from careinbox.celery import app as celery_app
    from channels_social.models import Platform
    from channels_social.sandbox.facebook.control import FacebookSandboxControl
    from channels_social.sandbox.x.control import SandboxControl

    x_port, fb_port, web_port = args.port_base, args.port_base + 1, args.port_base + 2
    busy = [p for p in (x_port, fb_port, web_port) if not port_free(p)]
    if busy:
        raise SystemExit(f"127.0.0.1 ports in use: {busy}; choose another --port-base")
    var = Path(settings.VAR_DIR)
    tag = f"arrival-{os.getpid()}"
    logs = {name: var / f"{tag}-{name}.log" for name in ("x", "facebook", "web", "worker", "beat")}
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "uptime": subprocess.run(
            ["/usr/bin/uptime"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "command": " ".join([".venv/bin/python", "bench/arrival_latency.py", *sys.argv[1:]]),
        "posts": args.posts,
        "rate": args.rate,
        "interval": args.interval,
        "broker": "redis" if os.environ.get("REDIS_URL") else "filesystem",
        "logs": {k: str(v) for k, v in logs.items()},
    }
    wall = time.monotonic()
    with throwaway_database("bench_arrival"), ExitStack() as stack:
        results["database"] = database_label()
        env = child_env(queue, args.interval)
        py = [sys.executable]

        def started(process: subprocess.Popen[str]) -> subprocess.Popen[str]:
            stack.callback(stop_worker, process)
            return process

        started(
            start_listening(
                [*py, "manage.py", "run_x_sandbox", "--port", str(x_port), "--no-state"],
                port=x_port,
                env=env,
                log_path=logs["x"],
                name="the X emulator",
            )
        )
        webhook_url = f"http://127.0.0.1:{web_port}/webhooks/facebook/"
        facebook_command = [
            *py, "manage.py", "run_facebook_sandbox", "--port", str(fb_port), "--no-state",
            "--page", f"{PAGE_ID}:{PAGE_TOKEN}:Bench Co",
            "--webhook-url", webhook_url, "--app-secret", APP_SECRET,
        ]  # fmt: skip
        web_command = [
            *py, "-m", "gunicorn", "careinbox.wsgi", "--bind", f"127.0.0.1:{web_port}",
            "--workers", "2", "--worker-class", "gthread", "--threads", "4",
        ]  # fmt: skip
        started(
            start_listening(
                facebook_command,
                port=fb_port,
                env=env,
                log_path=logs["facebook"],
                name="the Facebook emulator",
            )
        )
        started(
            start_listening(
                web_command,
                port=web_port,
                env=env,
                log_path=logs["web"],
                name="gunicorn",
            )
        )
        x_url, fb_url = f"http://127.0.0.1:{x_port}", f"http://127.0.0.1:{fb_port}"
        x, fb = SandboxControl(x_url), FacebookSandboxControl(fb_url)
        x.wait_until_up(10)
        fb.wait_until_up(10)
        x.upsert_user(id=BRAND_ID, username=BRAND_HANDLE, name="Bench Co", followers_count=1)
        tenant = make_tenant(x_url)
        make_page(tenant, fb_url)
        fb_post = fb.page_post(PAGE_ID, "Our winter sale starts today")

        # Run last on the way out (the stack unwinds in reverse): once beat and the worker
        # have stopped, nothing is left in our queue.
        stack.callback(celery_app.control.purge)
        worker = start_worker(
            db_url=database_url(), queue=queue, log_path=logs["worker"], concurrency=2,
            pool="prefork",
        )  # fmt: skip
        stack.callback(stop_worker, worker)
        beat = start_beat(
            db_url=database_url(),
            queue=queue,
            log_path=logs["beat"],
            schedule=var / f"{tag}-beat.schedule",
        )
        stack.callback(stop_worker, beat)
        # The first polls set the cursors; mentions posted from now on are what we time.
        time.sleep(args.interval + 2)

        posting = time.monotonic()
        x_posted, fb_posted, late = post_both(args, x, fb, str(fb_post["id"]))
        results["posting_seconds"] = time.monotonic() - posting
        results["late_posts"] = late
        posted = {Platform.X.value: x_posted, Platform.FACEBOOK.value: fb_posted}
        results["drain_seconds"] = wait_all(posted, args.drain)
        failures: list[str] = []
        for label, platform in (("x", Platform.X.value), ("facebook", Platform.FACEBOOK.value)):
            figures, problems = measure(platform, posted[platform])
            results[label] = figures
            failures += problems
        results["webhooks"] = webhook_outcomes(fb)
        results["x_requests"] = x_request_counts(x)
        results["failures"] = failures
    results["tracebacks"] = log_counts(logs)
    results["wall_seconds"] = time.monotonic() - wall
    return results


def print_report(r: dict[str, Any]) -> None:
    def lat(stats: dict[str, float], target: float) -> str:
        if not stats.get("n"):
            return "nothing stored"
        return (
            f"p50 {1000 * stats['median']:.0f} ms, p95 {1000 * stats['p95']:.0f} ms, "
            f"max {1000 * stats['max']:.0f} ms (n={stats['n']:.0f}; target p95 < {target:g} s)"
        )

    rows = [
        ("database / broker", f"{r['database']} / {r['broker']}"),
        ("load", r["uptime"]),
        (
            "posting",
            f"{r['posts']} mentions + {r['posts']} comments, {r['rate']:g}/s each, "
            f"{r['posting_seconds']:.1f} s ({r['late_posts']} late)",
        ),
        ("X poll interval", f"{r['interval']} s (celery beat, poll_due_accounts)"),
        ("X mentions posted / stored", f"{r['x']['posted']} / {r['x']['stored']}"),
        ("X emulator requests", str(r["x_requests"])),
        ("X post -> stored", lat(r["x"]["latency_s"], X_TARGET_P95)),
        (
            "Facebook comments posted / stored",
            f"{r['facebook']['posted']} / {r['facebook']['stored']}",
        ),
        ("Facebook comment -> stored", lat(r["facebook"]["latency_s"], FACEBOOK_TARGET_P95)),
        ("Facebook webhook deliveries", str(r["webhooks"])),
        ("tracebacks in logs", str(r["tracebacks"])),
        ("drain after the last post", f"{r['drain_seconds']:.1f} s"),
        ("wall time", f"{r['wall_seconds']:.0f} s"),
    ]
    print_rows(
        f"CareInbox arrival latency · {r['date']} · {r['machine']}",
        rows,
        r["failures"],
        "checks: every mention and every comment stored exactly once",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100, help="mentions, and comments, each")
    parser.add_argument("--rate", type=float, default=2.0, help="posts per second, per network")
    parser.add_argument(
        "--interval", type=int, default=3, help="POLL_INTERVAL_SECONDS for beat (>= 2)"
    )
    parser.add_argument("--drain", type=float, default=60, help="max seconds to wait at the end")
    parser.add_argument("--port-base", type=int, default=9910, help="this port and the next two")
    parser.add_argument("--small", action="store_true", help="20 posts each (< 60 s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.small:
        args.posts = min(args.posts, 20)
        args.drain = min(args.drain, 20)
    if args.posts < 1 or args.rate <= 0 or args.interval < 2:
        parser.error("--posts >= 1, --rate > 0 and --interval >= 2")
    results = run(args)
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
