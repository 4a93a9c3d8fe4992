"""FacebookAdapter through the real facebook-sdk client against the Facebook emulator (no mocks):
every stream with paging and cursors, each outbound kind, the reply windows at every edge on
both sides (our refusal before sending, and the emulator's own), Graph's errors in words, and
the faults a poll must survive without losing or doubling a post."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from channels_social.base import (
    ChannelError,
    OutboundKind,
    PostFact,
    ReplyFacts,
    SendTarget,
    Stream,
)
from channels_social.facebook.adapter import (
    FacebookAdapter,
    messenger_thread,
)
from channels_social.models import MessengerIdentity, Platform, SocialAccount
from channels_social.sandbox.facebook.store import psid_for
from channels_social.services import account_poll, cursor_position
from tests.conftest import Persona
from tests.facebook_sandbox_fixtures import FB_PAGE_ID, FB_PAGE_TOKEN, FacebookSandbox
from tickets.models import (
    EventKind,
    Message,
    MessageKind,
    OutboxState,
    Status,
    Step,
    StepError,
    Ticket,
)
from tickets.services import outbox_send, ticket_take_step

DANA, BOB = "2001", "2002"
# Their Page-scoped ids on Messenger, which differ from the ids on their comments.
DANA_PSID, BOB_PSID = psid_for(DANA), psid_for(BOB)
DAY, SECOND, HOUR = timedelta(days=1), timedelta(seconds=1), timedelta(hours=1)
T0 = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)


def unsaved_account(url: str, token: str = FB_PAGE_TOKEN) -> SocialAccount:
    return SocialAccount(
        platform=Platform.FACEBOOK,
        external_id=FB_PAGE_ID,
        username="Acme",
        api_base_url=url,
        credentials={"page_access_token": token},
    )


@pytest.fixture
def sandbox(facebook_sandbox_clean: FacebookSandbox) -> FacebookSandbox:
    facebook_sandbox_clean.register_page(name="Acme")
    return facebook_sandbox_clean


@pytest.fixture
def adapter(sandbox: FacebookSandbox) -> FacebookAdapter:
    return FacebookAdapter(unsaved_account(sandbox.url))


@pytest.fixture
def brand_post(sandbox: FacebookSandbox) -> dict[str, Any]:
    return sandbox.control.page_post(FB_PAGE_ID, "Our winter sale starts today!")


@pytest.fixture
def frozen() -> Iterator[Callable[[datetime], None]]:
    """Stop the clock of Django and of the in-process emulator alike at a given instant."""
    travellers: list[Any] = []

    def stop_at(moment: datetime) -> None:
        if travellers:
            travellers.pop().stop()
        traveller = time_machine.travel(moment, tick=False)
        traveller.start()
        travellers.append(traveller)

    yield stop_at
    for traveller in travellers:
        traveller.stop()


def graph_calls(sandbox: FacebookSandbox, edge: str | None = None) -> list[dict[str, Any]]:
    return [
        entry for entry in sandbox.control.requests_log() if edge is None or entry["edge"] == edge
    ]


# Reading


def test_feed_reads_comments_replies_and_visitor_posts_with_threading(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    control = sandbox.control
    comment = control.comment(brand_post["id"], person_id=DANA, name="Dana Lee", message="Late!")
    reply = control.comment(comment["id"], person_id=BOB, name="Bob Ray", message="Mine too")
    ours = adapter.send(  # the page's own reply: handed on as the brand's, for intake
        OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=comment["id"]), "On it"
    )
    visitor = control.visitor_post(FB_PAGE_ID, person_id=BOB, name="Bob Ray", message="Refund?")
    batch = adapter.fetch(Stream.PAGE_FEED, cursor=None)
    by_id = {post.external_id: post for post in batch.posts}
    # Not the page's own post; its own reply marked as its own.
    assert set(by_id) == {comment["id"], reply["id"], visitor["id"], ours.external_id}
    assert (by_id[ours.external_id].kind, by_id[ours.external_id].author.external_id) == (
        "reply",
        FB_PAGE_ID,
    )
    first = by_id[comment["id"]]
    assert (first.kind, first.is_public, first.text) == ("comment", True, "Late!")
    assert first.conversation_id == brand_post["id"]
    assert first.in_reply_to_external_id == brand_post["id"]
    assert (first.author.external_id, first.author.username) == (DANA, "Dana Lee")
    assert first.author.display_name == "Dana Lee"
    second = by_id[reply["id"]]
    assert second.in_reply_to_external_id == comment["id"]
    assert second.conversation_id == brand_post["id"]
    wall = by_id[visitor["id"]]
    assert (wall.kind, wall.conversation_id, wall.author.username) == (
        "visitor_post",
        visitor["id"],
        "Bob Ray",
    )
    assert batch.next_cursor is not None
    assert int(batch.next_cursor) >= int(max(p.created_at for p in batch.posts).timestamp())
    assert not batch.unreadable


def test_feed_pages_through_many_comments_and_moves_on_from_the_cursor(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    ids = [
        sandbox.control.comment(
            brand_post["id"], person_id=str(3000 + n), name=f"Person {n}", message=f"q{n}"
        )["id"]
        for n in range(230)
    ]
    batch = adapter.fetch(Stream.PAGE_FEED, cursor=None)
    assert sorted(p.external_id for p in batch.posts) == sorted(ids)
    comment_calls = graph_calls(sandbox, "comments")
    assert len(comment_calls) == 3  # 100 + 100 + 30
    assert all(call["params"]["limit"] == "100" for call in comment_calls)
    assert all(call["params"]["filter"] == "stream" for call in comment_calls)
    assert "after" in comment_calls[1]["params"]
    # The next poll asks only since the cursor (less the overlap) and skips unchanged posts.
    cursor = batch.next_cursor
    assert cursor is not None
    later = datetime.fromtimestamp(int(cursor), tz=UTC) + HOUR
    with time_machine.travel(later, tick=False):
        fresh = sandbox.control.comment(brand_post["id"], person_id=DANA, name="Dana", message="?")
        again = adapter.fetch(Stream.PAGE_FEED, cursor=cursor)
    # The overlap re-reads the last minutes before the cursor (stored once by intake).
    assert {p.external_id for p in again.posts} - set(ids) == {fresh["id"]}
    assert again.next_cursor is not None and FacebookAdapter.cursor_is_newer(
        again.next_cursor, cursor
    )
    assert graph_calls(sandbox, "comments")[-1]["params"]["since"] == str(int(cursor) - 300)


def test_nothing_new_keeps_the_cursor(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    sandbox.control.comment(brand_post["id"], person_id=DANA, name="Dana", message="hi")
    cursor = adapter.fetch(Stream.PAGE_FEED, cursor=None).next_cursor
    assert cursor is not None
    again = adapter.fetch(Stream.PAGE_FEED, cursor=cursor)
    assert again.next_cursor is None  # nothing newer: keep the cursor
    assert not FacebookAdapter.cursor_is_newer(str(int(cursor) - 1), cursor)
    assert FacebookAdapter.cursor_is_newer(cursor, "")


def test_tagged_posts(sandbox: FacebookSandbox, adapter: FacebookAdapter) -> None:
    tagged = sandbox.control.visitor_post(
        FB_PAGE_ID, person_id=DANA, name="Dana Lee", message="Thanks @Acme", tagged=True
    )
    (post,) = adapter.fetch(Stream.TAGGED, cursor=None).posts
    assert (post.external_id, post.kind, post.is_public) == (tagged["id"], "post", True)
    assert post.author.username == "Dana Lee"
    assert (
        graph_calls(sandbox, "tagged")[0]["params"]["fields"]
        == "id,message,created_time,updated_time,from"
    )


def test_messenger_conversations(sandbox: FacebookSandbox, adapter: FacebookAdapter) -> None:
    control = sandbox.control
    first = control.message(FB_PAGE_ID, person_id=DANA, name="Dana Lee", text="Hello?")
    control.message(FB_PAGE_ID, person_id=BOB, name="Bob Ray", text="Order 42")
    second = control.message(FB_PAGE_ID, person_id=DANA, name="Dana Lee", text="Anyone?")
    adapter.send(
        OutboundKind.PRIVATE_MESSAGE, SendTarget(recipient_external_id=DANA_PSID), "Here, sorry!"
    )
    batch = adapter.fetch(Stream.CONVERSATIONS, cursor=None)
    dana = [p for p in batch.posts if p.author.external_id == DANA_PSID]
    assert [p.external_id for p in dana] == [first["id"], second["id"]]
    assert all(p.kind == "messenger" and not p.is_public for p in batch.posts)
    assert {p.conversation_id for p in dana} == {messenger_thread(DANA_PSID)}
    (ours,) = [p for p in batch.posts if p.author.external_id == FB_PAGE_ID]
    assert ours.addressed_account_ids == (DANA_PSID,)
    assert ours.conversation_id == messenger_thread(DANA_PSID)
    assert len(batch.posts) == 4
    assert graph_calls(sandbox, "conversations")[0]["params"]["platform"] == "messenger"


def test_every_string_is_cleaned(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    sandbox.control.comment(
        brand_post["id"], person_id=DANA, name="Da\x00na", message="bad \ud800 text\x00"
    )
    (post,) = adapter.fetch(Stream.PAGE_FEED, cursor=None).posts
    assert post.text == "bad \ufffd text" and post.author.username == "Dana"
    assert "\x00" not in str(post.raw)


# Faults: nothing lost, nothing doubled


def test_an_empty_page_in_the_middle_loses_nothing(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    ids = [
        sandbox.control.comment(brand_post["id"], person_id=str(4000 + n), name="P", message="x")[
            "id"
        ]
        for n in range(150)
    ]
    sandbox.control.inject_faults(mode="empty_page", count=1)
    assert sorted(p.external_id for p in adapter.fetch(Stream.PAGE_FEED, cursor=None).posts) == (
        sorted(ids)
    )


def test_a_repeated_page_doubles_nothing(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    ids = [
        sandbox.control.comment(brand_post["id"], person_id=str(4000 + n), name="P", message="x")[
            "id"
        ]
        for n in range(150)
    ]
    sandbox.control.inject_faults(mode="repeat_page", count=1)
    posts = adapter.fetch(Stream.PAGE_FEED, cursor=None).posts
    assert sorted(p.external_id for p in posts) == sorted(ids)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"status": 503}, "temporary problem"),
        ({"status": 500}, "temporary problem"),
        ({"mode": "malformed_json"}, "could not be read"),
    ],
)
def test_a_failed_read_is_retryable_and_in_words(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, options: dict[str, Any], words: str
) -> None:
    sandbox.control.inject_faults(**options)
    with pytest.raises(ChannelError) as caught:
        adapter.fetch(Stream.PAGE_FEED, cursor=None)
    assert not caught.value.permanent and not caught.value.maybe_delivered
    assert words in str(caught.value) and "#" not in str(caught.value)


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
def test_throttling_waits_for_the_time_to_regain_access(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, code: int
) -> None:
    sandbox.control.throttle(code, regain_minutes=7)
    with pytest.raises(ChannelError) as caught:
        adapter.fetch(Stream.CONVERSATIONS, cursor=None)
    error = caught.value
    assert (error.permanent, error.retry_after, error.status) == (False, 7 * 60, 429)
    assert "7 min" in str(error) and str(code) not in str(error)


def test_a_revoked_token_is_permanent(sandbox: FacebookSandbox) -> None:
    adapter = FacebookAdapter(unsaved_account(sandbox.url, token="EAA-revoked"))
    with pytest.raises(ChannelError) as caught:
        adapter.fetch(Stream.PAGE_FEED, cursor=None)
    assert caught.value.permanent
    assert "expired or was revoked" in str(caught.value) and "190" not in str(caught.value)
    with pytest.raises(ChannelError) as on_send:
        adapter.send(OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id="1_2"), "x")
    assert on_send.value.permanent and not on_send.value.maybe_delivered


def test_no_token_at_all_is_permanent(sandbox: FacebookSandbox) -> None:
    account = unsaved_account(sandbox.url)
    account.credentials = {}
    with pytest.raises(ChannelError, match="no page access token"):
        FacebookAdapter(account).fetch(Stream.PAGE_FEED, cursor=None)


def test_the_graph_version_comes_from_settings(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, settings: Any
) -> None:
    settings.FACEBOOK_GRAPH_VERSION = "v19.0"
    FacebookAdapter(unsaved_account(sandbox.url)).fetch(Stream.TAGGED, cursor=None)
    assert graph_calls(sandbox)[-1]["path"].startswith("/v19.0/")


# Writing


def test_each_outbound_kind(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    control = sandbox.control
    comment = control.comment(brand_post["id"], person_id=DANA, name="Dana", message="Late")
    public = adapter.send(
        OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=comment["id"]), "Sorry!"
    )
    private = adapter.send(
        OutboundKind.PRIVATE_REPLY,
        SendTarget(in_reply_to_external_id=comment["id"]),
        "Could you send your order number?",
    )
    assert private.conversation_id == messenger_thread(DANA_PSID)
    control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="It is 4411")
    messenger = adapter.send(
        OutboundKind.PRIVATE_MESSAGE, SendTarget(recipient_external_id=DANA_PSID), "Thanks, fixed"
    )
    assert messenger.external_id.startswith("m_")
    hidden = adapter.send(OutboundKind.HIDE, SendTarget(in_reply_to_external_id=comment["id"]), "")
    assert hidden.external_id == comment["id"]
    sent = control.sent(FB_PAGE_ID)
    assert [c["message"] for c in sent["comments"]] == ["Sorry!"]
    assert sent["comments"][0]["id"] == public.external_id
    messages = {m["id"]: m for m in sent["messages"]}
    assert messages[private.external_id]["private_reply_to"] == comment["id"]
    assert messages[messenger.external_id]["messaging_type"] == "RESPONSE"
    assert [a["action"] for a in sent["moderation"]] == ["hide"]
    assert control.get_object(comment["id"])["is_hidden"] is True


def test_text_limits_per_kind() -> None:
    problem = FacebookAdapter.text_problem
    assert problem(OutboundKind.PUBLIC_REPLY, "x" * 8_000) is None
    assert "8,000" in str(problem(OutboundKind.PUBLIC_REPLY, "x" * 8_001))
    assert problem(OutboundKind.PRIVATE_MESSAGE, "x" * 2_000) is None
    assert "2,000" in str(problem(OutboundKind.PRIVATE_MESSAGE, "x" * 2_001))
    assert "2,000" in str(problem(OutboundKind.PRIVATE_REPLY, "x" * 2_001))
    assert problem(OutboundKind.PUBLIC_REPLY, "  ") == "A reply cannot be empty."
    assert problem(OutboundKind.HIDE, "") is None


@pytest.mark.parametrize(("kind", "length"), [("comment", 8_001), ("messenger", 2_001)])
def test_the_emulator_refuses_the_same_lengths(
    sandbox: FacebookSandbox,
    adapter: FacebookAdapter,
    brand_post: dict[str, Any],
    kind: str,
    length: int,
) -> None:
    comment = sandbox.control.comment(brand_post["id"], person_id=DANA, name="D", message="m")
    sandbox.control.message(FB_PAGE_ID, person_id=DANA, name="D", text="hi")
    out, target = (
        (OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=comment["id"]))
        if kind == "comment"
        else (OutboundKind.PRIVATE_MESSAGE, SendTarget(recipient_external_id=DANA_PSID))
    )
    with pytest.raises(ChannelError) as caught:
        adapter.send(out, target, "x" * length)
    assert caught.value.permanent and "invalid" in str(caught.value)
    assert adapter.send(out, target, "x" * (length - 1)).external_id


def test_a_send_whose_answer_is_lost_may_have_been_delivered(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    comment = sandbox.control.comment(brand_post["id"], person_id=DANA, name="D", message="m")
    sandbox.control.inject_faults(mode="malformed_json")
    with pytest.raises(ChannelError) as caught:
        adapter.send(
            OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=comment["id"]), "Hi"
        )
    assert caught.value.maybe_delivered and not caught.value.permanent
    sandbox.control.inject_faults(status=503)
    with pytest.raises(ChannelError) as refused:
        adapter.send(
            OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=comment["id"]), "Hi"
        )
    assert not refused.value.maybe_delivered and not refused.value.permanent


def test_one_private_reply_per_comment(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    comment = sandbox.control.comment(brand_post["id"], person_id=DANA, name="D", message="m")
    target = SendTarget(in_reply_to_external_id=comment["id"])
    adapter.send(OutboundKind.PRIVATE_REPLY, target, "First")
    with pytest.raises(ChannelError) as caught:
        adapter.send(OutboundKind.PRIVATE_REPLY, target, "Second")
    assert caught.value.permanent
    assert str(caught.value) == (
        "Facebook allows one private reply per comment, and this comment already has one."
    )


# The windows: our rule and the emulator's, at every edge


MESSENGER_EDGES = [
    (DAY - SECOND, True, ""),
    (DAY, True, ""),
    (DAY + SECOND, True, "HUMAN_AGENT"),
    (7 * DAY, True, "HUMAN_AGENT"),
    (7 * DAY + SECOND, False, ""),
]


@pytest.mark.parametrize(("elapsed", "allowed", "tag"), MESSENGER_EDGES)
def test_messenger_window_edges_agree_with_the_emulator(
    sandbox: FacebookSandbox,
    adapter: FacebookAdapter,
    frozen: Callable[[datetime], None],
    elapsed: timedelta,
    allowed: bool,
    tag: str,
) -> None:
    frozen(T0)
    sandbox.control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="Where is it?")
    frozen(T0 + elapsed)
    facts = ReplyFacts(now=T0 + elapsed, customer_name="Dana", last_private_from_customer_at=T0)
    window = FacebookAdapter.reply_window(OutboundKind.PRIVATE_MESSAGE, facts)
    assert (window.open, window.tag) == (allowed, tag)
    # The emulator agrees: what we allow goes through (with the tag we chose); and what we
    # refuse, Graph refuses too, even with the human-agent tag.
    target = SendTarget(
        recipient_external_id=DANA_PSID, message_tag=tag or ("" if allowed else "HUMAN_AGENT")
    )
    if allowed:
        assert adapter.send(OutboundKind.PRIVATE_MESSAGE, target, "Sorry!").external_id
    else:
        assert "7-day human-agent window" in window.reason
        with pytest.raises(ChannelError, match="outside Messenger's allowed window"):
            adapter.send(OutboundKind.PRIVATE_MESSAGE, target, "Sorry!")
    if DAY < elapsed <= 7 * DAY:
        # Without the tag, Graph refuses past 24 hours: the tag is what lets it out.
        with pytest.raises(ChannelError, match="outside Messenger's allowed window"):
            adapter.send(
                OutboundKind.PRIVATE_MESSAGE, SendTarget(recipient_external_id=DANA_PSID), "x"
            )
        assert "24-hour window closed" in window.reason and "human-agent tag" in window.reason


@pytest.mark.parametrize(
    ("elapsed", "allowed"), [(7 * DAY - SECOND, True), (7 * DAY, True), (7 * DAY + SECOND, False)]
)
def test_private_reply_window_edges_agree_with_the_emulator(
    sandbox: FacebookSandbox,
    adapter: FacebookAdapter,
    brand_post: dict[str, Any],
    frozen: Callable[[datetime], None],
    elapsed: timedelta,
    allowed: bool,
) -> None:
    frozen(T0)
    comment = sandbox.control.comment(brand_post["id"], person_id=DANA, name="D", message="m")
    frozen(T0 + elapsed)
    facts = ReplyFacts(now=T0 + elapsed, reply_to=PostFact(comment["id"], T0))
    window = FacebookAdapter.reply_window(OutboundKind.PRIVATE_REPLY, facts)
    assert window.open is allowed
    target = SendTarget(in_reply_to_external_id=comment["id"])
    if allowed:
        assert adapter.send(OutboundKind.PRIVATE_REPLY, target, "Hi").external_id
    else:
        assert "within 7 days" in window.reason
        with pytest.raises(ChannelError, match="no longer allows a private reply"):
            adapter.send(OutboundKind.PRIVATE_REPLY, target, "Hi")


def test_a_second_private_reply_is_refused_by_the_rule() -> None:
    facts = ReplyFacts(
        now=T0, reply_to=PostFact("1_2", T0 - HOUR), privately_answered=frozenset({"1_2"})
    )
    window = FacebookAdapter.reply_window(OutboundKind.PRIVATE_REPLY, facts)
    assert not window.open and "one private reply per comment" in window.reason
    assert window.alternative  # says what is still open


# Through the care steps and the outbox (a comment ticket, then Messenger)


@pytest.fixture
def fb_account(
    make_account: Callable[..., SocialAccount], sandbox: FacebookSandbox
) -> SocialAccount:
    return make_account(
        platform=Platform.FACEBOOK,
        external_id=FB_PAGE_ID,
        username="Acme",
        api_base_url=sandbox.url,
        credentials={"page_access_token": FB_PAGE_TOKEN},
        connected_at=T0 - DAY,
    )


def _sends(sandbox: FacebookSandbox) -> list[dict[str, Any]]:
    return [e for e in graph_calls(sandbox) if e["method"] == "POST"]


def _step(ticket: Ticket, step: str, agent: Persona, text: str) -> Message:
    message = ticket_take_step(ticket=ticket, step=step, by=agent.user, text=text)
    assert outbox_send(item_id=message.outbox.pk) == OutboxState.SENT
    message.refresh_from_db()
    return message


@pytest.mark.django_db
def test_a_comment_ticket_walks_the_steps_with_the_windows(
    sandbox: FacebookSandbox,
    fb_account: SocialAccount,
    agent: Persona,
    brand_post: dict[str, Any],
    frozen: Callable[[datetime], None],
) -> None:
    frozen(T0)
    comment = sandbox.control.comment(
        brand_post["id"], person_id=DANA, name="Dana Lee", message="My order is late"
    )
    assert account_poll(account_id=fb_account.pk).startswith("ok: 1 new, 1 tickets")
    ticket = Ticket.objects.get()
    assert (ticket.customer_username, ticket.conversation_id) == ("Dana Lee", brand_post["id"])
    ack = _step(ticket, Step.ACKNOWLEDGE, agent, "So sorry, Dana!")
    assert ack.in_reply_to_external_id == comment["id"]
    # Take offline: the one private reply to her comment (she has not written on Messenger).
    offline = _step(ticket, Step.TAKE_OFFLINE, agent, "Could you send your order number?")
    assert offline.kind == MessageKind.PRIVATE_REPLY and not offline.is_public
    # Graph's answer names her by her Page-scoped id, not her commenter id: kept as a pair.
    assert offline.conversation_id == messenger_thread(DANA_PSID) != messenger_thread(DANA)
    assert MessengerIdentity.objects.get(account=fb_account).psid == DANA_PSID
    # Resolve: refused before sending, as she has not answered on Messenger yet.
    calls = len(_sends(sandbox))
    with pytest.raises(StepError) as refused:
        ticket_take_step(ticket=ticket, step=Step.RESOLVE, by=agent.user, text="Fixed!")
    assert "has not written to the page on Messenger" in str(refused.value)
    assert len(_sends(sandbox)) == calls
    # She answers on Messenger: it joins her ticket, and Messenger opens for 24 hours.
    frozen(T0 + HOUR)
    sandbox.control.message(FB_PAGE_ID, person_id=DANA, name="Dana Lee", text="It is #4411")
    frozen(T0 + HOUR + 10 * SECOND)
    account_poll(account_id=fb_account.pk)
    ticket.refresh_from_db()
    assert Ticket.objects.count() == 1
    answer = ticket.messages.get(kind=MessageKind.MESSENGER)
    assert answer.conversation_id == messenger_thread(DANA_PSID)
    assert answer.author_external_id == DANA == ticket.customer_external_id
    # 30 hours later: past 24 h, inside 7 days: the human-agent tag, said on the message.
    frozen(T0 + HOUR + 30 * HOUR)
    resolved = _step(ticket, Step.RESOLVE, agent, "Your refund is on its way.")
    assert resolved.kind == MessageKind.DM
    assert "human-agent tag" in resolved.raw["window_note"]
    assert resolved.raw["tag"] == "HUMAN_AGENT"
    sent = {m["id"]: m for m in sandbox.control.sent(FB_PAGE_ID)["messages"]}
    assert (sent[resolved.external_id]["messaging_type"], sent[resolved.external_id]["tag"]) == (
        "MESSAGE_TAG",
        "HUMAN_AGENT",
    )
    close = _step(ticket, Step.CLOSE_OUT, agent, "All sorted, thanks Dana!")
    assert close.is_public and close.in_reply_to_external_id == comment["id"]
    ticket.refresh_from_db()
    assert ticket.status == Status.CLOSED


@pytest.mark.django_db
def test_a_private_step_outside_every_window_is_refused_before_sending(
    sandbox: FacebookSandbox,
    fb_account: SocialAccount,
    agent: Persona,
    brand_post: dict[str, Any],
    frozen: Callable[[datetime], None],
) -> None:
    frozen(T0)
    sandbox.control.comment(brand_post["id"], person_id=DANA, name="Dana", message="Late")
    account_poll(account_id=fb_account.pk)
    ticket = Ticket.objects.get()
    _step(ticket, Step.ACKNOWLEDGE, agent, "Sorry!")
    frozen(T0 + 7 * DAY + SECOND)
    calls = len(_sends(sandbox))
    with pytest.raises(StepError) as refused:
        ticket_take_step(ticket=ticket, step=Step.TAKE_OFFLINE, by=agent.user, text="DM us")
    assert "has not written to the page on Messenger" in str(refused.value)
    assert "Reply publicly" in str(refused.value)
    assert len(_sends(sandbox)) == calls


@pytest.mark.django_db
def test_a_window_that_closed_while_queued_is_refused_by_the_outbox_before_sending(
    sandbox: FacebookSandbox,
    fb_account: SocialAccount,
    agent: Persona,
    frozen: Callable[[datetime], None],
) -> None:
    frozen(T0)
    sandbox.control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="Help please")
    account_poll(account_id=fb_account.pk)
    ticket = Ticket.objects.get()
    assert ticket.conversation_id == messenger_thread(DANA_PSID)
    # Messenger-only ticket: even the acknowledgement goes to Messenger.
    frozen(T0 + 7 * DAY - HOUR)
    ack = ticket_take_step(ticket=ticket, step=Step.ACKNOWLEDGE, by=agent.user, text="Hi Dana")
    assert not ack.is_public and "human-agent tag" in ack.raw["window_note"]
    frozen(T0 + 7 * DAY + SECOND)  # it waited (a retry) past the 7 days
    calls = len(_sends(sandbox))
    assert outbox_send(item_id=ack.outbox.pk) == OutboxState.FAILED
    assert len(_sends(sandbox)) == calls  # never sent
    ack.outbox.refresh_from_db()
    assert "7-day human-agent window" in ack.outbox.last_error
    ticket.refresh_from_db()
    assert ticket.status == Status.NEW
    assert ticket.events.filter(kind=EventKind.STEP_REOPENED).exists()


@pytest.mark.django_db
def test_polling_each_stream_stores_each_post_once(
    sandbox: FacebookSandbox, fb_account: SocialAccount, brand_post: dict[str, Any]
) -> None:
    control = sandbox.control
    control.comment(brand_post["id"], person_id=DANA, name="Dana", message="c1")
    control.visitor_post(FB_PAGE_ID, person_id=BOB, name="Bob", message="v1")
    control.visitor_post(FB_PAGE_ID, person_id=BOB, name="Bob", message="t1", tagged=True)
    control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="m1")
    assert account_poll(account_id=fb_account.pk).startswith("ok: 4 new")
    for stream in (Stream.PAGE_FEED, Stream.TAGGED, Stream.CONVERSATIONS):
        assert cursor_position(fb_account, stream)
    assert account_poll(account_id=fb_account.pk).startswith("ok: 0 new")
    assert Message.objects.count() == 4
    # Dana's Messenger message joins her open ticket (the one from her comment).
    assert Ticket.objects.filter(customer_external_id=DANA).count() == 1


@pytest.mark.django_db
def test_a_reply_the_page_posted_on_facebook_itself_is_the_brands_message_in_the_ticket(
    sandbox: FacebookSandbox, fb_account: SocialAccount, brand_post: dict[str, Any]
) -> None:
    comment = sandbox.control.comment(brand_post["id"], person_id=DANA, name="Dana", message="?")
    account_poll(account_id=fb_account.pk)
    native = sandbox.graph().put_comment(comment["id"], "Answered from the Facebook app")
    account_poll(account_id=fb_account.pk)
    ticket = Ticket.objects.get()  # the page's reply opened nothing
    reply = ticket.messages.get(external_id=native["id"])
    assert (reply.direction, reply.is_public, reply.sent_by) == ("out", True, None)
    assert ticket.events.filter(kind=EventKind.REPLY_SENT, message=reply).exists()


# Every request the adapter makes is one Meta's Graph specs describe


def test_every_request_the_adapter_sends_is_in_the_graph_specs(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    from channels_social.sandbox.facebook.graph_fields import UNIFIED_MESSAGE_FIELDS
    from tests.test_facebook_spec_conformance import (
        GENERIC_PARAMS,
        api,
        field_types,
        get_edges,
        has_spec,
    )

    control = sandbox.control
    comment = control.comment(brand_post["id"], person_id=DANA, name="Dana", message="Late")
    control.comment(comment["id"], person_id=BOB, name="Bob", message="+1")
    control.visitor_post(FB_PAGE_ID, person_id=BOB, name="Bob", message="Refund?")
    control.visitor_post(FB_PAGE_ID, person_id=DANA, name="Dana", message="hi", tagged=True)
    control.message(FB_PAGE_ID, person_id=DANA, name="Dana", text="Hello")
    for stream in FacebookAdapter.polled_streams:
        adapter.fetch(stream, cursor=None)
    adapter.send(OutboundKind.PUBLIC_REPLY, SendTarget(in_reply_to_external_id=comment["id"]), "a")
    adapter.send(OutboundKind.PRIVATE_REPLY, SendTarget(in_reply_to_external_id=comment["id"]), "b")
    adapter.send(OutboundKind.PRIVATE_MESSAGE, SendTarget(recipient_external_id=DANA_PSID), "c")
    adapter.send(
        OutboundKind.PRIVATE_MESSAGE,
        SendTarget(recipient_external_id=DANA_PSID, message_tag="HUMAN_AGENT"),
        "d",
    )
    adapter.send(OutboundKind.HIDE, SendTarget(in_reply_to_external_id=comment["id"]), "")
    assert adapter.person_name(DANA) == "Dana"
    checked = set()
    for entry in graph_calls(sandbox):
        assert entry["status"] == 200, entry
        node, edge, method = entry["node_type"], entry["edge"], entry["method"]
        assert has_spec(node), entry
        accepted = {p["name"] for p in api(node, method, edge)["params"]}
        sent = set(entry["params"]) - GENERIC_PARAMS
        assert sent <= accepted, f"{method} {node}/{edge or ''}: {sorted(sent - accepted)}"
        fields = entry["params"].get("fields")
        if fields:
            item = get_edges(node)[edge] if edge else node
            known = set(field_types(item)) if has_spec(item) else UNIFIED_MESSAGE_FIELDS
            assert set(fields.split(",")) <= known, f"{item}: {fields}"
        checked.add((method, node, edge))
    assert checked >= {
        ("GET", "Page", "feed"),
        ("GET", "Page", "tagged"),
        ("GET", "Page", "conversations"),
        ("GET", "PagePost", "comments"),
        ("GET", "UnifiedThread", "messages"),
        ("POST", "Comment", "comments"),
        ("POST", "Page", "messages"),
        ("POST", "Comment", None),
        ("GET", "User", None),
    }


def test_the_admin_form_offers_facebook_with_its_page_token() -> None:
    from channels_social.registry import (
        adapter_class,
        all_credential_fields,
        platforms_with_adapters,
    )

    assert ("facebook", "Facebook") in platforms_with_adapters()
    assert adapter_class("facebook") is FacebookAdapter
    assert "page_access_token" in {field.name for field in all_credential_fields()}
    assert FacebookAdapter.has_credentials({"page_access_token": "EAA..."})
    assert not FacebookAdapter.has_credentials({})


def test_links_and_pasted_references(sandbox: FacebookSandbox) -> None:
    account = unsaved_account(sandbox.url)
    assert FacebookAdapter.post_url(account, "11_22") == (
        f"https://www.facebook.com/{FB_PAGE_ID}/posts/11?comment_id=22"
    )
    assert FacebookAdapter.post_url(account, f"{FB_PAGE_ID}_5") == (
        f"https://www.facebook.com/{FB_PAGE_ID}/posts/5"
    )
    reference = FacebookAdapter.post_id_from_reference
    assert reference(account, "11_22") == "11_22"
    assert reference(account, f"https://www.facebook.com/{FB_PAGE_ID}/posts/11?comment_id=22") == (
        "11_22"
    )
    link = f"https://www.facebook.com/{FB_PAGE_ID}/posts/11?comment_id=22&reply_comment_id=33"
    assert reference(account, link) == "11_33"
    for bad in ("", "https://x.com/a/status/1", "https://www.facebook.com/other/posts/1", "a b"):
        with pytest.raises(ValueError):
            reference(account, bad)


def test_a_dropped_connection_after_the_write_may_have_delivered(
    sandbox: FacebookSandbox, adapter: FacebookAdapter, brand_post: dict[str, Any]
) -> None:
    comment = sandbox.control.comment(brand_post["id"], person_id=DANA, name="D", message="m")
    sandbox.control.inject_drop()
    target = SendTarget(in_reply_to_external_id=comment["id"])
    with pytest.raises(ChannelError) as caught:
        adapter.send(OutboundKind.PUBLIC_REPLY, target, "Hello")
    assert caught.value.maybe_delivered and not caught.value.permanent
    assert [c["message"] for c in sandbox.control.sent(FB_PAGE_ID)["comments"]] == ["Hello"]
    nobody = FacebookAdapter(unsaved_account("http://127.0.0.1:9"))  # nothing listens
    with pytest.raises(ChannelError) as refused:
        nobody.send(OutboundKind.PUBLIC_REPLY, target, "Hello")
    assert not refused.value.maybe_delivered and "Could not reach Facebook" in str(refused.value)


@pytest.mark.django_db
def test_a_visitor_post_gets_its_private_reply_and_a_tagged_post_none(
    sandbox: FacebookSandbox, fb_account: SocialAccount, agent: Persona
) -> None:
    control = sandbox.control
    wall = control.visitor_post(FB_PAGE_ID, person_id=DANA, name="Dana", message="Refund?")
    control.visitor_post(FB_PAGE_ID, person_id=BOB, name="Bob", message="@Acme hi", tagged=True)
    account_poll(account_id=fb_account.pk)
    on_wall = Ticket.objects.get(customer_external_id=DANA)
    _step(on_wall, Step.ACKNOWLEDGE, agent, "Sorry!")
    private = _step(on_wall, Step.TAKE_OFFLINE, agent, "Your order number?")
    assert private.kind == MessageKind.PRIVATE_REPLY
    assert private.in_reply_to_external_id == wall["id"]
    tagged = Ticket.objects.get(customer_external_id=BOB)
    _step(tagged, Step.ACKNOWLEDGE, agent, "Hi Bob!")
    # No private reply to a post elsewhere: the private step is Messenger, closed until Bob writes.
    with pytest.raises(StepError, match="Bob\u2069 has not written to the page on Messenger"):
        ticket_take_step(ticket=tagged, step=Step.TAKE_OFFLINE, by=agent.user, text="DM?")
    window = FacebookAdapter.reply_window(
        OutboundKind.PRIVATE_REPLY,
        ReplyFacts(now=T0, reply_to=PostFact("2002_9", T0, kind="post")),
    )
    assert not window.open and "not to a post elsewhere that tags the page" in window.reason


def test_many_messenger_threads_page_through(
    sandbox: FacebookSandbox, adapter: FacebookAdapter
) -> None:
    ids = [
        sandbox.control.message(FB_PAGE_ID, person_id=str(5000 + n), name=f"P{n}", text="hi")["id"]
        for n in range(130)
    ]
    batch = adapter.fetch(Stream.CONVERSATIONS, cursor=None)
    assert sorted(p.external_id for p in batch.posts) == sorted(ids)
    assert len(graph_calls(sandbox, "conversations")) == 2  # 100 + 30


@pytest.mark.django_db
def test_a_throttled_poll_waits_until_access_is_regained(
    sandbox: FacebookSandbox, fb_account: SocialAccount
) -> None:
    sandbox.control.throttle(32, regain_minutes=7)
    before = timezone.now()
    assert "request limit" in account_poll(account_id=fb_account.pk)
    fb_account.refresh_from_db()
    assert fb_account.rate_limit_reset_at is not None
    waited = fb_account.rate_limit_reset_at - before
    assert timedelta(minutes=6) < waited <= timedelta(minutes=7, seconds=5)
    assert fb_account.next_poll_at == fb_account.rate_limit_reset_at
    assert "32" not in fb_account.last_poll_error
