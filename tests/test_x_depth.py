"""X in depth, through tweepy against the X emulator: quotes are posts of their own, pure
retweets raise reach and open no ticket, replies the brand sends from the X app count for the
SLA, replies can be hidden, and a reply's leading @mention is X's reply metadata, not text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from channels_social.base import ChannelError, OutboundKind, SendTarget, Stream
from channels_social.models import SocialAccount
from channels_social.services import account_poll
from channels_social.x.adapter import XAdapter
from monitoring.models import Metric, SlaTimer, TimerState
from tests.conftest import Persona
from tests.sandbox_fixtures import XSandbox
from tickets.models import (
    Direction,
    EventKind,
    Message,
    MessageKind,
    OutboxState,
    Status,
    Step,
    Ticket,
)
from tickets.services import ingest_posts, outbox_send, ticket_take_step

BRAND = "1000"
DANA = "2001"
CREDENTIALS = {
    "consumer_key": "ck",
    "consumer_secret": "cs",
    "access_token": f"{BRAND}-tok",
    "access_token_secret": "ts",
}


@pytest.fixture
def account(make_account: Callable[..., SocialAccount], x_sandbox_clean: XSandbox) -> SocialAccount:
    x_sandbox_clean.register_brand(id=BRAND, username="AcmeCare")
    return make_account(external_id=BRAND, username="AcmeCare", api_base_url=x_sandbox_clean.url)


@pytest.fixture
def sandbox_adapter(x_sandbox_clean: XSandbox) -> XAdapter:
    x_sandbox_clean.register_brand(id=BRAND, username="AcmeCare")
    account = SocialAccount(
        external_id=BRAND,
        username="AcmeCare",
        api_base_url=x_sandbox_clean.url,
        credentials=dict(CREDENTIALS),
    )
    return XAdapter(account)


def _mention(sandbox: XSandbox, text: str, *, author: str = DANA, name: str = "dana") -> str:
    return str(sandbox.control.post_mention("AcmeCare", author, name, 300, text)["id"])


@pytest.mark.django_db(transaction=True)
def test_a_quote_is_a_post_of_its_own(account: SocialAccount, x_sandbox_clean: XSandbox) -> None:
    original = x_sandbox_clean.control.post_tweet("3001", "someone", "New blender day!")
    quote = x_sandbox_clean.control.post_tweet(
        DANA, "dana", "@AcmeCare mine broke in a week", quote_of=original["id"], verified=True
    )
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    message = ticket.root_message
    assert message is not None and message.external_id == quote["id"]
    assert message.kind == MessageKind.QUOTE
    assert message.author_verified is True
    assert {"type": "quoted", "id": original["id"]} in message.raw["referenced_tweets"]


@pytest.mark.django_db(transaction=True)
def test_pure_retweets_raise_reach_and_open_no_ticket(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    mention = _mention(x_sandbox_clean, "Your courier threw my parcel over the fence")
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    for user_id, name, followers in (("3001", "loud", 12_000), ("3002", "quiet", 40)):
        x_sandbox_clean.control.upsert_user(id=user_id, username=name, followers_count=followers)
        x_sandbox_clean.control.post_tweet(user_id, name, retweet_of=mention)

    batch = XAdapter(account).fetch(Stream.MENTIONS, cursor=mention)
    assert [p.reposted_external_id for p in batch.posts] == [mention, mention]
    assert account_poll(account_id=account.pk).startswith("ok: 0 new, 0 tickets")
    assert Ticket.objects.count() == 1 and Message.objects.count() == 1
    ticket.refresh_from_db()
    assert (ticket.reposts, ticket.repost_reach) == (2, 12_040)
    reposted = ticket.events.filter(kind=EventKind.REPOSTED)
    assert sorted(e.data["by"] for e in reposted) == ["loud", "quiet"]
    # Delivered again (a retry from quarantine, say): counted once.
    ingest_posts(account, batch.posts)
    ticket.refresh_from_db()
    assert (ticket.reposts, ticket.repost_reach) == (2, 12_040)
    # The original's counts came with it.
    tweet = XAdapter(account).fetch(Stream.MENTIONS, cursor=None).posts
    assert next(p for p in tweet if p.external_id == mention).metrics["retweet_count"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_retweet_counts_in_the_same_poll_as_its_original_but_not_on_a_closed_ticket(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    first = x_sandbox_clean.control.post_tweet("3005", "fan", "@AcmeCare my order is late")
    x_sandbox_clean.control.post_tweet("3006", "fan2", retweet_of=first["id"], followers=5)
    # Oldest first: the original opens its ticket, then the retweet widens it.
    assert account_poll(account_id=account.pk).startswith("ok: 1 new, 1 tickets")
    ticket = Ticket.objects.get()
    assert (ticket.reposts, ticket.repost_reach) == (1, 5)
    Ticket.objects.filter(pk=ticket.pk).update(status=Status.CLOSED)
    x_sandbox_clean.control.post_tweet("3007", "fan3", retweet_of=first["id"], followers=9)
    assert account_poll(account_id=account.pk).startswith("ok: 0 new, 0 tickets")
    ticket.refresh_from_db()
    assert (ticket.reposts, ticket.repost_reach) == (1, 5)


@pytest.mark.django_db(transaction=True)
def test_the_brands_first_native_reply_meets_the_first_response_sla(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    mention = _mention(x_sandbox_clean, "Is anyone there?")
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    timer = SlaTimer.objects.get(ticket=ticket, metric=Metric.FIRST_RESPONSE)
    assert timer.state == TimerState.RUNNING
    first = x_sandbox_clean.control.post_tweet(
        BRAND, "AcmeCare", "@dana Yes! Sorry for the wait.", in_reply_to=mention
    )
    second = x_sandbox_clean.control.post_tweet(
        BRAND, "AcmeCare", "@dana We'll DM you shortly.", in_reply_to=mention
    )
    assert account_poll(account_id=account.pk).startswith("ok: 2 new, 0 tickets")

    replies = list(ticket.messages.filter(direction=Direction.OUTBOUND).order_by("created_at"))
    assert [m.external_id for m in replies] == [first["id"], second["id"]]
    assert all(m.sent_by is None and m.is_public for m in replies)
    assert [e.message_id for e in ticket.events.filter(kind=EventKind.REPLY_SENT)] == [
        replies[0].pk,
        replies[1].pk,
    ]
    timer.refresh_from_db()
    assert timer.state == TimerState.MET
    assert timer.fulfilled_at == replies[0].created_at  # the first one counts


@pytest.mark.django_db(transaction=True)
def test_a_brand_post_outside_any_ticket_opens_nothing(
    account: SocialAccount, x_sandbox_clean: XSandbox
) -> None:
    x_sandbox_clean.control.post_tweet(BRAND, "AcmeCare", "Our summer sale starts today!")
    assert account_poll(account_id=account.pk).startswith("ok: 0 new, 0 tickets")
    assert not Ticket.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_careinbox_replies_read_back_from_the_brands_timeline_are_stored_once(
    account: SocialAccount, x_sandbox_clean: XSandbox, agent: Persona
) -> None:
    _mention(x_sandbox_clean, "Lost my order")
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    ack = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="On it!")
    # The poll runs while the reply is on its way: X already has it, we have no id yet.
    outbox_send(item_id=ack.outbox.pk)
    ack.refresh_from_db()
    assert ack.outbox.state == OutboxState.SENT
    assert account_poll(account_id=account.pk).startswith("ok: 0 new")
    assert ticket.messages.filter(direction=Direction.OUTBOUND).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_reply_read_back_before_the_outbox_recorded_it_is_not_stored_twice(
    account: SocialAccount, x_sandbox_clean: XSandbox, agent: Persona
) -> None:
    mention = _mention(x_sandbox_clean, "Lost my order")
    account_poll(account_id=account.pk)
    ticket = Ticket.objects.get()
    ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="On it, Dana!")
    # The send landed on X but the outbox has not recorded it (still "sending" here).
    x_sandbox_clean.control.post_tweet(BRAND, "AcmeCare", "@dana On it, Dana!", in_reply_to=mention)
    assert account_poll(account_id=account.pk).startswith("ok: 0 new")
    assert ticket.messages.filter(direction=Direction.OUTBOUND).count() == 1


def test_hide_a_reply(sandbox_adapter: XAdapter, x_sandbox_clean: XSandbox) -> None:
    store = x_sandbox_clean.app.store
    announcement = store.add_tweet(author_id=BRAND, text="We are open on Sunday")
    store.upsert_user(id="3009", username="troll")
    rude = store.add_tweet(author_id="3009", text="boo", in_reply_to_tweet_id=announcement.id)
    assert XAdapter.text_problem(OutboundKind.HIDE, "") is None
    sent = sandbox_adapter.send(OutboundKind.HIDE, SendTarget(in_reply_to_external_id=rude.id), "")
    assert sent.external_id == rude.id and sent.raw == {"hidden": True}
    assert store.get_tweet(rude.id).hidden  # type: ignore[union-attr]
    put = x_sandbox_clean.control.requests_log()[-1]
    assert (put["method"], put["path"], put["json"]) == (
        "PUT",
        f"/2/tweets/{rude.id}/hidden",
        {"hidden": True},
    )
    # A post that is not a reply in the brand's own conversation cannot be hidden.
    mention = store.add_tweet(author_id="3009", text="@AcmeCare hello")
    with pytest.raises(ChannelError) as refused:
        sandbox_adapter.send(OutboundKind.HIDE, SendTarget(in_reply_to_external_id=mention.id), "")
    assert refused.value.permanent
    assert "only hide or unhide replies to conversations you started" in str(refused.value)


# The leading @mention. Real brand replies of 281 to 284 characters, 273 to 276 without the
# leading "@dana12 " (8 characters), were refused by CareInbox as too long while X accepts
# them: the mention that leads a reply is reply metadata and does not count (PLATFORMS.md).
MENTION = "@dana12 "


@pytest.mark.parametrize("body_length", [273, 274, 275, 276])
def test_leading_mention_is_not_counted(body_length: int) -> None:
    body = "a" * body_length
    assert len(MENTION + body) in range(281, 285)
    assert XAdapter.text_problem(OutboundKind.PUBLIC_REPLY, body) is None
    assert XAdapter.text_problem(OutboundKind.PUBLIC_REPLY, MENTION + body) is None


def test_a_body_over_280_is_still_too_long_with_or_without_the_mention() -> None:
    body = "a" * 281
    assert XAdapter.text_problem(OutboundKind.PUBLIC_REPLY, body) == (
        "This reply is 281 characters by X's count; the limit is 280."
    )
    assert XAdapter.text_problem(OutboundKind.PUBLIC_REPLY, MENTION + body) == (
        "This reply is 281 characters by X's count (the @handle in front is not counted); "
        "the limit is 280."
    )
    assert XAdapter.text_problem(OutboundKind.PUBLIC_REPLY, MENTION) is not None
    # A post that is not a reply counts every character (the DM limit is its own).
    assert XAdapter.text_problem(OutboundKind.PRIVATE_MESSAGE, MENTION + "a" * 9_992) is None


@pytest.mark.parametrize("body_length", [273, 276])
def test_the_composer_adds_the_mention_and_x_accepts_the_reply(
    sandbox_adapter: XAdapter, x_sandbox_clean: XSandbox, body_length: int
) -> None:
    store = x_sandbox_clean.app.store
    store.upsert_user(id=DANA, username="dana12")
    mention = store.add_tweet(author_id=DANA, text="@AcmeCare my order is late")
    body = "b" * body_length
    sent = sandbox_adapter.send(
        OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=mention.id), body
    )
    posted = store.get_tweet(sent.external_id)
    assert posted is not None and posted.text == MENTION + body  # 281 to 284 characters
    assert posted.in_reply_to_tweet_id == mention.id
    request = x_sandbox_clean.control.requests_log()[-1]["json"]
    assert request == {
        "text": body,
        "reply": {"in_reply_to_tweet_id": mention.id, "auto_populate_reply_metadata": True},
    }


def test_a_mention_typed_by_the_agent_is_not_doubled(
    sandbox_adapter: XAdapter, x_sandbox_clean: XSandbox
) -> None:
    store = x_sandbox_clean.app.store
    store.upsert_user(id=DANA, username="dana12")
    mention = store.add_tweet(author_id=DANA, text="@AcmeCare hi")
    text = MENTION + "c" * 276  # 284 characters as typed
    sent = sandbox_adapter.send(
        OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=mention.id), text
    )
    assert store.get_tweet(sent.external_id).text == text  # type: ignore[union-attr]


def test_the_emulator_counts_like_x(x_sandbox_clean: XSandbox) -> None:
    """A reply's leading mentions are free; a post that is not a reply counts them."""
    import requests

    x_sandbox_clean.register_brand(id=BRAND, username="AcmeCare")
    store = x_sandbox_clean.app.store
    store.upsert_user(id=DANA, username="dana12")
    mention = store.add_tweet(author_id=DANA, text="@AcmeCare hi")
    headers = {"Authorization": f'OAuth oauth_consumer_key="ck", oauth_token="{BRAND}-tok"'}
    url = f"{x_sandbox_clean.url}/2/tweets"
    reply = {"in_reply_to_tweet_id": mention.id}
    ok = requests.post(
        url, json={"text": MENTION + "d" * 280, "reply": reply}, headers=headers, timeout=5
    )
    assert ok.status_code == 201
    too_long = requests.post(
        url, json={"text": MENTION + "e" * 281, "reply": reply}, headers=headers, timeout=5
    )
    assert too_long.status_code == 400
    not_a_reply = requests.post(url, json={"text": MENTION + "f" * 276}, headers=headers, timeout=5)
    assert not_a_reply.status_code == 400
    assert "284 characters" in not_a_reply.json()["errors"][0]["message"]


def test_verified_authors_and_public_metrics_reach_the_post(
    sandbox_adapter: XAdapter, x_sandbox_clean: XSandbox
) -> None:
    store = x_sandbox_clean.app.store
    store.upsert_user(id=DANA, username="dana", followers_count=90, verified=True)
    tweet = store.add_tweet(author_id=DANA, text="@AcmeCare where is it")
    tweet.like_count = 7
    store.upsert_user(id="3001", username="echo")
    store.add_tweet(author_id="3001", text="@dana same", in_reply_to_tweet_id=tweet.id)
    posts = {p.external_id: p for p in sandbox_adapter.fetch(Stream.MENTIONS, cursor=None).posts}
    post = posts[tweet.id]
    assert post.author.verified is True and post.author.followers_count == 90
    assert post.metrics == {"retweet_count": 0, "reply_count": 1, "like_count": 7, "quote_count": 0}


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (
            401,
            "X no longer accepts this handle's keys (they were revoked, regenerated or are "
            "wrong): enter new ones in Settings → Brands and channels.",
        ),
        (403, "X refused this for this handle."),
        (404, "X could not find that post or user."),
        (502, "X had a problem on its side."),
        (418, "X refused the request."),
    ],
)
def test_an_x_refusal_without_words_is_put_in_words(status: int, words: str) -> None:
    import requests
    import tweepy

    from channels_social.x.adapter import _detail

    response = requests.Response()
    response.status_code = status
    response._content = b""
    response.reason = "Whatever"
    error = tweepy.TwitterServerError(response) if status >= 500 else tweepy.HTTPException(response)
    assert _detail(error) == words
    assert str(status) not in _detail(error)
