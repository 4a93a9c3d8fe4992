"""The one interface every social network adapter implements, and its one error type.

Callers (polling, the outbox) speak only these dataclasses and ``ChannelError``; nothing
outside an adapter package imports tweepy or facebook-sdk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from channels_social.models import SocialAccount


class ChannelError(Exception):
    """A call to a platform failed.

    ``permanent`` says whether trying again can help (a 400 or 403 cannot; a 429 or a 503 can).
    ``retry_after`` is the number of seconds to wait before the next try, when the platform said.
    ``maybe_delivered`` marks a write whose fate is unknown (the request went out, the answer
    never came back): sending it again could post twice, so it must not be retried blindly.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        status: int | None = None,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status
        self.maybe_delivered = maybe_delivered


@dataclass(frozen=True)
class Author:
    external_id: str
    username: str
    display_name: str = ""
    followers_count: int = 0


@dataclass(frozen=True)
class InboundPost:
    """One post that reached the brand (a mention, a reply in a thread, later a DM or comment)."""

    external_id: str
    text: str
    created_at: datetime
    author: Author
    kind: str  # tickets.models.MessageKind value: "post", "reply", "dm", ...
    is_public: bool = True
    conversation_id: str = ""
    in_reply_to_external_id: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class RateLimit:
    limit: int | None
    remaining: int | None
    reset_at: datetime | None


@dataclass(frozen=True)
class MentionBatch:
    """Everything new since the cursor, oldest first, and the cursor to store once it is saved."""

    posts: list[InboundPost]
    newest_id: str | None
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class SentMessage:
    external_id: str
    conversation_id: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


class ChannelAdapter(ABC):
    """Talks to one platform on behalf of one SocialAccount."""

    platform: ClassVar[str]

    def __init__(self, account: SocialAccount) -> None:
        self.account = account

    @classmethod
    @abstractmethod
    def text_problem(cls, *, public: bool, text: str) -> str | None:
        """Why ``text`` cannot be sent as a public reply (or a private message), or None."""

    @abstractmethod
    def fetch_mentions(self, *, since_id: str | None) -> MentionBatch:
        """Every post that mentions the account since ``since_id`` (all of them if None)."""

    @abstractmethod
    def send_public_reply(self, *, text: str, in_reply_to_external_id: str) -> SentMessage:
        """Reply in public under the given post."""

    @abstractmethod
    def send_private_message(self, *, text: str, recipient_external_id: str) -> SentMessage:
        """Send a private message (DM) to the given user."""
