"""The X emulator's in-memory world: users, posts and DM events, safe to share between threads.

Ids are snowflake-like, ``((ms since the Twitter epoch) << 22) | sequence``, so they grow with
wall-clock time and an emulator restarted with an empty store still hands out ids larger than
the ones a poller stored as its ``since_id`` before the restart.

With a ``state_path`` the world survives restarts: it is loaded from that JSON file at start and
written back (atomically, debounced by ``save_delay`` seconds) after every change; ``flush()``
or ``close()`` writes any pending change at once. A file that cannot be read is moved aside
to ``<name>.corrupt-<timestamp>`` and the emulator starts empty.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from channels_social.sandbox.persistence import PersistentStore

logger = logging.getLogger(__name__)
STATE_VERSION = 1

TWITTER_EPOCH_MS = 1288834974657
# A handle as X recognises it inside text: not preceded by a word character.
MENTION_RE = re.compile(r"(?<![A-Za-z0-9_@])@([A-Za-z0-9_]{1,15})(?![A-Za-z0-9_])")
ID_RE = re.compile(r"^[0-9]{1,19}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")


# The run of @handles a reply starts with: on X that is reply metadata, not counted text.
LEADING_MENTIONS = re.compile(r"^(?:\s*@[A-Za-z0-9_]{1,15}(?![A-Za-z0-9_]))+\s*")


def counted_text(text: str, *, is_reply: bool) -> str:
    """The part of a post's text X counts toward 280 (and compares for duplicates): all of it,
    less a reply's leading @mentions (simplified replies, 2017: they are reply metadata;
    PLATFORMS.md)."""
    return LEADING_MENTIONS.sub("", text, count=1) if is_reply else text


class StoreError(ValueError):
    """Input the emulator refuses (unknown reply target, bad handle, ...)."""


def iso(moment: datetime) -> str:
    """X's timestamp format: UTC, milliseconds, trailing Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 timestamp; naive values are taken as UTC."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class XUser:
    id: str
    username: str
    name: str
    followers_count: int = 0
    following_count: int = 0
    tweet_count: int = 0
    listed_count: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    verified: bool = False
    # Whether this user accepts direct messages from accounts they do not follow (the brand):
    # X refuses a DM to a user who does not ("You cannot send messages to this user.").
    accepts_dms: bool = True

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "followers_count": self.followers_count,
            "following_count": self.following_count,
            "tweet_count": self.tweet_count,
            "listed_count": self.listed_count,
            "created_at": iso(self.created_at),
            "verified": self.verified,
            "accepts_dms": self.accepts_dms,
        }


@dataclass
class XTweet:
    id: str
    text: str
    author_id: str
    created_at: datetime
    conversation_id: str
    in_reply_to_user_id: str | None = None
    in_reply_to_tweet_id: str | None = None
    mentions: list[dict[str, Any]] = field(default_factory=list)
    quoted_tweet_id: str | None = None
    retweeted_tweet_id: str | None = None
    hidden: bool = False
    like_count: int = 0

    def referenced_tweets(self) -> list[dict[str, str]]:
        """X's ``referenced_tweets``: what this post retweets, quotes or replies to."""
        refs = []
        if self.retweeted_tweet_id:
            refs.append({"type": "retweeted", "id": self.retweeted_tweet_id})
        if self.quoted_tweet_id:
            refs.append({"type": "quoted", "id": self.quoted_tweet_id})
        if self.in_reply_to_tweet_id:
            refs.append({"type": "replied_to", "id": self.in_reply_to_tweet_id})
        return refs

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "author_id": self.author_id,
            "created_at": iso(self.created_at),
            "conversation_id": self.conversation_id,
            "in_reply_to_user_id": self.in_reply_to_user_id,
            "in_reply_to_tweet_id": self.in_reply_to_tweet_id,
            "mentions": [dict(mention) for mention in self.mentions],
            "quoted_tweet_id": self.quoted_tweet_id,
            "retweeted_tweet_id": self.retweeted_tweet_id,
            "hidden": self.hidden,
            "like_count": self.like_count,
        }


@dataclass
class XDmEvent:
    dm_event_id: str
    dm_conversation_id: str
    sender_id: str
    participant_ids: list[str]
    text: str
    created_at: datetime

    def record(self) -> dict[str, Any]:
        return {
            "dm_event_id": self.dm_event_id,
            "dm_conversation_id": self.dm_conversation_id,
            "sender_id": self.sender_id,
            "participant_ids": list(self.participant_ids),
            "text": self.text,
            "created_at": iso(self.created_at),
        }


def one_to_one_conversation_id(first_id: str, second_id: str) -> str:
    """X names a one-to-one conversation ``{smaller}-{larger}``, compared as integers."""
    low, high = sorted((first_id, second_id), key=int)
    return f"{low}-{high}"


class XStore(PersistentStore):
    """Everything the emulator knows. Every public method takes the one lock.

    ``state_path`` (optional) makes the users, posts and DM events persistent; the request log
    and rate-limit windows live in the app and are never saved.
    """

    label = "X sandbox"

    def __init__(self, state_path: Path | str | None = None, *, save_delay: float = 0.2) -> None:
        self._lock = threading.RLock()
        self._last_id = 0
        self.users: dict[str, XUser] = {}
        self.tweets: dict[str, XTweet] = {}
        self.dm_events: list[XDmEvent] = []
        # Indexes kept as users and posts are added, so no request scans the whole store: who
        # each post is addressed to (the posts naming a lowercased handle, the replies to a user
        # id) for ``mentions_of``; each author's posts for ``tweets_by`` and ``has_duplicate``;
        # users by lowercased handle; how many posts retweet, quote or reply to each post for
        # ``public_metrics``. A page of a 100,000-post store (bench/ingest_storm.py) is then
        # served in about the time of a 100-post one.
        self._naming: dict[str, list[XTweet]] = {}
        self._replying_to: dict[str, list[XTweet]] = {}
        self._by_author: dict[str, list[XTweet]] = {}
        self._by_username: dict[str, XUser] = {}
        self._retweets_of: Counter[str] = Counter()
        self._replies_to: Counter[str] = Counter()
        self._quotes_of: Counter[str] = Counter()
        self._init_persistence(state_path, save_delay)

    def reset(self) -> None:
        # _last_id survives a reset on purpose: ids must keep growing.
        with self._lock:
            self.users.clear()
            self.tweets.clear()
            self.dm_events.clear()
            self._clear_indexes()
            self._changed()

    # Persistence

    def snapshot(self) -> dict[str, Any]:
        """The persistent part of the world as JSON-ready data."""
        with self._lock:
            return {
                "version": STATE_VERSION,
                "last_id": str(self._last_id),
                "users": [
                    {**user.record(), "created_at": user.created_at.isoformat()}
                    for user in self.users.values()
                ],
                "tweets": [
                    {**tweet.record(), "created_at": tweet.created_at.isoformat()}
                    for tweet in self.tweets.values()
                ],
                "dm_events": [
                    {**event.record(), "created_at": event.created_at.isoformat()}
                    for event in self.dm_events
                ],
            }

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise ValueError(f"not an X sandbox state file (version {STATE_VERSION})")
            users = [_user_from(item) for item in data["users"]]
            tweets = [_tweet_from(item) for item in data["tweets"]]
            events = [_dm_from(item) for item in data["dm_events"]]
            last_id = int(data.get("last_id") or 0)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                os.replace(path, aside)
                where = f"moved it to {aside}"
            except OSError as move_error:
                where = f"could not move it aside ({move_error})"
            logger.warning(
                "X sandbox: the state file %s is unreadable (%s: %s); %s and starting empty.",
                path,
                type(exc).__name__,
                exc,
                where,
            )
            return
        with self._lock:
            self.users = {user.id: user for user in users}
            self.tweets = {tweet.id: tweet for tweet in tweets}
            self._clear_indexes()
            for user in self.users.values():
                self._by_username[user.username.lower()] = user
            for tweet in tweets:
                self._index(tweet)
            self.dm_events = events
            # New ids must be larger than every id handed out before, whatever the clock says.
            known = [int(t.id) for t in tweets] + [int(e.dm_event_id) for e in events]
            self._last_id = max([self._last_id, last_id, *known])
        logger.info(
            "X sandbox: loaded %d users, %d posts and %d DM events from %s",
            len(users),
            len(tweets),
            len(events),
            path,
        )

    def next_id(self) -> str:
        with self._lock:
            candidate = (int(time.time() * 1000) - TWITTER_EPOCH_MS) << 22
            self._last_id = max(candidate, self._last_id + 1)
            return str(self._last_id)

    # Users

    def upsert_user(
        self,
        *,
        id: str,
        username: str,
        name: str | None = None,
        followers_count: int | None = None,
        following_count: int | None = None,
        listed_count: int | None = None,
        verified: bool | None = None,
        accepts_dms: bool | None = None,
    ) -> XUser:
        if not ID_RE.match(str(id)):
            raise StoreError(f"User id must be 1 to 19 digits, not {id!r}.")
        if not USERNAME_RE.match(username or ""):
            raise StoreError(f"Username must be 1 to 15 letters, digits or _, not {username!r}.")
        with self._lock:
            other = self.user_by_username(username)
            if other is not None and other.id != str(id):
                raise StoreError(f"@{username} already belongs to user {other.id}.")
            user = self.users.get(str(id))
            if user is None:
                user = XUser(id=str(id), username=username, name=name or username)
                self.users[user.id] = user
            if self._by_username.get(user.username.lower()) is user:
                del self._by_username[user.username.lower()]
            user.username = username
            self._by_username[username.lower()] = user
            if name:
                user.name = name
            if followers_count is not None:
                user.followers_count = max(0, int(followers_count))
            if following_count is not None:
                user.following_count = max(0, int(following_count))
            if listed_count is not None:
                user.listed_count = max(0, int(listed_count))
            if verified is not None:
                user.verified = bool(verified)
            if accepts_dms is not None:
                user.accepts_dms = bool(accepts_dms)
            self._changed()
            return user

    def get_user(self, user_id: str) -> XUser | None:
        with self._lock:
            return self.users.get(str(user_id))

    def user_by_username(self, username: str) -> XUser | None:
        with self._lock:
            return self._by_username.get(username.lstrip("@").lower())

    # Tweets

    def add_tweet(
        self,
        *,
        author_id: str,
        text: str,
        in_reply_to_tweet_id: str | None = None,
        created_at: datetime | None = None,
        quote_of: str | None = None,
        retweet_of: str | None = None,
    ) -> XTweet:
        """A post; ``quote_of`` makes it a quote post, ``retweet_of`` a pure retweet (its text
        becomes X's ``RT @author: <text>``)."""
        with self._lock:
            author = self.users.get(str(author_id))
            if author is None:
                raise StoreError(f"Unknown author {author_id!r}.")
            parent = None
            if in_reply_to_tweet_id:
                parent = self.tweets.get(str(in_reply_to_tweet_id))
                if parent is None:
                    raise StoreError(f"No post with id {in_reply_to_tweet_id!r} to reply to.")
            for referenced in (quote_of, retweet_of):
                if referenced and str(referenced) not in self.tweets:
                    raise StoreError(f"No post with id {referenced!r} to quote or retweet.")
            if retweet_of:
                original = self.tweets[str(retweet_of)]
                text = f"RT @{self.users[original.author_id].username}: {original.text}"
                parent = None
            tweet_id = self.next_id()
            tweet = XTweet(
                id=tweet_id,
                text=text,
                author_id=author.id,
                created_at=created_at or datetime.now(UTC),
                conversation_id=parent.conversation_id if parent else tweet_id,
                in_reply_to_user_id=parent.author_id if parent else None,
                in_reply_to_tweet_id=parent.id if parent else None,
                mentions=self._mention_entities(text),
                quoted_tweet_id=str(quote_of) if quote_of else None,
                retweeted_tweet_id=str(retweet_of) if retweet_of else None,
            )
            self.tweets[tweet_id] = tweet
            self._index(tweet)
            author.tweet_count += 1
            self._changed()
            return tweet

    def _clear_indexes(self) -> None:
        for index in (
            self._naming,
            self._replying_to,
            self._by_author,
            self._by_username,
            self._retweets_of,
            self._replies_to,
            self._quotes_of,
        ):
            index.clear()

    def _index(self, tweet: XTweet) -> None:
        for handle in {m["username"].lower() for m in tweet.mentions}:
            self._naming.setdefault(handle, []).append(tweet)
        if tweet.in_reply_to_user_id:
            self._replying_to.setdefault(tweet.in_reply_to_user_id, []).append(tweet)
        self._by_author.setdefault(tweet.author_id, []).append(tweet)
        if tweet.retweeted_tweet_id:
            self._retweets_of[tweet.retweeted_tweet_id] += 1
        if tweet.in_reply_to_tweet_id:
            self._replies_to[tweet.in_reply_to_tweet_id] += 1
        if tweet.quoted_tweet_id:
            self._quotes_of[tweet.quoted_tweet_id] += 1

    def _mention_entities(self, text: str) -> list[dict[str, Any]]:
        entities = []
        for match in MENTION_RE.finditer(text):
            entity: dict[str, Any] = {
                "start": match.start(),
                "end": match.end(),
                "username": match.group(1),
            }
            user = self.user_by_username(match.group(1))
            if user is not None:
                entity["id"] = user.id
            entities.append(entity)
        return entities

    def get_tweet(self, tweet_id: str) -> XTweet | None:
        with self._lock:
            return self.tweets.get(str(tweet_id))

    def public_metrics(self, tweet: XTweet) -> dict[str, int]:
        """X's ``public_metrics`` of a post, counted from the world as it is now."""
        with self._lock:
            retweets = self._retweets_of[tweet.id]
            replies = self._replies_to[tweet.id]
            quotes = self._quotes_of[tweet.id]
        return {
            "retweet_count": retweets,
            "reply_count": replies,
            "like_count": tweet.like_count,
            "quote_count": quotes,
            "impression_count": 0,
            "bookmark_count": 0,
        }

    def set_hidden(self, tweet_id: str, hidden: bool) -> XTweet:
        with self._lock:
            tweet = self.tweets.get(str(tweet_id))
            if tweet is None:
                raise StoreError(f"No post with id {tweet_id!r}.")
            tweet.hidden = bool(hidden)
            self._changed()
            return tweet

    def tweets_by(self, user_id: str) -> list[XTweet]:
        """The user's own posts, newest first (``GET /2/users/:id/tweets``)."""
        with self._lock:
            found = list(self._by_author.get(str(user_id), ()))
        return sorted(found, key=lambda tweet: int(tweet.id), reverse=True)

    def search(self, query: str) -> list[XTweet]:
        """Posts matching an X search query, newest first (see ``SearchQuery``)."""
        compiled = SearchQuery.parse(query)
        with self._lock:
            found = [t for t in self.tweets.values() if compiled.matches(t, self.users)]
        return sorted(found, key=lambda tweet: int(tweet.id), reverse=True)

    def has_duplicate(self, *, author_id: str, text: str, is_reply: bool = False) -> bool:
        """Whether the author already posted this text. A reply's leading @mentions are reply
        metadata, not its content: the same canned answer to two customers is a duplicate."""
        body = counted_text(text, is_reply=is_reply).strip()
        with self._lock:
            return any(
                counted_text(t.text, is_reply=t.in_reply_to_tweet_id is not None).strip() == body
                for t in self._by_author.get(str(author_id), ())
            )

    def mentions_of(self, user_id: str) -> list[XTweet]:
        """Posts that name ``@username`` or reply to one of the user's posts, newest first.

        The user's own posts are left out, so a brand's reply to itself is not a new mention.
        """
        with self._lock:
            user = self.users.get(str(user_id))
            if user is None:
                return []
            candidates = {
                tweet.id: tweet
                for tweet in (
                    *self._naming.get(user.username.lower(), ()),
                    *self._replying_to.get(user.id, ()),
                )
            }
            found = [tweet for tweet in candidates.values() if tweet.author_id != user.id]
        return sorted(found, key=lambda tweet: int(tweet.id), reverse=True)

    # Direct messages

    def add_dm(
        self, *, sender_id: str, recipient_id: str, text: str, created_at: datetime | None = None
    ) -> XDmEvent:
        with self._lock:
            if str(sender_id) not in self.users or str(recipient_id) not in self.users:
                raise StoreError("Both DM participants must be known users.")
            event = XDmEvent(
                dm_event_id=self.next_id(),
                dm_conversation_id=one_to_one_conversation_id(str(sender_id), str(recipient_id)),
                sender_id=str(sender_id),
                participant_ids=[str(sender_id), str(recipient_id)],
                text=text,
                created_at=created_at or datetime.now(UTC),
            )
            self.dm_events.append(event)
            self._changed()
            return event

    def dm_events_with(self, participant_id: str | None = None) -> list[XDmEvent]:
        with self._lock:
            return [
                event
                for event in self.dm_events
                if participant_id is None or str(participant_id) in event.participant_ids
            ]


# A term of an X search query: an optional "-", then a quoted phrase or a bare token.
QUERY_TERM = re.compile(r'-?"[^"]*"|\S+')


@dataclass(frozen=True)
class SearchQuery:
    """The part of X's search syntax the emulator understands: words and ``#hashtags`` and
    ``@mentions`` (whole tokens, any case), ``"quoted phrases"``, ``-`` before any term,
    ``from:handle``, ``is:retweet``, ``is:reply``, ``is:quote``, and ``OR`` between groups of
    terms that must all match (no parentheses)."""

    groups: tuple[tuple[tuple[bool, str, str], ...], ...]

    @classmethod
    def parse(cls, query: str) -> SearchQuery:
        groups: list[list[tuple[bool, str, str]]] = [[]]
        for raw in QUERY_TERM.findall(query):
            if raw == "OR":
                groups.append([])
                continue
            negated = raw.startswith("-") and len(raw) > 1
            term = raw[1:] if negated else raw
            if term.startswith('"'):
                groups[-1].append((negated, "phrase", term.strip('"').lower()))
            elif term.lower().startswith(("from:", "is:")):
                operator, _, value = term.partition(":")
                groups[-1].append((negated, operator.lower(), value.lower()))
            else:
                groups[-1].append((negated, "word", term.lower()))
        if not any(groups):
            raise StoreError("The search query has no terms.")
        return cls(tuple(tuple(group) for group in groups if group))

    def matches(self, tweet: XTweet, users: dict[str, XUser]) -> bool:
        return any(self._all(group, tweet, users) for group in self.groups)

    def _all(
        self, group: tuple[tuple[bool, str, str], ...], tweet: XTweet, users: dict[str, XUser]
    ) -> bool:
        text = tweet.text.lower()
        for negated, kind, value in group:
            if kind == "phrase":
                hit = value in text
            elif kind == "word":
                hit = (
                    re.search(rf"(?<![\w#@]){re.escape(value)}(?!\w)", text) is not None
                    if value[:1] not in "#@"
                    else re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None
                )
            elif kind == "from":
                author = users.get(tweet.author_id)
                hit = author is not None and author.username.lower() == value.lstrip("@")
            elif kind == "is":
                hit = {
                    "retweet": tweet.retweeted_tweet_id is not None,
                    "reply": tweet.in_reply_to_tweet_id is not None,
                    "quote": tweet.quoted_tweet_id is not None,
                }.get(value, False)
            else:  # pragma: no cover - parse() makes no other kind
                hit = False
            if hit == negated:
                return False
        return True


def _id(value: Any) -> str:
    if not ID_RE.match(str(value)):
        raise ValueError(f"bad id {value!r}")
    return str(value)


def _opt_id(value: Any) -> str | None:
    return None if value is None else _id(value)


def _user_from(item: dict[str, Any]) -> XUser:
    return XUser(
        id=_id(item["id"]),
        username=str(item["username"]),
        name=str(item["name"]),
        followers_count=int(item.get("followers_count", 0)),
        following_count=int(item.get("following_count", 0)),
        tweet_count=int(item.get("tweet_count", 0)),
        listed_count=int(item.get("listed_count", 0)),
        created_at=parse_iso(item["created_at"]),
        verified=bool(item.get("verified", False)),
        accepts_dms=bool(item.get("accepts_dms", True)),
    )


def _tweet_from(item: dict[str, Any]) -> XTweet:
    mentions = item.get("mentions", [])
    if not isinstance(mentions, list) or not all(isinstance(m, dict) for m in mentions):
        raise ValueError("mentions must be a list of objects")
    return XTweet(
        id=_id(item["id"]),
        text=str(item["text"]),
        author_id=_id(item["author_id"]),
        created_at=parse_iso(item["created_at"]),
        conversation_id=_id(item["conversation_id"]),
        in_reply_to_user_id=_opt_id(item.get("in_reply_to_user_id")),
        in_reply_to_tweet_id=_opt_id(item.get("in_reply_to_tweet_id")),
        mentions=[dict(m) for m in mentions],
        quoted_tweet_id=_opt_id(item.get("quoted_tweet_id")),
        retweeted_tweet_id=_opt_id(item.get("retweeted_tweet_id")),
        hidden=bool(item.get("hidden", False)),
        like_count=int(item.get("like_count", 0)),
    )


def _dm_from(item: dict[str, Any]) -> XDmEvent:
    return XDmEvent(
        dm_event_id=_id(item["dm_event_id"]),
        dm_conversation_id=str(item["dm_conversation_id"]),
        sender_id=_id(item["sender_id"]),
        participant_ids=[_id(p) for p in item["participant_ids"]],
        text=str(item["text"]),
        created_at=parse_iso(item["created_at"]),
    )
