"""The emulator's private ``/_sandbox/`` endpoints: plain JSON for tests, demos and commands.

They let a test or ``manage.py sandbox_post`` inject customers' posts, read what the connector
sent, and reset the world; nothing X-shaped lives here.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from channels_social.sandbox.x.store import StoreError, XStore, parse_iso


class ControlError(Exception):
    """Ends a ``/_sandbox/`` request with ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlEndpoints:
    """Mixed into XSandboxApp; relies on its store, url_map and test hooks."""

    store: XStore
    url_map: Map
    rate_limits: dict[str, int]
    _lock: threading.Lock

    if TYPE_CHECKING:  # provided by XSandboxApp

        def reset(self) -> None: ...

        def requests_log(self) -> list[dict[str, Any]]: ...

        def configure_rate_limits(
            self, overrides: dict[str, int], *, replace: bool = False
        ) -> None: ...

        def inject_faults(
            self, status: int = 503, count: int = 1, *, mode: str = "status", delay: float = 0.0
        ) -> None: ...

        def revoke_token(self, token: str) -> None: ...

        def restore_token(self, token: str) -> None: ...

    def _control(self, request: Request) -> Response:
        try:
            try:
                endpoint, args = self.url_map.bind_to_environ(request.environ).match()
            except HTTPException as exc:
                raise ControlError(exc.code or 404, exc.description or "Not found") from None
            body = None
            if request.method == "POST":
                try:
                    body = json.loads(request.get_data(as_text=True) or "{}")
                except ValueError:
                    raise ControlError(400, "The body is not valid JSON.") from None
                if not isinstance(body, dict):
                    raise ControlError(400, "The body must be a JSON object.")
            status, payload = getattr(self, endpoint)(request, body, **args)
            return _json(payload, status)
        except ControlError as error:
            return _json({"error": str(error)}, error.status)
        except (StoreError, ValueError, TypeError, KeyError) as error:
            return _json({"error": str(error)}, 400)

    def c_health(self, request: Request, body: Any) -> tuple[int, Any]:
        state = self.store.state_path
        return 200, {
            "ok": True,
            "users": len(self.store.users),
            "tweets": len(self.store.tweets),
            "dm_events": len(self.store.dm_events),
            "state_file": str(state) if state is not None else None,
        }

    def c_reset(self, request: Request, body: Any) -> tuple[int, Any]:
        self.reset()
        return 200, {"ok": True}

    def c_upsert_user(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        user = self.store.upsert_user(
            id=str(body["id"]),
            username=str(body["username"]),
            name=body.get("name"),
            followers_count=body.get("followers_count"),
            following_count=body.get("following_count"),
            listed_count=body.get("listed_count"),
            verified=body.get("verified"),
            accepts_dms=body.get("accepts_dms"),
        )
        return 200, user.record()

    def c_user(self, request: Request, body: Any, username: str) -> tuple[int, Any]:
        user = self.store.user_by_username(username)
        if user is None:
            raise ControlError(404, f"No user @{username} in the X sandbox.")
        return 200, user.record()

    def c_add_tweet(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        author = body.get("author")
        if not isinstance(author, dict):
            raise ControlError(400, "author {id, username, name, followers_count} is required.")
        user = self.store.upsert_user(
            id=str(author.get("id", "")),
            username=str(author.get("username", "")),
            name=author.get("name"),
            followers_count=author.get("followers_count"),
            verified=author.get("verified"),
        )
        retweet_of = body.get("retweet_of") or None
        text = body.get("text")
        if retweet_of:
            text = ""  # a pure retweet's text is X's "RT @author: ..."
        elif not isinstance(text, str) or not text.strip():
            raise ControlError(400, "text is required.")
        created_at = body.get("created_at")
        tweet = self.store.add_tweet(
            author_id=user.id,
            text=str(text),
            in_reply_to_tweet_id=body.get("in_reply_to_tweet_id") or None,
            created_at=parse_iso(created_at) if created_at else None,
            quote_of=body.get("quote_of") or None,
            retweet_of=retweet_of,
        )
        return 201, tweet.record()

    def c_send_dm(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        """A customer (``from``, created or updated like a post's author) DMs ``to_username``."""
        sender = body.get("from")
        if not isinstance(sender, dict):
            raise ControlError(400, "from {id, username, name, followers_count} is required.")
        recipient = self.store.user_by_username(str(body.get("to_username", "")))
        if recipient is None:
            raise ControlError(404, f"No user @{body.get('to_username')} in the X sandbox.")
        user = self.store.upsert_user(
            id=str(sender.get("id", "")),
            username=str(sender.get("username", "")),
            name=sender.get("name"),
            followers_count=sender.get("followers_count"),
        )
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ControlError(400, "text is required.")
        created_at = body.get("created_at")
        event = self.store.add_dm(
            sender_id=user.id,
            recipient_id=recipient.id,
            text=text,
            created_at=parse_iso(created_at) if created_at else None,
        )
        return 201, {"id": event.dm_event_id, **event.record()}

    def c_tweet(self, request: Request, body: Any, tweet_id: str) -> tuple[int, Any]:
        tweet = self.store.get_tweet(tweet_id)
        if tweet is None:
            raise ControlError(404, f"No post {tweet_id} in the X sandbox.")
        return 200, tweet.record()

    def c_dm_events(self, request: Request, body: Any) -> tuple[int, Any]:
        events = self.store.dm_events_with(request.args.get("participant_id"))
        return 200, {"data": [event.record() for event in events]}

    def c_requests(self, request: Request, body: Any) -> tuple[int, Any]:
        return 200, {"data": self.requests_log()}

    def c_rate_limits(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        self.configure_rate_limits({str(k): int(v) for k, v in body.items()})
        return 200, {"rate_limits": self.rate_limits}

    def c_faults(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        self.inject_faults(
            int(body.get("status", 503)),
            int(body.get("count", 1)),
            mode=str(body.get("mode", "status")),
            delay=float(body.get("delay", 0.0)),
        )
        return 200, {"ok": True}

    def c_revoke_token(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        self.revoke_token(str(body.get("token") or ""))
        return 200, {"ok": True}

    def c_restore_token(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        self.restore_token(str(body.get("token") or ""))
        return 200, {"ok": True}


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
