"""The inbox's counts are cached (``tickets.inbox.view_counts``) and never shown stale: after
each kind of write the next page shows every view's count as a plain count says.

Every test here commits for real (a transactional database): the counts' token is replaced
after the writing transaction commits, as in production. The writes never touch the cache;
the token lives in the database, so a write in one process (the Celery worker, another
gunicorn worker) is seen by a page served from any other process's own cache.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from channels_social.models import SocialAccount
from monitoring.services import sla_sweep
from tests.conftest import Persona
from tests.test_threading import post
from tickets import inbox
from tickets.models import (
    ApprovalRequest,
    InboxCountsStamp,
    Message,
    SkipReason,
    Status,
    Step,
    Ticket,
)
from tickets.services import ingest as ingest_module
from tickets.services import ingest_posts, ticket_take_step
from tickets.services.approval import Decision, approval_decide

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_cache")]

INBOX = reverse("tickets:inbox")


@pytest.fixture
def account(make_account: Callable[..., SocialAccount]) -> SocialAccount:
    return make_account(external_id="1000", username="AcmeCare")


def _shown(agent: Persona, client: Any) -> dict[str, int]:
    """Every view's count as the next page shows it (and its live poll agrees)."""
    page = client.get(INBOX)
    assert page.status_code == 200
    counts: dict[str, int] = page.context["counts"]
    return counts


def _truth(agent: Persona) -> dict[str, int]:
    """Every view's count counted now, past any cache."""
    counts, _upcoming, _complete = inbox._view_counts(
        agent.organization, user=agent.user, now=timezone.now()
    )
    return counts


def _check(agent: Persona, client: Any, **expected: int) -> dict[str, int]:
    shown = _shown(agent, client)
    assert shown == _truth(agent)
    for view, count in expected.items():
        assert shown[view] == count, (view, shown)
    return shown


def _open(account: SocialAccount, text: str, author: str) -> Ticket:
    ingest_posts(account, [post(text, at=timezone.now(), author=author, username=f"c{author}")])
    return Ticket.objects.filter(customer_external_id=author).latest("pk")


def test_every_kind_of_write_shows_on_the_next_page(
    account: SocialAccount, agent: Persona, manager: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = agent.client()
    _check(agent, client, open=0, closed=0)
    assert _shown(agent, client) == _shown(agent, client)  # cached now, and the same

    # New tickets by ingest: a batch of two (set-based), then one stored one by one.
    ingest_posts(
        account,
        [
            post("my parcel is late", at=timezone.now(), author="2001", username="c2001"),
            post("the app crashes", at=timezone.now(), author="2002", username="c2002"),
        ],
    )
    _check(agent, client, open=2, unassigned=2, mine=0)

    def refuse(*args: object, **kwargs: object) -> object:
        raise ValueError("refused: store them one by one")

    monkeypatch.setattr(ingest_module, "_store_together", refuse)
    third = _open(account, "still no refund", "2003")
    monkeypatch.undo()
    _check(agent, client, open=3, unassigned=3)

    # Assigned to the agent: Mine and Unassigned change.
    third.assign(agent.user, by=manager.user)
    _check(agent, client, mine=1, unassigned=2)

    # A reply: it is the customer's turn (Waiting), and the step changes the status.
    sent = ticket_take_step(ticket=third, step=Step.ACKNOWLEDGE, by=agent.user, text="On it!")
    assert isinstance(sent, Message)
    _check(agent, client, waiting=1, open=3)
    # The customer answers: their message takes it out of Waiting again.
    root = third.root_message
    assert root is not None
    ingest_posts(
        account,
        [
            post(
                "thanks, still waiting",
                at=timezone.now() + timedelta(seconds=5),
                author="2003",
                username="c2003",
                conversation=root.conversation_id,
                reply_to=root.external_id,
            )
        ],
    )
    _check(agent, client, waiting=0)

    # Closed and reopened.
    first = Ticket.objects.get(customer_external_id="2001")
    first.close_without_reply(reason=SkipReason.SPAM, by=agent.user)
    _check(agent, client, open=2, closed=1)
    first.refresh_from_db()
    message = first.messages.latest("pk")
    first.reopen(message=message, window_days=7)
    _check(agent, client, open=3, closed=0)

    # Approval requested (a held reply), then decided.
    second = Ticket.objects.get(customer_external_id="2002")
    second.require_approval("VIP customer", by=manager.user)
    held = ticket_take_step(ticket=second, step=Step.ACKNOWLEDGE, by=agent.user, text="Sorry!")
    assert isinstance(held, ApprovalRequest)
    _check(agent, client, approval=1)
    approval_decide(approval=held, by=manager.user, decision=Decision.REJECT, comment="Kinder")
    _check(agent, client, approval=0)

    # The SLA sweep (breaches what is past due; its events are recorded set-based).
    second.refresh_from_db()
    second.set_sla_due(timezone.now() - timedelta(minutes=1))
    _check(agent, client)
    sla_sweep(now=timezone.now() + timedelta(days=30))
    _check(agent, client)

    # A bulk action through the inbox itself.
    response = client.post(
        reverse("tickets:bulk"),
        {"action": "assign_me", "ticket": [first.pk, second.pk]},
    )
    assert response.status_code == 302
    _check(agent, client, mine=3, unassigned=0)


def test_breaching_soon_changes_with_the_clock_alone(
    account: SocialAccount, agent: Persona
) -> None:
    """No write: a ticket due in 31 minutes enters "Breaching soon" a minute later, and the
    cached counts are not shown past that moment."""
    ticket = _open(account, "where is my order", "2101")
    start = timezone.now()
    ticket.refresh_from_db()
    ticket.set_sla_due(start + inbox.BREACHING_SOON + timedelta(minutes=1))
    client = agent.client()
    with time_machine.travel(start, tick=True):
        assert _check(agent, client)["breaching"] == 0
        assert _shown(agent, client)["breaching"] == 0  # from the cache
    with time_machine.travel(start + timedelta(minutes=1, seconds=5), tick=True):
        assert _check(agent, client)["breaching"] == 1


def test_due_times_set_for_a_batch_show_on_the_next_page(
    account: SocialAccount, agent: Persona
) -> None:
    """The SLA timers of a delivery's new tickets set their due times in one statement
    (``Ticket.set_sla_dues``, after the ingest committed and its counts were shown): a due
    time inside the window puts the tickets in "Breaching soon" on the next page."""
    first = _open(account, "my parcel is late", "2201")
    second = _open(account, "the app crashes", "2202")
    Ticket.objects.filter(pk__in=[first.pk, second.pk]).update(sla_due_at=None, sla_risk_at=None)
    InboxCountsStamp.counts_changed(agent.organization.pk)
    client = agent.client()
    assert _check(agent, client)["breaching"] == 0
    assert _shown(agent, client)["breaching"] == 0  # from the cache
    first.refresh_from_db()
    second.refresh_from_db()
    soon = timezone.now() + timedelta(minutes=10)
    Ticket.set_sla_dues([(first, soon), (second, soon)])
    _check(agent, client, breaching=2)
    Ticket.set_sla_dues([(first, None)])  # one ticket: its own UPDATE
    _check(agent, client, breaching=1)


def test_a_cached_breaching_soon_count_moves_on_as_due_times_enter_the_window(
    account: SocialAccount, agent: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Due times entering the window within the cache's life are read with the counts: the
    cached "Breaching soon" count moves on by them as the clock passes each, without counting
    again; more than were read ahead, and the counts are counted again once the last enters."""
    first = _open(account, "where is my order", "2301")
    second = _open(account, "still waiting", "2302")
    start = timezone.now()
    for ticket, seconds in ((first, 10), (second, 20)):
        ticket.refresh_from_db()
        ticket.set_sla_due(start + inbox.BREACHING_SOON + timedelta(seconds=seconds))
    client = agent.client()
    counted: list[int] = []
    real = inbox._view_counts

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(inbox, "_view_counts", counting)
    with time_machine.travel(start, tick=False):
        assert _shown(agent, client)["breaching"] == 0
    for seconds, expected in ((5, 0), (12, 1), (25, 2)):
        with time_machine.travel(start + timedelta(seconds=seconds), tick=False):
            assert _shown(agent, client)["breaching"] == expected
            assert _truth(agent)["breaching"] == expected
    assert len(counted) == 1 + 3  # counted once for the page; the rest are _truth's
    counted.clear()
    monkeypatch.setattr(inbox, "UPCOMING_DUES", 1)  # read one ahead: kept until it enters
    InboxCountsStamp.counts_changed(agent.organization.pk)
    second.refresh_from_db()
    second.set_sla_due(start + timedelta(hours=1))
    first.refresh_from_db()
    first.set_sla_due(start + inbox.BREACHING_SOON + timedelta(seconds=40))
    second.set_sla_due(start + inbox.BREACHING_SOON + timedelta(seconds=45))
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        assert _shown(agent, client)["breaching"] == 0
    with time_machine.travel(start + timedelta(seconds=41), tick=False):
        assert _shown(agent, client)["breaching"] == 1  # counted again: the last read entered
    with time_machine.travel(start + timedelta(seconds=46), tick=False):
        assert _shown(agent, client)["breaching"] == 2  # from the cache, moved on
    assert len(counted) == 2


def test_a_rolled_back_write_changes_no_token_and_a_committed_one_does(
    account: SocialAccount, agent: Persona
) -> None:
    from django.db import transaction

    ticket = _open(account, "refund please", "2201")
    token = InboxCountsStamp.token_for(agent.organization.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        ticket.assign(agent.user, by=None)
        raise RuntimeError("rolled back")
    assert InboxCountsStamp.token_for(agent.organization.pk) == token
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint rolled back
            ticket.assign(agent.user, by=None)
            raise RuntimeError("rolled back")
        ticket.refresh_from_db()
        ticket.assign(agent.user, by=None)
    assert InboxCountsStamp.token_for(agent.organization.pk) != token
    # One statement for the commit, however many writes it held.
    with transaction.atomic():
        ticket.refresh_from_db()
        ticket.assign(None, by=None)
        ticket.add_tag("late", by=None)
        callbacks = [f for _s, f, _r in connection.run_on_commit]
        groups = {id(f.group) for f in callbacks if type(f).__name__ == "_NewCountsToken"}
        assert len(groups) == 1


def test_counts_are_per_organisation_and_per_user(
    account: SocialAccount,
    agent: Persona,
    manager: Persona,
    outsider: Persona,
    make_account: Callable[..., SocialAccount],
) -> None:
    ticket = _open(account, "my parcel is late", "2301")
    ticket.assign(agent.user, by=manager.user)
    assert _check(agent, agent.client(), mine=1, open=1)["mine"] == 1
    assert _check(manager, manager.client(), mine=0, open=1)["mine"] == 0
    assert _check(outsider, outsider.client(), mine=0, open=0)["open"] == 0
    assert ticket.status == Status.NEW


# --- Filtered counts (a saved view, "Awaiting approval" with filters) -------------------------


def _total(client: Any, **params: object) -> int:
    """The view's count with its filters as the next page shows it."""
    page = client.get(INBOX, params)
    assert page.status_code == 200
    assert page.context["filtered"]
    total: int = page.context["total"]
    return total


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The views whose filtered count was counted (not taken from the cache), in order."""
    calls: list[str] = []
    real = inbox._filtered_count

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["view"])
        return real(*args, **kwargs)

    monkeypatch.setattr(inbox, "_filtered_count", counting)
    return calls


def test_a_filtered_count_is_cached_and_every_write_it_counts_shows_at_once(
    account: SocialAccount, agent: Persona, manager: Persona, counted: list[str]
) -> None:
    """Each write that changes what a filter matches (a priority, a tag, an assignment, the
    step, a held reply approved) shows in the filtered count on the very next page; nothing
    changed, and the count comes from the cache."""
    first = _open(account, "my parcel is late", "2401")
    second = _open(account, "the app crashes", "2402")
    tickets = Ticket.objects.filter(organization=agent.organization)
    open_ = tickets.filter(status__in=[Status.NEW, Status.ACKNOWLEDGED, Status.OFFLINE])
    high = {"view": "open", "priority": "2"}
    client = agent.client()

    # Priority: a plain count of the same rows each time.
    for ticket in (first, second):
        ticket.refresh_from_db()
        ticket.change_priority(3, by=manager.user, reason="normal")
    assert _total(client, **high) == open_.filter(priority=2).count() == 0
    assert _total(client, **high, sort="newest") == 0  # the same filters: from the cache
    assert counted == ["open"]
    first.change_priority(2, by=manager.user, reason="VIP")
    assert _total(client, **high) == open_.filter(priority=2).count() == 1
    second.change_priority(2, by=manager.user, reason="VIP")
    assert _total(client, **high) == 2
    first.change_priority(1, by=manager.user, reason="angrier")
    assert _total(client, **high) == 1
    assert _total(client, **high) == 1
    assert counted == ["open"] * 4

    # A tag added, and removed.
    first.add_tag("refund", by=agent.user)
    tag = first.tags.get()
    assert _total(client, view="open", tag=tag.pk) == open_.filter(tags=tag).count() == 1
    second.add_tag("refund", by=agent.user)
    assert _total(client, view="open", tag=tag.pk) == 2
    first.remove_tag("refund", by=agent.user)
    assert _total(client, view="open", tag=tag.pk) == 1
    assert _total(client, view="closed", tag=tag.pk) == 0

    # Assigned to me, and the step taken (the status a "step" filter reads).
    assert _total(client, view="open", assignee="me") == 0
    second.refresh_from_db()
    second.assign(agent.user, by=manager.user)
    assert _total(client, view="open", assignee="me") == 1
    assert _total(manager.client(), view="open", assignee="me") == 0  # per user
    assert _total(client, view="open", step="new") == 2
    sent = ticket_take_step(ticket=second, step=Step.ACKNOWLEDGE, by=agent.user, text="On it!")
    assert isinstance(sent, Message)
    assert _total(client, view="open", step="new") == open_.filter(status=Status.NEW).count() == 1

    # "Awaiting approval" with a filter: a reply held, then approved.
    urgent = {"view": "approval", "priority": "1"}
    assert _total(client, **urgent) == 0
    first.refresh_from_db()
    first.require_approval("VIP customer", by=manager.user)
    held = ticket_take_step(ticket=first, step=Step.ACKNOWLEDGE, by=agent.user, text="Sorry!")
    assert isinstance(held, ApprovalRequest)
    assert _total(client, **urgent) == 1
    assert _total(client, **urgent) == 1  # from the cache
    approval_decide(approval=held, by=manager.user, decision=Decision.APPROVE)
    assert _total(client, **urgent) == 0
    assert ApprovalRequest.objects.get(pk=held.pk).state == "approved"


def test_breaching_soon_with_filters_moves_on_with_the_clock(
    account: SocialAccount, agent: Persona, counted: list[str]
) -> None:
    """No write: a filtered ticket due in 30 minutes and 10 seconds enters "Breaching soon" ten
    seconds later, and the cached filtered count moves on by it (its due time read ahead)."""
    ticket = _open(account, "where is my order", "2501")
    ticket.refresh_from_db()
    ticket.change_priority(2, by=None, reason="VIP")
    start = timezone.now()
    ticket.set_sla_due(start + inbox.BREACHING_SOON + timedelta(seconds=10))
    client = agent.client()
    params = {"view": "breaching", "priority": "2"}
    with time_machine.travel(start, tick=False):
        assert _total(client, **params) == 0
    with time_machine.travel(start + timedelta(seconds=5), tick=False):
        assert _total(client, **params) == 0
    with time_machine.travel(start + timedelta(seconds=11), tick=False):
        assert _total(client, **params) == 1  # moved on, not counted again
        assert len(_rows(client.get(INBOX, params))) == 1
    assert counted == ["breaching"]
    with time_machine.travel(start + timedelta(seconds=inbox.COUNTS_TTL + 1), tick=False):
        assert _total(client, **params) == 1  # the cache's life is over: counted again
    assert counted == ["breaching", "breaching"]


def test_a_text_search_is_counted_every_time(
    account: SocialAccount, agent: Persona, counted: list[str]
) -> None:
    """A search's count is never cached: a customer's erasure rewrites the text it matches and
    records no ticket event (the token does not move), so the next search must not find it."""
    ticket = _open(account, "my parcel is late", "2601")
    client = agent.client()
    assert _total(client, view="open", q="parcel") == 1
    token = InboxCountsStamp.token_for(agent.organization.pk)
    Message.objects.filter(ticket=ticket).update(text="[erased]")  # no event, as an erasure
    assert InboxCountsStamp.token_for(agent.organization.pk) == token
    assert _total(client, view="open", q="parcel") == 0
    assert counted == []
    with pytest.raises(ValueError):
        inbox.filtered_count(
            agent.organization, user=agent.user, view="open", data={"q": "x"}, now=timezone.now()
        )


def test_the_filters_key_is_the_same_for_the_same_filters(agent: Persona) -> None:
    from tickets.inbox import ViewFilterForm, filters_key

    def key(**params: str) -> str:
        form = ViewFilterForm(params, organization=agent.organization)
        assert form.is_valid(), form.errors
        return filters_key(form.cleaned_data)

    assert key(priority="2", platform="x") == key(platform="x", priority="2", sort="newest")
    assert key(priority="2") == key(priority="2", followers="", tag="")
    assert key(priority="2") != key(priority="1")
    assert key(priority="2") != key(priority="2", followers="1000")
    assert key(assignee="me") != key(assignee="none")


def _rows(response: Any) -> list[int]:
    return [ticket.pk for ticket in response.context["tickets"]]
