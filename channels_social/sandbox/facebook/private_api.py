"""The emulator's private ``/_sandbox/`` endpoints: plain JSON for tests, demos and commands.

They create pages, let customers comment, post and write on Messenger (each with its webhook),
read back what the page sent, move the clock, and inject faults; nothing Graph-shaped lives here.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from channels_social.sandbox.facebook.store import FacebookStore, StoreError, parse_time

if TYPE_CHECKING:
    from channels_social.sandbox.facebook.store import FbComment, FbMessage, FbPost
    from channels_social.sandbox.facebook.webhooks import WebhookDispatcher


class ControlError(Exception):
    """Ends a ``/_sandbox/`` request with ``{"error": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _time(body: dict[str, Any], name: str = "created_time") -> datetime | None:
    value = body.get(name)
    return parse_time(value) if isinstance(value, str | int | float) and value != "" else None


def _author(body: dict[str, Any]) -> tuple[str | None, str]:
    author = body.get("from")
    if not isinstance(author, dict) or not str(author.get("name", "")).strip():
        raise ControlError(400, 'from {"id", "name"} is required (id optional: one is made up).')
    person_id = author.get("id")
    return (str(person_id) if person_id not in (None, "") else None), str(author["name"])


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ControlError(400, f"{name} is required.")
    return value


class ControlEndpoints:
    """Mixed into FacebookSandboxApp; relies on its store, webhooks and test hooks."""

    store: FacebookStore
    webhooks: WebhookDispatcher
    url_map: Map
    _lock: threading.Lock

    if TYPE_CHECKING:  # provided by FacebookSandboxApp

        def reset(self) -> None: ...

        def requests_log(self) -> list[dict[str, Any]]: ...

        def configure_rate_limits(self, **limits: int) -> None: ...

        def revoke_token(self, token: str, subcode: int = 460) -> None: ...

        def customer_edit(self, *, object_id: str, message: str) -> FbComment | FbPost: ...

        def customer_remove(self, *, object_id: str) -> None: ...

        def restore_token(self, token: str) -> None: ...

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
        ) -> None: ...

        def customer_comment(
            self,
            *,
            target_id: str,
            person_id: str | None,
            person_name: str,
            message: str,
            created_time: datetime | None = None,
        ) -> FbComment: ...

        def customer_post(
            self,
            *,
            page_id: str,
            person_id: str | None,
            person_name: str,
            message: str,
            tagged: bool = False,
            created_time: datetime | None = None,
        ) -> FbPost: ...

        def customer_message(
            self,
            *,
            page_id: str,
            person_id: str | None,
            person_name: str,
            text: str,
            created_time: datetime | None = None,
        ) -> FbMessage: ...

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
            "pages": len(self.store.pages),
            "posts": len(self.store.posts),
            "comments": len(self.store.comments),
            "messages": len(self.store.messages),
            "state_file": str(state) if state is not None else None,
            "webhook_url": self.webhooks.config.callback_url,
            "now": self.store.now().isoformat(),
        }

    def c_reset(self, request: Request, body: Any) -> tuple[int, Any]:
        self.reset()
        return 200, {"ok": True}

    def c_upsert_page(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        page = self.store.upsert_page(
            id=str(body["id"]),
            name=_text(body, "name"),
            access_token=_text(body, "access_token"),
            category=body.get("category"),
            about=body.get("about"),
            username=body.get("username"),
            fan_count=body.get("fan_count"),
            followers_count=body.get("followers_count"),
            subscribed_fields=body.get("subscribed_fields"),
        )
        return 200, self.store.record_of(page.id)

    def c_page(self, request: Request, body: Any, page_id: str) -> tuple[int, Any]:
        if page_id not in self.store.pages:
            raise ControlError(404, f"No page {page_id} in the Facebook sandbox.")
        return 200, self.store.record_of(page_id)

    def c_page_post(self, request: Request, body: dict[str, Any], page_id: str) -> tuple[int, Any]:
        post = self.store.add_post(
            page_id=page_id, message=_text(body, "message"), created_time=_time(body)
        )
        return 201, self.store.record_of(post.id)

    def c_sent(self, request: Request, body: Any, page_id: str) -> tuple[int, Any]:
        if page_id not in self.store.pages:
            raise ControlError(404, f"No page {page_id} in the Facebook sandbox.")
        return 200, self.store.sent_by(page_id)

    def c_upsert_person(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        person = self.store.upsert_person(id=body.get("id"), name=_text(body, "name"))
        return 200, self.store.record_of(person.id)

    def c_comment(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        person_id, name = _author(body)
        comment = self.customer_comment(
            target_id=_text(body, "target_id"),
            person_id=person_id,
            person_name=name,
            message=_text(body, "message"),
            created_time=_time(body),
        )
        return 201, self.store.record_of(comment.id)

    def c_visitor_post(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        person_id, name = _author(body)
        post = self.customer_post(
            page_id=_text(body, "page_id"),
            person_id=person_id,
            person_name=name,
            message=_text(body, "message"),
            tagged=bool(body.get("tagged", False)),
            created_time=_time(body),
        )
        return 201, self.store.record_of(post.id)

    def c_message(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        person_id, name = _author(body)
        page_id = _text(body, "page_id")
        if page_id not in self.store.pages:
            raise ControlError(404, f"No page {page_id} in the Facebook sandbox.")
        message = self.customer_message(
            page_id=page_id,
            person_id=person_id,
            person_name=name,
            text=_text(body, "text"),
            created_time=_time(body),
        )
        return 201, self.store.record_of(message.id)

    def c_edit(self, request: Request, body: dict[str, Any], object_id: str) -> tuple[int, Any]:
        edited = self.customer_edit(object_id=object_id, message=_text(body, "message"))
        return 200, self.store.record_of(edited.id)

    def c_remove(self, request: Request, body: dict[str, Any], object_id: str) -> tuple[int, Any]:
        self.customer_remove(object_id=object_id)
        return 200, {"ok": True}

    def c_object(self, request: Request, body: Any, object_id: str) -> tuple[int, Any]:
        record = self.store.record_of(object_id)
        if record is None:
            raise ControlError(404, f"No object {object_id} in the Facebook sandbox.")
        return 200, record

    def c_clock(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        offset = body.get("offset_seconds")
        self.store.set_clock(
            offset_seconds=float(offset) if offset is not None else None,
            frozen_at=_time(body, "frozen_at"),
        )
        return 200, {"now": self.store.now().isoformat()}

    def c_rate_limits(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        self.configure_rate_limits(**{str(k): int(v) for k, v in body.items()})
        return 200, {"ok": True}

    def c_faults(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        code, subcode = body.get("code"), body.get("subcode")
        self.inject_faults(
            int(body.get("status", 503 if body.get("mode", "status") == "status" else 400)),
            int(body.get("count", 1)),
            mode=str(body.get("mode", "status")),
            delay=float(body.get("delay", 0.0)),
            code=int(code) if code is not None else None,
            subcode=int(subcode) if subcode is not None else None,
            message=body.get("message"),
            regain_minutes=int(body.get("regain_minutes", 5)),
        )
        return 200, {"ok": True}

    def c_webhooks(self, request: Request, body: Any) -> tuple[int, Any]:
        return 200, {"data": self.webhooks.deliveries()}

    def c_configure_webhooks(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        timeout = body.get("timeout")
        self.webhooks.configure(
            callback_url=body.get("callback_url"),
            app_secret=body.get("app_secret"),
            timeout=float(timeout) if timeout is not None else None,
        )
        return 200, {"ok": True}

    def c_drop_webhooks(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        self.webhooks.drop_next(int(body.get("count", 1)))
        return 200, {"ok": True}

    def c_wait_webhooks(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"idle": self.webhooks.wait_idle(float(body.get("timeout", 5.0)))}

    def c_requests(self, request: Request, body: Any) -> tuple[int, Any]:
        return 200, {"data": self.requests_log()}

    def c_revoke_token(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        self.revoke_token(str(body.get("token") or ""), int(body.get("subcode", 460)))
        return 200, {"ok": True}

    def c_restore_token(self, request: Request, body: dict[str, Any]) -> tuple[int, Any]:
        self.restore_token(str(body.get("token") or ""))
        return 200, {"ok": True}


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
