"""The per-ticket search document (migration 0024, PostgreSQL): kept by triggers through
ingest, edits, merges, erasure and deletion, never missing a message's lexeme; and the search
that reads it finds exactly what the search without it finds, on generated data, words the
text-search parser splits ("user_77", "e-mail") among them. On SQLite (no document) the same
generated data is checked against a plain substring reference, erasure included."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from channels_social.models import SocialAccount
from tests.conftest import Persona
from tests.test_threading import post
from tickets import inbox
from tickets.models import Message, Status, Ticket
from tickets.services import ingest_posts
from tickets.services.merge import ticket_merge
from tickets.services.privacy import customer_erase

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

INBOX = reverse("tickets:inbox")
on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the search document is PostgreSQL's"
)

# Words the generated messages are made of: common ones, rare ones, and ones the text-search
# parser splits or keeps whole in ways a plain substring does not ("user_77" is two lexemes,
# "e-mail" three, "o'neil" two, an address or a URL one token of its own).
VOCABULARY = [
    "refund", "refunded", "late", "later", "parcel", "order", "broken", "app", "slow",
    "user_77", "user77", "e-mail", "o'neil", "dana@example.com", "https://acme.test/x",
    "#fail", "42", "4200", "zürich", "naïve",
]  # fmt: skip
QUERIES = [
    "refu", "refund late", "late", "user_77", "user", "77", "user77", "e-mail", "mail",
    "o'neil", "neil", "dana", "example", "acme", "fail", "42", "zür", "naïve", "c9",
    "c90", "slow app", "nothing",
]  # fmt: skip


@pytest.fixture
def account(make_account: Callable[..., SocialAccount]) -> SocialAccount:
    return make_account(external_id="1000", username="AcmeCare")


def _document(ticket_id: int) -> set[str]:
    """The lexemes of the ticket's search document."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tsvector_to_array(document) FROM tickets_ticketsearch WHERE ticket_id = %s",
            [ticket_id],
        )
        row = cursor.fetchone()
    assert row is not None, f"ticket {ticket_id} has no search document"
    return set(row[0])


def _lexemes(*texts: str) -> set[str]:
    """What PostgreSQL's parser makes of ``texts``: the lexemes a document must hold."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT unnest(tsvector_to_array(to_tsvector('simple', t))) "
            "FROM unnest(%s::text[]) t",
            [list(texts)],
        )
        return {row[0] for row in cursor.fetchall()}


def _generate(account: SocialAccount, *, tickets: int, seed: int) -> list[Ticket]:
    """``tickets`` tickets from distinct customers, each of one to four messages of two to six
    vocabulary words; every third one closed."""
    rng = random.Random(seed)
    at = timezone.now() - timedelta(hours=6)
    made = []
    for n in range(tickets):
        author = f"9{n:03d}"
        root = post(
            " ".join(rng.choices(VOCABULARY, k=rng.randint(2, 6))),
            at=at + timedelta(minutes=n),
            author=author,
            username=f"c{author}",
        )
        posts = [root]
        for k in range(rng.randint(0, 3)):
            posts.append(
                post(
                    " ".join(rng.choices(VOCABULARY, k=rng.randint(2, 6))),
                    at=at + timedelta(minutes=n, seconds=k + 1),
                    author=author,
                    username=f"c{author}",
                    conversation=root.conversation_id,
                    reply_to=root.external_id,
                )
            )
        ingest_posts(account, posts)
        made.append(Ticket.objects.filter(customer_external_id=author).latest("pk"))
    for ticket in made[::3]:
        Ticket.objects.filter(pk=ticket.pk).update(status=Status.CLOSED, closed_at=timezone.now())
    return made


def _answers(client: object, words: str) -> dict[str, tuple[list[int], int]]:
    found = {}
    for view in ("open", "closed"):
        response = client.get(INBOX, {"view": view, "q": words})  # type: ignore[attr-defined]
        found[view] = ([t.pk for t in response.context["tickets"]], response.context["total"])
    return found


@on_postgresql
def test_the_document_holds_every_lexeme_of_every_message_through_each_change(
    account: SocialAccount, agent: Persona, manager: Persona
) -> None:
    _, first, second = _generate(account, tickets=3, seed=3)  # the first is closed
    for ticket in (first, second):
        texts = list(ticket.messages.values_list("text", flat=True))
        assert _document(ticket.pk) == _lexemes(*texts)
    # An edit (as erasure's scrub does): the old words leave, the new come.
    message = first.messages.earliest("created_at")
    Message.objects.filter(pk=message.pk).update(text="quite different words now")
    assert _document(first.pk) == _lexemes(*first.messages.values_list("text", flat=True))
    assert {"quite", "different"} <= _document(first.pk)
    # A merge moves the source's messages: both documents follow.
    second_texts = list(second.messages.values_list("text", flat=True))
    ticket_merge(target=first, source=second, by=manager.user)
    assert _document(first.pk) == _lexemes(*first.messages.values_list("text", flat=True))
    assert _document(first.pk) >= _lexemes(*second_texts)
    assert _document(second.pk) == _lexemes(*second.messages.values_list("text", flat=True))
    # A message deleted: its words leave; the ticket deleted: its document too.
    Message.objects.filter(ticket=first).exclude(pk=message.pk).delete()
    assert _document(first.pk) == {"quite", "different", "words", "now"}
    Ticket.objects.filter(pk=first.pk).delete()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM tickets_ticketsearch WHERE ticket_id = %s", [first.pk])
        assert cursor.fetchone()[0] == 0


@on_postgresql
@pytest.mark.parametrize("seed", [1, 2])
def test_the_walk_with_the_document_finds_what_the_search_without_it_does(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    _generate(account, tickets=40, seed=seed)
    client = agent.client()
    for words in QUERIES:
        # Without the document: the few matching tickets read from the message index.
        monkeypatch.setattr(inbox, "search_plan", lambda query: "union")
        reference = _answers(client, words)
        # The walk, each ticket's document checked before its messages.
        monkeypatch.setattr(inbox, "search_plan", lambda query: "walk")
        assert '"tickets_ticketsearch"' in str(inbox.search(Ticket.objects.all(), words).query)
        assert _answers(client, words) == reference, words
    # The split words do find something (the comparison is not between two empty lists).
    monkeypatch.setattr(inbox, "search_plan", lambda query: "walk")
    for words in ("user_77", "e-mail", "o'neil", "refund late"):
        found = _answers(client, words)
        assert found["open"][0] or found["closed"][0], words


@on_postgresql
def test_the_document_of_a_ticket_without_its_words_in_one_message_does_not_match(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "refund" in one message and "late" in another: the document has both, the ticket does
    # not match (every word in one message, as without the document).
    at = timezone.now() - timedelta(hours=1)
    root = post("I want a refund", at=at, author="77", username="dana")
    reply = post(
        "it is late",
        at=at + timedelta(seconds=5),
        author="77",
        username="dana",
        conversation=root.conversation_id,
        reply_to=root.external_id,
    )
    ingest_posts(account, [root, reply])
    ticket = Ticket.objects.get(customer_external_id="77")
    assert {"refund", "late"} <= _document(ticket.pk)
    monkeypatch.setattr(inbox, "search_plan", lambda query: "walk")
    assert _answers(agent.client(), "refund late")["open"] == ([], 0)
    assert _answers(agent.client(), "refund")["open"] == ([ticket.pk], 1)


def _substring_reference(words: str) -> dict[str, tuple[list[int], int]]:
    """SQLite's search in Python: every word in one message's text, or every word in the
    handle or the name, case-insensitive; the views' order."""
    terms = inbox.search_words(words)
    found: dict[str, tuple[list[int], int]] = {}
    for view, statuses in (("open", [s for s in Status if s != Status.CLOSED]), ("closed", [])):
        tickets = Ticket.objects.filter(status__in=statuses or [Status.CLOSED])
        hits = []
        for ticket in tickets:
            texts = [t.lower() for t in ticket.messages.values_list("text", flat=True)]
            handle, name = ticket.customer_username.lower(), ticket.customer_display_name.lower()
            if any(all(w in text for w in terms) for text in texts) or all(
                w in handle or w in name for w in terms
            ):
                hits.append(ticket.pk)
        found[view] = (hits, len(hits))
    return found


def test_erased_words_no_longer_match_on_any_path(
    account: SocialAccount, agent: Persona, manager: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = timezone.now() - timedelta(hours=1)
    ingest_posts(account, [post("my zebraparcel is late", at=at, author="88", username="zed")])
    ingest_posts(account, [post("zebraparcel late too", at=at, author="89", username="yve")])
    erased = Ticket.objects.get(customer_external_id="88")
    kept = Ticket.objects.get(customer_external_id="89")
    assert erased.customer is not None
    plans = ["walk", "union", "hashed"] if connection.vendor == "postgresql" else [""]
    client = agent.client()
    for plan in plans:
        monkeypatch.setattr(inbox, "search_plan", lambda query, plan=plan: plan)
        assert sorted(_answers(client, "zebrapar")["open"][0]) == sorted([erased.pk, kept.pk])
        assert _answers(client, "zed")["open"][0] == [erased.pk]
    customer_erase(customer=erased.customer, by=manager.user)
    for plan in plans:
        monkeypatch.setattr(inbox, "search_plan", lambda query, plan=plan: plan)
        assert _answers(client, "zebrapar")["open"] == ([kept.pk], 1), plan
        assert _answers(client, "zed")["open"] == ([], 0), plan
    if connection.vendor == "postgresql":
        # Not in the stored document either: erased text is not kept anywhere.
        assert not {"zebraparcel", "zed"} & _document(erased.pk)
        assert "zebraparcel" in _document(kept.pk)


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite's search is substrings")
def test_sqlite_search_is_every_word_in_one_message_or_the_customer(
    account: SocialAccount, agent: Persona
) -> None:
    _generate(account, tickets=30, seed=5)
    client = agent.client()
    for words in QUERIES:
        found = _answers(client, words)
        reference = _substring_reference(words)
        for view in ("open", "closed"):
            assert sorted(found[view][0]) == sorted(reference[view][0]), (words, view)
            assert found[view][1] == reference[view][1]


@on_postgresql
def test_awaiting_approval_searched_asks_the_document_of_its_own_rows(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: "Awaiting approval" chose its page's ids in a subquery, where Django
    renames the ticket table; the search document's lookup names it, so with a search it
    pointed at the outer row (a correlated subquery with a LIMIT: run once per ticket of the
    organisation). With a search the view reads its rows as the other views do."""
    from django.test.utils import CaptureQueriesContext

    from tests.test_approval import _hold

    made = _generate(account, tickets=12, seed=3)

    def words(ticket: Ticket) -> str:
        return " ".join(Message.objects.filter(ticket=ticket).values_list("text", flat=True))

    open_ones = [Ticket.objects.get(pk=t.pk) for t in made]
    open_ones = [t for t in open_ones if t.status != Status.CLOSED]
    refund = next(t for t in open_ones if "refund" in words(t))
    other = next(t for t in open_ones if "refund" not in words(t))
    for ticket in (refund, other):
        root = Message.objects.filter(ticket=ticket).earliest("pk")
        Message.objects.filter(pk=root.pk).update(text=root.text + " my lawyer")
        _hold(ticket, agent, text="So sorry about this, we are looking into it now.")
    monkeypatch.setattr(inbox, "search_plan", lambda query: "walk")
    client = agent.client()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(INBOX, {"view": "approval", "q": "refund"})
    assert [t.pk for t in response.context["tickets"]] == [refund.pk]
    lookups = [q["sql"] for q in queries if '"ticket_document"."ticket_id"' in q["sql"]]
    assert lookups, "the walk asked no search document"
    for sql in lookups:
        # The ticket table renamed in a subquery (U0, V0, ...) beside a lookup naming it.
        assert not re.search(r'FROM "tickets_ticket" [A-Z][0-9]+\b', sql), sql


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_an_edit_beside_a_new_reply_keeps_the_replys_words(account: SocialAccount) -> None:
    """Found in review: an edit (or erasure's scrub) rebuilding a ticket's document while
    another transaction added a reply to it waited for the document row, then rebuilt it from
    the messages its statement's snapshot saw, without the reply: the reply's words left the
    document and search missed the ticket by them. Migration 0025 locks, then reads."""
    import threading

    from tests.backends import close_and_wait_gone, other_backend

    ingest_posts(account, [post("my parcel is late", author="9001", username="c9001")])
    first = Message.objects.get()
    columns = [f.column for f in Message._meta.concrete_fields if f.column != "id"]
    chosen = {"text": "%s", "external_id": "external_id || '-reply'"}
    other, pid = other_backend()
    with other.cursor() as cursor:  # the reply, its insert trigger holding the document row
        # Column names from the model, values as parameters.
        insert = (
            f"INSERT INTO tickets_message ({', '.join(columns)}) SELECT "  # noqa: S608
            + ", ".join(chosen.get(c, c) for c in columns)
            + " FROM tickets_message WHERE id = %s"
        )
        cursor.execute(insert, ["zebrafish spotted", first.pk])

    def edit() -> None:
        try:
            Message.objects.filter(pk=first.pk).update(text="my parcel is very late")
        finally:
            connection.close()

    editing = threading.Thread(target=edit)
    editing.start()
    with connection.cursor() as cursor:  # the edit's trigger waits for the document row
        for _ in range(200):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'UPDATE \"tickets_message\"%%'"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the edit never waited for the reply's document row")
    other.commit()
    editing.join(timeout=30)
    close_and_wait_gone(other, pid)
    assert {"zebrafish", "spotted", "very", "parcel"} <= _document(first.ticket_id)


# --- Migration 0026: the organisation and open state on the document -------------------------


def _document_state(ticket_id: int) -> tuple[int, bool]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT organization_id, is_open FROM tickets_ticketsearch WHERE ticket_id = %s",
            [ticket_id],
        )
        row = cursor.fetchone()
    assert row is not None, f"ticket {ticket_id} has no search document"
    return row[0], row[1]


def _reopen(account: SocialAccount, ticket: Ticket) -> None:
    """A direct message from the ticket's customer after its close: reopened (ingest)."""
    ingest_posts(
        account,
        [
            post(
                "refund still late",
                at=timezone.now(),
                author=ticket.customer_external_id,
                username=ticket.customer_username,
                kind="dm",
                public=False,
            )
        ],
    )


@on_postgresql
def test_the_document_keeps_its_tickets_organisation_and_open_state(
    account: SocialAccount, agent: Persona
) -> None:
    ingest_posts(account, [post("my refund is late", author="9501", username="c9501")])
    ticket = Ticket.objects.get(customer_external_id="9501")
    assert _document_state(ticket.pk) == (account.organization_id, True)
    # Between open statuses: still open (the trigger's WHEN: nothing to write).
    Ticket.objects.filter(pk=ticket.pk).update(status=Status.OFFLINE)
    assert _document_state(ticket.pk) == (account.organization_id, True)
    # Closed by a queryset update, as by the model's close: closed.
    Ticket.objects.filter(pk=ticket.pk).update(status=Status.CLOSED, closed_at=timezone.now())
    assert _document_state(ticket.pk) == (account.organization_id, False)
    # Reopened by a new message of its customer: open again.
    _reopen(account, ticket)
    ticket.refresh_from_db()
    assert ticket.status != Status.CLOSED
    assert _document_state(ticket.pk) == (account.organization_id, True)


def _answers_of(
    client: object, words: str, views: tuple[str, ...]
) -> dict[str, tuple[list[int], int]]:
    found = {}
    for view in views:
        response = client.get(INBOX, {"view": view, "q": words})  # type: ignore[attr-defined]
        found[view] = ([t.pk for t in response.context["tickets"]], response.context["total"])
    return found


@on_postgresql
@pytest.mark.parametrize("cap", [1000, 3])
def test_the_documents_count_is_the_walks_over_orgs_states_and_reopens(
    account: SocialAccount,
    agent: Persona,
    outsider: Persona,
    make_account: Callable[..., SocialAccount],
    monkeypatch: pytest.MonkeyPatch,
    cap: int,
) -> None:
    """The "documents" plan's count (the tickets whose document holds every word, from the
    organisation and state in the document index) equals the walk's and the index-only
    plan's, in every view, for two organisations with the same words, after tickets were
    closed and some reopened (moved between the open and the closed views); with the cap
    reached (3) and not."""
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(inbox, "SEARCH_COUNT_CAP", cap)
    made = _generate(account, tickets=36, seed=7)
    theirs = make_account(
        external_id="2000", username="GlobexCare", brand__organization=outsider.organization
    )
    _generate(theirs, tickets=12, seed=8)
    # Two closed ones of each organisation reopened: open again, in the open views.
    for ticket in made[::3][:2]:
        _reopen(account, ticket)
    reopened = [t.pk for t in made[::3][:2]]
    assert not Ticket.objects.filter(pk__in=reopened, status=Status.CLOSED).exists()
    # Some open ones assigned, so "Mine" and "Unassigned" differ from "All open".
    Ticket.objects.filter(pk__in=[t.pk for t in made[1::4]]).update(assigned_to=agent.user)
    views = ("open", "mine", "unassigned", "closed")
    compared = 0
    for persona in (agent, outsider):
        client = persona.client()
        for words in QUERIES:
            monkeypatch.setattr(inbox, "search_plan", lambda query: "union")
            reference = _answers_of(client, words, views)
            monkeypatch.setattr(inbox, "search_plan", lambda query: "walk")
            assert _answers_of(client, words, views) == reference, words
            monkeypatch.setattr(inbox, "search_plan", lambda query: "documents")
            with CaptureQueriesContext(connection) as queries:
                found = _answers_of(client, words, views)
            assert found == reference, (persona.user.username, words)
            # Counted from the documents by organisation and state (not the walk's count).
            assert any("d.is_open = " in q["sql"] for q in queries), words
            compared += sum(1 for view in views if reference[view][1])
    assert compared > 20  # most comparisons are between non-empty answers
    # The reopened tickets are found in the open views by the words of their messages.
    root = Message.objects.filter(ticket_id=reopened[0]).earliest("pk").text
    found = _answers_of(agent.client(), root, ("open", "closed"))
    if cap == 1000:
        assert reopened[0] in found["open"][0] and reopened[0] not in found["closed"][0]


@on_postgresql
def test_the_documents_count_reads_the_document_index(account: SocialAccount) -> None:
    ingest_posts(account, [post("my refund is late", author="9601", username="c9601")])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT ticket_id FROM tickets_ticketsearch WHERE organization_id = %s "
            "AND is_open = true AND document @@ %s::tsquery",
            [account.organization_id, "'refund':* & 'late':*"],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "tickets_ticketsearch_view_idx" in plan, plan


@on_postgresql
def test_a_message_update_rebuilds_only_when_its_text_or_ticket_changes(
    account: SocialAccount,
) -> None:
    """The message update trigger's ``WHEN``: an update that changes neither the text nor the
    ticket calls no trigger function at all (PostgreSQL's own call counts)."""
    ingest_posts(account, [post("my parcel is late", author="9701", username="c9701")])
    message = Message.objects.get()

    def calls() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_xact_user_functions "
                "WHERE funcname LIKE 'tickets_ticketsearch_message_%%'"
            )
            return int(cursor.fetchone()[0])

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL track_functions = 'pl'")
    before = calls()
    Message.objects.filter(pk=message.pk).update(author_followers=7, raw={"seen": True})
    Message.objects.filter(pk=message.pk).update(text=message.text)  # the same text
    assert calls() == before
    Message.objects.filter(pk=message.pk).update(text="my parcel is very late")
    assert calls() == before + 1
    assert "very" in _document(message.ticket_id)


# --- Migration 0026 made safe to deploy (non-atomic, batched) and the lock order --------------


@on_postgresql
def test_the_documents_count_walks_while_some_document_is_not_filled(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While 0026's backfill runs (or was interrupted), a document may have no organisation
    nor state (NULL): the "documents" count must not miss its ticket, so it walks."""
    made = _generate(account, tickets=24, seed=11)
    client = agent.client()
    views = ("open", "closed")
    monkeypatch.setattr(inbox, "search_plan", lambda query: "walk")
    reference = {words: _answers_of(client, words, views) for words in QUERIES}
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tickets_ticketsearch SET organization_id = NULL, is_open = NULL "
            "WHERE ticket_id = ANY(%s)",
            [[t.pk for t in made[::2]]],
        )
    monkeypatch.setattr(inbox, "search_plan", lambda query: "documents")
    assert {words: _answers_of(client, words, views) for words in QUERIES} == reference
    # Only the state missing (the organisation there): the same.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tickets_ticketsearch s SET organization_id = t.organization_id "
            "FROM tickets_ticket t WHERE t.id = s.ticket_id"
        )
    assert {words: _answers_of(client, words, views) for words in QUERIES} == reference


@on_postgresql
def test_the_backfill_fills_and_makes_missing_documents_in_batches_and_may_run_again(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0026's backfill (run here as a re-run would: columns and triggers already there) makes
    the documents missing, fills every NULL organisation and state, range by range; then the
    documents' count is the walk's again."""
    import importlib

    migration = importlib.import_module("tickets.migrations.0026_ticket_search_document_view")
    made = _generate(account, tickets=24, seed=12)
    expected = {t.pk: _document(t.pk) for t in made}
    states = {t.pk: _document_state(t.pk) for t in made}
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM tickets_ticketsearch WHERE ticket_id = ANY(%s)",
            [[t.pk for t in made[::3]]],
        )
        cursor.execute("UPDATE tickets_ticketsearch SET organization_id = NULL, is_open = NULL")
    monkeypatch.setattr(migration, "BATCH", 5)  # several ranges
    migration.backfill(connection)
    migration.backfill(connection)  # again: nothing left to do, nothing broken
    assert {t.pk: _document(t.pk) for t in made} == expected
    assert {t.pk: _document_state(t.pk) for t in made} == states
    assert inbox._documents_filled(account.organization)


@on_postgresql
def test_erasure_locks_the_documents_in_ticket_order_before_rewriting_messages(
    account: SocialAccount, manager: Persona
) -> None:
    """The message update trigger is row-level (0026): a ``bulk_update`` of many tickets'
    messages would lock their documents in the order it meets the rows. Erasure locks them
    all first, in ticket order, before each message update."""
    from django.test.utils import CaptureQueriesContext

    at = timezone.now() - timedelta(hours=2)
    for n in range(3):
        ingest_posts(
            account,
            [
                post(
                    f"order {n} is late",
                    at=at + timedelta(minutes=n),
                    author="7001",
                    username="erasme",
                    conversation=f"erasme-{n}",
                )
            ],
        )
    tickets = list(Ticket.objects.filter(customer_external_id="7001"))
    assert len(tickets) == 3
    customer = tickets[0].customer
    assert customer is not None
    with CaptureQueriesContext(connection) as queries:
        customer_erase(customer=customer, by=manager.user)
    sql = [q["sql"] for q in queries]
    updates = [n for n, s in enumerate(sql) if s.startswith('UPDATE "tickets_message"')]
    assert updates, sql
    for n in updates:
        before = sql[n - 1]
        assert "tickets_ticketsearch" in before and "FOR UPDATE" in before, before
        assert "ORDER BY ticket_id" in before, before


@on_postgresql
def test_a_merge_locks_both_documents_in_ticket_order_before_moving_messages(
    account: SocialAccount, agent: Persona
) -> None:
    from django.test.utils import CaptureQueriesContext

    ingest_posts(account, [post("first late parcel", author="7101", username="m1")])
    ingest_posts(account, [post("second late parcel", author="7102", username="m2")])
    target = Ticket.objects.get(customer_external_id="7101")
    source = Ticket.objects.get(customer_external_id="7102")
    with CaptureQueriesContext(connection) as queries:
        ticket_merge(target=target, source=source, by=agent.user)
    sql = [q["sql"] for q in queries]
    (n,) = [n for n, s in enumerate(sql) if s.startswith('UPDATE "tickets_message"')]
    assert "tickets_ticketsearch" in sql[n - 1] and "FOR UPDATE" in sql[n - 1], sql[n - 1]
    assert {"first", "second"} <= _document(target.pk)
