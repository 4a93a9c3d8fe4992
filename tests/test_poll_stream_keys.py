"""The poller reads every key an adapter lists for a stream, each with a cursor of its own,
skips a stream with no keys, and keeps the rate limit with the fewest calls left."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from channels_social import services
from channels_social.base import (
    Author,
    Batch,
    ChannelAdapter,
    InboundPost,
    RateLimit,
    SentMessage,
    Stream,
)
from channels_social.models import PollCursor, SocialAccount
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


class KeyedAdapter(ChannelAdapter):
    """Two searches, mentions, and a DM stream it has no keys for."""

    platform: ClassVar[str] = "x"
    polled_streams: ClassVar[tuple[Stream, ...]] = (
        Stream.MENTIONS,
        Stream.DIRECT_MESSAGES,
        Stream.SEARCH,
    )
    outbound_kinds: ClassVar[dict[Any, str]] = {}
    credential_fields = ()
    fetched: ClassVar[list[tuple[str, str | None, str]]] = []

    def stream_keys(self, stream: Stream) -> list[str]:
        return {Stream.SEARCH: ["7", "9"], Stream.DIRECT_MESSAGES: []}.get(stream, [""])

    def fetch(self, stream: Stream, *, cursor: str | None, key: str = "") -> Batch:
        self.fetched.append((stream, cursor, key))
        number = 100 + len(self.fetched)
        post = InboundPost(
            external_id=str(number),
            text=f"{stream} {key}",
            created_at=datetime.now(UTC),
            author=Author(external_id=f"c{number}", username=f"c{number}"),
            kind="post",
        )
        remaining = {"mentions": 50, "search": 3 if key == "7" else 80}.get(stream)
        limit = RateLimit(limit=100, remaining=remaining, reset_at=None)
        return Batch(posts=[post], next_cursor=str(number), rate_limit=limit)

    def send(self, kind: Any, target: Any, text: str, *, first_attempt: bool = True) -> Any:
        return SentMessage(external_id="0")

    @classmethod
    def text_problem(cls, kind: Any, text: str) -> str | None:
        return None

    @classmethod
    def cursor_is_newer(cls, candidate: str, current: str) -> bool:
        return not current or int(candidate) > int(current)

    @classmethod
    def post_url(cls, account: Any, external_id: str, author_username: str = "") -> str:
        return ""

    @classmethod
    def post_id_from_reference(cls, account: Any, reference: str) -> str:
        return reference


def test_each_key_has_its_own_cursor_and_a_stream_without_keys_is_skipped(
    make_account: Callable[..., SocialAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    account = make_account()
    KeyedAdapter.fetched = []
    monkeypatch.setattr(services, "adapter_for", lambda acc: KeyedAdapter(acc))
    assert services.account_poll(account_id=account.pk).startswith("ok: 3 new, 3 tickets")
    assert KeyedAdapter.fetched == [
        (Stream.MENTIONS, None, ""),
        (Stream.SEARCH, None, "7"),
        (Stream.SEARCH, None, "9"),
    ]
    cursors = dict(
        PollCursor.objects.filter(account=account).values_list("key", "position").order_by("key")
    )
    assert cursors == {"": "101", "7": "102", "9": "103"}
    assert Ticket.objects.count() == 3
    account.refresh_from_db()
    assert account.rate_limit_remaining == 3  # the tightest of the three

    services.account_poll(account_id=account.pk)
    assert KeyedAdapter.fetched[3:] == [
        (Stream.MENTIONS, "101", ""),
        (Stream.SEARCH, "102", "7"),
        (Stream.SEARCH, "103", "9"),
    ]


def test_the_default_is_one_key() -> None:
    adapter = KeyedAdapter.__mro__[1]
    assert adapter is ChannelAdapter
    assert ChannelAdapter.stream_keys(KeyedAdapter(SocialAccount()), Stream.MENTIONS) == [""]


class OldAndNew(KeyedAdapter):
    polled_streams: ClassVar[tuple[Stream, ...]] = (Stream.DIRECT_MESSAGES,)

    def stream_keys(self, stream: Stream) -> list[str]:
        return [""]

    def fetch(self, stream: Stream, *, cursor: str | None, key: str = "") -> Batch:
        posts = [
            InboundPost(
                external_id=str(number),
                text="hello",
                created_at=datetime.now(UTC) - age,
                author=Author(external_id=f"c{number}", username=f"c{number}"),
                kind="dm",
                is_public=False,
            )
            for number, age in ((1, timedelta(days=10)), (2, timedelta(seconds=20)))
        ]
        return Batch(posts=posts, next_cursor="2")


def test_a_stream_new_to_a_handle_polled_before_starts_at_its_last_good_poll(
    make_account: Callable[..., SocialAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade adds DMs (or an admin a query) to a handle polled for months: what came
    before the last successful poll is not imported as a backlog; what came since is."""
    now = datetime.now(UTC)
    account = make_account(connected_at=now - timedelta(days=90))
    SocialAccount.objects.filter(pk=account.pk).update(last_polled_at=now - timedelta(minutes=1))
    PollCursor.objects.create(account=account, stream=Stream.MENTIONS, position="900")

    monkeypatch.setattr(services, "adapter_for", lambda acc: OldAndNew(acc))
    outcome = services.account_poll(account_id=account.pk)
    assert "1 new" in outcome and "1 from before the handle was connected" in outcome
    assert list(Ticket.objects.values_list("root_message__external_id", flat=True)) == ["2"]


def test_a_handle_whose_cursors_were_all_dropped_reads_back_to_its_connection(
    make_account: Callable[..., SocialAccount], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No other stream read: the handle starts over (as restart_intake means), duplicates and
    all, from when it was connected."""
    now = datetime.now(UTC)
    account = make_account(connected_at=now - timedelta(days=90))
    SocialAccount.objects.filter(pk=account.pk).update(last_polled_at=now - timedelta(minutes=1))
    monkeypatch.setattr(services, "adapter_for", lambda acc: OldAndNew(acc))
    assert services.account_poll(account_id=account.pk).startswith("ok: 2 new")
