"""Graph node and edge answers: the fields a ``fields=`` asks for, edges with cursor paging.

Every node type knows its spec field and edge names (graph_fields.py): a name outside them is
Graph's ``(#100) Tried accessing nonexisting field``; a spec name the emulator does not fill is
left out, as Graph leaves out fields without a value. ``id`` is always returned.

Edge listings page with opaque cursors that encode an item's sort key, so an item inserted
while a client pages never shifts the pages after its cursor. ``paging.next`` is present only
when there is more; it repeats the request's parameters, ``access_token`` included (facebook-sdk's
``get_all_connections`` expects it there).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from channels_social.sandbox.facebook import graph_fields as names
from channels_social.sandbox.facebook.errors import (
    GraphError,
    invalid_parameter,
    nonexisting_field,
)
from channels_social.sandbox.facebook.fields import FieldSpec, unparse
from channels_social.sandbox.facebook.store import (
    FacebookStore,
    FbComment,
    FbConversation,
    FbMessage,
    FbPage,
    FbPerson,
    FbPost,
    graph_time,
    parse_time,
)

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
STANDARD_WINDOW = timedelta(hours=24)
PRIVATE_REPLY_WINDOW = timedelta(days=7)
COMMENT_ORDERS = ("chronological", "reverse_chronological")
COMMENT_FILTERS = ("toplevel", "stream")
# Parameters an edge request may carry that its paging links repeat.
PASSTHROUGH = ("order", "filter", "since", "until", "summary", "platform", "user_id", "folder")


@dataclass(frozen=True)
class NodeType:
    name: str
    fields: frozenset[str]
    edges: frozenset[str]
    default_fields: tuple[str, ...]


PAGE = NodeType("Page", names.PAGE_FIELDS, names.PAGE_EDGES, ("name", "id"))
PAGE_POST = NodeType(
    "PagePost", names.PAGE_POST_FIELDS, names.PAGE_POST_EDGES, ("created_time", "message", "id")
)
COMMENT = NodeType(
    "Comment", names.COMMENT_FIELDS, names.COMMENT_EDGES, ("created_time", "from", "message", "id")
)
THREAD = NodeType(
    "UnifiedThread", names.UNIFIED_THREAD_FIELDS, names.UNIFIED_THREAD_EDGES, ("id", "updated_time")
)
USER = NodeType("User", names.USER_FIELDS, names.USER_EDGES, ("name", "id"))
MESSAGE = NodeType(
    "UnifiedMessage",
    names.UNIFIED_MESSAGE_FIELDS,
    names.UNIFIED_MESSAGE_EDGES,
    ("id", "created_time"),
)
# Edges the emulator serves, per node type.
EMULATED_EDGES = {
    "Page": ("feed", "posts", "published_posts", "visitor_posts", "tagged", "conversations"),
    "PagePost": ("comments",),
    "Comment": ("comments",),
    "UnifiedThread": ("messages",),
}


def node_type(obj: Any) -> NodeType:
    for cls, kind in (
        (FbPage, PAGE),
        (FbPost, PAGE_POST),
        (FbComment, COMMENT),
        (FbConversation, THREAD),
        (FbPerson, USER),
        (FbMessage, MESSAGE),
    ):
        if isinstance(obj, cls):
            return kind
    raise TypeError(f"Not a Graph node: {obj!r}")


def encode_cursor(key: tuple[int, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(value: str, name: str) -> tuple[int, int]:
    try:
        padded = value + "=" * (-len(value) % 4)
        first, second = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return int(first), int(second)
    except (ValueError, TypeError):
        raise invalid_parameter(f"Invalid value for the parameter {name}: {value}") from None


def is_true(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "total_count")


@dataclass
class Listing:
    """An edge's items in listing order, with how to key and render each."""

    items: list[Any]
    key: Callable[[Any], tuple[int, int]]
    descending: bool
    summary: dict[str, Any] | None = None


def _time_key(moment: datetime, number: int) -> tuple[int, int]:
    return int(moment.timestamp()), number


class GraphView:
    """Renders nodes and edges for one request: the store, the caller's page and its links."""

    def __init__(
        self, store: FacebookStore, *, page: FbPage, base_url: str, version: str, token: str
    ) -> None:
        self.store = store
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.version = version
        self.token = token
        self.now = store.now()

    # Nodes

    def node(self, obj: Any, specs: tuple[FieldSpec, ...] | None) -> dict[str, Any]:
        kind = node_type(obj)
        wanted = specs if specs is not None else tuple(FieldSpec(n) for n in kind.default_fields)
        out: dict[str, Any] = {}
        for spec in wanted:
            if spec.name not in kind.fields and spec.name not in kind.edges:
                raise nonexisting_field(spec.name, kind.name)
            if spec.name in EMULATED_EDGES.get(kind.name, ()):
                out[spec.name] = self.edge(obj, spec.name, dict(spec.modifiers), spec.children)
                continue
            value = self._field(obj, spec)
            if value is not None:
                out[spec.name] = value
        out.setdefault("id", obj.id)
        return out

    def _field(self, obj: Any, spec: FieldSpec) -> Any:
        renderer = getattr(self, f"_{node_type(obj).name.lower()}_field")
        return renderer(obj, spec.name, spec)

    def _profile(self, author_id: str, spec: FieldSpec | None = None) -> dict[str, Any]:
        """``from``/``to``/participant entries: ``{name, id}`` (Messenger adds ``email``)."""
        entry = {"name": self.store.author_name(author_id), "id": author_id}
        return _select(entry, spec)

    def _messenger_profile(self, author_id: str, spec: FieldSpec | None = None) -> dict[str, Any]:
        # On Messenger a person is their Page-scoped id (PSID), not their comments' id.
        messenger_id = self.store.messenger_id(author_id)
        entry = {
            "name": self.store.author_name(author_id),
            "email": f"{messenger_id}@facebook.com",
            "id": messenger_id,
        }
        return _select(entry, spec)

    def _page_field(self, page: FbPage, name: str, spec: FieldSpec) -> Any:
        values: dict[str, Any] = {
            "name": page.name,
            "about": page.about or None,
            "category": page.category,
            "fan_count": page.fan_count,
            "followers_count": page.followers_count,
            "username": page.username,
            "link": f"https://www.facebook.com/{page.username or page.id}",
            "is_published": True,
            "is_webhooks_subscribed": bool(page.subscribed_fields),
            "can_post": True,
            "talking_about_count": 0,
            "verification_status": "not_verified",
        }
        return values.get(name)

    def can_reply_privately(self, object_id: str, author_id: str, created: datetime) -> bool:
        return (
            author_id in self.store.people
            and object_id not in self.store.private_replies
            and self.now - created <= PRIVATE_REPLY_WINDOW
        )

    def _pagepost_field(self, post: FbPost, name: str, spec: FieldSpec) -> Any:
        if name == "from":
            return self._profile(post.author_id, spec)
        if name == "updated_time":
            comments = self.store.comments_under(post.id, stream=True)
            return graph_time(max([post.created_time, *(c.created_time for c in comments)]))
        if name == "can_reply_privately":
            return post.kind == "visitor" and self.can_reply_privately(
                post.id, post.author_id, post.created_time
            )
        values: dict[str, Any] = {
            "message": post.message or None,
            "created_time": graph_time(post.created_time),
            "permalink_url": f"https://www.facebook.com/{post.page_id}/posts/{post.number}",
            "is_hidden": False,
            "is_published": True,
            "is_expired": False,
            "status_type": "wall_post" if post.kind == "visitor" else "mobile_status_update",
        }
        return values.get(name)

    def _comment_field(self, comment: FbComment, name: str, spec: FieldSpec) -> Any:
        if name == "from":
            return self._profile(comment.author_id, spec)
        if name == "parent":
            parent = self.store.comments.get(comment.parent_id or "")
            return self.node(parent, spec.children) if parent is not None else None
        if name == "private_reply_conversation":
            message = self.store.messages.get(self.store.private_replies.get(comment.id, ""))
            return {"id": message.conversation_id} if message is not None else None
        if name == "can_reply_privately":
            return self.can_reply_privately(comment.id, comment.author_id, comment.created_time)
        if name == "comment_count":
            return len(self.store.comments_under(comment.id, stream=False))
        if name == "permalink_url":
            post = self.store.posts.get(comment.post_id)
            return (
                f"https://www.facebook.com/{comment.page_id}/posts/"
                f"{post.number if post else 0}?comment_id={comment.number}"
            )
        values: dict[str, Any] = {
            "message": comment.message,
            "created_time": graph_time(comment.created_time),
            "is_hidden": comment.is_hidden,
            "is_private": False,
            "can_comment": True,
            "can_hide": comment.author_id != comment.page_id,
            "can_remove": True,
            "can_like": True,
            "like_count": 0,
            "user_likes": False,
        }
        return values.get(name)

    def _unifiedthread_field(self, thread: FbConversation, name: str, spec: FieldSpec) -> Any:
        messages = sorted(self.store.messages_in(thread.id), key=lambda m: m.number)
        if name in ("participants", "senders"):
            people = [thread.person_id, thread.page_id]
            return {"data": [self._messenger_profile(p, spec) for p in people]}
        last_customer = self.store.last_customer_message_time(thread.id)
        unread = 0
        for message in reversed(messages):
            if message.sender_id == thread.page_id:
                break
            unread += 1
        values: dict[str, Any] = {
            "updated_time": graph_time(thread.updated_time),
            "message_count": len(messages),
            "unread_count": unread,
            "snippet": messages[-1].text[:100] if messages else None,
            "can_reply": last_customer is not None and self.now - last_customer <= STANDARD_WINDOW,
            "link": f"/{thread.page_id}/inbox/{thread.number}/?section=messages",
            "is_subscribed": True,
            "folder": "inbox",
            "scoped_thread_key": thread.id,
        }
        return values.get(name)

    def _user_field(self, person: FbPerson, name: str, spec: FieldSpec) -> Any:
        first, _, last = person.name.partition(" ")
        values: dict[str, Any] = {
            "name": person.name,
            "first_name": first,
            "last_name": last or None,
            "short_name": first,
            "profile_pic": (
                f"https://platform-lookaside.fbsbx.com/platform/profilepic/?psid={person.psid}"
            ),
        }
        return values.get(name)

    def _unifiedmessage_field(self, message: FbMessage, name: str, spec: FieldSpec) -> Any:
        if name == "from":
            return self._messenger_profile(message.sender_id, spec)
        if name == "to":
            return {"data": [self._messenger_profile(message.recipient_id, spec)]}
        values: dict[str, Any] = {
            "created_time": graph_time(message.created_time),
            "message": message.text,
        }
        return values.get(name)

    # Edges

    def listing(self, obj: Any, edge: str, params: dict[str, str]) -> Listing:
        """The items of ``obj``'s ``edge`` after since/until, in the order Graph lists them."""
        since = self._time_param(params, "since")
        until = self._time_param(params, "until")

        def within(moment: datetime) -> bool:
            return (since is None or moment >= since) and (until is None or moment <= until)

        if isinstance(obj, FbPage) and edge in EMULATED_EDGES["Page"]:
            if edge == "conversations":
                platform = params.get("platform", "messenger")
                if platform not in ("messenger", "instagram"):
                    raise invalid_parameter(
                        f"param platform must be one of {{MESSENGER, INSTAGRAM}} - got {platform}"
                    )
                threads = [
                    t
                    for t in self.store.conversations_of(obj.id)
                    if platform == "messenger"
                    and params.get("user_id") in (None, "", self.store.messenger_id(t.person_id))
                    and within(t.updated_time)
                ]
                return self._sorted(
                    threads, lambda t: _time_key(t.updated_time, t.updated_number), True
                )
            kinds = {
                "feed": ("page", "visitor"),
                "posts": ("page",),
                "published_posts": ("page",),
                "visitor_posts": ("visitor",),
                "tagged": ("tagged",),
            }[edge]
            posts = [p for p in self.store.posts_of(obj.id, kinds) if within(p.created_time)]
            return self._sorted(posts, lambda p: _time_key(p.created_time, p.number), True)
        if isinstance(obj, FbPost | FbComment) and edge == "comments":
            order = params.get("order", "chronological").lower()
            if order not in COMMENT_ORDERS:
                raise invalid_parameter(
                    f"param order must be one of {{{', '.join(o.upper() for o in COMMENT_ORDERS)}}}"
                    f" - got {order}"
                )
            filter_ = params.get("filter", "toplevel").lower()
            if filter_ not in COMMENT_FILTERS:
                raise invalid_parameter(
                    f"param filter must be one of {{TOPLEVEL, STREAM}} - got {filter_}"
                )
            every = self.store.comments_under(obj.id, stream=filter_ == "stream")
            comments = [c for c in every if within(c.created_time)]
            listing = self._sorted(
                comments,
                lambda c: _time_key(c.created_time, c.number),
                order == "reverse_chronological",
            )
            if is_true(params.get("summary")):
                listing.summary = {
                    "order": order,
                    "total_count": len(every),
                    "can_comment": True,
                }
            return listing
        if isinstance(obj, FbConversation) and edge == "messages":
            messages = [m for m in self.store.messages_in(obj.id) if within(m.created_time)]
            return self._sorted(messages, lambda m: _time_key(m.created_time, m.number), True)
        raise nonexisting_field(edge, node_type(obj).name)

    @staticmethod
    def _sorted(items: list[Any], key: Callable[[Any], tuple[int, int]], desc: bool) -> Listing:
        return Listing(sorted(items, key=key, reverse=desc), key, desc)

    def _time_param(self, params: dict[str, str], name: str) -> datetime | None:
        value = params.get(name)
        if value in (None, ""):
            return None
        try:
            return parse_time(str(value))
        except ValueError:
            raise invalid_parameter(f"Invalid value for the parameter {name}: {value}") from None

    def edge(
        self,
        obj: Any,
        edge: str,
        params: dict[str, str],
        children: tuple[FieldSpec, ...] | None,
    ) -> dict[str, Any]:
        """One page of ``obj``'s ``edge`` in Graph's ``{data, paging, summary}`` shape."""
        listing = self.listing(obj, edge, params)
        limit = self.limit_of(params)
        position = (lambda k: k) if not listing.descending else (lambda k: (-k[0], -k[1]))
        keyed = [(position(listing.key(item)), item) for item in listing.items]
        if params.get("after"):
            mark = position(decode_cursor(params["after"], "after"))
            page = [item for pos, item in keyed if pos > mark][:limit]
        elif params.get("before"):
            mark = position(decode_cursor(params["before"], "before"))
            earlier = [item for pos, item in keyed if pos < mark]
            page = earlier[-limit:] if limit else []
        else:
            page = [item for _, item in keyed][:limit]
        out: dict[str, Any] = {"data": [self.node(item, children) for item in page]}
        if page:
            first, last = position(listing.key(page[0])), position(listing.key(page[-1]))
            after, before = (
                encode_cursor(listing.key(page[-1])),
                encode_cursor(listing.key(page[0])),
            )
            paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
            if any(pos > last for pos, _ in keyed):
                paging["next"] = self.link(obj.id, edge, params, children, limit, after=after)
            if any(pos < first for pos, _ in keyed) and (
                params.get("after") or params.get("before")
            ):
                paging["previous"] = self.link(obj.id, edge, params, children, limit, before=before)
            out["paging"] = paging
        if listing.summary is not None:
            out["summary"] = listing.summary
        return out

    def limit_of(self, params: dict[str, str]) -> int:
        raw = str(params.get("limit", DEFAULT_LIMIT))
        if not raw.isdigit():
            raise invalid_parameter(f"Invalid value for the parameter limit: {raw}")
        return min(int(raw), MAX_LIMIT)

    def link(
        self,
        node_id: str,
        edge: str,
        params: dict[str, str],
        children: tuple[FieldSpec, ...] | None,
        limit: int,
        **cursor: str,
    ) -> str:
        query: dict[str, str] = {"access_token": self.token}
        if children is not None:
            query["fields"] = unparse(children)
        query.update({k: str(params[k]) for k in PASSTHROUGH if params.get(k) not in (None, "")})
        query["limit"] = str(limit)
        query.update(cursor)
        return f"{self.base_url}/{self.version}/{node_id}/{edge}?{urlencode(query)}"


def _select(entry: dict[str, Any], spec: FieldSpec | None) -> dict[str, Any]:
    """Keep the sub-fields ``from{name}`` asks for (and ``id``, which Graph always returns)."""
    if spec is None or spec.children is None:
        return entry
    wanted = {child.name for child in spec.children} | {"id"}
    unknown = wanted - set(entry)
    if unknown:
        raise GraphError(
            f"(#100) Tried accessing nonexisting field ({sorted(unknown)[0]}) on node type (User)",
            code=100,
        )
    return {key: value for key, value in entry.items() if key in wanted}
