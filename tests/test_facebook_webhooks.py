"""POST /webhooks/facebook/: Meta's handshake, signatures over the raw body, size and shape
checks, each post stored once whether it came by webhook, by poll or both; the emulator's
real signed deliveries (and dropped ones, caught by the next poll) against a live server; and
customers' edits and removals (``verb: edited`` / ``remove``) applied once."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from channels_social.base import OutboundKind, SendTarget
from channels_social.facebook.adapter import FacebookAdapter
from channels_social.models import Platform, SocialAccount
from channels_social.sandbox.facebook.control import verify_webhook
from channels_social.sandbox.facebook.webhooks import feed_change, messaging_event, serialise
from channels_social.services import account_poll
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox
from tickets.models import EventKind, Message, Ticket

SECRET = "test-app-secret"
VERIFY = "test-verify-token"
URL = "/webhooks/facebook/"
DANA = "2001"


@pytest.fixture(autouse=True)
def facebook_settings(settings: Any) -> None:
    settings.FACEBOOK_APP_SECRET = SECRET
    settings.FACEBOOK_VERIFY_TOKEN = VERIFY


@pytest.fixture
def sandbox(facebook_sandbox_clean: FacebookSandbox) -> FacebookSandbox:
    facebook_sandbox_clean.register_page(name="Acme")
    return facebook_sandbox_clean


@pytest.fixture
def page(make_account: Callable[..., SocialAccount], sandbox: FacebookSandbox) -> SocialAccount:
    return make_account(
        platform=Platform.FACEBOOK,
        external_id=FB_PAGE_ID,
        username="Acme",
        api_base_url=sandbox.url,
        credentials={"page_access_token": FB_PAGE_TOKEN},
        # Graph's times are whole seconds: connected a little before the test's posts.
        connected_at=timezone.now() - timedelta(minutes=1),
    )


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def comment_delivery(comment_id: str = "11_22", message: str = "My parcel is late") -> bytes:
    value = {
        "from": {"id": DANA, "name": "Dana Lee"},
        "post_id": f"{FB_PAGE_ID}_11",
        "comment_id": comment_id,
        "parent_id": f"{FB_PAGE_ID}_11",
        "message": message,
        "created_time": int(time.time()),
        "item": "comment",
        "verb": "add",
    }
    return serialise(feed_change(FB_PAGE_ID, value, int(time.time())))


def deliver(body: bytes, sig: str | None = None, **headers: str) -> Any:
    if sig is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = sig
    return Client().post(URL, data=body, content_type="application/json", **headers)


# The handshake


def test_the_handshake_echoes_the_challenge_for_the_right_token(db: None) -> None:
    answer = Client().get(
        URL, {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "8675309"}
    )
    assert (answer.status_code, answer.content) == (200, b"8675309")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
        {"hub.challenge": "1"},
    ],
)
def test_the_handshake_refuses_anything_else(db: None, params: dict[str, str]) -> None:
    answer = Client().get(URL, params)
    assert answer.status_code == 403 and b"1" not in answer.content


def test_the_handshake_is_refused_when_no_verify_token_is_set(db: None, settings: Any) -> None:
    settings.FACEBOOK_VERIFY_TOKEN = ""
    answer = Client().get(
        URL, {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    )
    assert answer.status_code == 403


# Deliveries


@pytest.mark.django_db
def test_a_signed_delivery_stores_the_comment_and_opens_a_ticket(page: SocialAccount) -> None:
    body = comment_delivery()
    answer = deliver(body, signature(body))
    assert answer.status_code == 200
    ticket = Ticket.objects.get()
    assert (ticket.customer_username, ticket.platform) == ("Dana Lee", "facebook")
    message = ticket.messages.get()
    assert (message.external_id, message.kind, message.text) == (
        "11_22",
        "comment",
        "My parcel is late",
    )
    assert message.conversation_id == f"{FB_PAGE_ID}_11"
    assert ticket.events.filter(kind=EventKind.OPENED).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sig",
    [
        None,
        "",
        "sha256=" + "0" * 64,
        signature(b"another body"),
        signature(comment_delivery(), secret="not-the-secret"),
        "sha1=abc",
    ],
)
def test_a_wrong_or_missing_signature_is_403_and_stores_nothing(
    page: SocialAccount, sig: str | None
) -> None:
    answer = deliver(comment_delivery(), sig)
    assert answer.status_code == 403
    assert not Message.objects.exists() and not Ticket.objects.exists()


@pytest.mark.django_db
def test_the_signature_is_over_the_raw_body_not_reparsed_json(page: SocialAccount) -> None:
    body = comment_delivery()
    reserialised = json.dumps(json.loads(body)).encode()  # same JSON, other bytes
    assert reserialised != body
    assert deliver(reserialised, signature(body)).status_code == 403
    assert deliver(body, signature(body)).status_code == 200


@pytest.mark.django_db
def test_a_repeated_delivery_changes_nothing(page: SocialAccount) -> None:
    body = comment_delivery()
    assert deliver(body, signature(body)).status_code == 200
    before = (Ticket.objects.count(), Message.objects.count(), Ticket.objects.get().events.count())
    assert deliver(body, signature(body)).status_code == 200
    after = (Ticket.objects.count(), Message.objects.count(), Ticket.objects.get().events.count())
    assert before == after == (1, 1, before[2])


@pytest.mark.django_db
def test_an_unconfigured_app_secret_refuses_with_a_log_line(
    page: SocialAccount, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.FACEBOOK_APP_SECRET = ""
    body = comment_delivery()
    with caplog.at_level(logging.WARNING):
        assert deliver(body, signature(body, secret="")).status_code == 403
    assert "FACEBOOK_APP_SECRET is not set" in caplog.text
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_an_oversized_body_is_413(page: SocialAccount, settings: Any) -> None:
    settings.FACEBOOK_WEBHOOK_MAX_BYTES = 2_000
    body = comment_delivery(message="x" * 3_000)
    answer = deliver(body, signature(body))
    assert answer.status_code == 413 and b"2,000 bytes" in answer.content
    assert not Message.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", b"not JSON"),
        (b'["a list"]', b"no entry list"),
        (b'{"object": "page"}', b"no entry list"),
        (b'{"object": "page", "entry": [{"changes": []}]}', b"page id"),
        (
            b'{"object": "page", "entry": [{"id": "1000000001", "changes": [{"field": "feed", '
            b'"value": {"item": "comment", "verb": "add", "from": {"id": "5"}}}]}]}',
            b"could not be read",
        ),
    ],
)
def test_a_malformed_body_is_a_clear_400(page: SocialAccount, body: bytes, words: bytes) -> None:
    answer = deliver(body, signature(body))
    assert answer.status_code == 400 and words in answer.content
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_other_events_are_acknowledged_and_ignored(page: SocialAccount) -> None:
    body = serialise(
        feed_change(
            FB_PAGE_ID,
            {"item": "comment", "verb": "edited", "comment_id": "1_2", "post_id": "1_1"},
            1,
        )
    )
    assert deliver(body, signature(body)).status_code == 200
    other = serialise({"object": "instagram", "entry": []})
    assert deliver(other, signature(other)).status_code == 200
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_messenger_delivery_is_a_private_message_named_through_graph(
    page: SocialAccount, sandbox: FacebookSandbox
) -> None:
    sent = sandbox.control.message(FB_PAGE_ID, person_id=DANA, name="Dana Lee", text="Hi!")
    body = serialise(messaging_event(FB_PAGE_ID, DANA, sent["id"], "Hi!", int(time.time() * 1000)))
    assert deliver(body, signature(body)).status_code == 200
    message = Message.objects.get()
    assert (message.kind, message.is_public, message.author_username) == (
        "messenger",
        False,
        "Dana Lee",
    )
    assert message.ticket.conversation_id == f"messenger:{DANA}"


@pytest.mark.django_db
def test_a_post_delivered_and_polled_is_stored_once(
    page: SocialAccount, sandbox: FacebookSandbox
) -> None:
    post = sandbox.control.page_post(FB_PAGE_ID, "Winter sale")
    comment = sandbox.control.comment(post["id"], person_id=DANA, name="Dana Lee", message="Late")
    value = {
        "from": {"id": DANA, "name": "Dana Lee"},
        "post_id": post["id"],
        "comment_id": comment["id"],
        "parent_id": post["id"],
        "message": "Late",
        "created_time": int(time.time()),
        "item": "comment",
        "verb": "add",
    }
    body = serialise(feed_change(FB_PAGE_ID, value, int(time.time())))
    assert deliver(body, signature(body)).status_code == 200
    assert account_poll(account_id=page.pk).startswith("ok: 0 new, 0 tickets, 1 already stored")
    assert Message.objects.filter(external_id=comment["id"]).count() == 1


# The emulator's own signed deliveries, to a live server


@pytest.fixture
def hooked(live_server: Any, sandbox: FacebookSandbox, page: SocialAccount) -> FacebookSandbox:
    sandbox.control.configure_webhooks(f"{live_server.url}{URL}", SECRET)
    return sandbox


def _wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("timed out")
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.mark.django_db(transaction=True)
def test_the_emulator_verifies_and_delivers_signed_webhooks(
    hooked: FacebookSandbox, live_server: Any, page: SocialAccount
) -> None:
    assert verify_webhook(f"{live_server.url}{URL}", VERIFY).ok
    assert not verify_webhook(f"{live_server.url}{URL}", "nope").ok
    post = hooked.control.page_post(FB_PAGE_ID, "Winter sale")
    comment = hooked.control.comment(post["id"], person_id=DANA, name="Dana Lee", message="Late!")
    assert hooked.control.wait_for_webhooks()
    # Within the request: by the time the emulator has its answer, the ticket is there.
    assert [d["outcome"] for d in hooked.control.webhook_deliveries()] == ["delivered"]
    message = Message.objects.get(external_id=comment["id"])
    assert message.ticket.customer_username == "Dana Lee"
    visitor = hooked.control.visitor_post(FB_PAGE_ID, person_id="2002", name="Bob", message="?")
    hooked.control.message(FB_PAGE_ID, person_id="2003", name="Cy", text="On Messenger")
    assert hooked.control.wait_for_webhooks()
    assert Message.objects.filter(external_id=visitor["id"], kind="visitor_post").exists()
    assert Message.objects.filter(kind="messenger", author_username="Cy").exists()
    assert Ticket.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_dropped_webhook_is_caught_by_the_next_poll(
    hooked: FacebookSandbox, page: SocialAccount
) -> None:
    post = hooked.control.page_post(FB_PAGE_ID, "Winter sale")
    hooked.control.drop_webhooks(1)
    lost = hooked.control.comment(post["id"], person_id=DANA, name="Dana Lee", message="Lost?")
    arrived = hooked.control.comment(post["id"], person_id="2002", name="Bob", message="Here")
    assert hooked.control.wait_for_webhooks()
    assert [d["outcome"] for d in hooked.control.webhook_deliveries()] == ["dropped", "delivered"]
    assert not Message.objects.filter(external_id=lost["id"]).exists()
    assert account_poll(account_id=page.pk).startswith("ok: 1 new, 1 tickets, 1 already stored")
    assert Message.objects.filter(external_id__in=[lost["id"], arrived["id"]]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_comments_arrive_through_webhooks_alone(hooked: FacebookSandbox) -> None:
    """Each customer's comment is stored from its webhook, with no poll of the page (how fast
    is measured by bench/arrival_latency.py, not asserted here)."""
    post = hooked.control.page_post(FB_PAGE_ID, "Winter sale")
    for n in range(10):
        comment = hooked.control.comment(post["id"], person_id=f"30{n}", name=f"P{n}", message="?")
        _wait_for(lambda c=comment: Message.objects.filter(external_id=c["id"]).exists())
    assert Message.objects.filter(text="?").count() == 10


# Edits and removals: Meta's verb edited / remove


def _events(message: Message) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, e.data) for e in message.ticket.events.order_by("pk") if e.message_id]


@pytest.mark.django_db(transaction=True)
def test_an_edited_comment_updates_the_message_and_keeps_the_old_text(
    hooked: FacebookSandbox, page: SocialAccount
) -> None:
    control = hooked.control
    post = control.page_post(FB_PAGE_ID, "Winter sale")
    comment = control.comment(post["id"], person_id=DANA, name="Dana Lee", message="Where is it")
    assert control.wait_for_webhooks()

    control.edit(comment["id"], "Where is my parcel? Order 4411")
    assert control.wait_for_webhooks()

    message = Message.objects.get(external_id=comment["id"])
    assert message.text == "Where is my parcel? Order 4411"
    kinds = _events(message)
    assert kinds[-1] == (
        "message_edited",
        {"old_text": "Where is it", "new_text": "Where is my parcel? Order 4411"},
    )
    deliveries = control.webhook_deliveries()
    assert [d["payload"]["entry"][0]["changes"][0]["value"]["verb"] for d in deliveries] == [
        "add",
        "edited",
    ]
    assert all(d["outcome"] == "delivered" for d in deliveries)


@pytest.mark.django_db(transaction=True)
def test_a_removed_visitor_post_is_marked_removed_once(
    hooked: FacebookSandbox, page: SocialAccount
) -> None:
    control = hooked.control
    visitor = control.visitor_post(FB_PAGE_ID, person_id=DANA, name="Dana Lee", message="Refund!")
    assert control.wait_for_webhooks()

    control.remove(visitor["id"])
    assert control.wait_for_webhooks()

    message = Message.objects.get(external_id=visitor["id"])
    assert message.raw["removed_at"]
    assert message.text == "Refund!"  # kept for the team
    assert _events(message)[-1] == ("message_removed", {"text": "Refund!"})
    removal = control.webhook_deliveries()[-1]["payload"]
    # Meta's removal carries no message; a repeat of it changes nothing.
    assert "message" not in removal["entry"][0]["changes"][0]["value"]
    body = serialise(removal)
    assert deliver(body, signature(body)).status_code == 200
    message.refresh_from_db()
    assert [kind for kind, _ in _events(message)].count("message_removed") == 1


@pytest.mark.django_db(transaction=True)
def test_edits_repeated_unknown_or_by_the_page_change_nothing(page: SocialAccount) -> None:
    now = int(time.time())

    def change(verb: str, comment_id: str, message: str, author: str = DANA) -> bytes:
        value = {
            "from": {"id": author, "name": "Someone"},
            "post_id": f"{FB_PAGE_ID}_11",
            "comment_id": comment_id,
            "parent_id": f"{FB_PAGE_ID}_11",
            "message": message,
            "created_time": now,
            "item": "comment",
            "verb": verb,
        }
        return serialise(feed_change(FB_PAGE_ID, value, now))

    for body in (change("add", "11_22", "Late"), change("edited", "11_22", "Very late")):
        assert deliver(body, signature(body)).status_code == 200
    again = change("edited", "11_22", "Very late")
    assert deliver(again, signature(again)).status_code == 200
    unknown = change("edited", "11_99", "Never stored")
    assert deliver(unknown, signature(unknown)).status_code == 200
    ours = change("edited", "11_22", "Sneaky", author=FB_PAGE_ID)
    assert deliver(ours, signature(ours)).status_code == 200
    unsigned = change("remove", "11_22", "")
    assert deliver(unsigned, signature(unsigned, "wrong")).status_code == 403

    message = Message.objects.get(external_id="11_22")
    assert message.text == "Very late" and "removed_at" not in message.raw
    assert [kind for kind, _ in _events(message)].count("message_edited") == 1
    assert not Message.objects.filter(external_id="11_99").exists()


@pytest.mark.django_db(transaction=True)
def test_a_messenger_answer_under_a_psid_joins_the_comments_ticket_by_webhook(
    hooked: FacebookSandbox, page: SocialAccount
) -> None:
    """After a private reply, the customer answers on Messenger under their Page-scoped id,
    which is not their commenter id: the webhook's message still joins the comment's ticket."""
    control = hooked.control
    post = control.page_post(FB_PAGE_ID, "Winter sale")
    comment = control.comment(post["id"], person_id=DANA, name="Dana Lee", message="Late again")
    assert control.wait_for_webhooks()
    ticket = Ticket.objects.get()
    sent = FacebookAdapter(page).send(
        OutboundKind.PRIVATE_REPLY,
        SendTarget(in_reply_to_external_id=comment["id"]),
        "Could you send your order number?",
    )
    psid = sent.raw["recipient_id"]
    assert psid != DANA

    control.message(FB_PAGE_ID, person_id=psid, name="Dana Lee", text="It is 4411")
    assert control.wait_for_webhooks()

    delivered = control.webhook_deliveries()[-1]["payload"]["entry"][0]["messaging"][0]
    assert delivered["sender"] == {"id": psid}  # Meta names her by her PSID
    answer = Message.objects.get(text="It is 4411")
    assert answer.ticket_id == ticket.pk and Ticket.objects.count() == 1
    assert answer.conversation_id == f"messenger:{psid}"
    # And a Messenger reply to her ticket's customer id reaches her PSID.
    reply = FacebookAdapter(page).send(
        OutboundKind.PRIVATE_MESSAGE,
        SendTarget(recipient_external_id=ticket.customer_external_id),
        "Thanks, refunded.",
    )
    assert reply.raw["recipient_id"] == psid


# Hostile deliveries (issue 12): the signature is checked before anything is read, and whatever
# a signed body holds, the answer is a clear 4xx or a 200, never a 5xx, and a refusal stores
# nothing.


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe\x00garbage", b"[" * 50_000, b""],
    ids=["not JSON", "not UTF-8", "nested 50,000 deep", "empty"],
)
def test_an_unsigned_body_is_403_before_it_is_read(page: SocialAccount, body: bytes) -> None:
    assert deliver(body).status_code == 403
    assert not Message.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\x00garbage", b"[" * 50_000, b'{"object": "page", "entry": [' * 2_000],
    ids=["not UTF-8", "nested 50,000 deep", "unclosed"],
)
def test_a_signed_body_that_is_not_json_is_a_clear_400(page: SocialAccount, body: bytes) -> None:
    answer = deliver(body, signature(body))
    assert answer.status_code == 400 and b"not JSON" in answer.content
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_a_bad_content_length_is_a_clear_400(page: SocialAccount) -> None:
    body = comment_delivery()
    answer = deliver(body, signature(body), CONTENT_LENGTH="lots")
    assert answer.status_code == 400 and not Message.objects.exists()


ENTRY_KEYS = [
    "id",
    "changes",
    "field",
    "value",
    "from",
    "item",
    "verb",
    "message",
    "comment_id",
    "post_id",
    "parent_id",
    "created_time",
    "messaging",
    "sender",
    "recipient",
    "timestamp",
    "text",
    "mid",
    "name",
]


def _json_values() -> Any:
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(ENTRY_KEYS),
                inner,
                max_size=6,
            )
        ),
        max_leaves=20,
    )


@pytest.mark.django_db
def test_any_signed_delivery_shape_is_answered_without_a_server_error(page: SocialAccount) -> None:
    """Generated entries (the right keys holding anything) under a real page id: a clear 400
    (stores nothing) or a 200, never a 5xx."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        entries=st.lists(
            st.fixed_dictionaries({"id": st.just(FB_PAGE_ID)}, optional={"changes": _json_values()})
            | _json_values(),
            max_size=3,
        )
    )
    def deliveries(entries: list[Any]) -> None:
        before = Message.objects.count()
        body = json.dumps({"object": "page", "entry": entries}).encode()
        answer = deliver(body, signature(body))
        assert answer.status_code in (200, 400), (answer.status_code, body[:300])
        if answer.status_code == 400:
            assert Message.objects.count() == before

    deliveries()
