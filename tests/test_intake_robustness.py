"""One bad post never stalls a handle: odd characters are cleaned, what still cannot be stored
is set aside, every poll failure is recorded, and health says when a handle has stalled.

Through the real poll path: tweepy against the X sandbox, the real database (PostgreSQL in CI,
where NUL and lone surrogates are refused by psycopg2; SQLite in the embedded run)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from channels_social import intake
from channels_social.base import Stream
from channels_social.intake import quarantine_retry
from channels_social.models import PollCursor, QuarantinedPost, SocialAccount
from channels_social.services import account_poll, cursor_position
from channels_social.text import clean_payload, clean_text, lossless_json
from tests.conftest import Persona
from tests.sandbox_fixtures import XSandbox
from tickets.models import Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def account(make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox) -> SocialAccount:
    account = make_account(
        external_id="1000", username="AcmeCare", api_base_url=x_sandbox_clean.url
    )
    x_sandbox_clean.register_brand(id="1000", username="AcmeCare")
    return account


def _mention(sandbox: XSandbox, text: str, author: str = "2001", **kwargs: object) -> str:
    post = sandbox.control.post_mention(
        "AcmeCare", author, f"user{author}", int(kwargs.pop("followers", 10)), text, **kwargs
    )  # type: ignore[arg-type]
    return str(post["id"])


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("truncated \ud800", "truncated \ufffd"),
        ("\udc00 low first", "\ufffd low first"),
        ("a\x00b\x00", "ab"),
        ("paired \ud83d\ude00 emoji", "paired \U0001f600 emoji"),
        ("plain ascii", "plain ascii"),
        ("عربي ‮ RLO kept", "عربي ‮ RLO kept"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean
    clean_text(raw).encode("utf-8")  # always encodable


def test_lossless_json_keeps_what_the_database_would_refuse() -> None:
    raw = {"text": "x\ud800\x00y", "n": 1}
    text = lossless_json(raw)
    assert text.isascii() and "\\ud800" in text and "\\u0000" in text
    assert json.loads(text) == raw
    assert clean_payload(raw) == {"text": "x\ufffdy", "n": 1}


def test_a_lone_surrogate_never_stalls_the_handle(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    """X has sent truncated text ending in half a surrogate pair; names can hold one too."""
    odd = _mention(
        x_sandbox_clean, "My order never came \ud800", author_name="Dana \udc00", author="2001"
    )
    assert account_poll(account_id=account.pk).startswith("ok: 1 new")
    message = Message.objects.get(external_id=odd)
    assert message.text.endswith("never came \ufffd")
    assert message.author_display_name == "Dana \ufffd"
    assert message.raw["text"].endswith("\ufffd")
    after = _mention(x_sandbox_clean, "And another question", author="2002")
    assert account_poll(account_id=account.pk).startswith("ok: 1 new")
    assert Message.objects.filter(external_id=after).exists()
    assert cursor_position(account, Stream.MENTIONS) == after
    account.refresh_from_db()
    assert account.last_poll_error == ""


def test_a_nul_byte_never_stalls_the_handle(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    odd = _mention(x_sandbox_clean, "Refund\x00 please", author_name="Sam\x00")
    after = _mention(x_sandbox_clean, "Hello?", author="2002")
    assert account_poll(account_id=account.pk).startswith("ok: 2 new")
    message = Message.objects.get(external_id=odd)
    assert message.text == "@AcmeCare Refund please" and message.author_display_name == "Sam"
    assert "\x00" not in json.dumps(message.raw)
    assert cursor_position(account, Stream.MENTIONS) == after


postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite stores integers of any size"
)
TOO_MANY_FOLLOWERS = 3_000_000_000  # past PostgreSQL's integer: the database refuses the row


@postgres_only
def test_a_post_that_cannot_be_stored_is_set_aside_and_the_rest_move_on(
    account: SocialAccount, x_sandbox_clean: XSandbox, org_admin: Persona
) -> None:
    """A follower count the database refuses fails that post alone."""
    first = _mention(x_sandbox_clean, "First one", author="2001")
    bad = _mention(x_sandbox_clean, "Odd one", author="2002", followers=TOO_MANY_FOLLOWERS)
    last = _mention(x_sandbox_clean, "Last one", author="2003")
    result = account_poll(account_id=account.pk)
    assert result.startswith("ok: 2 new, 2 tickets") and "1 set aside" in result
    assert set(Message.objects.values_list("external_id", flat=True)) == {first, last}
    assert cursor_position(account, Stream.MENTIONS) == last  # the cursor moved past it
    held = QuarantinedPost.objects.get()
    assert held.external_id == bad and held.stream == Stream.MENTIONS
    assert held.organization_id == account.organization_id
    assert "out of range" in held.error and held.resolved_at is None
    assert json.loads(held.payload)["id"] == bad
    # Health says so, and admins see it listed.
    org_admin.user.is_staff = True
    org_admin.user.save(update_fields=["is_staff"])
    health = org_admin.client().get(reverse("monitoring:health")).json()
    assert health["status"] == "failing" and health["posts_set_aside"] == 1
    listing = org_admin.client().get(reverse("admin:channels_social_quarantinedpost_changelist"))
    assert listing.status_code == 200 and bad in listing.content.decode()
    # Retried as it is: still failing, nothing stored, counted.
    assert quarantine_retry(item_id=held.pk).startswith("Still failing")
    held.refresh_from_db()
    assert held.attempts == 2 and held.resolved_at is None
    # Once the cause is fixed (here: the stored post corrected), a retry stores it.
    post = json.loads(held.post)
    post["author"]["followers_count"] = 0
    QuarantinedPost.objects.filter(pk=held.pk).update(post=json.dumps(post))
    assert quarantine_retry(item_id=held.pk) == "Stored."
    held.refresh_from_db()
    assert held.resolved_at is not None
    assert Message.objects.filter(external_id=bad).exists()
    assert org_admin.client().get(reverse("monitoring:health")).json()["status"] == "ok"


@postgres_only
def test_the_same_post_failing_again_is_held_once(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    _mention(x_sandbox_clean, "Odd one", author="2002", followers=TOO_MANY_FOLLOWERS)
    account_poll(account_id=account.pk)
    PollCursor.objects.all().delete()
    SocialAccount.objects.filter(pk=account.pk).update(
        connected_at=timezone.now() - timedelta(days=1), last_polled_at=None
    )
    account_poll(account_id=account.pk)  # the same page read again, as if newly connected
    held = QuarantinedPost.objects.get()
    assert held.attempts == 2


def test_an_unexpected_failure_is_recorded_with_its_time_and_the_cursor_kept(
    account: SocialAccount, x_sandbox_clean: XSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only platform errors: a bug or a database fault is recorded on the handle too."""
    _mention(x_sandbox_clean, "Hello")

    def broken_sink(*args: object) -> intake.StoreResult:
        raise ValueError("something nobody expected")

    monkeypatch.setattr(intake, "_sink", broken_sink)
    result = account_poll(account_id=account.pk)
    assert result.startswith("error: ValueError")
    account.refresh_from_db()
    assert "ValueError: something nobody expected" in account.last_poll_error
    assert account.last_poll_error_at is not None and account.last_polled_at is None
    assert account.poll_lease_until is None
    assert cursor_position(account, Stream.MENTIONS) == ""
    assert not Ticket.objects.exists()


def test_a_platform_failure_is_recorded_with_its_time(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.control.inject_faults(status=500, count=1)
    assert account_poll(account_id=account.pk).startswith("error:")
    account.refresh_from_db()
    assert account.last_poll_error and account.last_poll_error_at is not None
    assert account.next_poll_at is not None  # tried again next interval


def test_health_reports_a_handle_whose_polls_stopped_succeeding(
    client: object, account: SocialAccount, settings: object
) -> None:
    settings.POLL_INTERVAL_SECONDS = 5  # type: ignore[attr-defined]
    SocialAccount.objects.filter(pk=account.pk).update(last_polled_at=timezone.now())
    assert client.get(reverse("monitoring:health")).json()["status"] == "ok"  # type: ignore[attr-defined]
    SocialAccount.objects.filter(pk=account.pk).update(
        last_polled_at=timezone.now() - timedelta(minutes=10), last_poll_error="X is down"
    )
    health = client.get(reverse("monitoring:health")).json()  # type: ignore[attr-defined]
    assert health["status"] == "failing"
    assert [c["account_id"] for c in health["channels_failing"]] == [account.pk]
    assert "X is down" not in json.dumps(health)  # no details for anonymous callers
    # A never-polled handle counts as failing once it has been connected a while.
    SocialAccount.objects.filter(pk=account.pk).update(
        last_polled_at=None, connected_at=timezone.now() - timedelta(minutes=10)
    )
    assert client.get(reverse("monitoring:health")).json()["status"] == "failing"  # type: ignore[attr-defined]


def test_a_nul_in_an_agents_reply_is_removed_not_a_500(
    agent: Persona, account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    _mention(x_sandbox_clean, "Where is my parcel?")
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    response = agent.client().post(
        reverse("tickets:step", args=[ticket.pk, "acknowledge"]),
        {"text": "So sorry\x00 we are on it"},  # a form sends NUL as %00
    )
    assert response.status_code == 302
    reply = ticket.messages.get(direction="out")
    assert reply.text == "So sorry we are on it"
