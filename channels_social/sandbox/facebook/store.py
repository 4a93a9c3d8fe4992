"""The Facebook emulator's world: pages, people, posts, comments and Messenger threads.

Safe to share between threads (one re-entrant lock). Ids look like Graph's: numeric object ids
that grow with wall-clock time (so a restarted, emptied emulator still hands out larger ones),
posts ``{owner_id}_{n}``, comments ``{post_number}_{n}``, threads ``t_{n}``, messages ``m_...``.

Time comes from ``now()``: the real clock, shifted by ``clock_offset`` or stopped at
``frozen_at`` (tests move it to stand at the edge of a reply window). Stored times are
timezone-aware UTC datetimes, truncated to whole seconds as Graph reports them.

With a ``state_path`` the world survives restarts: loaded from that JSON file at start, written
back atomically (debounced by ``save_delay`` seconds) after every change; ``flush()`` or
``close()`` writes pending changes at once. An unreadable file is moved aside to
``<name>.corrupt-<timestamp>`` and the emulator starts empty.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from channels_social.sandbox.persistence import PersistentStore

logger = logging.getLogger(__name__)
STATE_VERSION = 1
NUMERIC_ID_RE = re.compile(r"^[0-9]{1,20}$")
GRAPH_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"


class StoreError(ValueError):
    """Input the emulator refuses (unknown post, duplicate id, ...)."""


def graph_time(moment: datetime) -> str:
    """Graph's timestamp format: UTC, whole seconds, ``+0000``."""
    return moment.astimezone(UTC).strftime(GRAPH_TIME_FORMAT)


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def parse_time(value: str | int | float) -> datetime:
    """ISO 8601 (``Z``, ``+00:00`` or ``+0000``) or Unix seconds; naive values are UTC."""
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        return datetime.fromtimestamp(int(value), tz=UTC)
    text = str(value).strip().replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass
class FbPage:
    id: str
    name: str
    access_token: str
    category: str = "Company"
    about: str = ""
    username: str | None = None
    fan_count: int = 0
    followers_count: int = 0
    # Webhook fields this app is subscribed to for the page (POST /{page-id}/subscribed_apps).
    subscribed_fields: list[str] = field(default_factory=lambda: ["feed", "messages"])


def psid_for(person_id: str) -> str:
    """A person's Page-scoped id on Messenger: not the id their comments and posts carry, as
    on Graph (the emulator derives it, so tests can name it)."""
    return f"7{str(person_id).zfill(15)}"


@dataclass
class FbPerson:
    """A customer: ``id`` is the id on their comments and posts, ``psid`` their Page-scoped id
    on Messenger (threads, messages, webhooks, the recipient of a send). The two differ, as on
    Graph; the store keeps Messenger under ``id`` and the Graph answers show ``psid``."""

    id: str
    name: str
    psid: str = ""

    def __post_init__(self) -> None:
        if not self.psid:
            self.psid = psid_for(self.id)


@dataclass
class FbPost:
    id: str
    page_id: str  # the page whose feed (or tagged edge) shows it
    author_id: str  # the page itself, or a person
    message: str
    created_time: datetime
    kind: str  # "page" (by the page), "visitor" (on the page's wall), "tagged" (names the page)
    number: int = 0


@dataclass
class FbComment:
    id: str
    post_id: str
    page_id: str
    # Graph keeps two levels: a reply to a reply hangs under the same top-level comment.
    parent_id: str | None
    author_id: str
    message: str
    created_time: datetime
    number: int = 0
    is_hidden: bool = False


@dataclass
class FbConversation:
    id: str
    page_id: str
    person_id: str
    updated_time: datetime
    number: int = 0
    # The number of the message that set updated_time: orders threads updated in one second.
    updated_number: int = 0


@dataclass
class FbMessage:
    id: str
    conversation_id: str
    page_id: str
    sender_id: str
    recipient_id: str
    text: str
    created_time: datetime
    number: int = 0
    messaging_type: str | None = None
    tag: str | None = None
    # The comment or visitor post this message privately replies to.
    private_reply_to: str | None = None


@dataclass
class ModerationAction:
    """Something the page did that is not a message: hide, unhide, edit, delete."""

    action: str
    object_id: str
    page_id: str
    time: datetime


def _record(obj: Any) -> dict[str, Any]:
    """A dataclass as JSON-ready data (datetimes as ISO 8601)."""
    out = asdict(obj)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
    return out


class FacebookStore(PersistentStore):
    """Everything the emulator knows. Every public method takes the one lock."""

    label = "Facebook sandbox"

    def __init__(self, state_path: Path | str | None = None, *, save_delay: float = 0.2) -> None:
        self._lock = threading.RLock()
        self._last_number = 0
        self.pages: dict[str, FbPage] = {}
        self.people: dict[str, FbPerson] = {}
        self.posts: dict[str, FbPost] = {}
        self.comments: dict[str, FbComment] = {}
        self.conversations: dict[str, FbConversation] = {}
        self.messages: dict[str, FbMessage] = {}
        self.moderation: list[ModerationAction] = []
        # object id (comment or visitor post) -> id of the private reply message sent for it
        self.private_replies: dict[str, str] = {}
        self.clock_offset = timedelta(0)
        self.frozen_at: datetime | None = None
        self._init_persistence(state_path, save_delay)

    @property
    def lock(self) -> threading.RLock:
        """Hold it to check and write in one step (one private reply per comment)."""
        return self._lock

    def reset(self) -> None:
        # _last_number survives a reset on purpose: ids must keep growing.
        with self._lock:
            for collection in (
                self.pages,
                self.people,
                self.posts,
                self.comments,
                self.conversations,
                self.messages,
                self.private_replies,
            ):
                collection.clear()
            self.moderation.clear()
            self.clock_offset = timedelta(0)
            self.frozen_at = None
            self._changed()

    # Clock

    def now(self) -> datetime:
        with self._lock:
            if self.frozen_at is not None:
                return self.frozen_at
            return _second(datetime.now(UTC) + self.clock_offset)

    def set_clock(
        self, *, offset_seconds: float | None = None, frozen_at: datetime | None = None
    ) -> None:
        """Shift the emulator's clock by ``offset_seconds``, or stop it at ``frozen_at``.

        Neither argument: back to the real clock.
        """
        with self._lock:
            self.clock_offset = timedelta(seconds=offset_seconds or 0)
            self.frozen_at = _second(frozen_at) if frozen_at is not None else None

    # Ids

    def next_number(self) -> int:
        with self._lock:
            self._last_number = max(int(time.time() * 1_000_000), self._last_number + 1)
            return self._last_number

    def _check_new_id(self, object_id: str) -> None:
        if not NUMERIC_ID_RE.match(object_id):
            raise StoreError(f"An id must be 1 to 20 digits, not {object_id!r}.")
        if object_id in self.pages or object_id in self.people:
            raise StoreError(f"The id {object_id} is taken.")

    # Pages and people

    def upsert_page(
        self,
        *,
        id: str,
        name: str,
        access_token: str,
        category: str | None = None,
        about: str | None = None,
        username: str | None = None,
        fan_count: int | None = None,
        followers_count: int | None = None,
        subscribed_fields: list[str] | None = None,
    ) -> FbPage:
        page_id = str(id)
        if not access_token:
            raise StoreError("A page needs an access token.")
        with self._lock:
            other = self.page_by_token(access_token)
            if other is not None and other.id != page_id:
                raise StoreError(f"That access token already belongs to page {other.id}.")
            page = self.pages.get(page_id)
            if page is None:
                self._check_new_id(page_id)
                page = FbPage(id=page_id, name=name, access_token=access_token)
                self.pages[page_id] = page
            page.name = name or page.name
            page.access_token = access_token
            if category is not None:
                page.category = category
            if about is not None:
                page.about = about
            if username is not None:
                page.username = username
            if fan_count is not None:
                page.fan_count = max(0, int(fan_count))
            if followers_count is not None:
                page.followers_count = max(0, int(followers_count))
            if subscribed_fields is not None:
                page.subscribed_fields = [str(f) for f in subscribed_fields]
            self._changed()
            return page

    def page_by_token(self, token: str) -> FbPage | None:
        with self._lock:
            return next((p for p in self.pages.values() if p.access_token == token), None)

    def set_subscribed_fields(self, page_id: str, fields: list[str]) -> None:
        with self._lock:
            self.pages[page_id].subscribed_fields = list(fields)
            self._changed()

    def upsert_person(self, *, id: str | None = None, name: str) -> FbPerson:
        if not name or not name.strip():
            raise StoreError("A person needs a name.")
        with self._lock:
            person_id = str(id) if id else str(self.next_number())
            person = self.people.get(person_id)
            if person is None:
                self._check_new_id(person_id)
                person = FbPerson(id=person_id, name=name.strip())
                self.people[person_id] = person
            person.name = name.strip()
            self._changed()
            return person

    def person_by_psid(self, psid: str) -> FbPerson | None:
        with self._lock:
            return next((p for p in self.people.values() if p.psid == str(psid)), None)

    def messenger_id(self, author_id: str) -> str:
        """How Messenger names ``author_id``: a person's PSID, a page's own id."""
        with self._lock:
            person = self.people.get(author_id)
            return person.psid if person is not None else author_id

    def author_name(self, author_id: str) -> str:
        with self._lock:
            author = self.pages.get(author_id) or self.people.get(author_id)
            return author.name if author is not None else ""

    def person_known_to(self, page_id: str, person_id: str) -> bool:
        """A page sees people who commented, posted or wrote to it."""
        with self._lock:
            return (
                any(
                    c.page_id == page_id and c.author_id == person_id
                    for c in self.comments.values()
                )
                or any(
                    p.page_id == page_id and p.author_id == person_id for p in self.posts.values()
                )
                or self.conversation_with(page_id, person_id) is not None
            )

    # Posts and comments

    def add_post(
        self,
        *,
        page_id: str,
        message: str,
        author_id: str | None = None,
        kind: str = "page",
        created_time: datetime | None = None,
    ) -> FbPost:
        if kind not in ("page", "visitor", "tagged"):
            raise StoreError(f"A post is by the page, a visitor, or tags the page; not {kind!r}.")
        with self._lock:
            if page_id not in self.pages:
                raise StoreError(f"No page {page_id}.")
            author = page_id if kind == "page" else str(author_id or "")
            if kind != "page" and author not in self.people:
                raise StoreError(f"No person {author!r} to write the post.")
            number = self.next_number()
            # A tagged post lives on its author's timeline, so its id starts with theirs.
            owner = author if kind == "tagged" else page_id
            post = FbPost(
                id=f"{owner}_{number}",
                page_id=page_id,
                author_id=author,
                message=message,
                created_time=_second(created_time or self.now()),
                kind=kind,
                number=number,
            )
            self.posts[post.id] = post
            self._changed()
            return post

    def add_comment(
        self,
        *,
        target_id: str,
        author_id: str,
        message: str,
        created_time: datetime | None = None,
    ) -> FbComment:
        """A comment on a post (``target_id`` a post id) or a reply (a comment id)."""
        with self._lock:
            post = self.posts.get(target_id)
            parent_id: str | None = None
            if post is None:
                parent = self.comments.get(target_id)
                if parent is None:
                    raise StoreError(f"No post or comment {target_id} to comment on.")
                post = self.posts[parent.post_id]
                parent_id = parent.parent_id or parent.id
            if author_id != post.page_id and author_id not in self.people:
                raise StoreError(f"No person {author_id!r} to write the comment.")
            number = self.next_number()
            comment = FbComment(
                id=f"{post.number}_{number}",
                post_id=post.id,
                page_id=post.page_id,
                parent_id=parent_id,
                author_id=author_id,
                message=message,
                created_time=_second(created_time or self.now()),
                number=number,
            )
            self.comments[comment.id] = comment
            self._changed()
            return comment

    def comments_under(self, object_id: str, *, stream: bool) -> list[FbComment]:
        """Comments of a post (top level, or all with ``stream``) or replies of a comment."""
        with self._lock:
            if object_id in self.posts:
                return [
                    c
                    for c in self.comments.values()
                    if c.post_id == object_id and (stream or c.parent_id is None)
                ]
            return [c for c in self.comments.values() if c.parent_id == object_id]

    def posts_of(self, page_id: str, kinds: tuple[str, ...]) -> list[FbPost]:
        with self._lock:
            return [p for p in self.posts.values() if p.page_id == page_id and p.kind in kinds]

    def set_hidden(self, comment_id: str, hidden: bool) -> None:
        with self._lock:
            comment = self.comments[comment_id]
            comment.is_hidden = hidden
            self._moderated("hide" if hidden else "unhide", comment_id, comment.page_id)

    def edit_comment(self, comment_id: str, message: str) -> None:
        with self._lock:
            comment = self.comments[comment_id]
            comment.message = message
            self._moderated("edit", comment_id, comment.page_id)

    def edit_post(self, post_id: str, message: str) -> None:
        with self._lock:
            post = self.posts[post_id]
            post.message = message
            self._moderated("edit", post_id, post.page_id)

    def delete(self, object_id: str) -> None:
        """Delete a post or comment with everything under it."""
        with self._lock:
            if object_id in self.posts:
                page_id = self.posts.pop(object_id).page_id
                for comment in [c for c in self.comments.values() if c.post_id == object_id]:
                    del self.comments[comment.id]
            else:
                comment = self.comments.pop(object_id)
                page_id = comment.page_id
                for reply in [c for c in self.comments.values() if c.parent_id == object_id]:
                    del self.comments[reply.id]
            self._moderated("delete", object_id, page_id)

    def _moderated(self, action: str, object_id: str, page_id: str) -> None:
        self.moderation.append(ModerationAction(action, object_id, page_id, self.now()))
        self._changed()

    # Messenger

    def conversation_with(self, page_id: str, person_id: str) -> FbConversation | None:
        with self._lock:
            return next(
                (
                    c
                    for c in self.conversations.values()
                    if c.page_id == page_id and c.person_id == person_id
                ),
                None,
            )

    def add_message(
        self,
        *,
        page_id: str,
        person_id: str,
        from_page: bool,
        text: str,
        created_time: datetime | None = None,
        messaging_type: str | None = None,
        tag: str | None = None,
        private_reply_to: str | None = None,
    ) -> FbMessage:
        with self._lock:
            if page_id not in self.pages or person_id not in self.people:
                raise StoreError("A Messenger message needs a known page and person.")
            moment = _second(created_time or self.now())
            conversation = self.conversation_with(page_id, person_id)
            if conversation is None:
                number = self.next_number()
                conversation = FbConversation(
                    id=f"t_{number}",
                    page_id=page_id,
                    person_id=person_id,
                    updated_time=moment,
                    number=number,
                )
                self.conversations[conversation.id] = conversation
            number = self.next_number()
            message = FbMessage(
                id="m_" + base64.urlsafe_b64encode(number.to_bytes(9, "big")).decode(),
                conversation_id=conversation.id,
                page_id=page_id,
                sender_id=page_id if from_page else person_id,
                recipient_id=person_id if from_page else page_id,
                text=text,
                created_time=moment,
                number=number,
                messaging_type=messaging_type,
                tag=tag,
                private_reply_to=private_reply_to,
            )
            self.messages[message.id] = message
            if moment >= conversation.updated_time:
                conversation.updated_time = moment
                conversation.updated_number = number
            if private_reply_to is not None:
                self.private_replies[private_reply_to] = message.id
            self._changed()
            return message

    def messages_in(self, conversation_id: str) -> list[FbMessage]:
        with self._lock:
            return [m for m in self.messages.values() if m.conversation_id == conversation_id]

    def last_customer_message_time(self, conversation_id: str) -> datetime | None:
        with self._lock:
            times = [
                m.created_time
                for m in self.messages.values()
                if m.conversation_id == conversation_id and m.sender_id != m.page_id
            ]
            return max(times) if times else None

    def conversations_of(self, page_id: str) -> list[FbConversation]:
        with self._lock:
            return [c for c in self.conversations.values() if c.page_id == page_id]

    # Lookups

    def find(self, object_id: str) -> Any:
        """The page, person, post, comment, conversation or message with that id, or None."""
        with self._lock:
            for collection in (
                self.pages,
                self.people,
                self.posts,
                self.comments,
                self.conversations,
                self.messages,
            ):
                found = collection.get(object_id)
                if found is not None:
                    return found
            return self.person_by_psid(object_id)

    def sent_by(self, page_id: str) -> dict[str, list[dict[str, Any]]]:
        """What the page wrote or did: its comments, its messages, its moderation actions."""
        with self._lock:
            return {
                "comments": [
                    _record(c)
                    for c in sorted(self.comments.values(), key=lambda c: c.number)
                    if c.page_id == page_id and c.author_id == page_id
                ],
                "messages": [
                    _record(m)
                    for m in sorted(self.messages.values(), key=lambda m: m.number)
                    if m.page_id == page_id and m.sender_id == page_id
                ],
                "posts": [
                    _record(p)
                    for p in sorted(self.posts.values(), key=lambda p: p.number)
                    if p.page_id == page_id and p.kind == "page"
                ],
                "moderation": [_record(a) for a in self.moderation if a.page_id == page_id],
            }

    def record_of(self, object_id: str) -> dict[str, Any] | None:
        found = self.find(object_id)
        return None if found is None else _record(found)

    # Persistence

    def snapshot(self) -> dict[str, Any]:
        """The persistent part of the world as JSON-ready data (the clock is not kept)."""
        with self._lock:
            return {
                "version": STATE_VERSION,
                "last_number": str(self._last_number),
                "pages": [_record(p) for p in self.pages.values()],
                "people": [_record(p) for p in self.people.values()],
                "posts": [_record(p) for p in self.posts.values()],
                "comments": [_record(c) for c in self.comments.values()],
                "conversations": [_record(c) for c in self.conversations.values()],
                "messages": [_record(m) for m in self.messages.values()],
                "moderation": [_record(a) for a in self.moderation],
                "private_replies": dict(self.private_replies),
            }

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
                raise ValueError(f"not a Facebook sandbox state file (version {STATE_VERSION})")
            pages = [FbPage(**item) for item in data["pages"]]
            people = [FbPerson(**item) for item in data["people"]]
            posts = [FbPost(**_times(item, "created_time")) for item in data["posts"]]
            comments = [FbComment(**_times(item, "created_time")) for item in data["comments"]]
            conversations = [
                FbConversation(**_times(item, "updated_time")) for item in data["conversations"]
            ]
            messages = [FbMessage(**_times(item, "created_time")) for item in data["messages"]]
            moderation = [ModerationAction(**_times(item, "time")) for item in data["moderation"]]
            private_replies = {str(k): str(v) for k, v in data["private_replies"].items()}
            last_number = int(data.get("last_number") or 0)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                os.replace(path, aside)
                where = f"moved it to {aside}"
            except OSError as move_error:
                where = f"could not move it aside ({move_error})"
            logger.warning(
                "Facebook sandbox: the state file %s is unreadable (%s: %s); %s and starting "
                "empty.",
                path,
                type(exc).__name__,
                exc,
                where,
            )
            return
        with self._lock:
            self.pages = {p.id: p for p in pages}
            self.people = {p.id: p for p in people}
            self.posts = {p.id: p for p in posts}
            self.comments = {c.id: c for c in comments}
            self.conversations = {c.id: c for c in conversations}
            self.messages = {m.id: m for m in messages}
            self.moderation = moderation
            self.private_replies = private_replies
            # New ids must be larger than every id handed out before, whatever the clock says.
            numbers = [
                *(p.number for p in posts),
                *(c.number for c in comments),
                *(c.number for c in conversations),
                *(m.number for m in messages),
            ]
            self._last_number = max([self._last_number, last_number, *numbers])
        logger.info(
            "Facebook sandbox: loaded %d pages, %d posts, %d comments and %d messages from %s",
            len(pages),
            len(posts),
            len(comments),
            len(messages),
            path,
        )


def _times(item: dict[str, Any], *names: str) -> dict[str, Any]:
    out = dict(item)
    for name in names:
        out[name] = parse_time(out[name])
    return out
