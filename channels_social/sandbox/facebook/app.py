"""A WSGI emulator of the Facebook Graph API paths CareInbox uses, in Graph's shapes.

The Facebook connector is tested against this app through the real facebook-sdk client, so
it is strict where Graph is strict: page access tokens (query parameter, form field or bearer
header; a wrong one is code 190), ``fields=`` names checked against Meta's node specs, the
Messenger and private-reply windows, text lengths, and the usage headers on every answer
(``X-App-Usage``, ``X-Business-Use-Case-Usage``) with throttling errors when over.

Paths take any version prefix (``/v19.0/...``, ``/v21.0/...``) or none. ``/_sandbox/`` holds
private JSON control endpoints for tests and demos; they are not Graph-shaped. Customers act
through those (or the ``customer_*`` methods here), and each of their comments, visitor posts
and Messenger messages is also delivered as a signed webhook when a callback is configured.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from channels_social.sandbox.facebook.errors import (
    THROTTLING_MESSAGES,
    TOKEN_SUBCODES,
    GraphError,
    bad_token,
    fault_error,
    injected,
    invalid_parameter,
    no_token,
    revoked_token,
    throttled,
)
from channels_social.sandbox.facebook.graph_api import GraphHandlers
from channels_social.sandbox.facebook.private_api import ControlEndpoints
from channels_social.sandbox.facebook.render import GraphView
from channels_social.sandbox.facebook.store import (
    FacebookStore,
    FbComment,
    FbMessage,
    FbPage,
    FbPost,
    StoreError,
    unix,
)
from channels_social.sandbox.facebook.webhooks import (
    WebhookConfig,
    WebhookDispatcher,
    feed_change,
    messaging_event,
)

DEFAULT_VERSION = "v21.0"
VERSION_RE = re.compile(r"^/(v\d+\.\d+)(?=/|$)")
FAULT_MODES = ("status", "graph_error", "after_commit_delay", "after_commit_drop", "malformed_json")
PAGING_FAULT_MODES = ("empty_page", "repeat_page", "loop_back")
LOG_SIZE = 5000
WINDOW_SECONDS = 3600.0


@dataclass(frozen=True)
class Fault:
    """One injected fault; see FacebookSandboxApp.inject_faults."""

    mode: str
    status: int = 503
    delay: float = 0.0
    code: int | None = None
    subcode: int | None = None
    message: str | None = None
    regain_minutes: int = 5


@dataclass
class RateLimits:
    """Calls per rolling hour before Graph answers with a throttling code instead.

    Graph's real budgets depend on the app's users and the page's engagement; these are
    simply configurable. ``X-App-Usage`` counts every call, ``X-Business-Use-Case-Usage`` the
    calls made with each page's token.
    """

    app_calls_per_hour: int = 2000
    page_calls_per_hour: int = 2000
    app_over_code: int = 4
    page_over_code: int = 32


class DroppedConnection(ConnectionAbortedError):
    """Raised after shutting the socket: werkzeug treats it as a dropped connection, quietly."""


def json_response(body: Any, status: int = 200) -> Response:
    # facebook-sdk decides how to read an answer from its Content-Type: always JSON.
    return Response(json.dumps(body), status=status, content_type="application/json; charset=UTF-8")


class FacebookSandboxApp(GraphHandlers, ControlEndpoints):
    """The WSGI callable. ``store`` is the world, ``webhooks`` the deliveries to the app."""

    url_map = Map(
        [
            Rule("/_sandbox/health", endpoint="c_health", methods=["GET"]),
            Rule("/_sandbox/reset", endpoint="c_reset", methods=["POST"]),
            Rule("/_sandbox/pages", endpoint="c_upsert_page", methods=["POST"]),
            Rule("/_sandbox/pages/<page_id>", endpoint="c_page", methods=["GET"]),
            Rule("/_sandbox/pages/<page_id>/posts", endpoint="c_page_post", methods=["POST"]),
            Rule("/_sandbox/pages/<page_id>/sent", endpoint="c_sent", methods=["GET"]),
            Rule("/_sandbox/people", endpoint="c_upsert_person", methods=["POST"]),
            Rule("/_sandbox/comments", endpoint="c_comment", methods=["POST"]),
            Rule("/_sandbox/visitor_posts", endpoint="c_visitor_post", methods=["POST"]),
            Rule("/_sandbox/messages", endpoint="c_message", methods=["POST"]),
            Rule("/_sandbox/objects/<object_id>/edit", endpoint="c_edit", methods=["POST"]),
            Rule("/_sandbox/objects/<object_id>/remove", endpoint="c_remove", methods=["POST"]),
            Rule("/_sandbox/objects/<object_id>", endpoint="c_object", methods=["GET"]),
            Rule("/_sandbox/clock", endpoint="c_clock", methods=["POST"]),
            Rule("/_sandbox/rate_limits", endpoint="c_rate_limits", methods=["POST"]),
            Rule("/_sandbox/faults", endpoint="c_faults", methods=["POST"]),
            Rule("/_sandbox/webhooks", endpoint="c_webhooks", methods=["GET"]),
            Rule("/_sandbox/webhooks", endpoint="c_configure_webhooks", methods=["POST"]),
            Rule("/_sandbox/webhooks/drop", endpoint="c_drop_webhooks", methods=["POST"]),
            Rule("/_sandbox/webhooks/wait", endpoint="c_wait_webhooks", methods=["POST"]),
            Rule("/_sandbox/requests", endpoint="c_requests", methods=["GET"]),
            Rule("/_sandbox/tokens/revoke", endpoint="c_revoke_token", methods=["POST"]),
            Rule("/_sandbox/tokens/restore", endpoint="c_restore_token", methods=["POST"]),
        ]
    )

    def __init__(
        self,
        store: FacebookStore | None = None,
        *,
        webhooks: WebhookConfig | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.store = store if store is not None else FacebookStore()
        self.webhooks = WebhookDispatcher(webhooks)
        self._initial_webhooks = webhooks or WebhookConfig()
        self._initial_limits = rate_limits or RateLimits()
        self.rate_limits = RateLimits(**vars(self._initial_limits))
        self._lock = threading.Lock()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self._app_calls: deque[float] = deque()
        self._page_calls: dict[str, deque[float]] = {}
        self._faults: list[Fault] = []
        self._paging_faults: list[Fault] = []
        # The last listing served per (page, node, edge), for the repeat_page fault.
        self._last_listing: dict[tuple[str, str, str], dict[str, Any]] = {}
        # Page tokens that expired or were revoked, with the code 190 subcode Graph gives.
        self.revoked_tokens: dict[str, int] = {}

    def revoke_token(self, token: str, subcode: int = 460) -> None:
        """Calls with this page token now answer error 190 with ``subcode`` (458 app
        removed, 460 password changed, 463 expired, 467 invalid), as Graph does."""
        if not token:
            raise ValueError("Name the token to revoke.")
        if int(subcode) not in TOKEN_SUBCODES:
            raise ValueError(f"subcode must be one of {sorted(TOKEN_SUBCODES)}.")
        with self._lock:
            self.revoked_tokens[str(token)] = int(subcode)

    def restore_token(self, token: str) -> None:
        with self._lock:
            self.revoked_tokens.pop(str(token), None)

    # Test hooks

    def configure_rate_limits(self, **limits: int) -> None:
        """E.g. ``configure_rate_limits(page_calls_per_hour=3, page_over_code=80001)``."""
        for name, value in limits.items():
            if name not in vars(self.rate_limits):
                raise ValueError(f"Unknown rate limit {name!r}.")
            if name.endswith("_code") and int(value) not in THROTTLING_MESSAGES:
                raise ValueError(f"{name} must be one of {sorted(THROTTLING_MESSAGES)}.")
        with self._lock:
            for name, value in limits.items():
                setattr(self.rate_limits, name, int(value))
            self._app_calls.clear()
            self._page_calls.clear()

    def inject_faults(
        self,
        status: int = 503,
        count: int = 1,
        *,
        mode: str = "status",
        delay: float = 0.0,
        code: int | None = None,
        subcode: int | None = None,
        message: str | None = None,
        regain_minutes: int = 5,
    ) -> None:
        """Make the next ``count`` Graph calls (not ``/_sandbox/``) misbehave.

        ``status``: not processed; answers HTTP ``status`` with the Graph error for it (429:
        code 4 with the usage headers at 100 % and ``estimated_time_to_regain_access``).
        ``graph_error``: not processed; answers Graph error ``code`` (``subcode``, ``message``;
        status 400 unless given), e.g. 368 blocked, 506 duplicate, or a throttling code 4, 17,
        32, 613 or 80001 with usage headers at 100 %.
        ``after_commit_delay``: processed (a reply IS stored), then the answer waits ``delay``
        seconds. ``after_commit_drop``: processed, then the connection closes with no answer.
        ``malformed_json``: processed, then the JSON body is cut short.
        ``empty_page`` and ``repeat_page`` wait for the next edge listing: it answers no items
        (but a ``next`` link that continues where it was), or the previous page of the same
        edge again. ``loop_back`` waits for the next listing page past the first (one asked
        for with ``after``): its items are right, its ``paging.cursors`` too, but its
        ``paging.next`` points back to the listing's first page, already read; ``count`` of
        them send a client that follows ``next`` blindly round that loop ``count`` times.
        """
        if mode not in FAULT_MODES + PAGING_FAULT_MODES:
            raise ValueError(
                f"Unknown fault mode {mode!r}; choose one of "
                f"{', '.join(FAULT_MODES + PAGING_FAULT_MODES)}."
            )
        if mode == "status":
            fault_error(int(status))  # refuses a status the emulator cannot answer
        if mode == "graph_error" and code is None:
            raise ValueError("mode graph_error needs the Graph error code.")
        if int(count) < 1:
            raise ValueError("count must be at least 1.")
        if float(delay) < 0:
            raise ValueError("delay must not be negative.")
        fault = Fault(
            mode=mode,
            status=int(status),
            delay=float(delay),
            code=int(code) if code is not None else None,
            subcode=int(subcode) if subcode is not None else None,
            message=message,
            regain_minutes=int(regain_minutes),
        )
        with self._lock:
            target = self._paging_faults if mode in PAGING_FAULT_MODES else self._faults
            target.extend([fault] * int(count))

    def clear_faults(self) -> None:
        """Drop every injected fault not yet taken (the world and the log stay)."""
        with self._lock:
            self._faults.clear()
            self._paging_faults.clear()

    def close(self) -> None:
        """Finish pending webhooks and write pending state; call on a clean shutdown."""
        self.webhooks.close()
        self.store.close()

    def reset(self) -> None:
        self.store.reset()
        self.webhooks.reset()
        self.webhooks.configure(
            callback_url=self._initial_webhooks.callback_url,
            app_secret=self._initial_webhooks.app_secret,
        )
        with self._lock:
            self.request_log.clear()
            self._faults.clear()
            self._paging_faults.clear()
            self._last_listing.clear()
            self.revoked_tokens.clear()
            self.rate_limits = RateLimits(**vars(self._initial_limits))
            self._app_calls.clear()
            self._page_calls.clear()

    def requests_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self.request_log]

    # Customers act (each with its webhook)

    def customer_comment(
        self,
        *,
        target_id: str,
        person_id: str | None,
        person_name: str,
        message: str,
        created_time: datetime | None = None,
    ) -> FbComment:
        """A person comments on a post, or replies to a comment (``target_id`` a comment)."""
        person = self.store.upsert_person(id=person_id, name=person_name)
        comment = self.store.add_comment(
            target_id=target_id, author_id=person.id, message=message, created_time=created_time
        )
        self._feed_webhook(comment.page_id, {**self._comment_value(comment), "verb": "add"})
        return comment

    def customer_post(
        self,
        *,
        page_id: str,
        person_id: str | None,
        person_name: str,
        message: str,
        tagged: bool = False,
        created_time: datetime | None = None,
    ) -> FbPost:
        """A visitor post on the page's wall, or (``tagged``) a post elsewhere naming the page.

        Only visitor posts are delivered as webhooks; Meta sends tagged posts as ``mention``
        changes, which the emulator does not emulate, so they are found by polling ``/tagged``.
        """
        person = self.store.upsert_person(id=person_id, name=person_name)
        post = self.store.add_post(
            page_id=page_id,
            message=message,
            author_id=person.id,
            kind="tagged" if tagged else "visitor",
            created_time=created_time,
        )
        if not tagged:
            self._feed_webhook(
                page_id,
                {
                    "from": {"id": person.id, "name": person.name},
                    "post_id": post.id,
                    "message": post.message,
                    "created_time": unix(post.created_time),
                    "item": "status",
                    "verb": "add",
                    "published": 1,
                },
            )
        return post

    def customer_message(
        self,
        *,
        page_id: str,
        person_id: str | None,
        person_name: str,
        text: str,
        created_time: datetime | None = None,
    ) -> FbMessage:
        """A person writes to the page on Messenger (this opens the reply windows).
        ``person_id`` is their id or their PSID; the webhook names them by their PSID."""
        known = self.store.person_by_psid(person_id) if person_id else None
        person = self.store.upsert_person(id=known.id if known else person_id, name=person_name)
        message = self.store.add_message(
            page_id=page_id,
            person_id=person.id,
            from_page=False,
            text=text,
            created_time=created_time,
        )
        if "messages" in self.store.pages[page_id].subscribed_fields:
            when_ms = int(message.created_time.timestamp() * 1000)
            self.webhooks.enqueue(
                "messages", messaging_event(page_id, person.psid, message.id, text, when_ms)
            )
        return message

    def customer_edit(self, *, object_id: str, message: str) -> FbComment | FbPost:
        """The author edits their comment or visitor post; Meta sends ``verb: edited``."""
        if not message.strip():
            raise StoreError("An edit needs the new message.")
        found = self.store.find(object_id)
        if isinstance(found, FbComment) and found.author_id in self.store.people:
            self.store.edit_comment(object_id, message)
            self._feed_webhook(found.page_id, {**self._comment_value(found), "verb": "edited"})
            return found
        if isinstance(found, FbPost) and found.kind == "visitor":
            self.store.edit_post(object_id, message)
            self._feed_webhook(found.page_id, {**self._post_value(found), "verb": "edited"})
            return found
        raise StoreError(f"No customer's comment or visitor post {object_id} to edit.")

    def customer_remove(self, *, object_id: str) -> None:
        """The author deletes their comment or visitor post; Meta sends ``verb: remove``
        (without the message)."""
        found = self.store.find(object_id)
        if isinstance(found, FbComment) and found.author_id in self.store.people:
            value = {k: v for k, v in self._comment_value(found).items() if k != "message"}
        elif isinstance(found, FbPost) and found.kind == "visitor":
            value = {k: v for k, v in self._post_value(found).items() if k != "message"}
        else:
            raise StoreError(f"No customer's comment or visitor post {object_id} to remove.")
        self.store.delete(object_id)
        self._feed_webhook(found.page_id, {**value, "verb": "remove"})

    def _comment_value(self, comment: FbComment) -> dict[str, Any]:
        return {
            "from": {"id": comment.author_id, "name": self.store.author_name(comment.author_id)},
            "post_id": comment.post_id,
            "comment_id": comment.id,
            # A top-level comment's parent is the post itself.
            "parent_id": comment.parent_id or comment.post_id,
            "message": comment.message,
            "created_time": unix(comment.created_time),
            "item": "comment",
        }

    def _post_value(self, post: FbPost) -> dict[str, Any]:
        return {
            "from": {"id": post.author_id, "name": self.store.author_name(post.author_id)},
            "post_id": post.id,
            "message": post.message,
            "created_time": unix(post.created_time),
            "item": "status",
            "published": 1,
        }

    def _feed_webhook(self, page_id: str, value: dict[str, Any]) -> None:
        if "feed" in self.store.pages[page_id].subscribed_fields:
            self.webhooks.enqueue("feed", feed_change(page_id, value, unix(self.store.now())))

    # WSGI

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_sandbox/"):
            response = self._control(request)
        else:
            response = self._graph(request)
        return response(environ, start_response)

    def _graph(self, request: Request) -> Response:
        match = VERSION_RE.match(request.path)
        version = match.group(1) if match else DEFAULT_VERSION
        rest = request.path[match.end() :] if match else request.path
        segments = [part for part in rest.split("/") if part]
        page: FbPage | None = None
        fault: Fault | None = None
        params: dict[str, Any] = {}
        headers: dict[str, str] = {}
        try:
            params = self._params(request)
            # Graph's method override (``?method=delete``): the log shows the effective one.
            method = str(params.pop("method", request.method)).upper()
            request.environ["facebook_sandbox.method"] = method
            token = self._token(request, params)
            page = self.store.page_by_token(token) if token else None
            headers, over_code = self._count_call(page)
            if not token:
                raise no_token()
            if page is None:
                raise bad_token()
            revoked = self.revoked_tokens.get(token)
            if revoked is not None:
                raise revoked_token(revoked)
            if over_code is not None:
                raise throttled(over_code)
            fault = self._take_fault()
            if fault is not None and fault.mode == "status":
                raise fault_error(fault.status)
            if fault is not None and fault.mode == "graph_error":
                assert fault.code is not None  # inject_faults insists
                raise injected(fault.code, fault.subcode, fault.message, fault.status)
            view = GraphView(
                self.store, page=page, base_url=request.host_url, version=version, token=token
            )
            status, body, listing = self.graph_dispatch(
                request, method, segments, params, page, view
            )
            if listing and request.method == "GET":
                body = self._paging_fault(page, segments, params, view, body)
            response = json_response(body, status)
        except GraphError as error:
            if error.throttling and fault is not None:  # injected: show the budget used up
                headers = self._usage_headers(page, fault=fault)
            response = json_response(error.body(), error.status)
            if error.code == 190:
                response.headers["WWW-Authenticate"] = (
                    f'OAuth "Facebook Platform" "invalid_token" "{error.message}"'
                )
        for name, value in headers.items():
            response.headers[name] = value
        response.headers["facebook-api-version"] = version
        response.headers["x-fb-trace-id"] = "sandbox"
        self._log(request, params, page, response, fault)
        if fault is not None and fault.mode == "after_commit_delay":
            time.sleep(fault.delay)
        elif fault is not None and fault.mode == "after_commit_drop":
            self._drop_connection(request)
        elif fault is not None and fault.mode == "malformed_json":
            data = response.get_data()
            response.set_data(data[: max(1, len(data) // 2)])
        return response

    def _params(self, request: Request) -> dict[str, Any]:
        """Query, form and JSON body in one dict; later sources win, as in Graph."""
        params: dict[str, Any] = {key: request.args.get(key) for key in request.args}
        if request.method in ("POST", "DELETE"):
            params.update({key: request.form.get(key) for key in request.form})
            if request.mimetype == "application/json":
                raw = request.get_data(as_text=True)
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise invalid_parameter("The request body is not valid JSON") from None
                    if not isinstance(body, dict):
                        raise invalid_parameter("The request body must be a JSON object")
                    params.update(body)
        return params

    @staticmethod
    def _token(request: Request, params: dict[str, Any]) -> str:
        token = params.pop("access_token", None)
        if token:
            return str(token)
        scheme, _, rest = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() in ("bearer", "oauth") and rest.strip():
            return rest.strip()
        return ""

    def _count_call(self, page: FbPage | None) -> tuple[dict[str, str], int | None]:
        """Count this call in the rolling hour; the throttling code when it is over."""
        now = time.monotonic()
        over: int | None = None
        with self._lock:
            limits = self.rate_limits
            self._app_calls.append(now)
            _prune(self._app_calls, now)
            if len(self._app_calls) > limits.app_calls_per_hour:
                over = limits.app_over_code
            if page is not None:
                calls = self._page_calls.setdefault(page.id, deque())
                calls.append(now)
                _prune(calls, now)
                if over is None and len(calls) > limits.page_calls_per_hour:
                    over = limits.page_over_code
        return self._usage_headers(page), over

    def _usage_headers(self, page: FbPage | None, *, fault: Fault | None = None) -> dict[str, str]:
        now = time.monotonic()
        with self._lock:
            limits = self.rate_limits
            app_pct = _percent(len(self._app_calls), limits.app_calls_per_hour)
            calls = self._page_calls.get(page.id, deque()) if page is not None else deque()
            page_pct = _percent(len(calls), limits.page_calls_per_hour)
            regain = 0
            if page_pct > 100 and calls:
                regain = math.ceil((calls[0] + WINDOW_SECONDS - now) / 60)
        if fault is not None:  # an injected throttle: usage shown as used up
            app_pct, page_pct, regain = max(app_pct, 100), max(page_pct, 100), fault.regain_minutes
        headers = {"X-App-Usage": json.dumps(_usage(app_pct))}
        if page is not None:
            buc = {**_usage(page_pct), "type": "pages", "estimated_time_to_regain_access": regain}
            headers["X-Business-Use-Case-Usage"] = json.dumps({page.id: [buc]})
        return headers

    def _take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _paging_fault(
        self,
        page: FbPage,
        segments: list[str],
        params: dict[str, Any],
        view: GraphView,
        body: dict[str, Any],
    ) -> dict[str, Any]:
        node_id = page.id if segments[0] == "me" else segments[0]
        key = (page.id, node_id, segments[1])
        with self._lock:
            fault = self._paging_faults[0] if self._paging_faults else None
            previous = self._last_listing.get(key)
            if fault is not None and (
                fault.mode == "empty_page"
                or (fault.mode == "repeat_page" and previous is not None)
                or (fault.mode == "loop_back" and params.get("after"))
            ):
                self._paging_faults.pop(0)
            else:
                fault = None
            self._last_listing[key] = body
        if fault is None:
            return body
        if fault.mode == "repeat_page":
            assert previous is not None
            return previous
        if fault.mode == "loop_back":
            edge_params = {k: str(v) for k, v in params.items() if k not in ("fields", "after")}
            first = view.link(
                node_id,
                segments[1],
                edge_params,
                self._fields(params),
                view.limit_of(edge_params),
            )
            return {**body, "paging": {**(body.get("paging") or {}), "next": first}}
        # An empty page whose next link asks for the same page again: Graph does this when
        # privacy filtering removes every item of a page, so a client must not stop at it.
        cursor = {k: str(params[k]) for k in ("after", "before") if params.get(k)}
        edge_params = {k: str(v) for k, v in params.items() if k not in ("fields", *cursor)}
        fields = self._fields(params)
        limit = view.limit_of(edge_params)
        empty: dict[str, Any] = {
            "data": [],
            "paging": {
                "next": view.link(node_id, segments[1], edge_params, fields, limit, **cursor)
            },
        }
        return empty

    def _drop_connection(self, request: Request) -> None:
        """Close the client's socket without a response (werkzeug's server only)."""
        sock = request.environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise DroppedConnection("The Facebook sandbox dropped this connection on purpose (fault).")

    def _log(
        self,
        request: Request,
        params: dict[str, Any],
        page: FbPage | None,
        response: Response,
        fault: Fault | None,
    ) -> None:
        error_code = None
        if response.status_code >= 400:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                error_code = json.loads(response.get_data())["error"]["code"]
        node, edge = request.environ.get("facebook_sandbox.node", (None, None))
        entry = {
            "method": request.environ.get("facebook_sandbox.method", request.method),
            "path": request.path,
            "node_type": node,
            "edge": edge,
            "params": {k: v for k, v in params.items() if k != "access_token"},
            "page_id": page.id if page is not None else None,
            "status": response.status_code,
            "error_code": error_code,
            "fault": fault.mode if fault is not None else None,
            "time": time.time(),
        }
        with self._lock:
            self.request_log.append(entry)


def _prune(calls: deque[float], now: float) -> None:
    while calls and calls[0] <= now - WINDOW_SECONDS:
        calls.popleft()


def _percent(used: int, limit: int) -> int:
    return math.ceil(used * 100 / limit) if limit > 0 else 100


def _usage(percent: int) -> dict[str, int]:
    # call_count is counted; the time shares are a fixed fraction of it (not measured).
    return {"call_count": percent, "total_cputime": percent // 4, "total_time": percent // 2}


def create_app(
    store: FacebookStore | None = None,
    *,
    state_path: Path | None = None,
    webhook_url: str | None = None,
    app_secret: str | None = None,
    rate_limits: RateLimits | None = None,
) -> FacebookSandboxApp:
    """A fresh emulator.

    ``state_path`` keeps pages, people, posts, comments and Messenger threads in that JSON file
    across restarts (loaded now, saved after every change); without it the emulator lives in
    memory only. ``webhook_url`` and ``app_secret`` make it deliver signed webhooks.
    """
    if store is not None and state_path is not None:
        raise ValueError("Pass either a store or a state_path, not both.")
    if webhook_url and not app_secret:
        raise ValueError("A webhook URL needs the app secret to sign deliveries.")
    return FacebookSandboxApp(
        store if store is not None else FacebookStore(state_path),
        webhooks=WebhookConfig(callback_url=webhook_url, app_secret=app_secret),
        rate_limits=rate_limits,
    )
