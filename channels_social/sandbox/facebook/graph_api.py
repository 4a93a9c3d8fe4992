"""The Graph endpoints the emulator serves, with the platform's reply rules.

Reads: ``/{id}`` for a page, post, comment, Messenger thread, message or person, and the edges
``feed``, ``posts``, ``published_posts``, ``visitor_posts``, ``tagged``, ``conversations``,
``comments``, ``messages`` and ``subscribed_apps``.

Writes, with what Graph refuses (PLATFORMS.md):
- ``POST /{post-id|comment-id}/comments``: a public comment or reply, at most 8,000 characters.
- ``POST /{page-id}/messages``: Messenger text up to 2,000 characters. To ``{"id": PSID}`` with
  ``messaging_type`` RESPONSE or UPDATE within 24 h of the person's last message, MESSAGE_TAG +
  ``tag=HUMAN_AGENT`` within 7 days; to ``{"comment_id"}`` (or a visitor post's ``{"post_id"}``)
  a private reply: one per comment, within 7 days of it.
- ``POST /{comment-id}`` ``is_hidden`` (hide or unhide someone's comment) or ``message`` (edit
  the page's own); ``DELETE /{post-id|comment-id}``; ``POST /{page-id}/feed``;
  ``POST|DELETE /{page-id}/subscribed_apps``.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from channels_social.sandbox.facebook.errors import (
    GraphError,
    empty_message,
    invalid_parameter,
    no_matching_user,
    no_such_object,
    nonexisting_field,
    not_emulated,
    outside_window,
    private_reply_already_sent,
    private_reply_not_allowed,
    wrong_page_token,
)
from channels_social.sandbox.facebook.fields import FieldSpec, parse_fields
from channels_social.sandbox.facebook.render import (
    EMULATED_EDGES,
    PRIVATE_REPLY_WINDOW,
    STANDARD_WINDOW,
    GraphView,
    node_type,
)
from channels_social.sandbox.facebook.store import (
    FacebookStore,
    FbComment,
    FbPage,
    FbPerson,
    FbPost,
)

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

COMMENT_MAX_CHARS = 8_000
MESSAGE_MAX_CHARS = 2_000
HUMAN_AGENT_WINDOW = timedelta(days=7)
MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
# HUMAN_AGENT extends the window to 7 days; the others are for their own use cases only and
# are not limited by the window here (the emulator cannot judge the use case).
MESSAGE_TAGS = ("HUMAN_AGENT", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE")
SENDER_ACTIONS = ("typing_on", "typing_off", "mark_seen")
SANDBOX_APP = {"id": "900000000000001", "name": "CareInbox sandbox app"}
FIELD_NAME_RE = re.compile(r"^[a-z_]+$")
Answer = tuple[int, dict[str, Any]]


def json_param(params: dict[str, Any], name: str) -> Any:
    """A JSON-valued parameter: form posts send it as a JSON string, JSON bodies as a value."""
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise invalid_parameter(f"param {name} must be a JSON object") from None
    return value


def bool_param(params: dict[str, Any], name: str) -> bool:
    value = str(params[name]).lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise invalid_parameter(f"param {name} must be a boolean")


class GraphHandlers:
    """Mixed into FacebookSandboxApp: routes a parsed Graph request and answers it."""

    store: FacebookStore

    def graph_dispatch(
        self,
        request: Request,
        method: str,
        segments: list[str],
        params: dict[str, Any],
        page: FbPage,
        view: GraphView,
    ) -> tuple[int, dict[str, Any], bool]:
        """``(status, body, is_listing)``; raises GraphError for anything Graph refuses."""
        if not segments:
            raise not_emulated("the root node")
        if len(segments) > 2:
            raise GraphError(f"Unknown path components: /{'/'.join(segments[1:])}", code=2500)
        node_id = page.id if segments[0] == "me" else segments[0]
        obj = self.store.find(node_id)
        if obj is None:
            raise no_such_object(node_id, method)
        self._check_access(obj, page, method, node_id)
        # For the request log: which node and edge this call addressed.
        request.environ["facebook_sandbox.node"] = (
            node_type(obj).name,
            segments[1] if len(segments) > 1 else None,
        )
        if len(segments) == 1:
            if method == "GET":
                body = view.node(obj, self._fields(params))
                if isinstance(obj, FbPerson) and node_id == obj.psid and "id" in body:
                    body["id"] = obj.psid  # asked for by their PSID: named by it
                return 200, body, False
            if method == "POST":
                return (*self._update(obj, page, params), False)
            if method == "DELETE":
                return (*self._delete(obj, page), False)
            raise invalid_parameter(f"Unsupported method {method}")
        edge = segments[1]
        kind = node_type(obj).name
        if method == "GET" and edge in EMULATED_EDGES.get(kind, ()):
            edge_params = {k: str(v) for k, v in params.items() if k != "fields"}
            return 200, view.edge(obj, edge, edge_params, self._fields(params)), True
        if isinstance(obj, FbPage) and edge == "subscribed_apps":
            return (*self._subscribed_apps(obj, method, params), False)
        if method == "POST" and edge == "comments" and isinstance(obj, FbPost | FbComment):
            return (*self._comment(obj, page, params), False)
        if method == "POST" and edge == "messages" and isinstance(obj, FbPage):
            return (*self._send_message(page, params), False)
        if method == "POST" and edge == "feed" and isinstance(obj, FbPage):
            return (*self._page_post(page, params), False)
        if edge in node_type(obj).edges:
            raise not_emulated(f"{method} on the {edge} edge of a {kind}")
        raise nonexisting_field(edge, kind)

    def _check_access(self, obj: Any, page: FbPage, method: str, node_id: str) -> None:
        """Everything belongs to one page; only that page's token reaches it."""
        if isinstance(obj, FbPerson):
            if not self.store.person_known_to(page.id, obj.id):
                raise no_such_object(node_id, method)
            return
        owner = obj.id if isinstance(obj, FbPage) else obj.page_id
        if owner != page.id:
            raise wrong_page_token()

    @staticmethod
    def _fields(params: dict[str, Any]) -> tuple[FieldSpec, ...] | None:
        raw = params.get("fields")
        return parse_fields(str(raw)) if raw not in (None, "") else None

    # Writes on nodes

    def _update(self, obj: Any, page: FbPage, params: dict[str, Any]) -> Answer:
        if not isinstance(obj, FbComment):
            raise not_emulated(f"updating a {node_type(obj).name}")
        if "is_hidden" not in params and "message" not in params:
            raise invalid_parameter("Nothing to update: pass is_hidden or message")
        if "is_hidden" in params:
            hidden = bool_param(params, "is_hidden")
            if obj.author_id == page.id:
                raise invalid_parameter("A Page cannot hide its own comment")
            self.store.set_hidden(obj.id, hidden)
        if "message" in params:
            if obj.author_id != page.id:
                raise GraphError("(#200) Permissions error", code=200)
            message = self._comment_text(params)
            self.store.edit_comment(obj.id, message)
        return 200, {"success": True}

    def _delete(self, obj: Any, page: FbPage) -> Answer:
        if isinstance(obj, FbPost) and obj.kind == "tagged":
            # It lives on the author's timeline; the page may only read it.
            raise GraphError("(#200) Permissions error", code=200)
        if not isinstance(obj, FbPost | FbComment):
            raise not_emulated(f"deleting a {node_type(obj).name}")
        self.store.delete(obj.id)
        return 200, {"success": True}

    # Writes on edges

    def _comment_text(self, params: dict[str, Any]) -> str:
        if any(params.get(k) for k in ("attachment_id", "attachment_url", "attachment_share_url")):
            raise not_emulated("comment attachments")
        message = str(params.get("message") or "")
        if not message.strip():
            raise invalid_parameter("Missing message or attachment")
        if len(message) > COMMENT_MAX_CHARS:
            raise invalid_parameter(
                f"Param message must be at most {COMMENT_MAX_CHARS} characters long."
            )
        return message

    def _comment(self, target: FbPost | FbComment, page: FbPage, params: dict[str, Any]) -> Answer:
        message = self._comment_text(params)
        comment = self.store.add_comment(target_id=target.id, author_id=page.id, message=message)
        return 200, {"id": comment.id}

    def _page_post(self, page: FbPage, params: dict[str, Any]) -> Answer:
        message = str(params.get("message") or "")
        if not message.strip():
            raise invalid_parameter("Missing message or attachment")
        post = self.store.add_post(page_id=page.id, message=message)
        return 200, {"id": post.id}

    def _subscribed_apps(self, page: FbPage, method: str, params: dict[str, Any]) -> Answer:
        if method == "GET":
            fields = page.subscribed_fields
            data = [{**SANDBOX_APP, "subscribed_fields": list(fields)}] if fields else []
            return 200, {"data": data}
        if method == "DELETE":
            self.store.set_subscribed_fields(page.id, [])
            return 200, {"success": True}
        raw = params.get("subscribed_fields")
        values = raw if isinstance(raw, list) else str(raw or "").strip("[]").split(",")
        fields = [str(v).strip().strip('"') for v in values if str(v).strip().strip('"')]
        if not fields or not all(FIELD_NAME_RE.match(f) for f in fields):
            raise invalid_parameter("param subscribed_fields must be a non-empty list of fields")
        self.store.set_subscribed_fields(page.id, list(dict.fromkeys(fields)))
        return 200, {"success": True}

    def _send_message(self, page: FbPage, params: dict[str, Any]) -> Answer:
        recipient = json_param(params, "recipient")
        if not isinstance(recipient, dict) or not recipient:
            raise invalid_parameter("param recipient must be non-empty.")
        action = params.get("sender_action")
        if action is not None:
            return self._sender_action(page, recipient, str(action), params)
        message = json_param(params, "message")
        if not isinstance(message, dict):
            raise empty_message()
        if "attachment" in message or "attachments" in message:
            raise not_emulated("message attachments")
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            raise empty_message()
        if len(text) > MESSAGE_MAX_CHARS:
            raise invalid_parameter(
                f"Length of param message[text] must be less than or equal to {MESSAGE_MAX_CHARS}"
            )
        if "comment_id" in recipient or "post_id" in recipient:
            return self._private_reply(page, recipient, text)
        if "id" not in recipient:
            raise invalid_parameter("param recipient must have an id, comment_id or post_id")
        return self._standard_message(page, str(recipient["id"]), text, params)

    def _sender_action(
        self, page: FbPage, recipient: dict[str, Any], action: str, params: dict[str, Any]
    ) -> Answer:
        if action not in SENDER_ACTIONS:
            raise invalid_parameter(
                f"param sender_action must be one of {{{', '.join(SENDER_ACTIONS)}}}"
            )
        if "message" in params:
            raise GraphError(
                "(#100) Cannot send both message and state at the same time.",
                code=100,
                subcode=2018015,
            )
        psid = str(recipient.get("id", ""))
        person = self.store.person_by_psid(psid)
        if person is None or self.store.conversation_with(page.id, person.id) is None:
            raise no_matching_user()
        return 200, {"recipient_id": psid}

    def _standard_message(
        self, page: FbPage, psid: str, text: str, params: dict[str, Any]
    ) -> Answer:
        messaging_type = str(params.get("messaging_type") or "").upper()
        if messaging_type not in MESSAGING_TYPES:
            raise invalid_parameter(
                "param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG} - got "
                f'"{params.get("messaging_type") or ""}"'
            )
        tag: str | None = None
        window: timedelta | None = STANDARD_WINDOW
        if messaging_type == "MESSAGE_TAG":
            tag = str(params.get("tag") or "").upper()
            if tag not in MESSAGE_TAGS:
                raise invalid_parameter(
                    f"param tag must be one of {{{', '.join(MESSAGE_TAGS)}}} - got "
                    f'"{params.get("tag") or ""}"'
                )
            window = HUMAN_AGENT_WINDOW if tag == "HUMAN_AGENT" else None
        # Only the Page-scoped id reaches a person on Messenger (their comments' id does not).
        person = self.store.person_by_psid(psid)
        conversation = self.store.conversation_with(page.id, person.id) if person else None
        if person is None or conversation is None:
            raise no_matching_user()
        last = self.store.last_customer_message_time(conversation.id)
        # Exactly at the edge still counts as inside (at most 24 h, at most 7 days).
        if last is None or (window is not None and self.store.now() - last > window):
            raise outside_window()
        message = self.store.add_message(
            page_id=page.id,
            person_id=person.id,
            from_page=True,
            text=text,
            messaging_type=messaging_type,
            tag=tag,
        )
        return 200, {"recipient_id": psid, "message_id": message.id}

    def _private_reply(self, page: FbPage, recipient: dict[str, Any], text: str) -> Answer:
        with self.store.lock:  # check and record in one step: one private reply per comment
            return self._private_reply_locked(page, recipient, text)

    def _private_reply_locked(self, page: FbPage, recipient: dict[str, Any], text: str) -> Answer:
        object_id = str(recipient.get("comment_id") or recipient.get("post_id") or "")
        target: FbComment | FbPost | None = self.store.comments.get(object_id)
        if target is None and "post_id" in recipient:
            post = self.store.posts.get(object_id)
            target = post if post is not None and post.kind == "visitor" else None
        if target is None or target.page_id != page.id:
            raise no_such_object(object_id, "POST")
        if target.author_id not in self.store.people:
            raise private_reply_not_allowed()  # the page's own comment
        if object_id in self.store.private_replies:
            raise private_reply_already_sent()
        if self.store.now() - target.created_time > PRIVATE_REPLY_WINDOW:
            raise private_reply_not_allowed()
        message = self.store.add_message(
            page_id=page.id,
            person_id=target.author_id,
            from_page=True,
            text=text,
            private_reply_to=object_id,
        )
        # The answer names the person by their Page-scoped id, which differs from the
        # commenter id: Messenger replies and the person's answers use this one.
        psid = self.store.messenger_id(target.author_id)
        return 200, {"recipient_id": psid, "message_id": message.id}
