"""Polling a handle through the real tweepy client against the X sandbox; each mention stored
once. Transactional: SLA timers start from the ``opened`` event after commit, as in production."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from channels_social.base import Stream
from channels_social.models import PollCursor, SocialAccount
from channels_social.services import account_poll, cursor_position
from channels_social.tasks import poll_due_accounts
from channels_social.x.adapter import XAdapter
from tests.backends import close_and_wait_gone, other_backend
from tests.sandbox_fixtures import XSandbox
from tickets.models import EventKind, Message, Priority, Status, Ticket
from tickets.services import ingest_posts

pytestmark = pytest.mark.django_db(transaction=True)


def _cursor(account: SocialAccount) -> str:
    return cursor_position(account, Stream.MENTIONS)


@pytest.fixture
def account(make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox) -> SocialAccount:
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    return account


def _mention(
    sandbox: XSandbox,
    text: str,
    *,
    author: str = "2001",
    name: str = "jo",
    followers: int = 120,
    **kwargs: object,
) -> dict[str, object]:
    return sandbox.control.post_mention("AcmeCare", author, name, followers, text, **kwargs)  # type: ignore[arg-type]


def test_poll_creates_tickets_and_advances_the_cursor(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    first = _mention(x_sandbox_clean, "Where is my order #4411? Ordered two weeks ago")
    second = _mention(
        x_sandbox_clean,
        "@AcmeCare your app is down again #thissucks",
        author="2002",
        name="bigvoice",
        followers=85_000,
    )

    assert account_poll(account_id=account.pk).startswith("ok: 2 new, 2 tickets")
    assert _cursor(account) == second["id"]
    tickets = {t.customer_username: t for t in Ticket.objects.for_org(account.organization)}
    assert set(tickets) == {"jo", "bigvoice"}
    loud = tickets["bigvoice"]
    assert loud.priority == Priority.URGENT
    assert any("85,000 followers" in reason for reason in loud.priority_reasons)
    assert loud.customer_followers == 85_000
    assert loud.root_message is not None and loud.root_message.external_id == second["id"]
    assert tickets["jo"].root_message.external_id == first["id"]  # type: ignore[union-attr]
    assert loud.sla_timers.get().due_at is not None
    assert [e.kind for e in loud.events.all()] == [EventKind.OPENED, EventKind.MESSAGE_RECEIVED]
    # The second poll asks only for what is newer than the cursor.
    assert account_poll(account_id=account.pk).startswith("ok: 0 new")
    mentions_calls = [
        r for r in x_sandbox_clean.control.requests_log() if r["path"].endswith("/mentions")
    ]
    assert mentions_calls[-1]["query"]["since_id"] == [second["id"]]


def test_re_polling_the_same_page_changes_nothing(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    _mention(x_sandbox_clean, "My refund never arrived")
    _mention(x_sandbox_clean, "Still waiting on that refund", author="2003", name="sam")
    batch = XAdapter(account).fetch(Stream.MENTIONS, cursor=None)
    assert len(batch.posts) == 2
    first = ingest_posts(account, batch.posts)
    counts = (Ticket.objects.count(), Message.objects.count())
    again = ingest_posts(account, batch.posts)  # the same page delivered again
    assert (first.stored, first.tickets_opened) == (2, 2)
    assert (again.stored, again.tickets_opened, again.duplicates) == (0, 0, 2)
    assert (Ticket.objects.count(), Message.objects.count()) == counts


def test_a_reply_in_the_customers_thread_joins_their_open_ticket(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    root = _mention(x_sandbox_clean, "Charged twice for one order")
    account_poll(account_id=account.pk)
    _mention(x_sandbox_clean, "Hello?? Anyone there?", in_reply_to=str(root["id"]))
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    assert list(ticket.messages.values_list("text", flat=True)) == [
        "@AcmeCare Charged twice for one order",
        "@AcmeCare Hello?? Anyone there?",
    ]
    assert ticket.messages.last().kind == "reply"  # type: ignore[union-attr]


def test_many_mentions_across_pages_arrive_oldest_first(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    ids = [
        _mention(x_sandbox_clean, f"Question number {n}", author=str(3000 + n), name=f"c{n}")["id"]
        for n in range(130)
    ]
    assert account_poll(account_id=account.pk).startswith("ok: 130 new, 130 tickets")
    stored = list(Message.objects.order_by("pk").values_list("external_id", flat=True))
    assert stored == ids
    assert _cursor(account) == ids[-1]


def test_failed_fetch_keeps_the_cursor_and_records_the_error(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    PollCursor.objects.create(account=account, stream=Stream.MENTIONS, position="5")
    x_sandbox_clean.control.inject_faults(status=503, count=1)
    assert account_poll(account_id=account.pk).startswith("error:")
    account.refresh_from_db()
    assert _cursor(account) == "5" and account.last_poll_error
    assert account.last_poll_error_at is not None and account.last_polled_at is None
    assert account.poll_lease_until is None  # the lease is released for the next poll


EMULATOR_FAULTS = {
    "429": {"status": 429},
    "500": {"status": 500},
    "503": {"status": 503},
    "timeout": {"mode": "after_commit_delay", "delay": 2.5},
    "dropped connection": {"mode": "after_commit_drop"},
    "malformed body": {"mode": "malformed"},
}


@pytest.mark.parametrize("fault", EMULATOR_FAULTS, ids=list(EMULATOR_FAULTS))
def test_polling_recovers_from_each_emulator_fault_with_the_cursor_right(
    fault: str, account: SocialAccount, x_sandbox_clean: XSandbox, settings: Any
) -> None:
    """A fault mid-stream: the failed poll stores nothing and keeps the cursor where the rows
    are; the next poll (after the window, for a 429) stores every mention once, in order."""
    settings.CHANNEL_HTTP_TIMEOUT_SECONDS = 1
    first = [
        _mention(x_sandbox_clean, f"order {n} is late", author=f"30{n}", name=f"early{n}")
        for n in range(3)
    ]
    assert account_poll(account_id=account.pk).startswith("ok: 3 new")
    assert _cursor(account) == str(first[-1]["id"])
    later = [
        _mention(x_sandbox_clean, f"still waiting {n}", author=f"40{n}", name=f"later{n}")
        for n in range(3)
    ]

    x_sandbox_clean.control.inject_faults(count=1, **EMULATOR_FAULTS[fault])  # type: ignore[arg-type]
    assert account_poll(account_id=account.pk).startswith("error:")
    account.refresh_from_db()
    assert account.last_poll_error and account.last_poll_error_at is not None
    assert _cursor(account) == str(first[-1]["id"])  # not moved past what is stored
    assert Message.objects.count() == 3
    if fault == "429":
        # Waits for the window X named; once it has passed, polling resumes by itself.
        assert account_poll(account_id=account.pk).startswith("skipped: rate limited")
        SocialAccount.objects.filter(pk=account.pk).update(
            rate_limit_reset_at=timezone.now() - timezone.timedelta(seconds=1)
        )

    assert account_poll(account_id=account.pk).startswith("ok: 3 new")
    stored = list(Message.objects.order_by("pk").values_list("external_id", flat=True))
    assert stored == [str(m["id"]) for m in first + later]  # each once, oldest first
    assert _cursor(account) == str(later[-1]["id"])
    assert account_poll(account_id=account.pk).startswith("ok: 0 new")  # and nothing again


def test_rate_limited_poll_waits_for_the_window(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.control.set_rate_limits(mentions=1)
    assert account_poll(account_id=account.pk).startswith("ok")
    account.refresh_from_db()
    assert account.rate_limit_remaining == 0  # read from x-rate-limit-remaining
    calls = len(x_sandbox_clean.control.requests_log())
    assert account_poll(account_id=account.pk) == "skipped: rate limited until the window resets"
    assert len(x_sandbox_clean.control.requests_log()) == calls  # did not call X again


def test_a_429_records_when_the_window_resets(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.control.set_rate_limits(mentions=1)
    account_poll(account_id=account.pk)
    SocialAccount.objects.filter(pk=account.pk).update(rate_limit_remaining=None)  # forget it
    result = account_poll(account_id=account.pk)
    assert result.startswith("error:")
    account.refresh_from_db()
    assert account.rate_limit_remaining == 0 and account.rate_limit_reset_at is not None
    assert "429" in account.last_poll_error or "Too Many" in account.last_poll_error


def test_a_poll_in_progress_is_not_run_twice(account: SocialAccount) -> None:
    lease = account.claim_poll(lease_seconds=60)
    assert lease is not None
    assert account_poll(account_id=account.pk) == "skipped: another poll is running"
    # Not queued again at once while the lease lasts: due one interval later.
    account.refresh_from_db()
    assert account.next_poll_at is not None and account.next_poll_at > timezone.now()
    account.release_poll(lease)
    assert account_poll(account_id=account.pk).startswith("ok")


def test_a_poll_that_outlived_its_lease_does_not_release_the_next_ones(
    account: SocialAccount,
) -> None:
    stale = account.claim_poll(lease_seconds=-1)  # already expired
    assert stale is not None
    fresh = account.claim_poll(lease_seconds=60)  # a later poll takes over
    assert fresh is not None
    account.release_poll(stale)  # the slow first poll finishes
    assert account.claim_poll(lease_seconds=60) is None  # the later poll still holds it
    account.release_poll(fresh)
    assert account.claim_poll(lease_seconds=60) is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="backend liveness is PostgreSQL's")
def test_a_lease_left_by_a_killed_worker_is_taken_over_at_once(account: SocialAccount) -> None:
    """A worker SIGKILLed mid-poll leaves its lease (minutes long); its connection dies with it,
    so the next poll runs now, not when the lease runs out. A live holder keeps it."""
    other, pid = other_backend()
    lease = timezone.now() + timezone.timedelta(minutes=3)
    SocialAccount.objects.filter(pk=account.pk).update(
        poll_lease_until=lease, poll_lease_holder=pid
    )
    assert account_poll(account_id=account.pk) == "skipped: another poll is running"

    close_and_wait_gone(other, pid)
    assert account_poll(account_id=account.pk).startswith("ok")
    account.refresh_from_db()
    assert account.poll_lease_until is None and account.poll_lease_holder is None


def test_first_poll_skips_mentions_from_before_the_handle_was_connected(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    _mention(x_sandbox_clean, "Old complaint from last week", created_at="2026-01-05T10:00:00Z")
    new = _mention(x_sandbox_clean, "Brand new question")
    result = account_poll(account_id=account.pk)
    assert result.startswith("ok: 1 new, 1 tickets") and "1 from before" in result
    assert list(Message.objects.values_list("external_id", flat=True)) == [new["id"]]
    assert _cursor(account) == new["id"]
    # Later polls take everything past the cursor, whatever its stated time.
    later = _mention(x_sandbox_clean, "Backdated but new", created_at="2026-01-06T10:00:00Z")
    assert account_poll(account_id=account.pk).startswith("ok: 1 new")
    assert Message.objects.filter(external_id=later["id"]).exists()


def test_closed_ticket_does_not_swallow_a_new_post(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    root = _mention(x_sandbox_clean, "Broken charger")
    account_poll(account_id=account.pk)
    Ticket.objects.update(status=Status.CLOSED)
    _mention(x_sandbox_clean, "It broke again!", in_reply_to=str(root["id"]))
    account_poll(account_id=account.pk)
    assert Ticket.objects.count() == 2


def test_beat_queues_due_enabled_accounts_once(
    make_account: Callable[..., SocialAccount], settings: object
) -> None:
    enabled = make_account()
    make_account(enabled=False)
    from unittest import mock

    with mock.patch("channels_social.tasks.poll_account.apply_async") as enqueue:
        assert poll_due_accounts() == 1
        # Queued and not yet started: the next tick does not queue it a second time.
        assert poll_due_accounts() == 0
    enqueue.assert_called_once()
    assert enqueue.call_args.args[0] == (enabled.pk,)


def test_ingest_keeps_org_separation_for_the_same_post(
    make_account: Callable[..., SocialAccount], other_org: object
) -> None:
    from channels_social.base import Author, InboundPost
    from tests.factories import SocialAccountFactory

    ours = make_account(external_id="1000")
    theirs = SocialAccountFactory(brand__organization=other_org, external_id="1000")
    post = InboundPost(
        external_id="999",
        text="hi @both",
        created_at=datetime.now(UTC),
        author=Author(external_id="7", username="u"),
        kind="post",
    )
    ingest_posts(ours, [post])
    ingest_posts(theirs, [post])
    assert Ticket.objects.for_org(ours.organization).count() == 1
    assert Ticket.objects.for_org(theirs.organization).count() == 1
