"""Soak: the whole pipeline under sustained load, on real infrastructure, checked at the end.

A throwaway database, the X emulator in a thread, and a real Celery worker subprocess on a queue
of its own (Redis when ``REDIS_URL`` is set, else kombu's filesystem transport). Every second
the script enqueues ``poll_account`` for the one handle (beat's dispatcher, ``poll_due_accounts``,
is left out here: ``bench/poll_fairness.py`` measures it) and posts ``--rate`` mentions into the
emulator over HTTP; it acknowledges every new ticket with ``ticket_take_step`` and the worker
sends the replies. Then it drains and checks that every mention was stored once, every
acknowledgement delivered once, every ticket's first-response timer started and met (by the
event handlers, after commit, in the worker), and nothing is left in the outbox::

    .venv/bin/python bench/soak.py                         # 300 s at 5 mentions/s
    .venv/bin/python bench/soak.py --small                 # 20 s
    REDIS_URL=redis://127.0.0.1:6379/0 \\
      DATABASE_URL=postgres://postgres@127.0.0.1:5432/careinbox \\
      .venv/bin/python bench/soak.py --seconds 120

Exits non-zero when a check fails. The worker is always stopped and its queue purged.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    BRAND_HANDLE,
    ROOT,
    Emulator,
    Tenant,
    complaint,
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

WORKER_READY_SECONDS = 60
FOLLOW_UP_SHARE = 0.1  # of mentions: a customer's reply under their own earlier post


# The worker -------------------------------------------------------------------------------


def start_worker(
    *, db_url: str, queue: str, log_path: Path, concurrency: int, pool: str
) -> subprocess.Popen[str]:
    """A real ``celery worker`` on our database and queue; returns once it says ``ready.``."""
    env = {**os.environ, "DATABASE_URL": db_url, "CELERY_QUEUE": queue, "CAREINBOX_TESTING": "1"}
    command = [sys.executable, "-m", "celery", "-A", "careinbox", "worker", "--pool", pool]
    if pool == "prefork":
        command += ["--concurrency", str(concurrency)]
    command += [
        "--loglevel",
        "INFO",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    deadline = time.monotonic() + WORKER_READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited:\n{log_path.read_text()[-3000:]}")
        if "ready." in log_path.read_text():
            return process
        time.sleep(0.2)
    stop_worker(process)
    raise RuntimeError(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")


def stop_worker(process: subprocess.Popen[str]) -> None:
    """Warm shutdown (SIGTERM), then SIGKILL after 20 s; only this process, by its id."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_rss_mb(pid: int) -> dict[str, float]:
    """VmRSS of the worker and of each of its descendants (pool processes), in MiB."""
    result: dict[str, float] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                result[str(current)] = int(line.split()[1]) / 1024
        todo += _children(current)
    return result


# The load ---------------------------------------------------------------------------------


class Load:
    """Posts mentions over HTTP and acknowledges new tickets, remembering what it did."""

    def __init__(self, emu: Emulator, tenant: Tenant, rng: random.Random) -> None:
        self.emu = emu
        self.tenant = tenant
        self.rng = rng
        self.posted: dict[str, datetime] = {}  # tweet id -> created_at in the emulator
        self.follow_ups: dict[str, str] = {}  # reply id -> parent id
        self.last_by_author: dict[str, str] = {}
        self.acknowledged: set[int] = set()
        self.step_errors: list[str] = []

    def post_one(self) -> None:
        n = len(self.posted)
        author = str(6_000_000 + self.rng.randrange(max(50, n // 3 + 50)))
        parent = self.last_by_author.get(author)
        follow_up = parent is not None and self.rng.random() < FOLLOW_UP_SHARE
        text = f"any news? still waiting ({n})" if follow_up else complaint(self.rng, n)
        tweet = self.emu.control.post_mention(
            BRAND_HANDLE,
            author,
            f"soak{author}",
            self.rng.choice([15, 800, 3_000, 60_000]),
            text,
            in_reply_to=parent if follow_up else None,
        )
        tweet_id = str(tweet["id"])
        self.posted[tweet_id] = datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00"))
        self.last_by_author[author] = tweet_id
        if follow_up and parent:
            self.follow_ups[tweet_id] = parent

    def acknowledge_new(self) -> int:
        """Take the acknowledge step on every new ticket; the outbox sends via the worker."""
        from tickets.models import Status, Step, StepError, Ticket
        from tickets.services import ticket_take_step

        fresh = list(
            Ticket.objects.filter(social_account=self.tenant.account, status=Status.NEW)
            .exclude(pk__in=self.acknowledged)
            .order_by("pk")
        )
        for ticket in fresh:
            try:
                ticket_take_step(
                    ticket=ticket,
                    step=Step.ACKNOWLEDGE,
                    by=self.tenant.agent,
                    text=f"Hi @{ticket.customer_username}, sorry - we're on it (#{ticket.pk}).",
                )
            except StepError as exc:
                self.step_errors.append(f"ticket {ticket.pk}: {exc}")
            self.acknowledged.add(ticket.pk)
        return len(fresh)


def enqueue_poll(account_id: int) -> None:
    """One poll of the handle, every second (a 1 s interval; settings allow 2 s at least). No
    ``expires``: a backlog of polls is harmless, the lease makes an overlapping one skip."""
    from channels_social.tasks import poll_account

    poll_account.delay(account_id)


def pipeline_done(load: Load) -> bool:
    """Everything stored, acknowledged and sent, and every first-response timer met: the
    handlers run after each commit, so the timers come a moment after the rows they follow."""
    from monitoring.models import Metric, SlaTimer, TimerState
    from tickets.models import Direction, Message, OutboxItem, OutboxState, Status, Ticket

    stored = Message.objects.filter(direction=Direction.INBOUND).count()
    pending = OutboxItem.objects.filter(
        state__in=[OutboxState.QUEUED, OutboxState.SENDING]
    ).exists()
    fresh = Ticket.objects.filter(status=Status.NEW).exists()
    timers_met = SlaTimer.objects.filter(metric=Metric.FIRST_RESPONSE, state=TimerState.MET).count()
    return (
        stored >= len(load.posted)
        and not pending
        and not fresh
        and timers_met >= Ticket.objects.count()
    )


def run_load(args: argparse.Namespace, load: Load, worker_pid: int) -> dict[str, Any]:
    """Post for ``args.seconds``, then drain (bounded); sample the worker's RSS every 10 s."""
    account_id = load.tenant.account.pk
    rss_samples: list[tuple[float, float]] = []
    started = time.monotonic()
    next_poll = next_post = next_sample = started
    interval = 1 / args.rate
    late_posts = 0
    while (now := time.monotonic()) - started < args.seconds:
        if now >= next_sample:
            rss_samples.append((now - started, sum(tree_rss_mb(worker_pid).values())))
            next_sample += 10
        if now >= next_poll:
            enqueue_poll(account_id)
            next_poll += 1
        while now >= next_post and now - started < args.seconds:
            load.post_one()
            next_post += interval
            if time.monotonic() - next_post > 1:
                late_posts += 1  # the script itself could not keep the rate
        load.acknowledge_new()
        time.sleep(max(0.0, min(next_poll, next_post) - time.monotonic()))
    load_seconds = time.monotonic() - started

    drain_started = time.monotonic()
    next_poll = drain_started
    drained = False
    while time.monotonic() - drain_started < args.drain:
        if time.monotonic() >= next_poll:
            enqueue_poll(account_id)
            next_poll += 1
        load.acknowledge_new()
        if pipeline_done(load):
            drained = True
            break
        time.sleep(0.25)
    rss_samples.append((time.monotonic() - started, sum(tree_rss_mb(worker_pid).values())))
    return {
        "load_seconds": load_seconds,
        "drain_seconds": time.monotonic() - drain_started,
        "drained": drained,
        "late_posts": late_posts,
        "rss_samples": rss_samples,
    }


# The checks -------------------------------------------------------------------------------


def check(load: Load, emu: Emulator) -> tuple[dict[str, Any], list[str]]:
    """Exactly-once in, exactly-once out, nothing stuck; latencies from the stored rows."""
    from monitoring.models import Metric, SlaTimer, TimerState
    from tickets.models import (
        Direction,
        EventKind,
        Message,
        OutboxItem,
        OutboxState,
        Ticket,
        TicketEvent,
    )

    failures: list[str] = []
    inbound = list(
        Message.objects.filter(direction=Direction.INBOUND).values_list(
            "external_id", "ticket_id", "received_at"
        )
    )
    stored_ids = Counter(external_id for external_id, _, _ in inbound)
    duplicated = [i for i, count in stored_ids.items() if count > 1]
    missing = set(load.posted) - set(stored_ids)
    unexpected = set(stored_ids) - set(load.posted)
    if duplicated or missing or unexpected:
        failures.append(
            f"mentions: {len(missing)} missing, {len(duplicated)} stored twice, "
            f"{len(unexpected)} unexpected"
        )
    ticket_of = {external_id: ticket for external_id, ticket, _ in inbound}
    misthreaded = sum(
        1
        for reply, parent in load.follow_ups.items()
        if ticket_of.get(reply) != ticket_of.get(parent)
    )
    if misthreaded:
        failures.append(f"{misthreaded} follow-ups not threaded into their ticket")
    tickets = Ticket.objects.count()
    # A customer posting the same complaint again within the window joins their open ticket.
    joined_by_text = TicketEvent.objects.filter(
        kind=EventKind.MESSAGE_RECEIVED, data__has_key="near_duplicate"
    ).count()
    expected_tickets = len(load.posted) - len(load.follow_ups) - joined_by_text
    if tickets != expected_tickets:
        failures.append(f"{tickets} tickets, expected {expected_tickets}")
    # Every ticket was acknowledged (a public reply): its first-response timer is met. Other
    # targets (resolution, close-out) rightly keep running.
    first_response = SlaTimer.objects.filter(metric=Metric.FIRST_RESPONSE)
    timer_states = Counter(first_response.values_list("state", flat=True))
    untimed = Ticket.objects.exclude(pk__in=first_response.values("ticket_id")).count()
    if untimed:
        failures.append(f"{untimed} tickets without a first-response SLA timer")
    not_met = {state: n for state, n in timer_states.items() if state != TimerState.MET}
    if not_met:
        failures.append(f"first-response timers not met though every ticket was: {not_met}")

    items = list(
        OutboxItem.objects.select_related("message").values_list(
            "state",
            "created_at",
            "sent_at",
            "message__external_id",
            "message__in_reply_to_external_id",
        )
    )
    states = Counter(state for state, *_ in items)
    stuck = {s: n for s, n in states.items() if s != OutboxState.SENT}
    if stuck:
        failures.append(f"outbox items not sent: {stuck}")
    sent = states.get(OutboxState.SENT, 0)
    if len(items) != len(load.acknowledged) - len(load.step_errors):
        failures.append(f"{len(items)} outbox items for {len(load.acknowledged)} acknowledgements")
    if load.step_errors:
        failures.append(f"{len(load.step_errors)} step errors, e.g. {load.step_errors[0]}")
    posts = [
        entry
        for entry in emu.app.requests_log()
        if entry["method"] == "POST" and entry["path"] == "/2/tweets"
    ]
    accepted = [entry for entry in posts if entry["status"] == 201]
    if len(accepted) != sent:
        failures.append(f"{len(accepted)} replies accepted by the emulator, {sent} sent items")
    if len(posts) != len(accepted):
        failures.append(f"{len(posts) - len(accepted)} POST /2/tweets refused by the emulator")
    reply_parents = Counter(
        str((entry["json"] or {}).get("reply", {}).get("in_reply_to_tweet_id"))
        for entry in accepted
    )
    twice = [parent for parent, count in reply_parents.items() if count > 1]
    if twice:
        failures.append(f"{len(twice)} mentions answered more than once")
    store = emu.app.store
    wrong_target = sum(
        1
        for state, _, _, external_id, target in items
        if state == OutboxState.SENT
        and (
            store.get_tweet(external_id) is None
            or store.get_tweet(external_id).in_reply_to_tweet_id != target
        )
    )
    if wrong_target:
        failures.append(f"{wrong_target} sent items not found under their target in the emulator")

    to_stored = [
        (received - load.posted[external_id]).total_seconds()
        for external_id, _, received in inbound
        if external_id in load.posted
    ]
    to_delivered = [
        (sent_at - created).total_seconds() for state, created, sent_at, _, _ in items if sent_at
    ]
    figures = {
        "mentions_posted": len(load.posted),
        "follow_ups": len(load.follow_ups),
        "mentions_stored": len(inbound),
        "tickets": tickets,
        "acknowledgements": len(load.acknowledged),
        "replies_sent": sent,
        "replies_in_emulator": len(accepted),
        "sla_timers_met": timer_states.get(TimerState.MET, 0),
        "mention_to_stored_s": summary(to_stored),
        "step_to_delivered_s": summary(to_delivered),
    }
    return figures, failures


def worker_log_problems(log_path: Path) -> dict[str, int]:
    text = log_path.read_text(errors="replace")
    return {
        "errors": text.count(" ERROR/"),
        "tracebacks": text.count("Traceback"),
        "polls_ok": text.count("'ok: "),
        "polls_skipped": text.count("skipped: another poll"),
        "sends": text.count("send_outbox_item") // 2,
    }


def print_report(r: dict[str, Any]) -> None:
    f, load = r["figures"], r["load"]
    rss = [mb for _, mb in load["rss_samples"]]

    def lat(stats: dict[str, float]) -> str:
        return (
            f"median {1000 * stats['median']:.0f} ms, p95 {1000 * stats['p95']:.0f} ms, "
            f"max {1000 * stats['max']:.0f} ms (n={stats['n']:.0f})"
        )

    rows = [
        ("database / broker", f"{r['database']} / {r['broker']}"),
        ("worker", r["worker"]),
        ("load", f"{r['rate']:g} mentions/s for {load['load_seconds']:.0f} s"),
        ("drain", f"{load['drain_seconds']:.1f} s ({'done' if load['drained'] else 'TIMED OUT'})"),
        ("mentions posted / stored", f"{f['mentions_posted']} / {f['mentions_stored']}"),
        ("follow-ups / tickets", f"{f['follow_ups']} / {f['tickets']}"),
        (
            "acknowledged / sent / in emulator",
            f"{f['acknowledgements']} / {f['replies_sent']} / {f['replies_in_emulator']}",
        ),
        ("first-response SLA met / tickets", f"{f['sla_timers_met']} / {f['tickets']}"),
        ("mention -> stored", lat(f["mention_to_stored_s"])),
        ("step -> delivered", lat(f["step_to_delivered_s"])),
        ("worker RSS start -> end (max)", f"{rss[0]:.0f} -> {rss[-1]:.0f} MiB ({max(rss):.0f})"),
        (
            "worker processes at end",
            ", ".join(f"{mb:.0f}" for mb in r["worker_rss_end"].values()) + " MiB",
        ),
        ("worker log", f"{r['worker_log']} {r['worker_log_counts']}"),
        ("wall time", f"{r['wall_seconds']:.0f} s"),
    ]
    print_rows(
        f"CareInbox soak · {r['date']} · {r['machine']}",
        rows,
        r["failures"],
        "checks: every mention stored once, every acknowledgement delivered once, every "
        "first response met, outbox empty",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300, help="how long to post")
    parser.add_argument("--rate", type=float, default=5, help="mentions per second")
    parser.add_argument("--small", action="store_true", help="20 s")
    parser.add_argument("--drain", type=float, default=60, help="max seconds to wait at the end")
    parser.add_argument("--pool", choices=["prefork", "solo"], default="prefork")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.small:
        args.seconds = 20

    queue = f"careinbox-soak-{os.getpid()}"
    setup_django(queue=queue)
    from django.conf import settings

    from careinbox.celery import app as celery_app

    wall = time.monotonic()
    log_path = Path(settings.VAR_DIR) / f"soak-worker-{os.getpid()}.log"
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join([".venv/bin/python", "bench/soak.py", *sys.argv[1:]]),
        "rate": args.rate,
        "seconds": args.seconds,
        "broker": "redis" if os.environ.get("REDIS_URL") else "filesystem",
        "worker": f"{args.pool}" + (f" x{args.concurrency}" if args.pool == "prefork" else ""),
        "worker_log": str(log_path),
    }
    with throwaway_database("bench_soak"), running_emulator() as emu:
        results["database"] = database_label()
        tenant = make_tenant(emu.url)
        load = Load(emu, tenant, random.Random(20240602))
        worker = start_worker(
            db_url=database_url(),
            queue=queue,
            log_path=log_path,
            concurrency=args.concurrency,
            pool=args.pool,
        )
        try:
            results["load"] = run_load(args, load, worker.pid)
            results["worker_rss_end"] = tree_rss_mb(worker.pid)
        finally:
            stop_worker(worker)
            results["purged"] = celery_app.control.purge()
        figures, failures = check(load, emu)
        if not results["load"]["drained"]:
            failures.insert(0, f"the pipeline did not drain within {args.drain:g} s")
        results["figures"] = figures
        results["failures"] = failures
    results["worker_log_counts"] = worker_log_problems(log_path)
    results["wall_seconds"] = time.monotonic() - wall
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
