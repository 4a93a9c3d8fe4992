"""A large, reproducible data set for the read-path benchmarks (``bench/read_paths.py``).

N tickets (default 1,000,000) with five messages each, their customers and identities, events
and SLA timers, across 50 organisations, one of them holding 40 % of everything, written with
PostgreSQL ``COPY`` (psycopg2's ``copy_expert``) into a database of its own
(``careinbox_bench`` by default; it is dropped and created again, then migrated). Rows are made
and sent in chunks, so memory stays flat whatever N is; everything random comes from one
``random.Random(seed)``, and every time is an offset from ``--now`` (default: this hour), so the
same seed and ``--now`` give the same rows::

    .venv/bin/python bench/scale_data.py --tickets 20000          # a small set (CI), ~1 min
    .venv/bin/python bench/scale_data.py                          # 1,000,000 tickets
    .venv/bin/python bench/scale_data.py --tickets 100000 --database careinbox_bench_100k

The server is the one ``DATABASE_URL`` names (default ``postgres://postgres@127.0.0.1:5432``).
Secondary indexes of the bulk tables are dropped before the load and built again after it (as
a restore does), foreign keys are not checked row by row during the load
(``session_replication_role = replica``: the rows are consistent by construction) and the
sequences are moved past the ids used; then the dashboard's roll-ups (``TicketFact``,
``SlaFact``) are filled in SQL (``fill_rollups``) and a sample checked against
``refresh_ticket_rollup``; then ``VACUUM ANALYZE``. Prints what it made. ``--rollups-only``
fills the roll-ups (and the delivered replies' events) of a data set made before::

    .venv/bin/python bench/scale_data.py --rollups-only --database careinbox_bench_copy
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cols(names: str) -> tuple[str, ...]:
    """Names (columns, words), written as one string."""
    return tuple(names.split())


ORGANISATIONS = 50
BIG_SHARE = 0.40  # the largest organisation's share of the tickets
OPEN_SHARE = 0.30  # open tickets (the largest organisation: 120,000 open of 400,000)
MESSAGES_PER_TICKET = 5
CHUNK = 10_000  # tickets per COPY round
AGENTS_BIG, AGENTS_OTHER = 12, 3
BENCH_PASSWORD = "bench-pass"  # noqa: S105 - the agents' password (a throwaway database, never served)

# Tables filled by COPY, in load order (the indexes of these are rebuilt after the load).
BULK_TABLES = (
    "tickets_customer",
    "tickets_customeridentity",
    "tickets_ticket",
    "tickets_ticket_tags",
    "tickets_message",
    "tickets_outboxitem",
    "tickets_ticketevent",
    "monitoring_slatimer",
)

WORDS = cols(
    "order parcel delivery late refund broken app login password payment card charged "
    "twice cancel subscription account locked support waiting hours days week still "
    "nothing tracking number driver missing damaged wrong item size colour return "
    "label store manager phone call email reply answer help please thanks great love "
    "awful worst disappointed angry slow fast service price discount voucher code "
    "promo offline outage down error crash update version android iphone website "
    "checkout basket stock delayed invoice receipt bank transfer pending approved "
    "declined fraud security hacked reset signal network coverage bill roaming "
    "contract upgrade router wifi engineer visit"
)


@dataclass
class Org:
    pk: int
    tickets: int
    brand_id: int
    accounts: list[tuple[int, str]]  # (social account id, platform)
    agents: list[int]
    tag_ids: list[int]
    first_ticket: int = 0  # this organisation's first ticket number (0-based, global)
    extra: dict[str, Any] = field(default_factory=dict)


def server_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def recreate_database(name: str) -> None:
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(with_database(server_url(), "postgres"))
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()


def setup_django(database: str) -> None:
    os.environ["DATABASE_URL"] = with_database(server_url(), database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careinbox.settings")
    os.environ["CAREINBOX_TESTING"] = "1"
    import django

    django.setup()


def iso(value: datetime | None) -> str:
    return "\\N" if value is None else value.isoformat()


class CopyBuffer:
    """Rows for one table, sent with one ``COPY … FROM STDIN`` when flushed."""

    def __init__(self, table: str, columns: tuple[str, ...]) -> None:
        self.table, self.columns = table, columns
        self.buffer = io.StringIO()
        self.rows = 0
        self.total = 0

    def add(self, *values: Any) -> None:
        self.buffer.write("\t".join(str(v) for v in values))
        self.buffer.write("\n")
        self.rows += 1

    def flush(self, cursor: Any) -> None:
        if not self.rows:
            return
        self.buffer.seek(0)
        cursor.copy_expert(f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN", self.buffer)
        self.total += self.rows
        self.buffer = io.StringIO()
        self.rows = 0


def make_setup(rng: random.Random, tickets: int, now: datetime) -> list[Org]:
    """Organisations, brands, handles, agents, tags, policies and saved views, by the ORM."""
    from careinbox.accounts.models import Membership, Organization, Role, User
    from channels_social.models import Brand, Platform, SocialAccount
    from monitoring.models import SlaPolicy
    from tickets.models import SavedView, Tag

    big = round(tickets * BIG_SHARE)
    rest = tickets - big
    sizes = [big] + [
        rest // (ORGANISATIONS - 1) + (1 if n < rest % (ORGANISATIONS - 1) else 0)
        for n in range(ORGANISATIONS - 1)
    ]
    hashed = None
    orgs: list[Org] = []
    first = 0
    for n, size in enumerate(sizes):
        org = Organization.objects.create(name=f"Bench org {n:02d}", slug=f"bench-{n:02d}")
        brand = Brand.objects.create(organization=org, name=f"Brand {n:02d}")
        accounts = [
            (
                SocialAccount.objects.create(
                    organization=org,
                    brand=brand,
                    platform=Platform.X,
                    external_id=str(1000 + n),
                    username=f"Brand{n:02d}",
                ).pk,
                Platform.X,
            )
        ]
        if n % 2 == 0:
            accounts.append(
                (
                    SocialAccount.objects.create(
                        organization=org,
                        brand=brand,
                        platform=Platform.FACEBOOK,
                        external_id=str(500000 + n),
                        username=f"Brand {n:02d} page",
                    ).pk,
                    Platform.FACEBOOK,
                )
            )
        agents = []
        for a in range(AGENTS_BIG if n == 0 else AGENTS_OTHER):
            user = User(username=f"agent{n:02d}_{a:02d}")
            if hashed is None:
                user.set_password(BENCH_PASSWORD)
                hashed = user.password
            user.password = hashed
            user.save()
            Membership.objects.create(
                user=user, organization=org, role=Role.MANAGER if a == 0 else Role.AGENT
            )
            agents.append(user.pk)
        SlaPolicy.objects.create(
            organization=org,
            name="Bench",
            first_response_minutes=60,
            resolution_minutes=8 * 60,
            close_out_minutes=24 * 60,
        )
        tags = [
            Tag.objects.create(organization=org, name=name).pk
            for name in ("refund", "outage", "vip", "delivery")
        ]
        item = Org(org.pk, size, brand.pk, accounts, agents, tags, first_ticket=first)
        # A saved view with filters for the agent the benchmark signs in as (agents[1]).
        saved = SavedView.objects.create(
            organization=org,
            owner_id=agents[1],
            name="Loud X complaints",
            filters={"view": "open", "platform": "x", "followers": 1000, "priority": 2},
            sort="risk",
        )
        item.extra["saved_view"] = saved.pk
        orgs.append(item)
        first += size
    return orgs


def index_definitions(cursor: Any) -> list[tuple[str, str]]:
    """The bulk tables' indexes that no constraint owns: (name, CREATE INDEX …)."""
    cursor.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        ORDER BY i.indexname
        """,
        [list(BULK_TABLES)],
    )
    return list(cursor.fetchall())


def next_ids(cursor: Any) -> dict[str, int]:
    ids = {}
    for table in BULK_TABLES:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")  # noqa: S608 - our tables
        ids[table] = cursor.fetchone()[0]
    return ids


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def load(orgs: list[Org], rng: random.Random, now: datetime, cursor: Any) -> dict[str, int]:
    """Every bulk row, organisation by organisation, in chunks of ``CHUNK`` tickets."""
    ids = next_ids(cursor)
    customer_id, identity_id = ids["tickets_customer"], ids["tickets_customeridentity"]
    ticket_id, message_id = ids["tickets_ticket"], ids["tickets_message"]
    event_id, timer_id = ids["tickets_ticketevent"], ids["monitoring_slatimer"]
    tag_link_id, outbox_id = ids["tickets_ticket_tags"], ids["tickets_outboxitem"]
    customers = CopyBuffer(
        "tickets_customer",
        cols("id organization_id display_name email phone order_number created_at updated_at"),
    )
    identities = CopyBuffer(
        "tickets_customeridentity",
        cols(
            "id organization_id customer_id platform external_id username display_name "
            "followers verified first_seen_at last_seen_at"
        ),
    )
    tickets = CopyBuffer(
        "tickets_ticket",
        cols(
            "id organization_id brand_id social_account_id platform status priority "
            "priority_reasons priority_score priority_factors sentiment sentiment_score "
            "customer_id customer_external_id customer_username customer_display_name "
            "customer_followers conversation_id is_public reposts repost_reach "
            "root_message_id sla_due_at sla_risk_at assigned_to_id assigned_at "
            "approval_required approval_reason opened_at closed_at closed_as updated_at "
            "last_message_direction"
        ),
    )
    tags = CopyBuffer("tickets_ticket_tags", ("id", "ticket_id", "tag_id"))
    messages = CopyBuffer(
        "tickets_message",
        cols(
            "id organization_id ticket_id platform kind direction is_public external_id "
            "conversation_id in_reply_to_external_id author_external_id author_username "
            "author_display_name author_followers author_verified found_by step text "
            "created_at received_at raw sent_by_id"
        ),
    )
    outbox = CopyBuffer(
        "tickets_outboxitem",
        cols("id organization_id message_id state attempts sent_at last_error created_at"),
    )
    events = CopyBuffer(
        "tickets_ticketevent",
        cols("id organization_id ticket_id kind at data message_id recorded_at dispatched_at"),
    )
    timers = CopyBuffer(
        "monitoring_slatimer",
        cols(
            "id organization_id ticket_id metric target_minutes started_at due_at warn_at "
            "warned_at state paused_for fulfilled_at breached_at"
        ),
    )
    buffers = (customers, identities, tickets, tags, messages, outbox, events, timers)
    from tickets.models import sla_risk_at

    head = {1: "Urgent: angry and widely read", 2: "High: a complaint", 3: "", 4: ""}
    open_steps = ("new", "acknowledged", "offline", "resolved")
    step_events = ("acknowledge", "take_offline", "resolve", "close_out")
    made = 0
    for org in orgs:
        # About two tickets per customer: customers of this organisation, made on first use.
        customer_ids: list[tuple[int, int, str]] = []  # (customer id, identity number, handle)
        for _ in range(org.tickets):
            made += 1
            if not customer_ids or rng.random() < 0.5:
                number = customer_id
                handle = f"user{number}"
                customers.add(
                    customer_id, org.pk, f"Customer {number}", "", "", "", iso(now), iso(now)
                )
                identities.add(
                    identity_id, org.pk, customer_id, "x", str(10**9 + number), handle,
                    f"Customer {number}", rng.choice((12, 150, 900, 2400, 40000)), "f",
                    iso(now), iso(now),
                )  # fmt: skip
                customer_ids.append((customer_id, number, handle))
                customer_id += 1
                identity_id += 1
                cust = customer_ids[-1]
            else:
                cust = customer_ids[rng.randrange(len(customer_ids))]
            account_id, platform = org.accounts[0 if rng.random() < 0.8 else -1]
            is_open = rng.random() < OPEN_SHARE
            if is_open:
                status = open_steps[min(3, int(rng.random() ** 1.6 * 4))]
                opened = now - timedelta(minutes=rng.randrange(5, 3 * 24 * 60))
            else:
                status = "closed"
                opened = now - timedelta(minutes=rng.randrange(3 * 24 * 60, 180 * 24 * 60))
            priority = rng.choices((1, 2, 3, 4), weights=(4, 16, 60, 20))[0]
            followers = rng.choice((12, 150, 900, 2400, 40000))
            due = None
            if is_open:
                # The soonest running target: some breached already, most due within 8 hours.
                due = now + timedelta(minutes=rng.randrange(-120, 8 * 60))
            assigned = rng.choice(org.agents) if (not is_open or rng.random() < 0.5) else None
            closed_at = opened + timedelta(hours=rng.randrange(1, 48)) if not is_open else None
            conversation = str(2 * 10**12 + message_id)
            # Sent once its messages are made: its last column is the latest one's direction.
            ticket_row = (
                ticket_id, org.pk, org.brand_id, account_id, platform, status, priority,
                json.dumps([head[priority]] if head[priority] else []), 10 * (5 - priority),
                "[]", rng.choice(("negative", "neutral", "neutral", "positive")),
                round(rng.uniform(-1, 1), 3), cust[0], str(10**9 + cust[1]), cust[2],
                f"Customer {cust[1]}", followers, conversation, "t", 0, 0, message_id,
                iso(due), iso(sla_risk_at(due, priority)), "\\N" if assigned is None else assigned,
                iso(opened if assigned else None),
                "t" if is_open and rng.random() < 0.02 else "f", "", iso(opened),
                iso(closed_at), "", iso(closed_at or opened),
            )  # fmt: skip
            if rng.random() < 0.05:
                tags.add(tag_link_id, ticket_id, rng.choice(org.tag_ids))
                tag_link_id += 1
            # Five messages: the customer's post, then the conversation; the last one says whose
            # turn it is (the brand's on about 40 % of the tickets past their first step).
            steps_done = 4 if status == "closed" else open_steps.index(status)
            at = opened
            root = message_id
            inbound = True
            for m in range(MESSAGES_PER_TICKET):
                inbound = m == 0 or (steps_done == 0) or rng.random() < 0.55
                at = at + timedelta(minutes=rng.randrange(1, 40))
                messages.add(
                    message_id, org.pk, ticket_id, platform,
                    "post" if m == 0 else "reply",
                    "in" if inbound else "out", "t", str(2 * 10**12 + message_id), conversation,
                    "" if m == 0 else str(2 * 10**12 + root),
                    str(10**9 + cust[1]) if inbound else "", cust[2] if inbound else "",
                    f"Customer {cust[1]}" if inbound else "", followers if inbound else 0, "f",
                    "mention", "", sentence(rng, rng.randrange(6, 18)), iso(at), iso(at), "{}",
                    "\\N" if inbound else (assigned or org.agents[0]),
                )  # fmt: skip
                if not inbound:  # a reply the brand sent: delivered, as the outbox records it
                    outbox.add(outbox_id, org.pk, message_id, "sent", 1, iso(at), "", iso(at))
                    outbox_id += 1
                    # ... and as the ticket's history does (the reports' first response).
                    events.add(
                        event_id, org.pk, ticket_id, "reply_sent", iso(at),
                        json.dumps({"external_id": str(2 * 10**12 + message_id)}), message_id,
                        iso(at), iso(at),
                    )  # fmt: skip
                    event_id += 1
                if inbound:
                    events.add(
                        event_id, org.pk, ticket_id, "opened" if m == 0 else "message_received",
                        iso(at), "{}", message_id, iso(at), iso(at),
                    )  # fmt: skip
                    event_id += 1
                message_id += 1
            # Whose turn it is (Ticket.last_message_direction): the last message's direction
            # (each is later than the one before, so the last one made is the latest).
            tickets.add(*ticket_row, "in" if inbound else "out")
            for s in range(steps_done):
                step_at = opened + timedelta(minutes=10 * (s + 1))
                events.add(
                    event_id, org.pk, ticket_id, step_events[s], iso(step_at), "{}", "\\N",
                    iso(step_at), iso(step_at),
                )  # fmt: skip
                event_id += 1
            # The first-response timer: met once acknowledged (breached for 1 in 10), running
            # while new; a running resolution timer on open tickets past their first step.
            started = opened
            first_due = started + timedelta(minutes=60)
            if steps_done == 0:
                timers.add(
                    timer_id, org.pk, ticket_id, "first_response", 60, iso(started),
                    iso(due or first_due), iso((due or first_due) - timedelta(minutes=15)),
                    "\\N", "running", "0", "\\N", "\\N",
                )  # fmt: skip
            else:
                late = rng.random() < 0.1
                fulfilled = started + timedelta(
                    minutes=rng.randrange(61, 300) if late else rng.randrange(2, 59)
                )
                timers.add(
                    timer_id, org.pk, ticket_id, "first_response", 60, iso(started),
                    iso(first_due), iso(first_due - timedelta(minutes=15)), "\\N",
                    "breached" if late else "met", "0", iso(fulfilled),
                    iso(first_due) if late else "\\N",
                )  # fmt: skip
                if is_open:
                    timer_id += 1
                    timers.add(
                        timer_id, org.pk, ticket_id, "resolution", 480, iso(started),
                        iso(due), iso(due - timedelta(minutes=60)), "\\N", "running", "0",
                        "\\N", "\\N",
                    )  # fmt: skip
            timer_id += 1
            ticket_id += 1
            if made % CHUNK == 0:
                for buffer in buffers:
                    buffer.flush(cursor)
                print(f"  {made:,} tickets", flush=True)
    for buffer in buffers:
        buffer.flush(cursor)
    return {buffer.table: buffer.total for buffer in buffers}


# The delivered replies of a data set made before the generator recorded them (each sent
# outbound message gets its ``reply_sent`` event, as the outbox records one on delivery).
REPLY_EVENTS_SQL = """
INSERT INTO tickets_ticketevent (organization_id, ticket_id, kind, at, data, message_id,
                                 recorded_at, dispatched_at)
SELECT m.organization_id, m.ticket_id, 'reply_sent', o.sent_at,
       jsonb_build_object('external_id', m.external_id), m.id, o.sent_at, o.sent_at
FROM tickets_message m JOIN tickets_outboxitem o ON o.message_id = m.id
WHERE m.direction = 'out' AND o.state = 'sent'
  AND NOT EXISTS (SELECT 1 FROM tickets_ticketevent e
                  WHERE e.message_id = m.id AND e.kind = 'reply_sent')
"""

# ``monitoring.reports.rollups.refresh_ticket_rollup`` for every ticket at once, in SQL: the
# same rows from the same events and timers (``check_rollups`` compares a sample with it).
# Days and hours in the organisation's zone; seconds rounded as Python's ``round`` does
# (half to even: ``round`` of a double precision); GREATEST skips a NULL, hence the CASEs.
TICKET_FACTS_SQL = """
INSERT INTO monitoring_ticketfact (
    organization_id, ticket_id, brand_id, social_account_id, platform, team_id, agent_id,
    priority, sentiment, opened_at, opened_day, opened_hour, opened_weekday,
    first_response_at, first_response_seconds, resolved_at, resolution_seconds, is_open,
    closed_at, closed_day, closed_publicly, closed_kind, closed_reason, promises_kept,
    promises_broken, refreshed_at)
SELECT t.organization_id, t.id, t.brand_id, t.social_account_id, t.platform, t.team_id,
       t.assigned_to_id, t.priority, COALESCE(t.sentiment, ''), t.opened_at,
       (t.opened_at AT TIME ZONE z.tz)::date,
       EXTRACT(hour FROM t.opened_at AT TIME ZONE z.tz),
       EXTRACT(isodow FROM t.opened_at AT TIME ZONE z.tz) - 1,
       e.first_at,
       CASE WHEN e.first_at IS NOT NULL
            THEN GREATEST(round(EXTRACT(epoch FROM e.first_at - t.opened_at)::float8), 0) END,
       e.resolved_at,
       CASE WHEN e.resolved_at IS NOT NULL
            THEN GREATEST(round(EXTRACT(epoch FROM e.resolved_at - t.opened_at)::float8), 0) END,
       t.status IN %(open)s,
       c.at, (c.at AT TIME ZONE z.tz)::date, c.kind = 'close_out', COALESCE(c.kind, ''),
       CASE WHEN c.kind = 'closed_without_close_out'
                 THEN left(COALESCE(NULLIF(c.data ->> 'reason', ''), 'other'), 32)
            WHEN c.kind = 'closed_as_spam' THEN 'spam'
            WHEN c.kind = 'closed_as_duplicate' THEN 'duplicate'
            WHEN c.kind = 'merged_into' THEN 'merged'
            ELSE '' END,
       e.kept, e.broken, now()
FROM tickets_ticket t
JOIN LATERAL (SELECT COALESCE(NULLIF(time_zone, ''), 'UTC') AS tz FROM accounts_organization
              WHERE id = t.organization_id) z ON true
JOIN LATERAL (
    SELECT min(ev.at) FILTER (WHERE ev.kind = 'reply_sent' AND m.direction = 'out'
                                AND (m.is_public OR NOT t.is_public)) AS first_at,
           min(ev.at) FILTER (WHERE ev.kind = 'reply_sent' AND m.direction = 'out'
                                AND m.step = 'resolve') AS resolved_at,
           count(*) FILTER (WHERE ev.kind = 'promise_kept') AS kept,
           count(*) FILTER (WHERE ev.kind = 'promise_broken') AS broken
    FROM tickets_ticketevent ev LEFT JOIN tickets_message m ON m.id = ev.message_id
    WHERE ev.ticket_id = t.id AND ev.kind IN ('reply_sent', 'promise_kept', 'promise_broken')
) e ON true
-- The last closing or reopening event decides (a reopened step clears a close too); an
-- open ticket is not closed whatever its events say.
LEFT JOIN LATERAL (
    SELECT ev.kind, ev.at, ev.data FROM tickets_ticketevent ev
    WHERE ev.ticket_id = t.id AND ev.kind IN %(closing_or_reopening)s
    ORDER BY ev.at DESC, ev.id DESC LIMIT 1
) last ON true
LEFT JOIN LATERAL (
    SELECT last.kind, last.at, last.data
    WHERE last.kind IN %(closing)s AND t.status NOT IN %(open)s
) c ON true
"""

SLA_FACTS_SQL = """
INSERT INTO monitoring_slafact (
    organization_id, ticket_id, timer_id, metric, brand_id, social_account_id, team_id,
    agent_id, priority, started_at, started_day, due_at, outcome, owed, elapsed_seconds)
SELECT t.organization_id, t.id, s.id, s.metric, t.brand_id, t.social_account_id, t.team_id,
       t.assigned_to_id, t.priority, s.started_at,
       (s.started_at AT TIME ZONE COALESCE(NULLIF(o.time_zone, ''), 'UTC'))::date, s.due_at,
       s.state, s.fulfilled_at IS NULL,
       CASE WHEN s.fulfilled_at IS NOT NULL
            THEN GREATEST(round(EXTRACT(epoch FROM s.fulfilled_at - s.started_at)::float8), 0) END
FROM monitoring_slatimer s
JOIN tickets_ticket t ON t.id = s.ticket_id
JOIN accounts_organization o ON o.id = t.organization_id
WHERE s.state <> 'stopped'
"""


# Migration 0026's backfill: the document of every ticket without one (organisation, open
# state, the lexemes of all its messages), as its triggers keep it.
SEARCH_DOCUMENTS_SQL = """
INSERT INTO tickets_ticketsearch (ticket_id, document, organization_id, is_open)
SELECT t.id, COALESCE(d.document, ''::tsvector), t.organization_id,
       t.status IN ('new', 'acknowledged', 'offline', 'resolved')
FROM tickets_ticket t LEFT JOIN (
    SELECT ticket_id, strip(tickets_tsvector_union(
        to_tsvector('simple'::regconfig, COALESCE(text, '')))) AS document
    FROM tickets_message GROUP BY ticket_id
) d ON d.ticket_id = t.id
WHERE NOT EXISTS (SELECT 1 FROM tickets_ticketsearch e WHERE e.ticket_id = t.id)
"""


def fill_search_documents(cursor: Any) -> int:
    """The search documents (``tickets_ticketsearch``, migrations 0024-0027) the load's rows
    did not get: their triggers were off (``session_replication_role = replica``), and a
    search counted from the documents would find none of those tickets."""
    cursor.execute(SEARCH_DOCUMENTS_SQL)
    return int(cursor.rowcount)


def fill_rollups(cursor: Any) -> dict[str, int]:
    """The report roll-ups (``TicketFact``, ``SlaFact``) of every ticket, made again whole."""
    from monitoring.reports.daily import rebuild_daily
    from monitoring.reports.rollups import CLOSING_KINDS, REOPENING_KINDS
    from tickets.models import OPEN_STATUSES, EventKind

    closing = tuple(str(k) for k in CLOSING_KINDS)
    params = {
        "open": tuple(str(s) for s in OPEN_STATUSES),
        "closing": closing,
        "closing_or_reopening": (
            *closing,
            *(str(k) for k in REOPENING_KINDS),
            str(EventKind.STEP_REOPENED),
        ),
    }
    # Like the load: no foreign-key check row by row (millions of deferred trigger calls at
    # commit); every id comes from the tickets and timers just read.
    cursor.execute("SET session_replication_role = replica")
    cursor.execute("DELETE FROM monitoring_slafact")
    cursor.execute("DELETE FROM monitoring_ticketfact")
    cursor.execute(TICKET_FACTS_SQL, params)
    tickets = cursor.rowcount
    cursor.execute(SLA_FACTS_SQL)
    timers = cursor.rowcount
    cursor.execute("SET session_replication_role = DEFAULT")
    # The dashboard's daily sums, from those facts (set-based: monitoring.reports.daily).
    days = rebuild_daily(cursor)
    return {"monitoring_ticketfact": tickets, "monitoring_slafact": timers, **days}


def check_rollups(sample: int, seed: int) -> list[str]:
    """``sample`` tickets' roll-ups as ``fill_rollups`` made them against what
    ``refresh_ticket_rollup`` makes of the same events: the differences ([] if none)."""
    from django.db import connection

    from monitoring.models import SlaFact, TicketFact
    from monitoring.reports.rollups import refresh_ticket_rollup

    skip = {"id", "refreshed_at"}
    fields = [f.attname for f in TicketFact._meta.concrete_fields if f.attname not in skip]
    sla_fields = [f.attname for f in SlaFact._meta.concrete_fields if f.attname != "id"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [1 / (1 + seed)])
        cursor.execute(
            "SELECT ticket_id FROM monitoring_ticketfact ORDER BY random() LIMIT %s", [sample]
        )
        ids = [row[0] for row in cursor.fetchall()]
    differences = []
    for ticket_id in ids:
        made = TicketFact.objects.filter(ticket_id=ticket_id).values(*fields).get()
        timers = list(
            SlaFact.objects.filter(ticket_id=ticket_id).order_by("timer_id").values(*sla_fields)
        )
        refresh_ticket_rollup(ticket_id)
        again = TicketFact.objects.filter(ticket_id=ticket_id).values(*fields).get()
        timers_again = list(
            SlaFact.objects.filter(ticket_id=ticket_id).order_by("timer_id").values(*sla_fields)
        )
        if made != again:
            differences.append(
                f"ticket {ticket_id}: "
                + ", ".join(
                    f"{k} {made[k]!r} != {again[k]!r}" for k in fields if made[k] != again[k]
                )
            )
        if timers != timers_again:
            differences.append(f"ticket {ticket_id} timers: {timers} != {timers_again}")
    return differences


def rollups_only(args: argparse.Namespace) -> int:
    """``--rollups-only``: an existing data set's delivered-reply events (if it was made
    without them) and its report roll-ups, then the sample check; nothing else changes."""
    setup_django(args.database)
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(REPLY_EVENTS_SQL)
        replies = cursor.rowcount
        counts = fill_rollups(cursor)
    filled = time.perf_counter()
    with connection.cursor() as cursor:
        for table in (
            "tickets_ticketevent",
            "monitoring_ticketfact",
            "monitoring_slafact",
            "monitoring_ticketdaystat",
            "monitoring_sladaystat",
        ):
            cursor.execute(f"ANALYZE {table}")
    print(
        f"{args.database}: {replies:,} reply_sent events added; "
        + "; ".join(f"{table} {rows:,} rows" for table, rows in counts.items())
        + f" in {filled - started:.0f} s"
    )
    differences = check_rollups(args.check_rollups, args.seed)
    print(
        f"checked {args.check_rollups} tickets against refresh_ticket_rollup: "
        f"{len(differences)} differ"
    )
    for line in differences[:20]:
        print("  " + line)
    return 1 if differences else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database", default="careinbox_bench")
    parser.add_argument(
        "--now",
        help="the instant every time is relative to (ISO 8601; default: the start of this hour)",
    )
    parser.add_argument(
        "--rollups-only",
        action="store_true",
        help="on an existing data set: fill the report roll-ups (and the delivered replies' "
        "events if it has none), check a sample against refresh_ticket_rollup, nothing else",
    )
    parser.add_argument(
        "--check-rollups",
        type=int,
        default=200,
        metavar="N",
        help="tickets whose roll-ups are compared with refresh_ticket_rollup's (default 200)",
    )
    args = parser.parse_args(argv)
    if args.rollups_only:
        return rollups_only(args)
    if args.tickets < ORGANISATIONS * 10:
        parser.error(f"--tickets must be at least {ORGANISATIONS * 10}")
    now = (
        datetime.fromisoformat(args.now)
        if args.now
        else datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    )
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    started = time.perf_counter()
    recreate_database(args.database)
    setup_django(args.database)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    migrated = time.perf_counter()
    rng = random.Random(args.seed)
    orgs = make_setup(rng, args.tickets, now)
    with connection.cursor() as cursor:
        definitions = index_definitions(cursor)
        for name, _ in definitions:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET session_replication_role = replica")
        counts = load(orgs, rng, now, cursor.cursor)
        cursor.execute("SET session_replication_role = DEFAULT")
    loaded = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in definitions:
            cursor.execute(definition)
        for table in BULK_TABLES:
            setval = f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"  # noqa: S608, E501 - our tables
            cursor.execute(setval)
        # A reply held for a manager on the open tickets flagged for approval (the Awaiting
        # approval view lists tickets with a pending request).
        cursor.execute(
            "INSERT INTO tickets_approvalrequest (organization_id, ticket_id, step, text, reasons,"
            " guard_flags, requested_at, state, comment, sent_text)"
            " SELECT organization_id, id, 'acknowledge', 'Held for a manager', '[\"bench\"]',"
            " '[]', updated_at, 'pending', '', '' FROM tickets_ticket"
            " WHERE approval_required AND status <> 'closed'"
        )
        # The dashboard's roll-ups, as the event handler would have kept them.
        counts.update(fill_rollups(cursor))
        # Every ticket's search document, as the triggers (off for the load) would have kept it.
        counts["tickets_ticketsearch"] = fill_search_documents(cursor)
    indexed = time.perf_counter()
    connection.close()
    import psycopg2

    conn = psycopg2.connect(with_database(server_url(), args.database))
    conn.autocommit = True
    with conn.cursor() as cursor:
        for table in (
            *BULK_TABLES,
            "monitoring_ticketfact",
            "monitoring_slafact",
            "monitoring_ticketdaystat",
            "monitoring_sladaystat",
            "tickets_ticketsearch",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        size = cursor.fetchone()[0]
    conn.close()
    done = time.perf_counter()
    meta = {
        "database": args.database,
        "tickets": args.tickets,
        "seed": args.seed,
        "now": now.isoformat(),
        "organisations": [
            {
                "id": o.pk,
                "tickets": o.tickets,
                "agents": o.agents,
                "saved_view": o.extra["saved_view"],
                "first_ticket": o.first_ticket,
            }
            for o in orgs
        ],
        "rows": counts,
        "size": size,
        "seconds": {
            "migrate": round(migrated - started, 1),
            "copy": round(loaded - migrated, 1),
            "indexes": round(indexed - loaded, 1),
            "vacuum_analyze": round(done - indexed, 1),
            "total": round(done - started, 1),
        },
    }
    path = ROOT / "var" / f"{args.database}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(meta, indent=2))
    for table, rows in counts.items():
        print(f"{table:<28} {rows:>12,} rows")
    print(f"database {args.database}: {size}; {meta['seconds']}; written {path}")
    differences = check_rollups(args.check_rollups, args.seed)
    print(
        f"roll-ups of {args.check_rollups} tickets against refresh_ticket_rollup: "
        f"{len(differences)} differ"
    )
    for line in differences[:20]:
        print("  " + line)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
