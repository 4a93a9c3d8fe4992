"""The X emulator's in-memory world: users, posts and DM events, safe to share between threads.

Ids are snowflake-like, ``((ms since the Twitter epoch) << 22) | sequence``, so they grow with
wall-clock time and an emulator restarted with an empty store still hands out ids larger than
the ones a poller stored as its ``since_id`` before the restart.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TWITTER_EPOCH_MS = 1288834974657
# A handle as X recognises it inside text: not preceded by a word character.
MENTION_RE = re.compile(r"(?<![A-Za-z0-9_@])@([A-Za-z0-9_]{1,15})(?![A-Za-z0-9_])")
ID_RE = re.compile(r"^[0-9]{1,19}$")
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")


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


class XStore:
    """Everything the emulator knows. Every public method takes the one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._last_id = 0
        self.users: dict[str, XUser] = {}
        self.tweets: dict[str, XTweet] = {}
        self.dm_events: list[XDmEvent] = []

    def reset(self) -> None:
        # _last_id survives a reset on purpose: ids must keep growing.
        with self._lock:
            self.users.clear()
            self.tweets.clear()
            self.dm_events.clear()

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
            user.username = username
            if name:
                user.name = name
            if followers_count is not None:
                user.followers_count = max(0, int(followers_count))
            if following_count is not None:
                user.following_count = max(0, int(following_count))
            if listed_count is not None:
                user.listed_count = max(0, int(listed_count))
            return user

    def get_user(self, user_id: str) -> XUser | None:
        with self._lock:
            return self.users.get(str(user_id))

    def user_by_username(self, username: str) -> XUser | None:
        wanted = username.lstrip("@").lower()
        with self._lock:
            return next((u for u in self.users.values() if u.username.lower() == wanted), None)

    # Tweets

    def add_tweet(
        self,
        *,
        author_id: str,
        text: str,
        in_reply_to_tweet_id: str | None = None,
        created_at: datetime | None = None,
    ) -> XTweet:
        with self._lock:
            author = self.users.get(str(author_id))
            if author is None:
                raise StoreError(f"Unknown author {author_id!r}.")
            parent = None
            if in_reply_to_tweet_id:
                parent = self.tweets.get(str(in_reply_to_tweet_id))
                if parent is None:
                    raise StoreError(f"No post with id {in_reply_to_tweet_id!r} to reply to.")
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
            )
            self.tweets[tweet_id] = tweet
            author.tweet_count += 1
            return tweet

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

    def has_duplicate(self, *, author_id: str, text: str) -> bool:
        with self._lock:
            return any(t.author_id == author_id and t.text == text for t in self.tweets.values())

    def mentions_of(self, user_id: str) -> list[XTweet]:
        """Posts that name ``@username`` or reply to one of the user's posts, newest first.

        The user's own posts are left out, so a brand's reply to itself is not a new mention.
        """
        with self._lock:
            user = self.users.get(str(user_id))
            if user is None:
                return []
            handle = user.username.lower()
            found = [
                tweet
                for tweet in self.tweets.values()
                if tweet.author_id != user.id
                and (
                    tweet.in_reply_to_user_id == user.id
                    or any(m["username"].lower() == handle for m in tweet.mentions)
                )
            ]
        return sorted(found, key=lambda tweet: int(tweet.id), reverse=True)

    # Direct messages

    def add_dm(self, *, sender_id: str, recipient_id: str, text: str) -> XDmEvent:
        with self._lock:
            if str(sender_id) not in self.users or str(recipient_id) not in self.users:
                raise StoreError("Both DM participants must be known users.")
            event = XDmEvent(
                dm_event_id=self.next_id(),
                dm_conversation_id=one_to_one_conversation_id(str(sender_id), str(recipient_id)),
                sender_id=str(sender_id),
                participant_ids=[str(sender_id), str(recipient_id)],
                text=text,
                created_at=datetime.now(UTC),
            )
            self.dm_events.append(event)
            return event

    def dm_events_with(self, participant_id: str | None = None) -> list[XDmEvent]:
        with self._lock:
            return [
                event
                for event in self.dm_events
                if participant_id is None or str(participant_id) in event.participant_ids
            ]
