"""A WSGI emulator of the few X API v2 endpoints CareInbox uses, in X's exact response shapes.

The connector is tested against this app through the real tweepy client, so the emulator is
strict where X is strict (auth, parameter names and ranges, text length, duplicates, rate
limits with their headers) and answers with the spec's Problem objects. ``/_sandbox/`` holds
private JSON control endpoints for tests and demos; they are not X-shaped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from twitter_text import parse_tweet
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from channels_social.sandbox.x.private_api import ControlEndpoints
from channels_social.sandbox.x.shapes import (
    DEFAULT_RATE_LIMITS,
    DM_EVENT_TYPES,
    DM_EXPANSIONS,
    DM_MAX_CHARS,
    DM_NOT_ALLOWED_DETAIL,
    DUPLICATE_DETAIL,
    FALLBACK_RATE_LIMIT,
    FIELD_ENUMS,
    MENTIONS_REACHABLE,
    QUERY_PARAMS,
    SEARCH_QUERY_MAX,
    SEARCH_RECENT_DAYS,
    TWEET_CREATE_KEYS,
    TWEET_EXPANSIONS,
    TWEET_MAX_WEIGHTED,
    UNSUPPORTED_AUTH,
    USER_EXPANSIONS,
    WINDOW_SECONDS,
    ApiError,
    base36,
    fault_problem,
    invalid,
    not_found_error,
    problem,
    render_dm_event,
    render_tweet,
    render_user,
)
from channels_social.sandbox.x.store import (
    ID_RE,
    LEADING_MENTIONS,
    MENTION_RE,
    StoreError,
    XStore,
    XTweet,
    counted_text,
    parse_iso,
)

FAULT_MODES = ("status", "after_commit_delay", "after_commit_drop", "malformed")
# Faults that wait for a paged list call (one carrying a page token) rather than the next call.
PAGING_FAULT_MODES = ("repeat_page",)
PAGE_TOKEN_PARAMS = ("pagination_token", "next_token")


def dm_token(event_id: str) -> str:
    """A base32 pagination token, as X's DM endpoints use (at least 16 characters)."""
    return base64.b32encode(event_id.zfill(19).encode()).decode().rstrip("=")


def dm_token_value(token: str) -> int:
    padded = token + "=" * (-len(token) % 8)
    return int(base64.b32decode(padded.encode()).decode())


@dataclass(frozen=True)
class Fault:
    """One injected fault; see XSandboxApp.inject_faults."""

    mode: str
    status: int = 503
    delay: float = 0.0


class DroppedConnection(ConnectionAbortedError):
    """Raised after shutting the socket: werkzeug treats it as a dropped connection, quietly."""


@dataclass(frozen=True)
class Principal:
    kind: str  # "user", "app" or "none"
    user_id: str | None = None

    @property
    def bucket(self) -> str:
        return f"user:{self.user_id}" if self.kind == "user" else self.kind


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def csv_values(request: Request, name: str) -> list[str]:
    return [v for raw in request.args.getlist(name) for v in raw.split(",") if v]


class XSandboxApp(ControlEndpoints):
    """The WSGI callable. ``store`` is the world; ``request_log`` is what clients sent."""

    url_map = Map(
        [
            Rule("/2/users/me", endpoint="users_me", methods=["GET"]),
            Rule("/2/users/<user_id>", endpoint="get_user", methods=["GET"]),
            Rule("/2/users/<user_id>/mentions", endpoint="mentions", methods=["GET"]),
            Rule("/2/users/<user_id>/tweets", endpoint="user_tweets", methods=["GET"]),
            Rule("/2/tweets", endpoint="create_tweet", methods=["POST"]),
            Rule("/2/tweets/search/recent", endpoint="search_recent", methods=["GET"]),
            Rule("/2/tweets/<tweet_id>", endpoint="get_tweet", methods=["GET"]),
            Rule("/2/tweets/<tweet_id>/hidden", endpoint="hide_reply", methods=["PUT"]),
            Rule("/2/dm_events", endpoint="dm_events", methods=["GET"]),
            Rule(
                "/2/dm_conversations/with/<participant_id>/messages",
                endpoint="create_dm",
                methods=["POST"],
            ),
            Rule("/_sandbox/health", endpoint="c_health", methods=["GET"]),
            Rule("/_sandbox/reset", endpoint="c_reset", methods=["POST"]),
            Rule("/_sandbox/users", endpoint="c_upsert_user", methods=["POST"]),
            Rule("/_sandbox/users/by-username/<username>", endpoint="c_user", methods=["GET"]),
            Rule("/_sandbox/tweets", endpoint="c_add_tweet", methods=["POST"]),
            Rule("/_sandbox/tweets/<tweet_id>", endpoint="c_tweet", methods=["GET"]),
            Rule("/_sandbox/dm_events", endpoint="c_dm_events", methods=["GET"]),
            Rule("/_sandbox/dms", endpoint="c_send_dm", methods=["POST"]),
            Rule("/_sandbox/requests", endpoint="c_requests", methods=["GET"]),
            Rule("/_sandbox/rate_limits", endpoint="c_rate_limits", methods=["POST"]),
            Rule("/_sandbox/faults", endpoint="c_faults", methods=["POST"]),
            Rule("/_sandbox/tokens/revoke", endpoint="c_revoke_token", methods=["POST"]),
            Rule("/_sandbox/tokens/restore", endpoint="c_restore_token", methods=["POST"]),
        ]
    )

    def __init__(self, store: XStore | None = None, rate_limits: dict[str, int] | None = None):
        self.store = store if store is not None else XStore()
        self._initial_overrides = dict(rate_limits or {})
        self._lock = threading.Lock()
        self.request_log: list[dict[str, Any]] = []
        self.rate_limits: dict[str, int] = {}
        self._windows: dict[tuple[str, str], list[float]] = {}
        self._faults: list[Fault] = []
        self._paging_faults: list[Fault] = []
        # The last page of each list endpoint served to each caller, for the repeat_page fault.
        self._last_page: dict[tuple[str, str], dict[str, Any]] = {}
        # Access tokens and bearer tokens the user (or X) revoked: every call made with one
        # answers 401, as X does once an app's access is revoked or its keys regenerated.
        self.revoked_tokens: set[str] = set()
        self.configure_rate_limits(self._initial_overrides, replace=True)

    def revoke_token(self, token: str) -> None:
        """Calls with this OAuth access token (or bearer token) now get 401 Unauthorized."""
        if not token:
            raise ValueError("Name the token to revoke.")
        with self._lock:
            self.revoked_tokens.add(str(token))

    def restore_token(self, token: str) -> None:
        with self._lock:
            self.revoked_tokens.discard(str(token))

    # Test hooks

    def configure_rate_limits(self, overrides: dict[str, int], *, replace: bool = False) -> None:
        """``{"mentions": 2}`` sets user and app limits; ``{"mentions:app": 2}`` only one."""
        limits = dict(DEFAULT_RATE_LIMITS) if replace else dict(self.rate_limits)
        for key, value in overrides.items():
            targets = [key] if ":" in key else [f"{key}:user", f"{key}:app"]
            for target in targets:
                limits[target] = int(value)
        with self._lock:
            self.rate_limits = limits
            self._windows.clear()

    def inject_faults(
        self, status: int = 503, count: int = 1, *, mode: str = "status", delay: float = 0.0
    ) -> None:
        """Make the next ``count`` X API calls (not ``/_sandbox/``) misbehave.

        ``mode="status"``: the call is not processed and answers ``status`` with the Problem
        X sends for it (see shapes.INJECTABLE_STATUSES). ``mode="after_commit_delay"``: the
        call is processed as usual (the post or DM is stored), then the response waits
        ``delay`` seconds: a client with a shorter read timeout gives up after X accepted the
        write. ``mode="after_commit_drop"``: the call is processed, then the connection is
        closed without any response. ``mode="malformed"``: the call is processed, then answered
        200 with a JSON body cut short (a proxy or the platform failing midway). ``status`` is
        ignored by the modes other than ``status``.

        ``mode="repeat_page"`` waits for the next paged list call (one sending a
        ``pagination_token`` or ``next_token``) and answers it with the page that caller was
        served before from the same endpoint, so the answer carries again the very token the
        client just sent. ``count`` of them in a row repeat the same page ``count`` times: a
        client that follows ``next_token`` blindly goes round in a loop until they run out.
        """
        if mode not in FAULT_MODES + PAGING_FAULT_MODES:
            raise ValueError(
                f"Unknown fault mode {mode!r}; choose one of "
                f"{', '.join(FAULT_MODES + PAGING_FAULT_MODES)}."
            )
        if mode == "status":
            fault_problem(int(status))  # refuses a status the emulator cannot answer
        if int(count) < 1:
            raise ValueError("count must be at least 1.")
        if float(delay) < 0:
            raise ValueError("delay must not be negative.")
        fault = Fault(mode=mode, status=int(status), delay=float(delay))
        with self._lock:
            target = self._paging_faults if mode in PAGING_FAULT_MODES else self._faults
            target.extend([fault] * int(count))

    def clear_faults(self) -> None:
        """Drop every injected fault not yet taken (the world and the log stay)."""
        with self._lock:
            self._faults.clear()
            self._paging_faults.clear()

    def close(self) -> None:
        """Write any pending state to the state file; call on a clean shutdown."""
        self.store.close()

    def reset(self) -> None:
        self.store.reset()
        with self._lock:
            self.request_log.clear()
            self._faults.clear()
            self._paging_faults.clear()
            self._last_page.clear()
            self.revoked_tokens.clear()
        self.configure_rate_limits(self._initial_overrides, replace=True)

    def requests_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self.request_log]

    # WSGI

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_sandbox/"):
            response = self._control(request)
        else:
            response = self._api(request)
        return response(environ, start_response)

    def _api(self, request: Request) -> Response:
        principal = self._authenticate(request)
        endpoint: Any = "unknown"
        args: Mapping[str, Any] = {}
        route_error: ApiError | None = None
        try:
            endpoint, args = self.url_map.bind_to_environ(request.environ).match()
        except MethodNotAllowed:
            route_error = problem(405, "Method Not Allowed", "Method Not Allowed")
        except NotFound:
            route_error = problem(404, "Not Found", "Sorry, that page does not exist.")
        headers, over_limit = self._consume_rate_limit(str(endpoint), principal)
        body: Any = None
        fault: Fault | None = None
        try:
            if route_error is not None:
                raise route_error
            if principal.kind == "none":
                raise problem(401, "Unauthorized", "Unauthorized")
            if over_limit:
                raise problem(429, "Too Many Requests", "Too Many Requests")
            fault = self._take_fault()
            if fault is not None and fault.mode == "status":
                if fault.status == 429:
                    headers["x-rate-limit-remaining"] = "0"
                raise fault_problem(fault.status)
            body = self._json_body(request) if request.method in ("POST", "PUT") else None
            handler = getattr(self, f"api_{endpoint}")
            status, payload = handler(request, principal, body, **args)
            if request.method == "GET" and status == 200 and "meta" in payload:
                repeated = self._repeated_page(request, str(endpoint), principal, payload)
                if repeated is not None:
                    payload, fault = repeated, fault or Fault(mode="repeat_page")
            response = json_response(payload, status)
        except ApiError as error:
            response = json_response(error.problem, error.status)
        if fault is not None and fault.mode == "malformed":
            response = Response(
                response.get_data()[: max(1, len(response.get_data()) // 2)],
                status=200,
                mimetype="application/json",
            )
        for name, value in headers.items():
            response.headers[name] = value
        self._log(request, principal, body, response.status_code, fault)
        if fault is not None and fault.mode == "after_commit_delay":
            time.sleep(fault.delay)
        elif fault is not None and fault.mode == "after_commit_drop":
            self._drop_connection(request)
        return response

    def _drop_connection(self, request: Request) -> None:
        """Close the client's socket without a response (werkzeug's server only)."""
        sock = request.environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise DroppedConnection("The X sandbox dropped this connection on purpose (fault).")

    def _authenticate(self, request: Request) -> Principal:
        header = request.headers.get("Authorization", "").strip()
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            if unquote(rest.strip()) in self.revoked_tokens:
                return Principal("none")
            return Principal("app")
        if scheme.lower() == "oauth":
            params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
            access_token = unquote(params.get("oauth_token", ""))
            if access_token in self.revoked_tokens:
                return Principal("none")
            user_id = access_token.split("-", 1)[0]
            if user_id and self.store.get_user(user_id) is not None:
                return Principal("user", user_id)
        return Principal("none")

    def _consume_rate_limit(
        self, endpoint: str, principal: Principal
    ) -> tuple[dict[str, str], bool]:
        """Count this call in its fixed 15-minute window; True when it is over the limit."""
        limit = self.rate_limits.get(f"{endpoint}:{principal.kind}", FALLBACK_RATE_LIMIT)
        now = time.time()
        with self._lock:
            window = self._windows.get((endpoint, principal.bucket))
            if window is None or now >= window[0] + WINDOW_SECONDS:
                window = self._windows[(endpoint, principal.bucket)] = [now, 0]
            window[1] += 1
            used = int(window[1])
            reset = int(window[0] + WINDOW_SECONDS)
        headers = {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(max(0, limit - used)),
            "x-rate-limit-reset": str(reset),
        }
        return headers, used > limit

    def _take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _repeated_page(
        self, request: Request, endpoint: str, principal: Principal, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Under a ``repeat_page`` fault, the page this caller was served before from this
        endpoint (which names again the token just sent) to answer instead of ``payload``;
        else None, and ``payload`` is remembered as the last page. A repeated page is not, so
        faults in a row repeat the same page."""
        key = (endpoint, principal.bucket)
        paged = any(name in request.args for name in PAGE_TOKEN_PARAMS)
        with self._lock:
            previous = self._last_page.get(key)
            if paged and previous is not None and self._paging_faults:
                self._paging_faults.pop(0)
                return previous
            self._last_page[key] = payload
        return None

    def _json_body(self, request: Request) -> Any:
        raw = request.get_data(as_text=True)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise invalid("The request body is not valid JSON.") from None

    def _log(
        self,
        request: Request,
        principal: Principal,
        body: Any,
        status: int,
        fault: Fault | None = None,
    ) -> None:
        auth_header = request.headers.get("Authorization", "")
        auth_kind = auth_header.partition(" ")[0].lower() or None
        entry = {
            "method": request.method,
            "path": request.path,
            "query": {key: request.args.getlist(key) for key in request.args},
            "json": body,
            "auth": {"oauth": "oauth1", "bearer": "bearer"}.get(auth_kind or "", auth_kind),
            "user_id": principal.user_id,
            "status": status,
            "fault": fault.mode if fault is not None else None,
        }
        with self._lock:
            self.request_log.append(entry)

    # Parameter helpers

    def _check_query(self, request: Request, endpoint: str, expansions: frozenset[str]) -> None:
        allowed = QUERY_PARAMS[endpoint]
        for name in request.args:
            if name not in allowed:
                raise invalid(
                    f"The query parameter [{name}] is not one of [{','.join(sorted(allowed))}]",
                    {name: request.args.getlist(name)},
                )
        enums = {**FIELD_ENUMS, "expansions": expansions}
        for name, enum in enums.items():
            for value in csv_values(request, name):
                if value not in enum:
                    raise invalid(
                        f"The `{name}` query parameter value [{value}] is not one of "
                        f"[{','.join(sorted(enum))}]",
                        {name: [value]},
                    )

    def _id_param(self, request: Request, name: str) -> int | None:
        value = request.args.get(name)
        if value is None:
            return None
        if not ID_RE.match(value):
            raise invalid(
                f"The `{name}` query parameter value [{value}] is not valid", {name: [value]}
            )
        return int(value)

    def _time_param(self, request: Request, name: str) -> datetime | None:
        value = request.args.get(name)
        if value is None:
            return None
        try:
            return parse_iso(value)
        except ValueError:
            raise invalid(f"Invalid {name}: [{value}]", {name: [value]}) from None

    def _require_user(self, principal: Principal) -> str:
        if principal.kind != "user" or principal.user_id is None:
            raise problem(
                403,
                "Unsupported Authentication",
                "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
                "Supported authentication types are [OAuth 1.0a User Context, "
                "OAuth 2.0 User Context].",
                UNSUPPORTED_AUTH,
            )
        return principal.user_id

    def _includes(self, request: Request, tweets: list[XTweet]) -> dict[str, Any]:
        expansions = set(csv_values(request, "expansions"))
        user_fields = set(csv_values(request, "user.fields"))
        tweet_fields = set(csv_values(request, "tweet.fields"))
        user_ids: list[str] = []
        referenced: list[XTweet] = []
        for tweet in tweets:
            if "author_id" in expansions:
                user_ids.append(tweet.author_id)
            if "in_reply_to_user_id" in expansions and tweet.in_reply_to_user_id:
                user_ids.append(tweet.in_reply_to_user_id)
            if "entities.mentions.username" in expansions:
                user_ids.extend(m["id"] for m in tweet.mentions if "id" in m)
            for reference in tweet.referenced_tweets():
                parent = self.store.get_tweet(reference["id"])
                if parent is not None and "referenced_tweets.id" in expansions:
                    referenced.append(parent)
                if parent is not None and "referenced_tweets.id.author_id" in expansions:
                    user_ids.append(parent.author_id)
        includes: dict[str, Any] = {}
        users = [self.store.get_user(uid) for uid in dict.fromkeys(user_ids)]
        if any(users):
            includes["users"] = [render_user(u, user_fields) for u in users if u is not None]
        if referenced:
            unique = {t.id: t for t in referenced}.values()
            includes["tweets"] = [self._render(t, tweet_fields) for t in unique]
        return includes

    def _render(self, tweet: XTweet, fields: set[str]) -> dict[str, Any]:
        metrics = self.store.public_metrics(tweet) if "public_metrics" in fields else None
        return render_tweet(tweet, fields, metrics)

    def _max_results(self, request: Request, low: int, high: int, default: int) -> int:
        raw_max = request.args.get("max_results", str(default))
        if not raw_max.isdigit() or not low <= int(raw_max) <= high:
            raise invalid(
                f"The `max_results` query parameter value [{raw_max}] is not between "
                f"{low} and {high}",
                {"max_results": [raw_max]},
            )
        return int(raw_max)

    def _base36_token(self, request: Request, name: str) -> int | None:
        token = request.args.get(name)
        if token is None:
            return None
        try:
            return int(token, 36)
        except ValueError:
            raise invalid(
                f"The `{name}` query parameter value [{token}] is not valid", {name: [token]}
            ) from None

    def _tweet_page(
        self, request: Request, candidates: list[XTweet], *, page_size: int, page_param: str
    ) -> dict[str, Any]:
        """One page of a newest-first timeline, filtered by the usual id and time bounds."""
        since_id = self._id_param(request, "since_id")
        until_id = self._id_param(request, "until_id")
        start_time = self._time_param(request, "start_time")
        end_time = self._time_param(request, "end_time")
        before = self._base36_token(request, page_param)

        def wanted(tweet: XTweet) -> bool:
            number = int(tweet.id)
            return (
                (since_id is None or number > since_id)
                and (until_id is None or number < until_id)
                and (before is None or number < before)
                and (start_time is None or tweet.created_at >= start_time)
                and (end_time is None or tweet.created_at <= end_time)
            )

        matching = [t for t in candidates if wanted(t)]
        page = matching[:page_size]
        if not page:
            return {"meta": {"result_count": 0}}
        fields = set(csv_values(request, "tweet.fields"))
        payload: dict[str, Any] = {"data": [self._render(t, fields) for t in page]}
        includes = self._includes(request, page)
        if includes:
            payload["includes"] = includes
        meta: dict[str, Any] = {
            "result_count": len(page),
            "newest_id": page[0].id,
            "oldest_id": page[-1].id,
        }
        if len(matching) > len(page):
            meta["next_token"] = base36(int(page[-1].id))
        payload["meta"] = meta
        return payload

    # X API v2 endpoints: each returns (status, payload) or raises ApiError

    def api_mentions(
        self, request: Request, principal: Principal, body: Any, user_id: str
    ) -> tuple[int, dict[str, Any]]:
        self._check_query(request, "mentions", TWEET_EXPANSIONS)
        if not ID_RE.match(user_id):
            raise invalid(
                f"The `id` query parameter value [{user_id}] is not valid", {"id": [user_id]}
            )
        raw_max = request.args.get("max_results", "10")
        if not raw_max.isdigit() or not 5 <= int(raw_max) <= 100:
            raise invalid(
                f"The `max_results` query parameter value [{raw_max}] is not between 5 and 100",
                {"max_results": [raw_max]},
            )
        since_id = self._id_param(request, "since_id")
        until_id = self._id_param(request, "until_id")
        start_time = self._time_param(request, "start_time")
        end_time = self._time_param(request, "end_time")
        token = request.args.get("pagination_token")
        before: int | None = None
        if token is not None:
            try:
                before = int(token, 36)
            except ValueError:
                raise invalid(
                    f"The `pagination_token` query parameter value [{token}] is not valid",
                    {"pagination_token": [token]},
                ) from None
        if self.store.get_user(user_id) is None:
            return 200, {"errors": [not_found_error("user", "id", user_id)]}

        def wanted(tweet: XTweet) -> bool:
            number = int(tweet.id)
            return (
                (since_id is None or number > since_id)
                and (until_id is None or number < until_id)
                and (before is None or number < before)
                and (start_time is None or tweet.created_at >= start_time)
                and (end_time is None or tweet.created_at <= end_time)
            )

        matching = [t for t in self.store.mentions_of(user_id)[:MENTIONS_REACHABLE] if wanted(t)]
        page = matching[: int(raw_max)]
        if not page:
            return 200, {"meta": {"result_count": 0}}
        fields = set(csv_values(request, "tweet.fields"))
        payload: dict[str, Any] = {"data": [self._render(t, fields) for t in page]}
        includes = self._includes(request, page)
        if includes:
            payload["includes"] = includes
        meta: dict[str, Any] = {
            "result_count": len(page),
            "newest_id": page[0].id,
            "oldest_id": page[-1].id,
        }
        if len(matching) > len(page):
            meta["next_token"] = base36(int(page[-1].id))
        payload["meta"] = meta
        return 200, payload

    def api_user_tweets(
        self, request: Request, principal: Principal, body: Any, user_id: str
    ) -> tuple[int, dict[str, Any]]:
        self._check_query(request, "user_tweets", TWEET_EXPANSIONS)
        if not ID_RE.match(user_id):
            raise invalid(
                f"The `id` query parameter value [{user_id}] is not valid", {"id": [user_id]}
            )
        page_size = self._max_results(request, 5, 100, 10)
        excluded = set(csv_values(request, "exclude"))
        for value in excluded - {"replies", "retweets"}:
            raise invalid(
                f"The `exclude` query parameter value [{value}] is not one of [replies,retweets]",
                {"exclude": [value]},
            )
        if self.store.get_user(user_id) is None:
            return 200, {"errors": [not_found_error("user", "id", user_id)]}
        candidates = [
            t
            for t in self.store.tweets_by(user_id)[:3200]  # X keeps the last 3,200 reachable
            if not ("replies" in excluded and t.in_reply_to_tweet_id)
            and not ("retweets" in excluded and t.retweeted_tweet_id)
        ]
        return 200, self._tweet_page(
            request, candidates, page_size=page_size, page_param="pagination_token"
        )

    def api_search_recent(
        self, request: Request, principal: Principal, body: Any
    ) -> tuple[int, dict[str, Any]]:
        self._check_query(request, "search_recent", TWEET_EXPANSIONS)
        query = request.args.get("query")
        if not query or not query.strip():
            raise invalid("The `query` query parameter can not be empty", {"query": [""]})
        if len(query) > SEARCH_QUERY_MAX:
            raise invalid(
                f"There were errors processing your request: Rules must contain no more than "
                f"{SEARCH_QUERY_MAX} characters",
                {"query": [query[:50]]},
            )
        if query.count('"') % 2:
            raise invalid(
                "There were errors processing your request: Unterminated quoted phrase",
                {"query": [query[:50]]},
            )
        page_size = self._max_results(request, 10, 100, 10)
        page_param = "next_token" if "next_token" in request.args else "pagination_token"
        try:
            matched = self.store.search(query)
        except StoreError as exc:
            raise invalid(f"There were errors processing your request: {exc}") from None
        recent_from = datetime.now(UTC) - timedelta(days=SEARCH_RECENT_DAYS)
        candidates = [t for t in matched if t.created_at >= recent_from]
        return 200, self._tweet_page(
            request, candidates, page_size=page_size, page_param=page_param
        )

    def api_get_user(
        self, request: Request, principal: Principal, body: Any, user_id: str
    ) -> tuple[int, dict[str, Any]]:
        self._check_query(request, "get_user", USER_EXPANSIONS)
        if not ID_RE.match(user_id):
            raise invalid(
                f"The `id` query parameter value [{user_id}] is not valid", {"id": [user_id]}
            )
        user = self.store.get_user(user_id)
        if user is None:
            return 200, {"errors": [not_found_error("user", "id", user_id)]}
        return 200, {"data": render_user(user, set(csv_values(request, "user.fields")))}

    def api_hide_reply(
        self, request: Request, principal: Principal, body: Any, tweet_id: str
    ) -> tuple[int, dict[str, Any]]:
        user_id = self._require_user(principal)
        if not isinstance(body, dict) or not isinstance(body.get("hidden"), bool):
            raise invalid('The request body must be {"hidden": true|false}.')
        unknown = sorted(set(body) - {"hidden"})
        if unknown:
            raise invalid(f"Unknown field(s) in the request body: {', '.join(unknown)}")
        if not ID_RE.match(tweet_id):
            raise invalid(
                f"The `tweet_id` value [{tweet_id}] is not valid", {"tweet_id": [tweet_id]}
            )
        tweet = self.store.get_tweet(tweet_id)
        if tweet is None:
            raise problem(404, "Not Found Error", f"Could not find tweet with id: [{tweet_id}].")
        root = self.store.get_tweet(tweet.conversation_id)
        # X lets an account hide replies in the conversations it started, no other posts.
        if tweet.in_reply_to_tweet_id is None or root is None or root.author_id != user_id:
            raise problem(
                403,
                "Forbidden",
                "You can only hide or unhide replies to conversations you started.",
            )
        self.store.set_hidden(tweet_id, body["hidden"])
        return 200, {"data": {"hidden": body["hidden"]}}

    def api_dm_events(
        self, request: Request, principal: Principal, body: Any
    ) -> tuple[int, dict[str, Any]]:
        user_id = self._require_user(principal)
        self._check_query(request, "dm_events", DM_EXPANSIONS)
        page_size = self._max_results(request, 1, 100, 100)
        types = set(csv_values(request, "event_types")) or set(DM_EVENT_TYPES)
        for value in types - DM_EVENT_TYPES:
            raise invalid(
                f"The `event_types` query parameter value [{value}] is not one of "
                f"[{','.join(sorted(DM_EVENT_TYPES))}]",
                {"event_types": [value]},
            )
        token = request.args.get("pagination_token")
        before: int | None = None
        if token is not None:
            try:
                before = dm_token_value(token)
            except ValueError:
                raise invalid(
                    f"The `pagination_token` query parameter value [{token}] is not valid",
                    {"pagination_token": [token]},
                ) from None
        recent_from = datetime.now(UTC) - timedelta(days=30)  # X keeps the last 30 days
        events = sorted(
            (
                e
                for e in self.store.dm_events_with(user_id)
                if "MessageCreate" in types
                and e.created_at >= recent_from
                and (before is None or int(e.dm_event_id) < before)
            ),
            key=lambda e: int(e.dm_event_id),
            reverse=True,
        )
        page = events[:page_size]
        if not page:
            return 200, {"meta": {"result_count": 0}}
        fields = set(csv_values(request, "dm_event.fields"))
        payload: dict[str, Any] = {"data": [render_dm_event(e, fields) for e in page]}
        expansions = set(csv_values(request, "expansions"))
        user_ids: list[str] = []
        for event in page:
            if "sender_id" in expansions:
                user_ids.append(event.sender_id)
            if "participant_ids" in expansions:
                user_ids.extend(event.participant_ids)
        users = [self.store.get_user(uid) for uid in dict.fromkeys(user_ids)]
        user_fields = set(csv_values(request, "user.fields"))
        if any(users):
            payload["includes"] = {
                "users": [render_user(u, user_fields) for u in users if u is not None]
            }
        meta: dict[str, Any] = {"result_count": len(page)}
        if len(events) > len(page):
            meta["next_token"] = dm_token(page[-1].dm_event_id)
        payload["meta"] = meta
        return 200, payload

    def api_get_tweet(
        self, request: Request, principal: Principal, body: Any, tweet_id: str
    ) -> tuple[int, dict[str, Any]]:
        self._check_query(request, "get_tweet", TWEET_EXPANSIONS)
        if not ID_RE.match(tweet_id):
            raise invalid(
                f"The `id` query parameter value [{tweet_id}] is not valid", {"id": [tweet_id]}
            )
        tweet = self.store.get_tweet(tweet_id)
        if tweet is None:
            return 200, {"errors": [not_found_error("tweet", "id", tweet_id)]}
        payload: dict[str, Any] = {
            "data": self._render(tweet, set(csv_values(request, "tweet.fields")))
        }
        includes = self._includes(request, [tweet])
        if includes:
            payload["includes"] = includes
        return 200, payload

    def api_users_me(
        self, request: Request, principal: Principal, body: Any
    ) -> tuple[int, dict[str, Any]]:
        user_id = self._require_user(principal)
        self._check_query(request, "users_me", USER_EXPANSIONS)
        user = self.store.get_user(user_id)
        assert user is not None  # _authenticate only accepts known users
        return 200, {"data": render_user(user, set(csv_values(request, "user.fields")))}

    def api_create_tweet(
        self, request: Request, principal: Principal, body: Any
    ) -> tuple[int, dict[str, Any]]:
        user_id = self._require_user(principal)
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        unknown = sorted(set(body) - TWEET_CREATE_KEYS)
        if unknown:
            raise invalid(f"Unknown field(s) in the request body: {', '.join(unknown)}")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise invalid("Post text must not be empty.", {"text": [str(text or "")]})
        reply_to: str | None = None
        reply = body.get("reply")
        if reply is not None:
            reply_to = str(reply.get("in_reply_to_tweet_id", "")) if isinstance(reply, dict) else ""
            if not ID_RE.match(reply_to) or self.store.get_tweet(reply_to) is None:
                raise invalid(
                    f"The Post you are replying to ({reply_to or 'no id'}) does not exist or "
                    "has been deleted.",
                    {"reply.in_reply_to_tweet_id": [reply_to]},
                )
            text = self._reply_metadata(text, reply, reply_to, user_id)
        weighted = parse_tweet(counted_text(text, is_reply=reply_to is not None)).weightedLength
        if weighted > TWEET_MAX_WEIGHTED:
            raise invalid(
                f"Post text is {weighted} characters by X's count; the limit is "
                f"{TWEET_MAX_WEIGHTED}.",
                {"text": [text]},
            )
        quote_of = body.get("quote_tweet_id")
        if quote_of is not None and (
            not ID_RE.match(str(quote_of)) or self.store.get_tweet(str(quote_of)) is None
        ):
            raise invalid(
                f"The Post you are quoting ({quote_of}) does not exist or has been deleted.",
                {"quote_tweet_id": [str(quote_of)]},
            )
        if self.store.has_duplicate(author_id=user_id, text=text, is_reply=reply_to is not None):
            raise problem(403, "Forbidden", DUPLICATE_DETAIL)
        tweet = self.store.add_tweet(
            author_id=user_id,
            text=text,
            in_reply_to_tweet_id=reply_to,
            quote_of=str(quote_of) if quote_of is not None else None,
        )
        return 201, {
            "data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}
        }

    def _reply_metadata(self, text: str, reply: dict[str, Any], reply_to: str, user_id: str) -> str:
        """With ``auto_populate_reply_metadata``, X puts the @handle of the post replied to in
        front of the text (not counted: reply metadata), unless the text already starts with
        it, the author is the poster, or ``exclude_reply_user_ids`` names them."""
        if not reply.get("auto_populate_reply_metadata"):
            return text
        parent = self.store.get_tweet(reply_to)
        author = self.store.get_user(parent.author_id) if parent is not None else None
        excluded = {str(uid) for uid in reply.get("exclude_reply_user_ids") or []}
        if author is None or author.id == user_id or author.id in excluded:
            return text
        leading = LEADING_MENTIONS.match(text)
        typed = MENTION_RE.findall(leading.group(0)) if leading else []
        if author.username.lower() in (handle.lower() for handle in typed):
            return text
        return f"@{author.username} {text}"

    def api_create_dm(
        self, request: Request, principal: Principal, body: Any, participant_id: str
    ) -> tuple[int, dict[str, Any]]:
        user_id = self._require_user(principal)
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        if "attachments" in body:
            raise invalid("The sandbox does not support DM attachments.")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise invalid("The message text must not be empty.", {"text": [str(text or "")]})
        if len(text) > DM_MAX_CHARS:
            raise invalid(
                f"The message is {len(text)} characters; the limit is {DM_MAX_CHARS}.",
                {"text": [text[:50]]},
            )
        if not ID_RE.match(participant_id) or self.store.get_user(participant_id) is None:
            raise invalid(
                f"The `participant_id` value [{participant_id}] is not a user you can message.",
                {"participant_id": [participant_id]},
            )
        if participant_id == user_id:
            raise problem(403, "Forbidden", "You cannot send a Direct Message to yourself.")
        recipient = self.store.get_user(participant_id)
        if recipient is not None and not recipient.accepts_dms:
            raise problem(403, "Forbidden", DM_NOT_ALLOWED_DETAIL)
        event = self.store.add_dm(sender_id=user_id, recipient_id=participant_id, text=text)
        return 201, {
            "data": {
                "dm_conversation_id": event.dm_conversation_id,
                "dm_event_id": event.dm_event_id,
            }
        }


def create_app(
    store: XStore | None = None,
    *,
    rate_limits: dict[str, int] | None = None,
    state_path: Path | None = None,
) -> XSandboxApp:
    """A fresh emulator; ``rate_limits`` overrides the defaults (see configure_rate_limits).

    ``state_path`` keeps users, posts and DM events in that JSON file across restarts (loaded
    now, saved after every change); without it the emulator lives in memory only.
    """
    if store is not None and state_path is not None:
        raise ValueError("Pass either a store or a state_path, not both.")
    return XSandboxApp(store if store is not None else XStore(state_path), rate_limits)
