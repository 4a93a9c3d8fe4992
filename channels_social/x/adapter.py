"""The X connector, through tweepy and API v2.

In: mentions, direct messages (``GET /2/dm_events``), the brand's own posts (replies sent from
the X app, outside CareInbox), and one recent search per listening query. Out: public replies,
DMs, hiding a reply.

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
from datetime import UTC, datetime, timedelta
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
    Pacing,
    RateLimit,
    RateObservation,
    SendTarget,
    SentMessage,
    Stream,
    UnreadableItem,
)
from channels_social.text import clean_payload, clean_text
from channels_social.x.client import USER_CONTEXT_KEYS, XSession, build_client, uses_user_context

PUBLIC_REPLY_LIMIT = 280  # weighted characters (twitter-text v3)
DM_LIMIT = 10_000  # characters (PLATFORMS.md; POST /2/dm_conversations/with/:id/messages)
PAGE_SIZE = 100
MAX_PAGES = 8  # X keeps only the last 800 mentions reachable
# How often X may answer a page already read (the same ``next_token`` again) before a poll
# stops paging; it asks again for the page it wanted each time.
MAX_REPEATED_PAGES = 2
SEARCH_DAYS = 7  # recent search reaches back a week
# The @handles a reply starts with. Since Twitter's 2016-17 "simplified replies", they are the
# reply's metadata, not its text, and do not count toward the 280 (PLATFORMS.md: real brand
# replies of 281 to 284 characters with the leading mention were accepted; the spec's
# TweetCreateRequest.reply has auto_populate_reply_metadata and exclude_reply_user_ids for
# exactly this). So the agent types the reply without "@customer", the limit is checked on
# what they typed (a leading mention they type anyway is not counted either), and ``send``
# asks X to add the mention itself (auto_populate_reply_metadata): the composer, not the
# agent, addresses the customer.
LEADING_MENTIONS = re.compile(r"^(?:\s*@[A-Za-z0-9_]{1,15}(?![A-Za-z0-9_]))+\s*")
DM_NOT_ALLOWED = "you cannot send messages to this user"
DEFAULT_RETRY_AFTER = 60.0  # a 429 without x-rate-limit-reset
TWEET_FIELDS = [
    "created_at",
    "conversation_id",
    "in_reply_to_user_id",
    "referenced_tweets",
    "author_id",
    "lang",
    "entities",
    "public_metrics",
]
TWEET_EXPANSIONS = ["author_id", "referenced_tweets.id"]
DM_EVENT_FIELDS = ["id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id"]
METRIC_NAMES = ("retweet_count", "reply_count", "like_count", "quote_count")
USER_FIELDS = ["username", "name", "public_metrics", "verified"]


WEB_HOSTS = {"x.com", "twitter.com", "www.x.com", "www.twitter.com", "mobile.x.com"}
MOBILE_HOSTS = {"mobile.twitter.com"}
# X ids are unsigned 64-bit numbers: at most 20 digits. A longer run of digits is not an id.
POST_ID = re.compile(r"[0-9]{1,20}")
STATUS_PATH = re.compile(r"/(?P<handle>[A-Za-z0-9_]{1,15}|i/web|i)/status(?:es)?/(?P<id>[^/?#]+)")


class PageTokens:
    """Where a newest-first listing is in its pages, and whether X sent one twice.

    X answering a page already read (the ``next_token`` just sent, or an earlier one, again)
    would send a client that follows tokens blindly round in a loop: the page wanted is asked
    for again instead, up to ``MAX_REPEATED_PAGES`` times; after that the listing stops and
    says so (``cut_short``), and the caller keeps its cursor rather than skip what it never
    read."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.read = 0  # pages read, repeats not counted
        self.repeats = 0
        self.cut_short = ""
        self._sent: set[str] = set()

    def follow(self, next_token: str | None) -> bool:
        """Take the answer's ``next_token``; False when the listing ends (or is cut short)."""
        if not next_token:
            self.read += 1
            return False
        if next_token in self._sent:
            self.repeats += 1
            if self.repeats > MAX_REPEATED_PAGES:
                self.cut_short = (
                    f"X answered a page already read {self.repeats} times; the rest is read "
                    "at the next poll."
                )
                return False
            return True  # ask for the same page again
        self.read += 1
        self._sent.add(next_token)
        self.token = next_token
        return True


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


# What an X answer with no words of its own means, for the agent (never a bare code).
STATUS_WORDS = {
    400: "X refused the request as invalid.",
    401: "X no longer accepts this handle's keys (they were revoked, regenerated or are "
    "wrong): enter new ones in Settings → Brands and channels.",
    403: "X refused this for this handle.",
    404: "X could not find that post or user.",
    429: "X's rate limit for this handle was reached.",
}


def _detail(exc: tweepy.HTTPException) -> str:
    """The platform's own words, never the request (which could carry credentials)."""
    messages = [str(message) for message in exc.api_messages if message]
    status = exc.response.status_code
    fallback = STATUS_WORDS.get(status) or (
        "X had a problem on its side." if status >= 500 else "X refused the request."
    )
    return "; ".join(messages) or fallback


class XAdapter(ChannelAdapter):
    """Talks to X API v2 on behalf of one brand account."""

    platform: ClassVar[str] = "x"
    # Mentions first: a brand's reply or a customer's DM finds the ticket its mention opened.
    polled_streams: ClassVar[tuple[Stream, ...]] = (
        Stream.MENTIONS,
        Stream.DIRECT_MESSAGES,
        Stream.OWN_POSTS,
        Stream.SEARCH,
    )
    outbound_kinds: ClassVar[dict[OutboundKind, str]] = {
        OutboundKind.PUBLIC_REPLY: "Public reply",
        OutboundKind.PRIVATE_MESSAGE: "Direct message",
        OutboundKind.HIDE: "Hide reply",
    }
    # X's API deletes only the brand's own posts (DELETE /2/tweets/:id is the author's); a
    # customer's post can be hidden (replies in the brand's conversations) or reported on X.
    DELETE_REFUSAL = (
        "X does not let a brand delete another account's post: hide it (a reply in a "
        "conversation the brand started) or report it on X."
    )
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

    def rate_observations(self) -> list[RateObservation]:
        session = self._client.session if self._client is not None else None
        return list(session.budgets.values()) if isinstance(session, XSession) else []

    @classmethod
    def pacing(
        cls, budgets: Sequence[RateObservation], *, now: datetime, interval: timedelta
    ) -> Pacing:
        """An endpoint with no calls left stops the handle's polls until its window resets
        (X answers 429 to every further call until then; one poll reads every stream)."""
        spent = [
            budget.reset_at
            for budget in budgets
            if budget.remaining == 0 and budget.reset_at is not None and budget.reset_at > now
        ]
        if not spent:
            return Pacing()
        until = max(spent)
        names = ", ".join(sorted(b.endpoint for b in budgets if b.reset_at in spent))
        return Pacing(
            not_before=until,
            reason=f"X's rate limit is used up for {names}; polling waits until the window resets.",
        )

    def probe(self) -> str:
        """``GET /2/users/me`` with the stored keys: who they belong to."""
        with self._translate_errors():
            if self.user_auth:
                response = self.client.get_me(user_auth=True)
            else:
                response = self.client.get_user(id=self.account.external_id, user_auth=False)
        data = dict(response.data.data) if response.data is not None else {}
        return clean_text(str(data.get("username") or self.account.username))

    @classmethod
    def moderation_refusal(cls, kind: OutboundKind) -> str | None:
        if kind == OutboundKind.DELETE:
            return cls.DELETE_REFUSAL
        return super().moderation_refusal(kind)

    @classmethod
    def text_problem(cls, kind: OutboundKind, text: str) -> str | None:
        if kind == OutboundKind.HIDE:
            return None  # hiding takes no text
        if not text or not text.strip():
            return "A reply cannot be empty."
        if kind == OutboundKind.PUBLIC_REPLY:
            body = LEADING_MENTIONS.sub("", text, count=1)
            if not body.strip():
                return "A reply needs more than the @mention: X adds the customer's handle itself."
            weighted = parse_tweet(body).weightedLength
            if weighted > PUBLIC_REPLY_LIMIT:
                note = " (the @handle in front is not counted)" if body != text else ""
                return (
                    f"This reply is {weighted} characters by X's count{note}; "
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
    def profile_url(cls, external_id: str, username: str = "") -> str:
        if username:
            return f"https://x.com/{username}"
        return f"https://x.com/i/user/{external_id}"

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
        except tweepy.Unauthorized:
            # The keys themselves are refused (revoked, regenerated, or wrong): no call of
            # this handle will work until someone enters new ones.
            raise ChannelError(
                STATUS_WORDS[401], permanent=True, status=401, auth_failed=True
            ) from None
        except tweepy.HTTPException as exc:
            # 400, 403, 404 and any other 4xx: the same call will fail the same way.
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

    def stream_keys(self, stream: Stream) -> list[str]:
        if stream == Stream.DIRECT_MESSAGES and not self.user_auth:
            return []  # X serves DMs only to the user's own keys, never to a bearer token
        if stream == Stream.SEARCH:
            return [str(pk) for pk in self._listening_query_ids()]
        return [""]

    def _listening_query_ids(self) -> list[int]:
        """The brand's enabled queries, searched by one of its X handles only (the oldest
        enabled one), so a brand with three handles does not search three times."""
        from channels_social.models import ListeningQuery, SocialAccount

        searcher = (
            SocialAccount.objects.filter(
                brand_id=self.account.brand_id, platform=self.platform, enabled=True
            )
            .order_by("pk")
            .values_list("pk", flat=True)
            .first()
        )
        if searcher is None or searcher != self.account.pk:
            return []
        return list(
            ListeningQuery.objects.filter(brand_id=self.account.brand_id, enabled=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    def fetch(self, stream: Stream, *, cursor: str | None, key: str = "") -> Batch:
        if stream == Stream.MENTIONS:
            return self._fetch_tweets(self.client.get_users_mentions, since_id=cursor)
        if stream == Stream.OWN_POSTS:
            # The mentions timeline never holds the brand's own posts: a reply the team sent
            # from the X app is read here (CareInbox's own replies come back as duplicates).
            return self._fetch_tweets(
                self.client.get_users_tweets, since_id=cursor, exclude=["retweets"]
            )
        if stream == Stream.DIRECT_MESSAGES:
            return self._fetch_dms(after_id=cursor)
        if stream == Stream.SEARCH:
            return self._fetch_search(key, since_id=cursor)
        raise ChannelError(f"X has no {stream} stream.", permanent=True)

    def _fetch_search(self, key: str, *, since_id: str | None) -> Batch:
        from channels_social.models import ListeningQuery

        query = ListeningQuery.objects.filter(pk=int(key)).first() if key.isdigit() else None
        if query is None or not query.enabled:
            return Batch(posts=[], next_cursor=None)
        # Retweets raise reach through the mentions, and the brand's own posts are not news.
        search = f"{query.query.strip()} -is:retweet -from:{self.account.username}"
        extra: dict[str, Any] = {"query": search}
        if not since_id:
            # A new query starts from when it was written, not a week of backlog.
            extra["start_time"] = max(
                query.created_at, datetime.now(UTC) - timedelta(days=SEARCH_DAYS - 1)
            )
        return self._fetch_tweets(
            self.client.search_recent_tweets,
            since_id=since_id,
            page_param="next_token",
            found_by=f"listening:{query.query.strip()}"[:200],
            with_user_id=False,
            **extra,
        )

    def _fetch_tweets(
        self,
        call: Any,
        *,
        since_id: str | None,
        page_param: str = "pagination_token",
        found_by: str = "",
        with_user_id: bool = True,
        **extra: Any,
    ) -> Batch:
        """Every page of a newest-first timeline back to ``since_id``, oldest first."""
        posts: dict[str, InboundPost] = {}
        unreadable: list[UnreadableItem] = []
        newest_id: str | None = None
        args = (self.account.external_id,) if with_user_id else ()
        pages = PageTokens()
        with self._translate_errors():
            while pages.read < MAX_PAGES:
                response = call(
                    *args,
                    since_id=since_id or None,
                    max_results=PAGE_SIZE,
                    tweet_fields=TWEET_FIELDS,
                    expansions=TWEET_EXPANSIONS,
                    user_fields=USER_FIELDS,
                    user_auth=self.user_auth,
                    **{page_param: pages.token},
                    **extra,
                )
                if response.errors and not response.data:
                    raise ChannelError(
                        "; ".join(e.get("detail", str(e)) for e in response.errors),
                        permanent=True,
                    )
                meta = response.meta or {}
                if pages.read == 0 and not pages.repeats:
                    newest_id = meta.get("newest_id")
                users = {
                    str(user.data.get("id")): user.data
                    for user in (response.includes or {}).get("users", [])
                }
                for tweet in response.data or []:
                    data = dict(tweet.data)
                    try:
                        post = self._inbound(data, users, found_by=found_by)
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
                if not pages.follow(meta.get("next_token")):
                    break
        if pages.cut_short:
            # Pages between the cursor and what was read are missing: keep the cursor, so the
            # next poll reads them (what was read now is stored once, the repeats skipped).
            newest_id = None
        ordered = sorted(posts.values(), key=lambda post: int(post.external_id))
        return Batch(
            posts=ordered,
            next_cursor=newest_id,
            rate_limit=self.last_rate_limit,
            unreadable=unreadable,
            cut_short=pages.cut_short,
        )

    def _fetch_dms(self, *, after_id: str | None) -> Batch:
        """The DM events newer than ``after_id``, oldest first. ``/2/dm_events`` has no
        ``since_id``: pages run newest first until they reach the cursor."""
        posts: dict[str, InboundPost] = {}
        unreadable: list[UnreadableItem] = []
        newest_id: str | None = None
        floor = int(after_id) if after_id and after_id.isdigit() else 0
        pages = PageTokens()
        with self._translate_errors():
            while pages.read < MAX_PAGES:
                response = self.client.get_direct_message_events(
                    dm_event_fields=DM_EVENT_FIELDS,
                    event_types=["MessageCreate"],
                    expansions=["sender_id"],
                    user_fields=USER_FIELDS,
                    max_results=PAGE_SIZE,
                    pagination_token=pages.token,
                    user_auth=True,
                )
                users = {
                    str(user.data.get("id")): user.data
                    for user in (response.includes or {}).get("users", [])
                }
                reached_cursor = False
                for event in response.data or []:
                    data = dict(event.data)
                    event_id = str(data.get("id", ""))
                    if event_id.isdigit() and int(event_id) <= floor:
                        reached_cursor = True
                        continue
                    if event_id.isdigit() and (newest_id is None or int(event_id) > int(newest_id)):
                        newest_id = event_id
                    try:
                        post = self._inbound_dm(data, users)
                    except (KeyError, TypeError, ValueError) as exc:
                        unreadable.append(
                            UnreadableItem(
                                external_id=clean_text(event_id)[:64],
                                error=f"Could not read this DM: {type(exc).__name__}: {exc}",
                                raw=data,
                            )
                        )
                        continue
                    posts[post.external_id] = post
                if reached_cursor or not pages.follow((response.meta or {}).get("next_token")):
                    break
        return Batch(
            posts=sorted(posts.values(), key=lambda post: int(post.external_id)),
            next_cursor=None if pages.cut_short else newest_id,
            rate_limit=self.last_rate_limit,
            unreadable=unreadable,
            cut_short=pages.cut_short,
        )

    def _inbound_dm(self, event: dict[str, Any], users: dict[str, dict[str, Any]]) -> InboundPost:
        external_id = str(event["id"])
        if not POST_ID.fullmatch(external_id):
            raise ValueError(f"{external_id!r} is not an X DM event id")
        sender_id = str(event["sender_id"])
        conversation_id = str(event["dm_conversation_id"])
        # A one-to-one conversation is "{smaller id}-{larger id}": the other side is the one
        # the sender spoke to (the brand, or, for the brand's own DM, the customer).
        others = [part for part in conversation_id.split("-") if part and part != sender_id]
        user_data = users.get(sender_id, {})
        return InboundPost(
            external_id=external_id,
            text=clean_text(str(event.get("text", ""))),
            created_at=_parse_time(event.get("created_at")),
            author=self._author(sender_id, user_data),
            kind="dm",
            is_public=False,
            conversation_id=clean_text(conversation_id),
            addressed_account_ids=tuple(clean_text(other) for other in others),
            raw=clean_payload(event),
        )

    @staticmethod
    def _author(author_id: str, user_data: dict[str, Any]) -> Author:
        return Author(
            external_id=clean_text(author_id),
            username=clean_text(str(user_data.get("username", ""))),
            display_name=clean_text(str(user_data.get("name", ""))),
            followers_count=int(user_data.get("public_metrics", {}).get("followers_count", 0) or 0),
            verified=bool(user_data.get("verified", False)),
        )

    def _inbound(
        self, tweet: dict[str, Any], users: dict[str, dict[str, Any]], *, found_by: str = ""
    ) -> InboundPost:
        external_id = str(tweet["id"])
        if not POST_ID.fullmatch(external_id):
            raise ValueError(f"{external_id!r} is not an X post id")
        author_id = str(tweet.get("author_id", ""))
        user_data = users.get(author_id, {})
        references = {ref["type"]: str(ref["id"]) for ref in tweet.get("referenced_tweets", [])}
        replied_to = references.get("replied_to", "")
        addressed = [str(tweet["in_reply_to_user_id"])] if tweet.get("in_reply_to_user_id") else []
        for mention in (tweet.get("entities") or {}).get("mentions", []):
            mentioned = str(mention.get("id") or "")
            if mentioned and mentioned not in addressed:
                addressed.append(mentioned)
        if self.account.external_id in addressed:
            found_by = ""  # it speaks to the brand: a mention, whichever stream saw it first
        metrics = tweet.get("public_metrics") or {}
        quoted = references.get("quoted", "")
        return InboundPost(
            external_id=external_id,
            text=clean_text(str(tweet.get("text", ""))),
            created_at=_parse_time(tweet.get("created_at")),
            author=self._author(author_id, user_data),
            kind="reply" if replied_to else "quote" if quoted else "post",
            is_public=True,
            conversation_id=clean_text(str(tweet.get("conversation_id", ""))),
            in_reply_to_external_id=clean_text(str(replied_to)),
            addressed_account_ids=tuple(clean_text(a) for a in addressed),
            found_by=clean_text(found_by),
            quoted_external_id=clean_text(quoted),
            # A pure retweet opens no ticket: ingest raises the original's reach instead.
            reposted_external_id=clean_text(references.get("retweeted", "")),
            metrics={name: int(metrics.get(name) or 0) for name in METRIC_NAMES if name in metrics},
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
            if kind == OutboundKind.HIDE:
                return self._hide_reply(target.in_reply_to_external_id)
            if kind == OutboundKind.DELETE:
                raise ChannelError(self.DELETE_REFUSAL, permanent=True)
        except ChannelError as exc:
            self.credentials_refused(exc)
            if not first_attempt and exc.status == 403 and "duplicate" in str(exc).lower():
                # X refuses a repeat of a post it already has: most likely our own earlier
                # attempt, whose answer was lost, went through after all.
                exc.maybe_delivered = True
            raise
        raise ChannelError(f"X cannot send a {kind}.", permanent=True)

    def _post_reply(self, *, text: str, in_reply_to: str) -> SentMessage:
        """The reply, with X adding the customer's @handle in front as reply metadata (see
        LEADING_MENTIONS). tweepy 4.17's ``create_tweet`` has no parameter for
        ``auto_populate_reply_metadata``, so the body goes through ``_make_request``, the call
        ``create_tweet`` itself ends in (same signing, same errors)."""
        body = {
            "text": text,
            "reply": {
                "in_reply_to_tweet_id": str(in_reply_to),
                "auto_populate_reply_metadata": True,
            },
        }
        with self._translate_errors(write=True):
            response = self.client._make_request(
                "POST", "/2/tweets", json=body, user_auth=self.user_auth
            )
        data = dict(response.data or {})
        return SentMessage(external_id=str(data["id"]), conversation_id="", raw=data)

    def _hide_reply(self, tweet_id: str) -> SentMessage:
        with self._translate_errors(write=True):
            response = self.client.hide_reply(tweet_id, user_auth=True)
        data = dict(response.data or {})
        if data.get("hidden") is not True:
            raise ChannelError("X did not hide the reply.", permanent=True)
        return SentMessage(external_id=str(tweet_id), raw=data)

    def _dm_refusal(self, recipient: str) -> str | None:
        """Why X will refuse a DM to ``recipient``, when X says so beforehand (the user field
        ``receives_your_dm``: "Indicates if you can send a DM to this User"); None when they
        can receive it or X does not say (the send then gets X's own answer)."""
        try:
            response = self.client.get_user(
                id=recipient, user_fields=["receives_your_dm"], user_auth=self.user_auth
            )
        except (tweepy.TweepyException, requests.RequestException):
            return None
        user = dict(response.data.data) if response.data is not None else {}
        if user.get("receives_your_dm") is False:
            return (
                f"@{clean_text(str(user.get('username', recipient)))} does not accept direct "
                f"messages from @{self.account.username} on X, so nothing was sent. Ask them "
                "publicly to follow the brand or open their DMs, then try again."
            )
        return None

    def _send_dm(self, *, text: str, recipient: str) -> SentMessage:
        refusal = self._dm_refusal(recipient)
        if refusal:
            raise ChannelError(refusal, permanent=True, status=403)
        try:
            with self._translate_errors(write=True):
                response = self.client.create_direct_message(
                    participant_id=recipient, text=text, user_auth=self.user_auth
                )
        except ChannelError as exc:
            if exc.status == 403 and DM_NOT_ALLOWED in str(exc).lower():
                raise ChannelError(
                    "X refused the direct message: this customer does not accept direct "
                    f"messages from @{self.account.username}. Ask them publicly to follow the "
                    "brand or open their DMs, then try again.",
                    permanent=True,
                    status=403,
                ) from None
            raise
        data = dict(response.data or {})
        return SentMessage(
            external_id=str(data["dm_event_id"]),
            conversation_id=str(data.get("dm_conversation_id", "")),
            raw=data,
        )
