"""Live inbox traffic: bytes per agent per minute, the whole-table refresh against the delta.

Fills a throwaway database (SQLite by default, PostgreSQL when ``DATABASE_URL`` says so) with
N open tickets (each with its post and running SLA timers), signs one agent in with Django's
test client, and plays one minute of the inbox's 5-second polls (12) while the traffic of a
busy minute happens between them: ``--arrivals`` new tickets, ``--changes`` tickets assigned
or tagged, ``--closes`` closed. For every poll it records what the agent's browser receives:

* **before** — the inbox as it was before the live update (commit b7620fe): every 5 s the
  whole ``#inbox`` table, rendered here from that commit's own template with the same tickets;
* **after** — the real poll of today's inbox (``?live=1&token=…``): 204 with no body when
  nothing changed, else only the new or changed rows, the counts, and the new token.

Bytes are the response body plus its headers as Django writes them (no compression). A quiet
minute (no traffic) is measured too::

    .venv/bin/python bench/inbox_live_bytes.py                    # 50 and 200 tickets
    .venv/bin/python bench/inbox_live_bytes.py --sizes 200 --json var/live.json

Exits non-zero if a check fails: after the minute the delta-fed page must hold exactly the
rows a full render shows, in the same order.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest_bench import (  # noqa: E402
    database_label,
    machine,
    setup_django,
    throwaway_database,
)

BEFORE_COMMIT = "b7620fe"  # the inbox before the live update: the whole table every 5 s
POLLS_PER_MINUTE = 12


def old_inbox_template() -> str:
    return subprocess.run(  # noqa: S603 - a fixed git command
        ["git", "show", f"{BEFORE_COMMIT}:templates/tickets/inbox.html"],  # noqa: S607
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def headers_bytes(response: Any) -> int:
    return len(response.serialize_headers()) + len(b"HTTP/1.1 200 OK\r\n\r\n")


class World:
    """One organisation, one agent, and the tickets the minute's traffic acts on."""

    def __init__(self, tickets: int) -> None:
        from careinbox.accounts.models import Membership, Organization, Role, User
        from channels_social.models import Brand, Platform, SocialAccount

        self.org = Organization.objects.create(name="Bench Co", slug=f"bench-{tickets}")
        brand = Brand.objects.create(organization=self.org, name="Bench Co")
        self.account = SocialAccount.objects.create(
            organization=self.org,
            brand=brand,
            platform=Platform.X,
            external_id="1",
            username="BenchCare",
        )
        self.agent = User.objects.create(username=f"agent{tickets}")
        Membership.objects.create(user=self.agent, organization=self.org, role=Role.AGENT)
        self.serial = 0
        for _ in range(tickets):
            self.arrive()

    def arrive(self) -> Any:
        from django.utils import timezone

        from monitoring.models import SlaPolicy
        from monitoring.services import sla_start
        from tickets.models import Direction, Message, MessageKind, Ticket

        if not SlaPolicy.objects.filter(organization=self.org).exists():
            SlaPolicy.objects.create(
                organization=self.org,
                name="Standard",
                first_response_minutes=60,
                resolution_minutes=480,
                close_out_minutes=1440,
            )
        self.serial += 1
        n = self.serial
        ticket = Ticket.objects.create(
            organization=self.org,
            brand=self.account.brand,
            social_account=self.account,
            platform=self.account.platform,
            customer_external_id=str(10_000 + n),
            customer_username=f"customer_{n}",
            customer_display_name=f"Customer Number {n}",
            customer_followers=(n * 7919) % 90_000,
            priority=1 + n % 4,
            priority_reasons=["Angry words", f"Reach: {(n * 7919) % 90_000} followers"],
            conversation_id=str(900_000 + n),
        )
        message = Message.objects.create(
            organization=self.org,
            ticket=ticket,
            platform=ticket.platform,
            kind=MessageKind.POST,
            direction=Direction.INBOUND,
            external_id=str(900_000 + n),
            author_username=ticket.customer_username,
            text=f"@BenchCare my order #{5000 + n} is two weeks late and nobody answers, "
            "this is the third time I write. Where is it?",
            created_at=timezone.now(),
        )
        Ticket.objects.filter(pk=ticket.pk).update(root_message=message)
        ticket.refresh_last_message_direction()
        sla_start(ticket=ticket)
        return ticket

    def open_tickets(self) -> list[Any]:
        from tickets.models import Ticket

        return list(Ticket.objects.for_org(self.org).open().inbox_order())


def traffic_plan(arrivals: int, changes: int, closes: int) -> list[list[str]]:
    """What happens before each of the minute's polls, spread evenly."""
    plan: list[list[str]] = [[] for _ in range(POLLS_PER_MINUTE)]
    for offset, (kind, count) in enumerate(
        (("arrive", arrivals), ("change", changes), ("close", closes))
    ):
        for i in range(count):
            plan[((i * POLLS_PER_MINUTE) // count + offset) % POLLS_PER_MINUTE].append(kind)
    return plan


def act(world: World, action: str, step: int) -> None:
    tickets = world.open_tickets()
    if action == "arrive":
        world.arrive()
    elif action == "change":
        target = tickets[(step * 5) % len(tickets)]
        if step % 2:
            target.add_tag("outage", by=None)
        else:
            target.assign(world.agent, by=None)
    elif action == "close":
        tickets[-1 - step % len(tickets)].close_without_reply(reason="spam", note="bench", by=None)


def before_bytes(world: World, template: Any) -> int:
    """One refresh of the old inbox: the whole ``#inbox`` section, as htmx fetched it."""
    from django.test import RequestFactory
    from django.utils import timezone

    from tickets.models import Ticket

    open_tickets = Ticket.objects.for_org(world.org).open()
    request = RequestFactory().get("/", HTTP_HX_REQUEST="true")
    request.user = world.agent
    html = template.render(
        {
            "tickets": open_tickets.inbox_order().select_related("root_message")[:200],
            "open_count": open_tickets.count(),
            "current_time": timezone.now(),
        },
        request,
    )
    match = re.search(r'<section id="inbox".*?</section>', html, re.S)
    assert match, "the old template has no #inbox section"
    return len(match.group(0).encode())


def run_minute(tickets: int, arrivals: int, changes: int, closes: int) -> dict[str, Any]:
    from django.template import engines
    from django.test import Client

    world = World(tickets)
    client = Client()
    client.force_login(world.agent)
    old_template = engines["django"].from_string(old_inbox_template())
    page = client.get("/")
    page_rows = rows_of(page.content.decode())
    token = re.search(r'id="live-token" name="token" value="([^"]+)"', page.content.decode())
    assert token
    state = {"token": token.group(1)}
    # A plain full response's headers, for the "before" figure (the same server sent both).
    full_headers = headers_bytes(client.get("/", {"live": "1"}, HTTP_HX_REQUEST="true"))

    result: dict[str, Any] = {"tickets": tickets}
    for label, plan in (
        ("quiet", [[] for _ in range(POLLS_PER_MINUTE)]),
        ("busy", traffic_plan(arrivals, changes, closes)),
    ):
        before = after = after_body = 0
        statuses: list[int] = []
        timings: list[float] = []
        for step, actions in enumerate(plan):
            for action in actions:
                act(world, action, step)
            before += before_bytes(world, old_template) + full_headers
            started = time.perf_counter()
            response = client.get(
                "/", {"live": "1", "token": state["token"]}, HTTP_HX_REQUEST="true"
            )
            timings.append((time.perf_counter() - started) * 1000)
            statuses.append(response.status_code)
            page_rows = apply_delta(page_rows, response)
            body = response.content
            after_body += len(body)
            after += len(body) + headers_bytes(response)
            found = re.search(rb'id="live-token" name="token" value="([^"]+)"', body)
            if found:
                state["token"] = found.group(1).decode()
        result[label] = {
            "before_bytes_per_minute": before,
            "after_bytes_per_minute": after,
            "after_body_bytes_per_minute": after_body,
            "polls_204": statuses.count(204),
            "polls_200": statuses.count(200),
            "actions": sum(len(a) for a in plan),
            "poll_ms_median": round(statistics.median(timings), 1),
            "poll_ms_max": round(max(timings), 1),
        }
    # The page fed only the deltas holds what a full render holds: the same rows, in order.
    fresh = rows_of(client.get("/").content.decode())
    result["order_ok"] = page_rows == fresh
    return result


ROW = re.compile(r'<tr (?:hx-swap-oob="true" )?id="row-(\d+)".*?</tr>', re.S)


def rows_of(html: str) -> list[tuple[int, str]]:
    return [
        (int(m.group(1)), m.group(0).replace(' hx-swap-oob="true"', "")) for m in ROW.finditer(html)
    ]


def apply_delta(rows: list[tuple[int, str]], response: Any) -> list[tuple[int, str]]:
    """What the browser does with a poll's answer (htmx's swaps, then careinbox.js's order)."""
    if response.status_code == 204:
        return rows
    body = response.content.decode()
    full = re.search(r'<tbody id="rows" hx-swap-oob="true">(.*?)</tbody>', body, re.S)
    if full:
        rows = rows_of(full.group(1))
    else:
        current = dict(rows)
        order = [pk for pk, _ in rows]
        for pk, html in rows_of(body):
            if pk not in current:
                order.append(pk)
            current[pk] = html
        rows = [(pk, current[pk]) for pk in order]
    trigger = response.headers.get("HX-Trigger-After-Settle")
    if trigger:
        wanted = json.loads(trigger)["inbox:order"]["order"]
        current = dict(rows)
        rows = [(pk, current[pk]) for pk in wanted if pk in current]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--arrivals", type=int, default=4, help="new tickets in the minute")
    parser.add_argument("--changes", type=int, default=6, help="tickets assigned or tagged")
    parser.add_argument("--closes", type=int, default=2, help="tickets closed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    setup_django()
    results = []
    with throwaway_database("inbox_live_bench"):
        print(f"database: {database_label()} · {machine()}")
        for size in args.sizes:
            results.append(run_minute(size, args.arrivals, args.changes, args.closes))
    ok = True
    print(
        f"{'tickets':>8} {'minute':>6} {'before B/min':>14} {'after B/min':>12} "
        f"{'ratio':>7} {'204s':>5} {'200s':>5} {'poll ms p50/max':>16}"
    )
    for row in results:
        ok = ok and row["order_ok"]
        for label in ("quiet", "busy"):
            f = row[label]
            ratio = f["before_bytes_per_minute"] / max(f["after_bytes_per_minute"], 1)
            print(
                f"{row['tickets']:>8} {label:>6} {f['before_bytes_per_minute']:>14,} "
                f"{f['after_bytes_per_minute']:>12,} {ratio:>6.0f}x "
                f"{f['polls_204']:>5} {f['polls_200']:>5} "
                f"{f['poll_ms_median']:>9}/{f['poll_ms_max']}"
            )
        print(
            f"{'':>8} busy minute: {row['busy']['actions']} changes; final order ok: "
            f"{row['order_ok']}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
