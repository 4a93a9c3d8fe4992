"""The one platform-neutral contract every social network adapter implements, and its error type.

Callers (polling, webhooks, the outbox, the ticket page) speak only these dataclasses, the
``Stream`` and ``OutboundKind`` names and ``ChannelError``; nothing outside an adapter package
imports tweepy or facebook-sdk, and nothing outside it knows a platform's quirks (how its ids
order, how it words a duplicate refusal, what its post links look like, which keys it needs).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from channels_social.models import SocialAccount


class ChannelError(Exception):
    """A call to a platform failed.

    ``permanent`` says whether trying again can help (a 400 or 403 cannot; a 429 or a 503 can).
    ``retry_after`` is the number of seconds to wait before the next try, when the platform said.
    ``maybe_delivered`` marks a write whose fate is unknown (the request went out, the answer
    never came back): sending it again could post twice, so it must not be retried blindly.
    ``status`` is the HTTP status, when there was one, for logs and rate-limit handling.
    ``auth_failed`` marks the platform refusing the account's credentials themselves (X's 401,
    Graph's code 190: expired or revoked): every call will fail until someone reconnects it,
    so polling disables the channel and tells the admins instead of trying again and again.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        status: int | None = None,
        maybe_delivered: bool = False,
        auth_failed: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent or auth_failed
        self.retry_after = retry_after
        self.status = status
        self.maybe_delivered = maybe_delivered
        self.auth_failed = auth_failed


class Stream(StrEnum):
    """What a poll reads. Each (account, stream, key) has a cursor of its own."""

    MENTIONS = "mentions"
    DIRECT_MESSAGES = "direct_messages"
    SEARCH = "search"  # keyed by the listening query
    OWN_POSTS = "own_posts"  # the account's own posts: replies it sent outside CareInbox
    PAGE_FEED = "page_feed"  # a page's posts, visitor posts and their comments
    TAGGED = "tagged"  # posts that tag a page
    CONVERSATIONS = "conversations"  # Messenger threads


class OutboundKind(StrEnum):
    """What the brand sends. Each kind has its own text rules, checked before it is queued."""

    PUBLIC_REPLY = "public_reply"  # X: a reply post; Facebook: a comment reply
    PRIVATE_MESSAGE = "private_message"  # X: a DM; Facebook: a Messenger message
    PRIVATE_REPLY = "private_reply"  # Facebook: the one private reply to a comment
    HIDE = "hide"  # X: hide a reply; Facebook: hide a comment (moderation, with a reason)
    DELETE = "delete"  # Facebook: delete a comment on the page (moderation); X: never


#: The outbound kinds that act on a customer's post instead of saying something: moderation.
#: They take no text, hold no care step back, and are never a way to answer.
MODERATION_KINDS: frozenset[OutboundKind] = frozenset({OutboundKind.HIDE, OutboundKind.DELETE})


@dataclass(frozen=True)
class Author:
    external_id: str
    username: str
    display_name: str = ""
    followers_count: int = 0
    verified: bool = False


@dataclass(frozen=True)
class InboundPost:
    """One post that reached the brand (a mention, a reply in a thread, later a DM or comment).

    ``addressed_account_ids`` are the platform ids of the accounts the author spoke to, most
    directly addressed first (the account replied to, then mentions in the order written), so
    that a post fetched by several of an organisation's handles is filed under the same one
    whichever fetched it first.
    """

    external_id: str
    text: str
    created_at: datetime
    author: Author
    kind: str  # tickets.models.MessageKind value: "post", "reply", "dm", ...
    is_public: bool = True
    conversation_id: str = ""
    in_reply_to_external_id: str = ""
    addressed_account_ids: tuple[str, ...] = ()
    #: How intake found it, when not addressed to the brand: "listening:<query>".
    found_by: str = ""
    #: The post this one quotes, or (a pure repost, which opens no ticket) reposts.
    quoted_external_id: str = ""
    reposted_external_id: str = ""
    #: The platform's public counts at fetch time (reposts, quotes, likes, replies).
    metrics: dict[str, int] = field(default_factory=dict, compare=False)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class PostUpdate:
    """A change to a post already delivered: its author ``edited`` it (``text`` is the new
    text) or ``removed`` it. Platforms say so in webhooks (Facebook's ``verb: edited`` and
    ``verb: remove``); intake hands updates to the registered update sink."""

    external_id: str
    change: str  # "edited" or "removed"
    at: datetime
    text: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class UnreadableItem:
    """An item a platform sent that the adapter could not make a post of; set aside, not lost."""

    external_id: str
    error: str
    raw: Any


@dataclass(frozen=True)
class RateLimit:
    limit: int | None
    remaining: int | None
    reset_at: datetime | None


@dataclass(frozen=True)
class RateObservation:
    """What a platform's rate headers said about one budget, the last time the adapter saw them.

    ``endpoint`` names the budget: an X endpoint (``GET /2/users/:id/mentions``), or Graph's
    ``app`` (``X-App-Usage``) and ``page`` (``X-Business-Use-Case-Usage``) budgets. X counts
    calls (``limit``, ``remaining``, ``reset_at``); Graph gives a share used (``used_percent``,
    the highest of call count, CPU time and total time) and, when over, ``reset_at`` from
    ``estimated_time_to_regain_access``. ``raw`` is the header text as received.
    """

    endpoint: str
    observed_at: datetime
    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None
    used_percent: int | None = None
    raw: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Pacing:
    """When the next poll may run, given the rate budgets (None: the usual interval)."""

    not_before: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class Batch:
    """What is new in one stream since the cursor, oldest first, and the cursor to store once
    it is saved (None: keep the current one). ``cut_short`` says why the listing stopped
    before reaching the cursor (the platform sent a page already read again and again): the
    posts read are stored, the cursor stays, the next poll reads the rest."""

    posts: list[InboundPost]
    next_cursor: str | None
    rate_limit: RateLimit | None = None
    unreadable: list[UnreadableItem] = field(default_factory=list)
    cut_short: str = ""


@dataclass(frozen=True)
class SendTarget:
    """Where an outbound message goes: under a post, or to a person.

    ``message_tag`` is a platform's tag that lets a message out past its usual window (Facebook's
    ``HUMAN_AGENT``), as ``reply_window`` decided just before the send.
    """

    in_reply_to_external_id: str = ""
    recipient_external_id: str = ""
    message_tag: str = ""


@dataclass(frozen=True)
class PostFact:
    """One of the customer's posts, as the reply rules need it: its id and when it was made."""

    external_id: str
    created_at: datetime
    kind: str = ""  # tickets' message kind: "comment", "visitor_post", "post", ...


@dataclass(frozen=True)
class ReplyFacts:
    """What a platform's reply rules need to know about a ticket, gathered from its messages.

    ``reply_to`` is the customer's post a reply would answer (their latest public post, or, at
    send time, the one the queued reply answers); ``privately_answered`` are the posts that
    already have a private reply (sent or on its way).
    """

    now: datetime
    customer_name: str = ""
    last_private_from_customer_at: datetime | None = None
    reply_to: PostFact | None = None
    privately_answered: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Window:
    """Whether a message of ``kind`` may go out now, and in words why not or how.

    Closed: ``reason`` says why, ``alternative`` what is still open. Open: ``closes_at`` is when
    it stops being allowed (None: no window), ``tag`` a platform tag the send must carry, and
    ``reason`` a note for the agent on how it goes out (empty when nothing is special).
    """

    open: bool
    kind: OutboundKind
    closes_at: datetime | None = None
    reason: str = ""
    alternative: str = ""
    tag: str = ""

    @property
    def refusal(self) -> str:
        return " ".join(part for part in (self.reason, self.alternative) if part)


def ago(delta: timedelta) -> str:
    """A duration for people: "3 h", "2 days", "40 min"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 3600:
        return f"{seconds // 3600} h"
    return f"{max(1, seconds // 60)} min"


@dataclass(frozen=True)
class SentMessage:
    external_id: str
    conversation_id: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CredentialField:
    """One secret an account of this platform needs; the admin form is built from these."""

    name: str
    label: str
    help_text: str = ""


class ChannelAdapter(ABC):
    """Talks to one platform on behalf of one SocialAccount."""

    platform: ClassVar[str]
    #: The streams beat polls for every account of this platform.
    polled_streams: ClassVar[tuple[Stream, ...]]
    #: What a message of each kind is for a person: "Public reply", "Direct message".
    outbound_kinds: ClassVar[dict[OutboundKind, str]]
    credential_fields: ClassVar[Sequence[CredentialField]]
    #: The shortest time between two polls of one account, whatever POLL_INTERVAL_SECONDS says.
    min_poll_interval_seconds: ClassVar[int] = 0

    def __init__(self, account: SocialAccount) -> None:
        self.account = account

    @classmethod
    @abstractmethod
    def text_problem(cls, kind: OutboundKind, text: str) -> str | None:
        """Why ``text`` cannot be sent as a message of ``kind``, or None."""

    @classmethod
    @abstractmethod
    def cursor_is_newer(cls, candidate: str, current: str) -> bool:
        """Whether ``candidate`` is past ``current`` in this platform's id order."""

    @classmethod
    @abstractmethod
    def post_url(cls, account: SocialAccount, external_id: str, author_username: str = "") -> str:
        """The public address of a post, by its id and, where known, its author's handle."""

    @classmethod
    def profile_url(cls, external_id: str, username: str = "") -> str:
        """The public address of a person's profile on the platform ("" when it has none)."""
        return ""

    @classmethod
    @abstractmethod
    def post_id_from_reference(cls, account: SocialAccount, reference: str) -> str:
        """The id of the account's own post, from its id or link as a person pastes it.

        Raises ValueError, with a sentence saying what is wrong, for anything else (another
        account's post, a link to another site, an id cut short or too long).
        """

    @classmethod
    def has_credentials(cls, credentials: dict[str, Any]) -> bool:
        return all(credentials.get(f.name) for f in cls.credential_fields)

    @classmethod
    def moderation_refusal(cls, kind: OutboundKind) -> str | None:
        """Why this platform never lets the brand do the moderation ``kind`` (said before
        anything is queued, so the inbox offers only what the platform allows), or None."""
        if kind in cls.outbound_kinds:
            return None
        what = "hide" if kind == OutboundKind.HIDE else "delete"
        return f"{cls.platform.capitalize()} does not let a brand {what} a customer's post."

    @classmethod
    def private_kind(cls, facts: ReplyFacts) -> OutboundKind:
        """How a private care step reaches the customer (Facebook: a private reply to their
        comment, or Messenger). Most platforms have one way: the direct message."""
        return OutboundKind.PRIVATE_MESSAGE

    @classmethod
    def reply_window(cls, kind: OutboundKind, facts: ReplyFacts) -> Window:
        """Whether the platform's rules let a message of ``kind`` out now (checked before it is
        queued and again just before it is sent). By default there is no window."""
        return Window(open=True, kind=kind)

    def rate_observations(self) -> list[RateObservation]:
        """Every rate budget this adapter has seen headers for since it was made."""
        return []

    @classmethod
    def pacing(
        cls, budgets: Sequence[RateObservation], *, now: datetime, interval: timedelta
    ) -> Pacing:
        """How the platform's rate budgets slow the next poll down (by default: not at all)."""
        return Pacing()

    def probe(self) -> str:
        """Ask the platform whether the account's credentials work (one cheap read); return
        the account's name there. Raises ChannelError (``auth_failed`` when they do not)."""
        raise ChannelError(f"{self.platform} cannot be probed.", permanent=True)

    def credentials_refused(self, error: ChannelError) -> None:
        """A send found the credentials refused: the channel is disabled and the admins told,
        as a poll would (``services.channel_auth_failed``, once per failure)."""
        if error.auth_failed and getattr(self.account, "pk", None):
            from channels_social.services import channel_auth_failed

            channel_auth_failed(account=self.account, reason=str(error))

    def stream_keys(self, stream: Stream) -> list[str]:
        """The keys of ``stream`` to poll now, each with a cursor of its own (a search: one per
        listening query). ``[""]`` for a stream with one cursor; ``[]`` skips the stream."""
        return [""]

    @abstractmethod
    def fetch(self, stream: Stream, *, cursor: str | None, key: str = "") -> Batch:
        """Every item of ``stream`` newer than ``cursor`` (a first page if None), oldest first."""

    @abstractmethod
    def send(
        self, kind: OutboundKind, target: SendTarget, text: str, *, first_attempt: bool = True
    ) -> SentMessage:
        """Send one message. ``first_attempt`` False: an earlier attempt's fate is unknown, so a
        refusal that means "I already have this" must come back as ``maybe_delivered``."""
