"""The X connector: mentions in, public replies and DMs out, through tweepy and API v2.

Every failure leaves as a ``ChannelError`` that says whether a retry can help, so the poller
and the outbox never see tweepy or requests exceptions. X's own rules live here and nowhere
else: ids order as numbers, a repeat of the brand's own text is refused as a duplicate, a post's
link is ``x.com/<handle>/status/<id>``, and every string is cleaned before it leaves.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
import tweepy
from twitter_text import parse_tweet
from urllib3.exceptions import NameResolutionError, NewConnectionError, ProxyError

from channels_social.base import (
    Author,
    Batch,
    ChannelAdapter,
    ChannelError,
    CredentialField,
    InboundPost,
    OutboundKind,
    RateLimit,
    SendTarget,
    SentMessage,
    Stream,
    UnreadableItem,
)
from channels_social.text import clean_payload, clean_text
from channels_social.x.client import USER_CONTEXT_KEYS, XSession, build_client, uses_user_context

PUBLIC_REPLY_LIMIT = 280  # weighted characters (twitter-text v3)
DM_LIMIT = 10_000
PAGE_SIZE = 100
MAX_PAGES = 8  # X keeps only the last 800 mentions reachable
DEFAULT_RETRY_AFTER = 60.0  # a 429 without x-rate-limit-reset
TWEET_FIELDS = [
    "created_at",
    "conversation_id",
    "in_reply_to_user_id",
    "referenced_tweets",
    "author_id",
    "lang",
    "entities",
]
USER_FIELDS = ["username", "name", "public_metrics", "verified"]


WEB_HOSTS = {"x.com", "twitter.com", "www.x.com", "www.twitter.com", "mobile.x.com"}
MOBILE_HOSTS = {"mobile.twitter.com"}
# X ids are unsigned 64-bit numbers: at most 20 digits. A longer run of digits is not an id.
POST_ID = re.compile(r"[0-9]{1,20}")
STATUS_PATH = re.compile(r"/(?P<handle>[A-Za-z0-9_]{1,15}|i/web|i)/status(?:es)?/(?P<id>[^/?#]+)")


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _never_reached_x(exc: requests.RequestException) -> bool:
    """True when the request provably never reached X: no connection to it was opened.

    Connect timeouts, refused connections, failed name look-ups, a refusing proxy and a
    certificate X's side did not pass all happen before a byte of the request is sent.
    """
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        return _caused_by(exc, ssl.SSLCertVerificationError)
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, NewConnectionError | NameResolutionError | ProxyError)
    return False


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        stack += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        stack += list(current.args)
    return False


def _detail(exc: tweepy.HTTPException) -> str:
    """The platform's own words, never the request (which could carry credentials)."""
    messages = [str(message) for message in exc.api_messages if message]
    return "; ".join(messages) or f"HTTP {exc.response.status_code} {exc.response.reason}"


class XAdapter(ChannelAdapter):
    """Talks to X API v2 on behalf of one brand account."""

    platform: ClassVar[str] = "x"
    polled_streams: ClassVar[tuple[Stream, ...]] = (Stream.MENTIONS,)
    outbound_kinds: ClassVar[dict[OutboundKind, str]] = {
        OutboundKind.PUBLIC_REPLY: "Public reply",
        OutboundKind.PRIVATE_MESSAGE: "Direct message",
    }
    credential_fields: ClassVar[Sequence[CredentialField]] = tuple(
        CredentialField(name=name, label=name.replace("_", " ").capitalize())
        for name in USER_CONTEXT_KEYS
    )

    def __init__(self, account: Any) -> None:
        super().__init__(account)
        self._client: tweepy.Client | None = None

    @property
    def client(self) -> tweepy.Client:
        if self._client is None:
            self._client = build_client(self.account)
        return self._client

    @property
    def user_auth(self) -> bool:
        return uses_user_context(dict(self.account.credentials or {}))

    @property
    def last_rate_limit(self) -> RateLimit | None:
        session = self._client.session if self._client is not None else None
        return session.last_rate_limit if isinstance(session, XSession) else None

    @classmethod
    def has_credentials(cls, credentials: dict[str, Any]) -> bool:
        return uses_user_context(credentials) or bool(credentials.get("bearer_token"))

    @classmethod
    def text_problem(cls, kind: OutboundKind, text: str) -> str | None:
        if not text or not text.strip():
            return "A reply cannot be empty."
        if kind == OutboundKind.PUBLIC_REPLY:
            weighted = parse_tweet(text).weightedLength
            if weighted > PUBLIC_REPLY_LIMIT:
                return (
                    f"This reply is {weighted} characters by X's count; "
                    f"the limit is {PUBLIC_REPLY_LIMIT}."
                )
        elif kind == OutboundKind.PRIVATE_MESSAGE:
            if len(text) > DM_LIMIT:
                return f"This message is {len(text):,} characters; the limit is {DM_LIMIT:,}."
        else:
            return f"X cannot send a {kind}."
        return None

    @classmethod
    def cursor_is_newer(cls, candidate: str, current: str) -> bool:
        """X ids are decimal strings that grow with time: compare them as numbers."""
        if not current:
            return True
        try:
            return int(candidate) > int(current)
        except ValueError:
            return False

    @classmethod
    def post_url(cls, account: Any, external_id: str, author_username: str = "") -> str:
        return f"https://x.com/{author_username or 'i/web'}/status/{external_id}"

    @classmethod
    def post_id_from_reference(cls, account: Any, reference: str) -> str:
        reference = reference.strip()
        if not reference:
            raise ValueError("Paste the post's link (https://x.com/…/status/…) or its id.")
        if reference.isdigit():
            if not POST_ID.fullmatch(reference):
                raise ValueError(f"{reference} is too long for an X post id (20 digits at most).")
            return reference
        parts = urlsplit(reference if "//" in reference else f"https://{reference}")
        host = (parts.hostname or "").lower()
        match = STATUS_PATH.fullmatch(parts.path.rstrip("/")) or STATUS_PATH.match(parts.path)
        if host not in WEB_HOSTS | MOBILE_HOSTS or match is None:
            raise ValueError(
                "That is not a link to a post on X: it should look like "
                f"https://x.com/{account.username}/status/1234567890."
            )
        post_id = match.group("id")
        if not POST_ID.fullmatch(post_id):
            raise ValueError(f"'{post_id}' in that link is not a whole X post id.")
        handle = match.group("handle")
        if handle not in ("i", "i/web") and handle.lower() != account.username.lower():
            raise ValueError(
                f"That link is a post by @{handle}, not by @{account.username}: paste the "
                "brand's own reply."
            )
        return post_id

    @contextmanager
    def _translate_errors(self, *, write: bool = False) -> Iterator[None]:
        """Turn tweepy and requests failures into ChannelError.

        For a write, only failures that prove X never took the request are retryable: the
        connection was never made, or X answered 429 or 503. A read timeout, a dropped
        connection or another 5xx after the request went out may hide a post that X did make.
        """
        try:
            yield
        except tweepy.TooManyRequests as exc:
            reset = exc.reset_time
            retry_after = max(1.0, reset - time.time()) if reset else DEFAULT_RETRY_AFTER
            raise ChannelError(
                f"X rate limit reached: {_detail(exc)}",
                permanent=False,
                retry_after=retry_after,
                status=429,
            ) from None
        except tweepy.TwitterServerError as exc:
            status = exc.response.status_code
            raise ChannelError(
                f"X is having trouble: {_detail(exc)}",
                permanent=False,
                status=status,
                maybe_delivered=write and status != 503,
            ) from None
        except tweepy.HTTPException as exc:
            # 400, 401, 403, 404 and any other 4xx: the same call will fail the same way.
            raise ChannelError(
                _detail(exc), permanent=True, status=exc.response.status_code
            ) from None
        except requests.RequestException as exc:
            never_sent = _never_reached_x(exc)
            raise ChannelError(
                f"Could not reach X ({type(exc).__name__})."
                if never_sent
                else f"X did not answer ({type(exc).__name__}).",
                permanent=False,
                maybe_delivered=write and not never_sent,
            ) from None
        except tweepy.TweepyException as exc:
            raise ChannelError(f"X client error: {type(exc).__name__}", permanent=False) from None

    def fetch(self, stream: Stream, *, cursor: str | None, key: str = "") -> Batch:
        if stream != Stream.MENTIONS:
            raise ChannelError(f"X polling of {stream} is not built yet.", permanent=True)
        return self._fetch_mentions(since_id=cursor)

    def _fetch_mentions(self, *, since_id: str | None) -> Batch:
        posts: dict[str, InboundPost] = {}
        unreadable: list[UnreadableItem] = []
        newest_id: str | None = None
        token: str | None = None
        with self._translate_errors():
            for page_number in range(MAX_PAGES):
                response = self.client.get_users_mentions(
                    self.account.external_id,
                    since_id=since_id or None,
                    max_results=PAGE_SIZE,
                    pagination_token=token,
                    tweet_fields=TWEET_FIELDS,
                    expansions=["author_id"],
                    user_fields=USER_FIELDS,
                    user_auth=self.user_auth,
                )
                if response.errors and not response.data:
                    raise ChannelError(
                        "; ".join(e.get("detail", str(e)) for e in response.errors),
                        permanent=True,
                    )
                meta = response.meta or {}
                if page_number == 0:
                    newest_id = meta.get("newest_id")
                users = {
                    str(user.data.get("id")): user.data
                    for user in (response.includes or {}).get("users", [])
                }
                for tweet in response.data or []:
                    data = dict(tweet.data)
                    try:
                        post = self._inbound(data, users)
                    except (KeyError, TypeError, ValueError) as exc:
                        # One item X sent in a shape we cannot read must not stall the handle.
                        unreadable.append(
                            UnreadableItem(
                                external_id=clean_text(str(data.get("id", "")))[:64],
                                error=f"Could not read this post: {type(exc).__name__}: {exc}",
                                raw=data,
                            )
                        )
                        continue
                    posts[post.external_id] = post
                token = meta.get("next_token")
                if not token:
                    break
        ordered = sorted(posts.values(), key=lambda post: int(post.external_id))
        return Batch(
            posts=ordered,
            next_cursor=newest_id,
            rate_limit=self.last_rate_limit,
            unreadable=unreadable,
        )

    def _inbound(self, tweet: dict[str, Any], users: dict[str, dict[str, Any]]) -> InboundPost:
        external_id = str(tweet["id"])
        if not POST_ID.fullmatch(external_id):
            raise ValueError(f"{external_id!r} is not an X post id")
        author_id = str(tweet.get("author_id", ""))
        user_data = users.get(author_id, {})
        replied_to = next(
            (
                ref["id"]
                for ref in tweet.get("referenced_tweets", [])
                if ref["type"] == "replied_to"
            ),
            "",
        )
        addressed = [str(tweet["in_reply_to_user_id"])] if tweet.get("in_reply_to_user_id") else []
        for mention in (tweet.get("entities") or {}).get("mentions", []):
            mentioned = str(mention.get("id") or "")
            if mentioned and mentioned not in addressed:
                addressed.append(mentioned)
        return InboundPost(
            external_id=external_id,
            text=clean_text(str(tweet.get("text", ""))),
            created_at=_parse_time(tweet.get("created_at")),
            author=Author(
                external_id=clean_text(author_id),
                username=clean_text(str(user_data.get("username", ""))),
                display_name=clean_text(str(user_data.get("name", ""))),
                followers_count=int(
                    user_data.get("public_metrics", {}).get("followers_count", 0) or 0
                ),
            ),
            kind="reply" if replied_to else "post",
            is_public=True,
            conversation_id=clean_text(str(tweet.get("conversation_id", ""))),
            in_reply_to_external_id=clean_text(str(replied_to)),
            addressed_account_ids=tuple(clean_text(a) for a in addressed),
            raw=clean_payload(tweet),
        )

    def send(
        self, kind: OutboundKind, target: SendTarget, text: str, *, first_attempt: bool = True
    ) -> SentMessage:
        text = clean_text(text)
        try:
            if kind == OutboundKind.PUBLIC_REPLY:
                return self._post_reply(text=text, in_reply_to=target.in_reply_to_external_id)
            if kind == OutboundKind.PRIVATE_MESSAGE:
                return self._send_dm(text=text, recipient=target.recipient_external_id)
        except ChannelError as exc:
            if not first_attempt and exc.status == 403 and "duplicate" in str(exc).lower():
                # X refuses a repeat of a post it already has: most likely our own earlier
                # attempt, whose answer was lost, went through after all.
                exc.maybe_delivered = True
            raise
        raise ChannelError(f"X cannot send a {kind}.", permanent=True)

    def _post_reply(self, *, text: str, in_reply_to: str) -> SentMessage:
        with self._translate_errors(write=True):
            response = self.client.create_tweet(
                text=text, in_reply_to_tweet_id=in_reply_to, user_auth=self.user_auth
            )
        data = dict(response.data or {})
        return SentMessage(external_id=str(data["id"]), conversation_id="", raw=data)

    def _send_dm(self, *, text: str, recipient: str) -> SentMessage:
        with self._translate_errors(write=True):
            response = self.client.create_direct_message(
                participant_id=recipient, text=text, user_auth=self.user_auth
            )
        data = dict(response.data or {})
        return SentMessage(
            external_id=str(data["dm_event_id"]),
            conversation_id=str(data.get("dm_conversation_id", "")),
            raw=data,
        )
