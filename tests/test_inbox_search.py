"""Search over a large view: its count stops at ``SEARCH_COUNT_CAP`` ("1,000+"), exact
below it; a common search (more than ``SEARCH_COMMON_SHARE`` of a sample of the messages
match) is checked ticket by ticket and finds exactly what the rare search's ``EXISTS``
finds."""

from __future__ import annotations

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
from tickets.models import Status, Ticket
from tickets.services import ingest_posts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

INBOX = reverse("tickets:inbox")


@pytest.fixture
def account(make_account: Callable[..., SocialAccount]) -> SocialAccount:
    return make_account(external_id="1000", username="AcmeCare")


def _open(account: SocialAccount, text: str, *, author: str) -> Ticket:
    at = timezone.now() - timedelta(hours=2)
    ingest_posts(account, [post(text, at=at, author=author, username=f"c{author}")])
    return Ticket.objects.filter(customer_external_id=author).latest("pk")


def test_a_search_counts_up_to_the_cap_and_says_so(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "SEARCH_COUNT_CAP", 3)
    for n in range(5):
        _open(account, f"I want a refund for order {n}", author=f"40{n}")
    _open(account, "the app is slow", author="4100")
    client = agent.client()
    capped = client.get(INBOX, {"view": "open", "q": "refu"})
    # Five match; the count stops at the cap (and one more, to know there are more).
    assert capped.context["total"] == 4 and capped.context["total_label"] == "3+"
    assert len(capped.context["tickets"]) == 5  # the rows are not capped by the count
    page = capped.content.decode()
    assert '<strong id="view-count">3+</strong>' in page
    assert "<title>(3+) All open" in page
    exact = client.get(INBOX, {"view": "open", "q": "refund order 1"})
    assert exact.context["total"] == 1 and exact.context["total_label"] == "1"
    at_cap = client.get(INBOX, {"view": "open", "q": "refund order"})
    assert at_cap.context["total_label"] == "3+"
    monkeypatch.setattr(inbox, "SEARCH_COUNT_CAP", 5)
    exact = client.get(INBOX, {"view": "open", "q": "refund order"})
    assert exact.context["total"] == 5 and exact.context["total_label"] == "5"
    # Without a search a view's count is never capped.
    monkeypatch.setattr(inbox, "SEARCH_COUNT_CAP", 1)
    plain = client.get(INBOX, {"view": "open"})
    assert plain.context["total"] == 6 and plain.context["total_label"] == "6"


def test_a_capped_search_rows_are_the_newest_first_in_the_archive(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "SEARCH_COUNT_CAP", 2)
    closed = []
    for n in range(4):
        ticket = _open(account, f"refund please, order {n}", author=f"50{n}")
        Ticket.objects.filter(pk=ticket.pk).update(
            status=Status.CLOSED, closed_at=timezone.now() - timedelta(hours=4 - n)
        )
        closed.append(ticket.pk)
    response = agent.client().get(INBOX, {"view": "closed", "q": "refu"})
    assert [t.pk for t in response.context["tickets"]] == closed[::-1]
    assert response.context["total_label"] == "2+"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the GIN index is PostgreSQL's")
@pytest.mark.parametrize("words", ["refu", "refund order", "order 3", "c402", "nothing"])
def test_a_common_search_finds_what_a_rare_one_does(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch, words: str
) -> None:
    for n in range(5):
        _open(account, f"I want a refund for order {n}", author=f"40{n}")
    _open(account, "the app is slow, order 3 again", author="4100")
    client = agent.client()
    rare = client.get(INBOX, {"view": "open", "q": words})
    assert inbox.search_plan(words) == "union"  # rare: a few rows, read from the indexes
    # Every search common (any share of a sample of any size): a scalar subquery per ticket.
    monkeypatch.setattr(inbox, "SEARCH_SAMPLE_MIN", 0)
    monkeypatch.setattr(inbox, "SEARCH_SAMPLE_PERCENT", 100)
    monkeypatch.setattr(inbox, "SEARCH_COMMON_SHARE", -1)
    monkeypatch.setattr(inbox, "SEARCH_DOCUMENTS_SHARE", 0)  # the walk, not "documents"
    common = client.get(INBOX, {"view": "open", "q": words})
    assert inbox.search_plan(words) == "walk"
    walked = str(inbox.search(Ticket.objects.all(), words).query)
    # The messages are checked by the scalar subquery, not an EXISTS; each ticket's one
    # document (migration 0024) first.
    assert 'EXISTS(SELECT 1 AS "a" FROM "tickets_message"' not in walked
    assert '"tickets_ticketsearch"' in walked
    found = [t.pk for t in rare.context["tickets"]]
    assert [t.pk for t in common.context["tickets"]] == found
    assert common.context["total"] == rare.context["total"] == len(found)
    assert bool(found) == (words != "nothing")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the sample is PostgreSQL's")
def test_the_sample_tells_a_common_search_from_a_rare_one(
    account: SocialAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        _open(account, f"I want a refund for order {n}", author=f"40{n}")
    _open(account, "the app is slow", author="4100")
    monkeypatch.setattr(inbox, "SEARCH_SAMPLE_PERCENT", 100)  # every page: all six messages
    monkeypatch.setattr(inbox, "SEARCH_SAMPLE_MIN", 6)
    monkeypatch.setattr(inbox, "SEARCH_COMMON_SHARE", 0.5)
    assert inbox._search_is_common("refu:*")  # 5 of 6
    assert not inbox._search_is_common("slow:*")  # 1 of 6
    monkeypatch.setattr(inbox, "SEARCH_SAMPLE_MIN", 7)
    assert not inbox._search_is_common("refu:*")  # too small a sample says rare


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plans are PostgreSQL's")
@pytest.mark.parametrize(
    "words", ["refu", "refund order", "order 3", "c402", "402", "c40", "slow c4100", "nothing"]
)
def test_every_plan_finds_the_same_tickets_in_the_same_order(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch, words: str
) -> None:
    for n in range(5):
        _open(account, f"I want a refund for order {n}", author=f"40{n}")
    _open(account, "the app is slow, order 3 again", author="4100")
    closed = _open(account, "refund? order 9", author="4200")
    Ticket.objects.filter(pk=closed.pk).update(status=Status.CLOSED, closed_at=timezone.now())
    client = agent.client()
    answers = {}
    for plan in ("union", "hashed", "walk", "documents"):
        monkeypatch.setattr(inbox, "search_plan", lambda query, plan=plan: plan)
        for view in ("open", "closed"):
            response = client.get(INBOX, {"view": view, "q": words})
            answers[plan, view] = (
                [t.pk for t in response.context["tickets"]],
                response.context["total"],
            )
    for view in ("open", "closed"):
        assert answers["union", view] == answers["hashed", view] == answers["walk", view]
        assert answers["documents", view] == answers["walk", view]
    # "slow" is in a message, "c4100" the customer's handle: every word on one side, or none.
    assert bool(answers["union", "open"][0]) == (words not in ("nothing", "slow c4100"))
    in_closed = words in ("refu", "refund order")
    assert answers["union", "closed"][0] == ([closed.pk] if in_closed else [])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the plans are PostgreSQL's")
def test_a_common_handle_is_hashed_and_too_many_ids_are_too(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(4):
        _open(account, f"where is my parcel {n}", author=f"70{n}")
    monkeypatch.setattr(inbox, "SEARCH_SAMPLE_PERCENT", 100)
    monkeypatch.setattr(inbox, "SEARCH_TICKET_SAMPLE_PERCENT", 100)
    monkeypatch.setattr(inbox, "SEARCH_SAMPLE_MIN", 4)
    monkeypatch.setattr(inbox, "SEARCH_COMMON_SHARE", 0.5)
    # Every customer is "c70…": common among the customers, in no message.
    assert inbox.search_plan("c70") == "hashed"
    assert inbox.search_plan("c701") == "union"  # one of four
    assert inbox.search_plan("parcel") == "walk"  # every message
    monkeypatch.setattr(inbox, "SEARCH_DOCUMENTS_SHARE", 1.01)
    assert inbox.search_plan("parcel") == "documents"  # common, under the documents' share
    # Two ids read for a union allowed one: answered as the hashed plan, the same tickets.
    found = [t.pk for t in agent.client().get(INBOX, {"q": "c70"}).context["tickets"]]
    monkeypatch.setattr(inbox, "SEARCH_SAMPLE_MIN", 1000)  # a small sample: rare
    monkeypatch.setattr(inbox, "SEARCH_UNION_MAX", 1)
    assert inbox.search_plan("c70") == "union"
    assert "EXISTS" in str(inbox.search(Ticket.objects.all(), "c70").query)
    assert [t.pk for t in agent.client().get(INBOX, {"q": "c70"}).context["tickets"]] == found
    assert len(found) == 4


def test_like_signs_in_a_handle_search_are_plain_characters(
    account: SocialAccount, agent: Persona
) -> None:
    underscored = _open(account, "hello", author="7_1")  # handle "c7_1"
    _open(account, "hello", author="7x1")  # handle "c7x1": "_" must not match any character
    found = agent.client().get(INBOX, {"q": "c7_1"}).context["tickets"]
    assert [t.pk for t in found] == [underscored.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_trgm is PostgreSQL's")
def test_a_handle_search_reads_the_trigram_index(account: SocialAccount) -> None:
    _open(account, "hello", author="8001")
    ids = Ticket.objects.filter(customer_username__icontains="c800").values("pk")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = ids.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "ticket_customer_username_trgm" in plan, plan
