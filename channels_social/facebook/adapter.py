"""The Facebook connector: a page's comments, visitor and tagged posts and Messenger in; comment
replies, private replies, Messenger replies and hides out, through facebook-sdk and Graph.

Facebook's rules live here and nowhere else (PLATFORMS.md):

* Cursors are times. Graph lists edges newest first with opaque paging cursors that do not
  survive between polls, so a stream's cursor is the newest ``created_time`` seen (Unix
  seconds), and the next poll asks ``since=`` that less a small overlap (an item Graph shows a
  little late is still found; the repeats are stored once).
* Comments hang under posts: the feed is read back ``FEED_LOOKBACK`` days and only the posts
  whose ``updated_time`` moved since the cursor have their comments (``filter=stream``: replies
  too) read.
* The page's own posts are left out (they are not tickets); its own comments and Messenger
  messages are handed on with the page as author, and intake files them as the brand's reply
  in the ticket they answer (a reply made natively on Facebook stays recognisable), or skips
  them.
* Threading: a comment's ``conversation_id`` is its post, so one customer's comments under one
  post join one ticket; a Messenger message's is ``messenger:<PSID>`` (one thread per page and
  person), which polling and webhooks both know without another call. A person's PSID is not
  the id on their comments: a private reply's answer names the PSID (``recipient_id``), and the
  adapter keeps the pair (``MessengerIdentity``), so their Messenger answer comes in under
  their commenter id (joining the ticket of the comment it answers) and the team's Messenger
  replies to that ticket go to the PSID.
* Windows: Messenger within 24 hours of the customer's last message, with the ``HUMAN_AGENT``
  tag up to 7 days; one private reply per comment (or visitor post), within 7 days of it. At
  exactly the edge it is still open, as on Graph.
* Errors are classified by Graph's code, never its HTTP status (facebook-sdk ignores it), and
  told in words: throttling (4, 17, 32, 613, 80001) waits for ``estimated_time_to_regain_access``;
  190 (token expired or revoked) is permanent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import facebook
import requests
from django.utils import timezone

from channels_social.base import (
    MODERATION_KINDS,
    Author,
    Batch,
    ChannelAdapter,
    ChannelError,
    CredentialField,
    InboundPost,
    OutboundKind,
    Pacing,
    PostUpdate,
    RateObservation,
    ReplyFacts,
    SendTarget,
    SentMessage,
    Stream,
    UnreadableItem,
    Window,
    ago,
)
from channels_social.facebook.client import TOKEN_FIELD, GraphSession, build_graph
from channels_social.text import clean_payload, clean_text

MESSENGER_LIMIT = 2_000
COMMENT_LIMIT = 8_000
MESSENGER_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
PRIVATE_REPLY_WINDOW = timedelta(days=7)
HUMAN_AGENT = "HUMAN_AGENT"
# What a private reply may answer ("": a caller that does not say; Graph decides).
PRIVATE_REPLY_KINDS = ("comment", "visitor_post", "")
PAGE_SIZE = 100
MAX_PAGES = 10  # per listing: a poll never pages forever through a broken `next`
# How often a listing may lead back to a page already read (a ``next`` pointing back, or the
# same page answered again) before the poll stops paging it.
MAX_REPEATED_PAGES = 2
# The parameters of a ``next`` link that say which page it is (the rest stay the same).
PAGE_POSITION_PARAMS = ("after", "before", "until", "since", "offset", "__paging_token")
FEED_LOOKBACK = timedelta(days=28)  # posts older than this are not re-read for new comments
CURSOR_OVERLAP = 300  # seconds re-read before the cursor
DEFAULT_RETRY_AFTER = 60.0
THROTTLING_CODES = frozenset({4, 17, 32, 613, 80001})
# Graph's budgets are shares of a rolling hour. Meta asks apps to slow down before they reach
# 100 % (then every call is refused until ``estimated_time_to_regain_access``): from these
# shares used, polls come this many times less often.
USAGE_SLOWDOWN = ((90, 10), (75, 4), (50, 2))
USAGE_WINDOW = timedelta(hours=1)
# Code 190's subcodes (Meta's "access token errors"), for the admin.
TOKEN_SUBCODE_WORDS = {
    458: "the app was removed from the page or its admin's account",
    459: "the admin's account is checkpointed (Facebook wants them to log in and check it)",
    460: "the admin changed their password",
    463: "the token expired",
    464: "the admin's account is not confirmed",
    467: "the token is no longer valid (it was revoked)",
    492: "the admin's session is no longer valid",
}
TRANSIENT_CODES = frozenset({1, 2})
POST_FIELDS = "id,message,created_time,updated_time,from"
COMMENT_FIELDS = "id,message,created_time,from,parent"
MESSAGE_FIELDS = "id,message,created_time,from"
THREAD_FIELDS = "id,updated_time,participants"
GRAPH_ID = re.compile(r"[0-9]{1,25}(?:_[0-9]{1,25})?|m_[A-Za-z0-9_\-]{4,200}")
WEB_HOSTS = {"facebook.com", "www.facebook.com", "m.facebook.com", "web.facebook.com"}
CODE_PREFIX = re.compile(r"^\(#\d+\)\s*")


def messenger_thread(psid: str) -> str:
    """The conversation key of a page's Messenger thread with one person."""
    return f"messenger:{psid}"


def graph_time(value: Any) -> datetime:
    """Graph's ``2026-03-02T09:00:00+0000``, ISO 8601, or Unix seconds (webhooks)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), tz=UTC)
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text.replace("Z", "+00:00"))
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _words(error: facebook.GraphAPIError) -> str:
    """Graph's own message without its ``(#code)`` prefix."""
    return CODE_PREFIX.sub("", str(getattr(error, "message", "") or error)).strip()


def _subcode(error: facebook.GraphAPIError) -> int | None:
    result = getattr(error, "result", None)
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        value = result["error"].get("error_subcode")
        return int(value) if isinstance(value, int) else None
    return None


_ISOLATE_MARKS = dict.fromkeys(range(0x2066, 0x206A))  # LRI, RLI, FSI, PDI


def _page_position(args: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """Which page of a listing these arguments ask for."""
    return frozenset(
        (name, str(args[name])) for name in PAGE_POSITION_PARAMS if args.get(name) not in (None, "")
    )


class FacebookAdapter(ChannelAdapter):
    """Talks to the Graph API on behalf of one Facebook page."""

    platform: ClassVar[str] = "facebook"
    polled_streams: ClassVar[tuple[Stream, ...]] = (
        Stream.PAGE_FEED,
        Stream.TAGGED,
        Stream.CONVERSATIONS,
    )
    # Webhooks bring each comment and message in well under a second; polling is the safety
    # net for a dropped delivery. Three or more Graph calls a poll every 5 s would spend a
    # page's hourly budget (the emulator's 2,000 calls, like Graph's Business Use Case limit)
    # in well under an hour: a minute between polls keeps it to a few hundred.
    min_poll_interval_seconds: ClassVar[int] = 60
    outbound_kinds: ClassVar[dict[OutboundKind, str]] = {
        OutboundKind.PUBLIC_REPLY: "Comment reply",
        OutboundKind.PRIVATE_REPLY: "Private reply",
        OutboundKind.PRIVATE_MESSAGE: "Messenger message",
        OutboundKind.HIDE: "Hide comment",
        OutboundKind.DELETE: "Delete comment",
    }
    credential_fields: ClassVar[Sequence[CredentialField]] = (
        CredentialField(
            name=TOKEN_FIELD,
            label="Page access token",
            help_text="A long-lived page access token with pages_manage_engagement, "
            "pages_read_user_content and pages_messaging.",
        ),
    )

    def __init__(self, account: Any) -> None:
        super().__init__(account)
        self._graph: facebook.GraphAPI | None = None
        self._people: dict[str, str] = {}  # PSID -> the person's id on comments
        self._cut_short: list[str] = []  # why the current fetch's listings stopped short

    # A person's two ids: their comments' id and their Messenger PSID (see MessengerIdentity)

    def customer_id(self, psid: str) -> str:
        """The id a Messenger sender is known by in tickets: their comments' id once a private
        reply linked the two, else the PSID itself."""
        if psid not in self._people:
            from channels_social.models import MessengerIdentity

            linked = None
            if self.account.pk:
                linked = (
                    MessengerIdentity.objects.filter(account_id=self.account.pk, psid=psid)
                    .values_list("person_external_id", flat=True)
                    .first()
                )
            self._people[psid] = linked or psid
        return self._people[psid]

    def messenger_recipient(self, person_id: str) -> str:
        """The PSID to send a Messenger message to, for a customer known by ``person_id``."""
        from channels_social.models import MessengerIdentity

        if not self.account.pk:
            return person_id
        psid = (
            MessengerIdentity.objects.filter(
                account_id=self.account.pk, person_external_id=person_id
            )
            .order_by("-learned_at")
            .values_list("psid", flat=True)
            .first()
        )
        return psid or person_id

    def _learn_psid(self, answered_id: str, psid: str) -> None:
        """After a private reply: whose comment (or post) it answered, and their PSID from
        Graph's ``recipient_id``. Best effort: the reply itself went out already."""
        if not self.account.pk or not psid:
            return
        try:
            with self._translate_errors():
                node = self.graph.get_object(answered_id, fields="from")
        except ChannelError:
            return
        person = clean_text(str((node.get("from") or {}).get("id") or ""))
        if person and person != psid:
            from channels_social.models import MessengerIdentity

            MessengerIdentity.objects.update_or_create(
                account_id=self.account.pk, psid=psid, defaults={"person_external_id": person}
            )
            self._people[psid] = person

    @property
    def graph(self) -> facebook.GraphAPI:
        if self._graph is None:
            self._graph = build_graph(self.account)
        return self._graph

    @property
    def page_id(self) -> str:
        return str(self.account.external_id)

    def rate_observations(self) -> list[RateObservation]:
        session = self._graph.session if self._graph is not None else None
        return list(session.budgets.values()) if isinstance(session, GraphSession) else []

    @classmethod
    def pacing(
        cls, budgets: Sequence[RateObservation], *, now: datetime, interval: timedelta
    ) -> Pacing:
        """Slower polls as the app's or the page's share of the hour nears 100 %; at 100 %
        none until Graph's estimated time to regain access (or the hour's end)."""
        shares = [b for b in budgets if b.used_percent is not None]
        if not shares:
            return Pacing()
        top = max(shares, key=lambda b: b.used_percent or 0)
        used = top.used_percent or 0
        budget = "the app's" if top.endpoint == "app" else "the page's"
        if used >= 100:
            regain = [b.reset_at for b in shares if b.reset_at is not None and b.reset_at > now]
            until = max(regain) if regain else now + USAGE_WINDOW
            return Pacing(
                not_before=until,
                reason=f"Facebook's budget for {budget} calls is used up ({used} %); polling "
                "waits until Graph gives access again.",
            )
        for threshold, factor in USAGE_SLOWDOWN:
            if used >= threshold:
                return Pacing(
                    not_before=now + interval * factor,
                    reason=f"{budget.capitalize()} Graph budget is {used} % used: polling "
                    f"{factor} times less often.",
                )
        return Pacing()

    def probe(self) -> str:
        """``GET /me`` with the page token: the page it belongs to."""
        with self._translate_errors():
            page = self.graph.get_object("me", fields="id,name")
        if str(page.get("id", "")) != self.page_id:
            raise ChannelError(
                f"This token belongs to another page ({clean_text(str(page.get('name', '')))}, "
                f"{clean_text(str(page.get('id', '')))}), not {self.account.username}.",
                permanent=True,
                auth_failed=True,
            )
        return clean_text(str(page.get("name") or self.account.username))

    # Rules, before anything is queued

    @classmethod
    def text_problem(cls, kind: OutboundKind, text: str) -> str | None:
        if kind in MODERATION_KINDS:
            return None
        if not text or not text.strip():
            return "A reply cannot be empty."
        if kind == OutboundKind.PUBLIC_REPLY:
            limit, what = COMMENT_LIMIT, "A Facebook comment"
        elif kind in (OutboundKind.PRIVATE_MESSAGE, OutboundKind.PRIVATE_REPLY):
            limit, what = MESSENGER_LIMIT, "A Messenger message"
        else:
            return f"Facebook cannot send a {kind}."
        if len(text) > limit:
            return f"{what} can be at most {limit:,} characters; this one is {len(text):,}."
        return None

    @classmethod
    def private_kind(cls, facts: ReplyFacts) -> OutboundKind:
        """Messenger while the customer's 24-hour window is open; else the one private reply to
        their latest comment, while it is allowed; else Messenger (the human-agent tag, or a
        refusal that says what is still open)."""
        last = facts.last_private_from_customer_at
        if last is not None and facts.now - last <= MESSENGER_WINDOW:
            return OutboundKind.PRIVATE_MESSAGE
        if cls.reply_window(OutboundKind.PRIVATE_REPLY, facts).open:
            return OutboundKind.PRIVATE_REPLY
        return OutboundKind.PRIVATE_MESSAGE

    @classmethod
    def reply_window(cls, kind: OutboundKind, facts: ReplyFacts) -> Window:
        if kind == OutboundKind.PRIVATE_MESSAGE:
            return cls._messenger_window(facts)
        if kind == OutboundKind.PRIVATE_REPLY:
            return cls._private_reply_window(facts)
        return Window(open=True, kind=kind)  # comments and hiding have no window

    @classmethod
    def _when(cls, moment: datetime) -> str:
        return timezone.localtime(moment).strftime("%b %-d, %H:%M")

    @classmethod
    def _private_reply_window(cls, facts: ReplyFacts) -> Window:
        kind = OutboundKind.PRIVATE_REPLY
        target = facts.reply_to
        if target is None:
            return Window(
                open=False, kind=kind, reason="There is no comment of theirs to reply to privately."
            )
        if target.kind not in PRIVATE_REPLY_KINDS:
            return Window(
                open=False,
                kind=kind,
                reason="Facebook allows a private reply only to a comment or a post on the "
                "page itself, not to a post elsewhere that tags the page.",
                alternative=cls._messenger_alternative(facts),
            )
        closes_at = target.created_at + PRIVATE_REPLY_WINDOW
        if target.external_id in facts.privately_answered:
            return Window(
                open=False,
                kind=kind,
                closes_at=closes_at,
                reason="Facebook allows one private reply per comment, and this comment has "
                "had its private reply.",
                alternative=cls._messenger_alternative(facts),
            )
        if facts.now > closes_at:
            return Window(
                open=False,
                kind=kind,
                closes_at=closes_at,
                reason="Facebook allows a private reply only within 7 days of the comment; "
                f"that window closed {ago(facts.now - closes_at)} ago.",
                alternative=cls._messenger_alternative(facts),
            )
        return Window(open=True, kind=kind, closes_at=closes_at)

    @classmethod
    def _messenger_alternative(cls, facts: ReplyFacts) -> str:
        last = facts.last_private_from_customer_at
        if last is not None and facts.now - last <= HUMAN_AGENT_WINDOW:
            return "Reply on Messenger instead."
        return (
            "Reply publicly on their comment instead; once they write on Messenger, "
            "Messenger replies are open for 24 hours."
        )

    @classmethod
    def _messenger_window(cls, facts: ReplyFacts) -> Window:
        kind = OutboundKind.PRIVATE_MESSAGE
        last = facts.last_private_from_customer_at
        # The name is the customer's own text inside our sentence: isolated (FSI ... PDI), so
        # a right-to-left name, or an override character in it, cannot reorder our words.
        # (Isolate marks in the name itself are dropped: one could close ours early.)
        name = (facts.customer_name or "").translate(_ISOLATE_MARKS)
        who = f"\u2068{name}\u2069" if name else "The customer"
        private_reply = cls._private_reply_window(facts)
        if private_reply.open and private_reply.closes_at is not None:
            alternative = (
                "A private reply to their comment is still open, until "
                f"{cls._when(private_reply.closes_at)}."
            )
        else:
            alternative = "Reply publicly on their comment or post instead."
        if last is None:
            return Window(
                open=False,
                kind=kind,
                reason=f"{who} has not written to the page on Messenger in this ticket; Facebook "
                "lets the page message them only within 24 hours of their last message.",
                alternative=alternative,
            )
        elapsed = facts.now - last
        if elapsed <= MESSENGER_WINDOW:
            return Window(open=True, kind=kind, closes_at=last + MESSENGER_WINDOW)
        human_agent_until = last + HUMAN_AGENT_WINDOW
        if elapsed <= HUMAN_AGENT_WINDOW:
            return Window(
                open=True,
                kind=kind,
                closes_at=human_agent_until,
                tag=HUMAN_AGENT,
                reason=f"Messenger's 24-hour window closed {ago(elapsed - MESSENGER_WINDOW)} "
                "ago; sent with the human-agent tag, allowed until "
                f"{cls._when(human_agent_until)}.",
            )
        return Window(
            open=False,
            kind=kind,
            closes_at=human_agent_until,
            reason=f"Messenger's 24-hour window closed {ago(elapsed - MESSENGER_WINDOW)} ago, "
            f"and the 7-day human-agent window {ago(facts.now - human_agent_until)} ago "
            f"(their last message was on {cls._when(last)}).",
            alternative=alternative,
        )

    @classmethod
    def cursor_is_newer(cls, candidate: str, current: str) -> bool:
        """Cursors are Unix seconds of the newest item seen: compare them as numbers."""
        if not current:
            return True
        try:
            return int(candidate) > int(current)
        except ValueError:
            return False

    @classmethod
    def post_url(cls, account: Any, external_id: str, author_username: str = "") -> str:
        page = account.external_id
        first, _, second = external_id.partition("_")
        if external_id.startswith("m_") or not second:
            return f"https://www.facebook.com/{external_id}"
        if first == page or not first.isdigit():
            return f"https://www.facebook.com/{page}/posts/{second}"
        return f"https://www.facebook.com/{page}/posts/{first}?comment_id={second}"

    @classmethod
    def profile_url(cls, external_id: str, username: str = "") -> str:
        # Facebook names are not unique handles: the profile is reached by its id.
        return f"https://www.facebook.com/profile.php?id={external_id}"

    @classmethod
    def post_id_from_reference(cls, account: Any, reference: str) -> str:
        reference = reference.strip()
        if not reference:
            raise ValueError("Paste the comment's link (https://www.facebook.com/…) or its id.")
        if "/" not in reference and "." not in reference:
            if not GRAPH_ID.fullmatch(reference):
                raise ValueError(f"{reference!r} is not a Facebook post, comment or message id.")
            return reference
        parts = urlsplit(reference if "//" in reference else f"https://{reference}")
        if (parts.hostname or "").lower() not in WEB_HOSTS:
            raise ValueError(
                "That is not a link to Facebook: it should look like "
                f"https://www.facebook.com/{account.external_id}/posts/…?comment_id=…"
            )
        query = parse_qs(parts.query)
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) < 3 or segments[1] != "posts" or not segments[2].isdigit():
            raise ValueError("That link is not a post or comment of the page.")
        owner, post = segments[0], segments[2]
        if owner not in (account.external_id, account.username):
            raise ValueError(
                f"That link is on {owner}'s page, not {account.username}'s: paste the page's "
                "own reply."
            )
        comment = (query.get("reply_comment_id") or query.get("comment_id") or [""])[0]
        if comment:
            if not comment.isdigit():
                raise ValueError(f"'{comment}' in that link is not a whole comment id.")
            return f"{post}_{comment}"
        return f"{account.external_id}_{post}"

    # Errors

    @contextmanager
    def _translate_errors(
        self, *, write: bool = False, first_attempt: bool = True
    ) -> Iterator[None]:
        """Turn facebook-sdk and requests failures into ChannelError, in words.

        For a write, only failures that prove Graph did not act are plainly retryable; an answer
        lost or cut short after the request went out may hide a reply Graph did make.
        """
        try:
            yield
        except facebook.GraphAPIError as exc:
            raise self._graph_error(exc, write=write, first_attempt=first_attempt) from None
        except requests.exceptions.JSONDecodeError as exc:
            # An answer cut short: for a write, Graph may well have acted on it.
            raise ChannelError(
                f"Facebook sent an answer that could not be read ({type(exc).__name__}).",
                permanent=False,
                status=self._last_status(),
                maybe_delivered=write,
            ) from None
        except requests.RequestException as exc:
            never_sent = isinstance(exc, requests.ConnectTimeout) or (
                isinstance(exc, requests.ConnectionError)
                and not isinstance(exc, requests.ReadTimeout)
                and "RemoteDisconnected" not in repr(exc)
                and "Connection aborted" not in repr(exc)
            )
            raise ChannelError(
                f"Could not reach Facebook ({type(exc).__name__})."
                if never_sent
                else f"Facebook did not answer ({type(exc).__name__}).",
                permanent=False,
                maybe_delivered=write and not never_sent,
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            # An answer cut short or in no shape we know (facebook-sdk parses it itself).
            raise ChannelError(
                f"Facebook sent an answer that could not be read ({type(exc).__name__}).",
                permanent=False,
                status=self._last_status(),
                maybe_delivered=write,
            ) from None

    def _last_status(self) -> int | None:
        session = self._graph.session if self._graph is not None else None
        return session.last_status if isinstance(session, GraphSession) else None

    def _graph_error(
        self, exc: facebook.GraphAPIError, *, write: bool, first_attempt: bool
    ) -> ChannelError:
        code = exc.code if isinstance(exc.code, int) else None
        subcode = _subcode(exc)
        status = self._last_status()
        session = self._graph.session if self._graph is not None else None
        if code in THROTTLING_CODES or status == 429:
            regain = session.regain_access_seconds() if isinstance(session, GraphSession) else None
            wait = regain or DEFAULT_RETRY_AFTER
            return ChannelError(
                "Facebook's request limit for this page is reached; it can be used again in "
                f"about {ago(timedelta(seconds=wait))}.",
                permanent=False,
                retry_after=wait,
                status=429,
            )
        if code == 190 or code == 102:
            why = TOKEN_SUBCODE_WORDS.get(subcode or 0, "it expired or was revoked")
            return ChannelError(
                f"Facebook no longer accepts the page access token of {self.account.username} "
                f"({why}): enter a new token in Settings → Brands and channels.",
                permanent=True,
                status=status,
                auth_failed=True,
            )
        if code in TRANSIENT_CODES or (status is not None and status >= 500):
            return ChannelError(
                "Facebook had a temporary problem and did not finish the request.",
                permanent=False,
                status=status,
                maybe_delivered=write and status != 503 and code not in TRANSIENT_CODES,
            )
        words = {
            10900: "Facebook allows one private reply per comment, and this comment already "
            "has one.",
            10903: "Facebook no longer allows a private reply to this comment (it is more than "
            "7 days old, or it is the page's own).",
            368: "Facebook has temporarily blocked the page from doing this (it was deemed "
            "abusive); try again later.",
            551: "This person cannot be reached on Messenger right now.",
            200: "The page's access token does not have the permission this needs.",
        }
        if code == 10 and subcode == 2018278:
            message = "Facebook refused it: the message is outside Messenger's allowed window."
        elif code == 100 and subcode == 33:
            message = (
                "That post or comment no longer exists on Facebook, or the page cannot see it."
            )
        elif code == 100 and subcode == 2018001:
            message = "Facebook found no Messenger conversation with this person."
        elif code == 506:
            message = "Facebook refused it as a duplicate of a post it already has."
            if not first_attempt:
                # Most likely our own earlier attempt, whose answer was lost, went through.
                return ChannelError(message, permanent=True, status=status, maybe_delivered=True)
        elif code in words:
            message = words[code]
        elif code == 10:
            message = "Facebook does not allow the page to do this."
        elif code == 100:
            message = f"Facebook refused the request as invalid: {_words(exc)}"
        else:
            message = f"Facebook refused it: {_words(exc) or 'no reason given'}"
        return ChannelError(message, permanent=True, status=status)

    # Reading

    def _listing(self, node: str, edge: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of ``node``'s ``edge``, page by page, following ``paging.next`` (an
        empty page with a ``next`` is not the end: Graph sends those when it filtered a whole
        page away).

        A ``next`` that leads back to a page already read would go round in a loop: the
        page's own ``paging.cursors.after`` is followed instead when it is new, else the page
        wanted is asked for again, up to ``MAX_REPEATED_PAGES`` times; after that the listing
        stops and the fetch is cut short (its cursor stays, so nothing unread is skipped)."""
        args: dict[str, Any] = {"limit": PAGE_SIZE, **params}
        visited = {_page_position(args)}
        pages = repeats = 0
        while pages < MAX_PAGES:
            page = self.graph.get_connections(node, edge, **args)
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                raise ValueError(f"no data list in the {edge} listing")
            yield from page["data"]
            paging: dict[str, Any] = page.get("paging") or {}
            if not isinstance(paging, dict):
                raise ValueError(f"no paging object in the {edge} listing")
            next_url = paging.get("next")
            if not next_url:
                return
            following = {k: v[-1] for k, v in parse_qs(urlsplit(str(next_url)).query).items()}
            following.pop("access_token", None)
            if _page_position(following) in visited:
                cursors = paging.get("cursors")
                after = cursors.get("after") if isinstance(cursors, dict) else None
                ahead = {k: v for k, v in args.items() if k != "before"} | {"after": after}
                if after and _page_position(ahead) not in visited:
                    following = ahead
                else:
                    repeats += 1
                    if repeats > MAX_REPEATED_PAGES:
                        self._cut_short.append(
                            f"Facebook led the {edge} listing back to a page already read "
                            f"{repeats} times; the rest is read at the next poll."
                        )
                        return
                    continue  # ask for the same page again
            visited.add(_page_position(following))
            args = following
            pages += 1

    def _since(self, cursor: str | None) -> int | None:
        if not cursor:
            return None
        try:
            return max(0, int(cursor) - CURSOR_OVERLAP)
        except ValueError:
            return None

    def fetch(self, stream: Stream, *, cursor: str | None, key: str = "") -> Batch:
        since = self._since(cursor)
        self._cut_short = []
        collected: dict[str, InboundPost] = {}
        unreadable: list[UnreadableItem] = []
        newest = [int(cursor) if cursor and cursor.isdigit() else 0]

        def seen(item: dict[str, Any]) -> None:
            with suppress(KeyError, TypeError, ValueError):
                newest[0] = max(newest[0], _seconds(graph_time(item["created_time"])))

        def keep(item: dict[str, Any], make: Any) -> None:
            try:
                post = make(item)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                unreadable.append(
                    UnreadableItem(
                        external_id=clean_text(str(item.get("id", "")))[:64]
                        if isinstance(item, dict)
                        else "",
                        error=f"Could not read this item: {type(exc).__name__}: {exc}",
                        raw=clean_payload(item),
                    )
                )
                return
            if post is not None:
                collected[post.external_id] = post

        with self._translate_errors():
            if stream == Stream.PAGE_FEED:
                self._fetch_feed(since, seen, keep)
            elif stream == Stream.TAGGED:
                for item in self._listing(
                    self.page_id, "tagged", fields=POST_FIELDS, **self._since_arg(since)
                ):
                    seen(item)
                    keep(item, lambda i: self._post(i, kind="post"))
            elif stream == Stream.CONVERSATIONS:
                self._fetch_conversations(since, seen, keep)
            else:
                raise ChannelError(f"Facebook has no {stream} stream.", permanent=True)
        ordered = sorted(collected.values(), key=lambda p: (p.created_at, p.external_id))
        moved = str(newest[0]) if newest[0] and (not cursor or str(newest[0]) != cursor) else None
        if self._cut_short:
            moved = None  # a listing stopped short of the cursor: read it again next time
        return Batch(
            posts=ordered,
            next_cursor=moved,
            unreadable=unreadable,
            cut_short=" ".join(dict.fromkeys(self._cut_short)),
        )

    @staticmethod
    def _since_arg(since: int | None) -> dict[str, Any]:
        return {"since": since} if since is not None else {}

    def _fetch_feed(self, since: int | None, seen: Any, keep: Any) -> None:
        horizon = _seconds(timezone.now() - FEED_LOOKBACK)
        for item in self._listing(self.page_id, "feed", fields=POST_FIELDS, since=horizon):
            seen(item)
            author = str((item.get("from") or {}).get("id", ""))
            if author != self.page_id and self._at_or_after(item.get("created_time"), since):
                keep(item, lambda i: self._post(i, kind="visitor_post"))
            if not self._at_or_after(item.get("updated_time") or item.get("created_time"), since):
                continue
            post_id = str(item["id"])
            for comment in self._listing(
                post_id,
                "comments",
                fields=COMMENT_FIELDS,
                filter="stream",
                order="reverse_chronological",
                **self._since_arg(since),
            ):
                seen(comment)
                keep(comment, lambda c, post_id=post_id: self._comment(c, post_id))

    @staticmethod
    def _at_or_after(value: Any, since: int | None) -> bool:
        if since is None:
            return True
        try:
            return _seconds(graph_time(value)) >= since
        except (TypeError, ValueError):
            return True  # unreadable time: look, rather than miss something

    def _fetch_conversations(self, since: int | None, seen: Any, keep: Any) -> None:
        for thread in self._listing(
            self.page_id,
            "conversations",
            platform="messenger",
            fields=THREAD_FIELDS,
            **self._since_arg(since),
        ):
            people = (thread.get("participants") or {}).get("data") or []
            person = next((p for p in people if str(p.get("id")) != self.page_id), None)
            if person is None:
                continue
            for message in self._listing(
                str(thread["id"]), "messages", fields=MESSAGE_FIELDS, **self._since_arg(since)
            ):
                seen(message)
                keep(message, lambda m, t=thread, p=person: self._messenger(m, t, p))

    def _author(self, data: Any) -> Author:
        data = data if isinstance(data, dict) else {}
        name = clean_text(str(data.get("name", "")))
        return Author(external_id=clean_text(str(data["id"])), username=name, display_name=name)

    def _post(self, item: dict[str, Any], *, kind: str) -> InboundPost | None:
        author = self._author(item.get("from"))
        if author.external_id == self.page_id:
            return None  # the page's own post: not a ticket
        external_id = clean_text(str(item["id"]))
        return InboundPost(
            external_id=external_id,
            text=clean_text(str(item.get("message") or "")),
            created_at=graph_time(item["created_time"]),
            author=author,
            kind=kind,
            is_public=True,
            conversation_id=external_id,
            addressed_account_ids=(self.page_id,),
            raw=clean_payload(item),
        )

    def _comment(self, item: dict[str, Any], post_id: str) -> InboundPost | None:
        author = self._author(item.get("from"))
        # The page's own comment (answered natively on Facebook, or sent by the outbox) is
        # handed on too: intake files it as the brand's reply in the ticket whose comment it
        # answers (or skips it), never as a ticket of its own.
        parent = item.get("parent") or {}
        return InboundPost(
            external_id=clean_text(str(item["id"])),
            text=clean_text(str(item.get("message") or "")),
            created_at=graph_time(item["created_time"]),
            author=author,
            kind="reply" if author.external_id == self.page_id else "comment",
            is_public=True,
            conversation_id=clean_text(post_id),
            in_reply_to_external_id=clean_text(str(parent.get("id") or post_id)),
            addressed_account_ids=(self.page_id,),
            raw=clean_payload(item),
        )

    def _messenger(
        self, item: dict[str, Any], thread: dict[str, Any], person: dict[str, Any]
    ) -> InboundPost | None:
        author = self._author(item.get("from"))
        psid = clean_text(str(person["id"]))
        customer = self.customer_id(psid)
        if author.external_id == psid and customer != psid:
            author = Author(customer, author.username, author.display_name)
        # The page's own message is handed on too (intake files it as the brand's reply in
        # the customer's ticket, or skips it); it addresses the customer.
        addressed = (customer,) if author.external_id == self.page_id else (self.page_id,)
        return InboundPost(
            external_id=clean_text(str(item["id"])),
            text=clean_text(str(item.get("message") or "")),
            created_at=graph_time(item["created_time"]),
            author=author,
            kind="messenger",
            is_public=False,
            conversation_id=messenger_thread(psid),
            addressed_account_ids=addressed,
            raw=clean_payload({**item, "thread_id": thread.get("id")}),
        )

    # Webhooks

    def webhook_posts(self, entry: dict[str, Any]) -> list[tuple[Stream, InboundPost]]:
        """The posts one webhook ``entry`` for this page carries (new comments, visitor posts,
        Messenger messages); edits, removals, the page's own posts and echoes are left out.
        Raises ValueError for an entry in no shape Meta sends."""
        posts: list[tuple[Stream, InboundPost]] = []
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or change.get("field") != "feed":
                continue
            value = change.get("value")
            if not isinstance(value, dict) or value.get("verb") != "add":
                continue
            item = value.get("item")
            sender = value.get("from") or {}
            data = {
                "from": sender,
                "message": value.get("message") or "",
                "created_time": value.get("created_time") or entry.get("time"),
            }
            if item == "comment":
                post_id = str(value["post_id"])
                comment = {**data, "id": value["comment_id"]}
                if value.get("parent_id") and value.get("parent_id") != post_id:
                    comment["parent"] = {"id": value["parent_id"]}
                made = self._comment(comment, post_id)
            elif item in ("status", "post", "photo", "video") and value.get("post_id"):
                made = self._post({**data, "id": value["post_id"]}, kind="visitor_post")
            else:
                continue
            if made is not None:
                posts.append((Stream.PAGE_FEED, made))
        for event in entry.get("messaging") or []:
            message = event.get("message") if isinstance(event, dict) else None
            if not isinstance(message, dict) or message.get("is_echo") or not message.get("mid"):
                continue
            psid = str((event.get("sender") or {}).get("id", ""))
            if not psid or psid == self.page_id:
                continue
            created = graph_time(float(event.get("timestamp") or entry.get("time") or 0) / 1000)
            name = self.person_name(psid)
            customer = clean_text(self.customer_id(psid))
            posts.append(
                (
                    Stream.CONVERSATIONS,
                    InboundPost(
                        external_id=clean_text(str(message["mid"])),
                        text=clean_text(str(message.get("text") or "")),
                        created_at=created.replace(microsecond=0),
                        author=Author(external_id=customer, username=name, display_name=name),
                        kind="messenger",
                        is_public=False,
                        conversation_id=messenger_thread(clean_text(psid)),
                        addressed_account_ids=(self.page_id,),
                        raw=clean_payload(event),
                    ),
                )
            )
        return posts

    def webhook_updates(self, entry: dict[str, Any]) -> list[PostUpdate]:
        """The edits and removals one webhook ``entry`` carries (``verb: edited`` with the new
        message, ``verb: remove``) for customers' comments and posts; the page's own changes
        are left out. Raises ValueError for an entry in no shape Meta sends."""
        updates: list[PostUpdate] = []
        for change in entry.get("changes") or []:
            if not isinstance(change, dict) or change.get("field") != "feed":
                continue
            value = change.get("value")
            if not isinstance(value, dict) or value.get("verb") not in ("edited", "remove"):
                continue
            if str((value.get("from") or {}).get("id", "")) == self.page_id:
                continue
            item = value.get("item")
            if item == "comment":
                external_id = str(value["comment_id"])
            elif item in ("status", "post", "photo", "video"):
                external_id = str(value["post_id"])
            else:
                continue
            when = value.get("created_time") if value.get("verb") == "edited" else None
            at = graph_time(entry.get("time") or when or _seconds(timezone.now()))
            updates.append(
                PostUpdate(
                    external_id=clean_text(external_id),
                    change="edited" if value["verb"] == "edited" else "removed",
                    at=at,
                    text=clean_text(str(value.get("message") or "")),
                    raw=clean_payload(value),
                )
            )
        return updates

    def person_name(self, psid: str) -> str:
        """A Messenger sender's name (webhooks carry only the PSID); best effort."""
        try:
            with self._translate_errors():
                person = self.graph.get_object(psid, fields="name")
            return clean_text(str(person.get("name") or "")) or f"Messenger user {psid[-4:]}"
        except ChannelError:
            return f"Messenger user {psid[-4:]}"

    # Writing

    def send(
        self, kind: OutboundKind, target: SendTarget, text: str, *, first_attempt: bool = True
    ) -> SentMessage:
        try:
            return self._send(kind, target, text, first_attempt=first_attempt)
        except ChannelError as exc:
            self.credentials_refused(exc)
            raise

    def _send(
        self, kind: OutboundKind, target: SendTarget, text: str, *, first_attempt: bool
    ) -> SentMessage:
        text = clean_text(text)
        with self._translate_errors(write=True, first_attempt=first_attempt):
            if kind == OutboundKind.PUBLIC_REPLY:
                answer = self.graph.put_object(
                    target.in_reply_to_external_id, "comments", message=text
                )
                return SentMessage(external_id=str(answer["id"]), raw=clean_payload(answer))
            if kind == OutboundKind.PRIVATE_REPLY:
                # A post on the page's wall is "{page id}_{n}"; anything else is a comment.
                answered = target.in_reply_to_external_id
                on_wall = answered.startswith(f"{self.page_id}_")
                answer = self._message(
                    {"post_id" if on_wall else "comment_id": answered}, text, tag=""
                )
            elif kind == OutboundKind.PRIVATE_MESSAGE:
                psid = self.messenger_recipient(target.recipient_external_id)
                answer = self._message({"id": psid}, text, tag=target.message_tag)
            elif kind == OutboundKind.HIDE:
                self.graph.request(
                    f"{self.graph.version}/{target.in_reply_to_external_id}",
                    post_args={"is_hidden": "true"},
                )
                return SentMessage(
                    external_id=target.in_reply_to_external_id, raw={"is_hidden": True}
                )
            elif kind == OutboundKind.DELETE:
                return self._delete(target.in_reply_to_external_id, first_attempt=first_attempt)
            else:
                raise ChannelError(f"Facebook cannot send a {kind}.", permanent=True)
        recipient = str(answer.get("recipient_id") or target.recipient_external_id)
        if kind == OutboundKind.PRIVATE_REPLY:
            # Graph names the person by their PSID here, not their commenter id: remember
            # the two, so their Messenger answer joins this ticket and replies reach them.
            self._learn_psid(target.in_reply_to_external_id, recipient)
        raw = clean_payload(
            {**answer, **({"tag": target.message_tag} if target.message_tag else {})}
        )
        return SentMessage(
            external_id=str(answer["message_id"]),
            conversation_id=messenger_thread(recipient) if recipient else "",
            raw=raw,
        )

    def _delete(self, object_id: str, *, first_attempt: bool) -> SentMessage:
        """``DELETE /{comment-id}`` (or a visitor post on the page's wall) through facebook-sdk's
        ``delete_object``. A retry after a lost answer that Graph answers "does not exist" (code
        100, subcode 33) means the earlier attempt deleted it: deleting is done either way."""
        try:
            answer = self.graph.delete_object(object_id)
        except facebook.GraphAPIError as exc:
            gone = exc.code == 100 and _subcode(exc) == 33
            if gone and not first_attempt:
                return SentMessage(external_id=object_id, raw={"success": True, "gone": True})
            raise
        if not (isinstance(answer, dict) and answer.get("success")):
            raise ChannelError("Facebook did not delete the comment.", permanent=True)
        return SentMessage(external_id=object_id, raw={"success": True})

    def _message(self, recipient: dict[str, str], text: str, *, tag: str) -> dict[str, Any]:
        args: dict[str, str] = {
            "recipient": json.dumps(recipient),
            "message": json.dumps({"text": text}),
        }
        if "id" in recipient:
            args["messaging_type"] = "MESSAGE_TAG" if tag else "RESPONSE"
            if tag:
                args["tag"] = tag
        return dict(self.graph.put_object(self.page_id, "messages", **args))
