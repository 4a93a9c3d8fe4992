"""XAdapter through the real tweepy client against the X emulator (no mocks)."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import pytest

from channels_social.base import ChannelError, OutboundKind, SendTarget, Stream
from channels_social.models import SocialAccount
from channels_social.x.adapter import XAdapter
from channels_social.x.client import XTransport, build_client
from tests.sandbox_fixtures import XSandbox

BRAND_ID = "1000"
SECRETS = {
    "consumer_key": "ck-secret-value",
    "consumer_secret": "cs-secret-value",
    "access_token": f"{BRAND_ID}-at-secret-value",
    "access_token_secret": "ats-secret-value",
}


def make_account(url: str, **credentials: str) -> SocialAccount:
    return SocialAccount(
        external_id=BRAND_ID,
        username="AcmeCare",
        api_base_url=url,
        credentials=credentials or dict(SECRETS),
    )


@pytest.fixture
def sandbox(x_sandbox_clean: XSandbox) -> XSandbox:
    x_sandbox_clean.register_brand(id=BRAND_ID, username="AcmeCare")
    return x_sandbox_clean


@pytest.fixture
def adapter(sandbox: XSandbox) -> XAdapter:
    return XAdapter(make_account(sandbox.url))


def inject_mentions(sandbox: XSandbox, count: int) -> list[str]:
    store = sandbox.app.store
    ids = []
    for n in range(count):
        author = store.upsert_user(id=str(5000 + n % 7), username=f"cust{n % 7}", followers_count=n)
        ids.append(store.add_tweet(author_id=author.id, text=f"@AcmeCare help {n}").id)
    return ids


def mention_calls(sandbox: XSandbox) -> list[dict]:
    return [e for e in sandbox.control.requests_log() if e["path"].endswith("/mentions")]


def test_fetch_follows_pages_and_returns_oldest_first(sandbox: XSandbox, adapter: XAdapter) -> None:
    ids = inject_mentions(sandbox, 230)
    batch = adapter.fetch(Stream.MENTIONS, cursor=None)
    assert [post.external_id for post in batch.posts] == ids
    assert batch.next_cursor == ids[-1]
    calls = mention_calls(sandbox)
    assert len(calls) == 3
    assert "pagination_token" not in calls[0]["query"]
    assert all("pagination_token" in call["query"] for call in calls[1:])
    assert all(call["query"]["max_results"] == ["100"] for call in calls)
    assert all(call["auth"] == "oauth1" for call in calls)
    assert batch.rate_limit is not None
    assert batch.rate_limit.limit == 300
    assert batch.rate_limit.remaining == 297
    assert batch.rate_limit.reset_at is not None and batch.rate_limit.reset_at > datetime.now(UTC)


def test_fetch_stops_at_eight_pages(sandbox: XSandbox, adapter: XAdapter) -> None:
    ids = inject_mentions(sandbox, 850)
    batch = adapter.fetch(Stream.MENTIONS, cursor=None)
    assert len(batch.posts) == 800
    assert batch.posts[-1].external_id == ids[-1]
    assert len(mention_calls(sandbox)) == 8


def test_fetch_since_id(sandbox: XSandbox, adapter: XAdapter) -> None:
    ids = inject_mentions(sandbox, 5)
    batch = adapter.fetch(Stream.MENTIONS, cursor=ids[2])
    assert [post.external_id for post in batch.posts] == ids[3:]
    assert mention_calls(sandbox)[0]["query"]["since_id"] == [ids[2]]
    empty = adapter.fetch(Stream.MENTIONS, cursor=ids[-1])
    assert empty.posts == []
    assert empty.next_cursor is None


def test_fetch_maps_posts_replies_and_authors(sandbox: XSandbox, adapter: XAdapter) -> None:
    first = sandbox.control.post_mention(
        "AcmeCare", "7001", "dana_k", 2_345, "my order is late", created_at="2025-03-01T10:00:00Z"
    )
    follow_up = sandbox.control.post_mention(
        "AcmeCare", "7001", "dana_k", 2_345, "hello??", in_reply_to=first["id"]
    )
    post, reply = adapter.fetch(Stream.MENTIONS, cursor=None).posts
    assert post.external_id == first["id"]
    assert post.kind == "post"
    assert post.text == "@AcmeCare my order is late"
    assert post.created_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert post.author.external_id == "7001"
    assert post.author.username == "dana_k"
    assert post.author.followers_count == 2_345
    assert post.conversation_id == first["id"]
    assert post.in_reply_to_external_id == ""
    assert reply.external_id == follow_up["id"]
    assert reply.kind == "reply"
    assert reply.in_reply_to_external_id == first["id"]
    assert reply.conversation_id == first["id"]
    assert reply.is_public


def test_send_public_reply(sandbox: XSandbox, adapter: XAdapter) -> None:
    customer = sandbox.control.post_mention("AcmeCare", "7001", "dana_k", 10, "late again")
    sent = adapter.send(
        OutboundKind.PUBLIC_REPLY,
        SendTarget(in_reply_to_external_id=customer["id"]),
        "@dana_k Sorry Dana, we're on it.",
    )
    assert sent.conversation_id == ""
    stored = sandbox.control.get_tweet(sent.external_id)
    assert stored["in_reply_to_tweet_id"] == customer["id"]
    assert stored["author_id"] == BRAND_ID
    assert stored["text"] == "@dana_k Sorry Dana, we're on it."


def test_send_private_message(sandbox: XSandbox, adapter: XAdapter) -> None:
    sandbox.control.upsert_user(id="7001", username="dana_k")
    sent = adapter.send(
        OutboundKind.PRIVATE_MESSAGE,
        SendTarget(recipient_external_id="7001"),
        "Hi Dana, your order number?",
    )
    assert sent.conversation_id == "1000-7001"
    (event,) = sandbox.control.dm_events("7001")
    assert event["dm_event_id"] == sent.external_id
    assert event["text"] == "Hi Dana, your order number?"


def test_platform_refusals_are_permanent(sandbox: XSandbox, adapter: XAdapter) -> None:
    customer = sandbox.control.post_mention("AcmeCare", "7001", "dana_k", 10, "late again")
    adapter.send(
        OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=customer["id"]), "On it!"
    )
    with pytest.raises(ChannelError) as duplicate:
        adapter.send(
            OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=customer["id"]), "On it!"
        )
    assert duplicate.value.permanent
    assert duplicate.value.status == 403
    assert "duplicate content" in str(duplicate.value)
    with pytest.raises(ChannelError) as too_long:
        adapter.send(
            OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=customer["id"]), "a" * 281
        )
    assert too_long.value.permanent
    assert too_long.value.status == 400
    assert "281" in str(too_long.value)
    with pytest.raises(ChannelError) as gone:
        adapter.send(OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id="42"), "Hello")
    assert gone.value.permanent
    assert gone.value.status == 400


def test_rate_limit_is_transient_with_retry_after(sandbox: XSandbox, adapter: XAdapter) -> None:
    sandbox.app.configure_rate_limits({"create_tweet": 1})
    customer = sandbox.control.post_mention("AcmeCare", "7001", "dana_k", 10, "late again")
    adapter.send(
        OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=customer["id"]), "One"
    )
    with pytest.raises(ChannelError) as error:
        adapter.send(
            OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=customer["id"]), "Two"
        )
    assert error.value.permanent is False
    assert error.value.status == 429
    assert error.value.retry_after is not None
    assert 1 <= error.value.retry_after <= 15 * 60


def test_server_error_is_transient(sandbox: XSandbox, adapter: XAdapter) -> None:
    sandbox.app.inject_faults(503)
    with pytest.raises(ChannelError) as error:
        adapter.fetch(Stream.MENTIONS, cursor=None)
    assert error.value.permanent is False
    assert error.value.status == 503


def test_connection_refused_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = XAdapter(make_account(f"http://127.0.0.1:{port}"))
    with pytest.raises(ChannelError) as error:
        adapter.fetch(Stream.MENTIONS, cursor=None)
    assert error.value.permanent is False
    assert "secret" not in str(error.value)


def test_bad_credentials_are_permanent_and_never_leak(sandbox: XSandbox) -> None:
    adapter = XAdapter(make_account(sandbox.url, **{**SECRETS, "access_token": "999-at-secret"}))
    with pytest.raises(ChannelError) as error:
        adapter.fetch(Stream.MENTIONS, cursor=None)
    assert error.value.permanent
    assert error.value.status == 401
    assert "secret" not in str(error.value)


def test_bearer_only_account_reads_but_cannot_post(
    sandbox: XSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    inject_mentions(sandbox, 2)
    adapter = XAdapter(make_account(sandbox.url, bearer_token="bearer-secret-value"))
    with caplog.at_level(logging.DEBUG, logger="tweepy.client"):
        assert len(adapter.fetch(Stream.MENTIONS, cursor=None).posts) == 2
    assert mention_calls(sandbox)[0]["auth"] == "bearer"
    assert "bearer-secret-value" not in caplog.text
    with pytest.raises(ChannelError) as error:
        adapter.send(OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id="1"), "hi")
    assert error.value.permanent
    assert error.value.status == 403


def test_user_context_credentials_never_reach_the_logs(
    sandbox: XSandbox, adapter: XAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    inject_mentions(sandbox, 1)
    with caplog.at_level(logging.DEBUG):
        adapter.fetch(Stream.MENTIONS, cursor=None)
    assert caplog.records  # tweepy and urllib3 did log at DEBUG
    assert "secret-value" not in caplog.text


def test_account_without_credentials_is_a_permanent_error(sandbox: XSandbox) -> None:
    account = SocialAccount(external_id=BRAND_ID, username="AcmeCare", api_base_url=sandbox.url)
    with pytest.raises(ChannelError) as error:
        XAdapter(account).fetch(Stream.MENTIONS, cursor=None)
    assert error.value.permanent


def test_client_uses_the_configured_timeout(sandbox: XSandbox, settings) -> None:
    settings.CHANNEL_HTTP_TIMEOUT_SECONDS = 7
    client = build_client(make_account(sandbox.url))
    transport = client.session.get_adapter("https://api.twitter.com/2/tweets")
    assert isinstance(transport, XTransport)
    assert transport.timeout == 7
    assert transport.base_url == sandbox.url
    assert isinstance(client.session.get_adapter("https://api.x.com/2/tweets"), XTransport)


@pytest.mark.parametrize(
    ("public", "text", "problem"),
    [
        (True, "", "A reply cannot be empty."),
        (True, " \n\t ", "A reply cannot be empty."),
        (True, "a" * 280, None),
        (True, "a" * 281, "This reply is 281 characters by X's count; the limit is 280."),
        (True, "😀" * 140, None),
        (True, "😀" * 141, "This reply is 282 characters by X's count; the limit is 280."),
        (True, "日本" * 70, None),
        (True, "日本" * 70 + "語", "This reply is 282 characters by X's count; the limit is 280."),
        # Every URL weighs 23, however long it is.
        (True, "a" * 256 + " https://example.com/" + "p" * 200, None),
        (
            True,
            "a" * 257 + " https://example.com/x",
            "This reply is 281 characters by X's count; the limit is 280.",
        ),
        (False, "", "A reply cannot be empty."),
        (False, "a" * 300, None),
        (False, "😀" * 10_000, None),
        (False, "a" * 10_001, "This message is 10,001 characters; the limit is 10,000."),
    ],
)
def test_text_problem(public: bool, text: str, problem: str | None) -> None:
    kind = OutboundKind.PUBLIC_REPLY if public else OutboundKind.PRIVATE_MESSAGE
    assert XAdapter.text_problem(kind, text) == problem
