"""A small client for the Facebook emulator's ``/_sandbox/`` endpoints (tests, commands, demo),
the app-side webhook verification handshake, and a requests session that sends Graph calls to
the emulator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from channels_social.sandbox.control_client import ControlClient
from channels_social.sandbox.control_client import SandboxError as SandboxError
from channels_social.sandbox.control_client import SandboxUnreachable as SandboxUnreachable

GRAPH_ORIGINS = ("https://graph.facebook.com",)


def _person(person_id: str | None, name: str) -> dict[str, Any]:
    author: dict[str, Any] = {"name": name}
    if person_id:
        author["id"] = str(person_id)
    return author


class FacebookSandboxControl(ControlClient):
    """Drives the Facebook emulator at ``base_url`` (e.g. ``http://127.0.0.1:8766``)."""

    label = "Facebook sandbox"
    command = "manage.py run_facebook_sandbox"

    def reset(self) -> None:
        self._call("POST", "reset")

    # The world

    def create_page(self, *, id: str, name: str, access_token: str, **extra: Any) -> dict[str, Any]:
        """Create or update a page; ``extra``: category, about, username, fan_count,
        followers_count, subscribed_fields (default feed and messages)."""
        payload = {"id": str(id), "name": name, "access_token": access_token, **extra}
        return dict(self._call("POST", "pages", json=payload))

    def get_page(self, page_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"pages/{page_id}"))

    def page_post(
        self, page_id: str, message: str, *, created_time: str | None = None
    ) -> dict[str, Any]:
        """A post by the page itself (customers then comment on it)."""
        payload: dict[str, Any] = {"message": message}
        if created_time:
            payload["created_time"] = created_time
        return dict(self._call("POST", f"pages/{page_id}/posts", json=payload))

    def comment(
        self,
        target_id: str,
        *,
        name: str,
        message: str,
        person_id: str | None = None,
        created_time: str | None = None,
    ) -> dict[str, Any]:
        """A customer comments on a post, or replies to a comment (``target_id`` a comment)."""
        payload: dict[str, Any] = {
            "target_id": target_id,
            "from": _person(person_id, name),
            "message": message,
        }
        if created_time:
            payload["created_time"] = created_time
        return dict(self._call("POST", "comments", json=payload))

    def visitor_post(
        self,
        page_id: str,
        *,
        name: str,
        message: str,
        person_id: str | None = None,
        tagged: bool = False,
        created_time: str | None = None,
    ) -> dict[str, Any]:
        """A customer posts on the page's wall, or (``tagged``) elsewhere, naming the page."""
        payload: dict[str, Any] = {
            "page_id": page_id,
            "from": _person(person_id, name),
            "message": message,
            "tagged": tagged,
        }
        if created_time:
            payload["created_time"] = created_time
        return dict(self._call("POST", "visitor_posts", json=payload))

    def message(
        self,
        page_id: str,
        *,
        name: str,
        text: str,
        person_id: str | None = None,
        created_time: str | None = None,
    ) -> dict[str, Any]:
        """A customer writes to the page on Messenger (``person_id`` is their PSID)."""
        payload: dict[str, Any] = {
            "page_id": page_id,
            "from": _person(person_id, name),
            "text": text,
        }
        if created_time:
            payload["created_time"] = created_time
        return dict(self._call("POST", "messages", json=payload))

    def edit(self, object_id: str, message: str) -> dict[str, Any]:
        """The customer edits their comment or visitor post (a ``verb: edited`` webhook)."""
        return dict(self._call("POST", f"objects/{object_id}/edit", json={"message": message}))

    def remove(self, object_id: str) -> None:
        """The customer deletes their comment or visitor post (a ``verb: remove`` webhook)."""
        self._call("POST", f"objects/{object_id}/remove", json={})

    def sent(self, page_id: str) -> dict[str, list[dict[str, Any]]]:
        """What the page did: ``comments``, ``messages`` (private replies too), ``posts``,
        ``moderation`` (hide, unhide, edit, delete)."""
        return dict(self._call("GET", f"pages/{page_id}/sent"))

    def get_object(self, object_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"objects/{object_id}"))

    def set_clock(
        self, *, offset_seconds: float | None = None, frozen_at: str | None = None
    ) -> str:
        """Shift the emulator's clock, or stop it at ``frozen_at``; neither: the real clock."""
        payload: dict[str, Any] = {}
        if offset_seconds is not None:
            payload["offset_seconds"] = offset_seconds
        if frozen_at is not None:
            payload["frozen_at"] = frozen_at
        return str(self._call("POST", "clock", json=payload)["now"])

    def requests_log(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "requests")["data"])

    # Tokens, limits and faults

    def revoke_token(self, token: str, *, subcode: int = 460) -> None:
        """Calls with this page token answer error 190 from now on (``subcode`` 458, 460,
        463 expired, 467)."""
        self._call("POST", "tokens/revoke", json={"token": token, "subcode": subcode})

    def restore_token(self, token: str) -> None:
        self._call("POST", "tokens/restore", json={"token": token})

    def set_rate_limits(self, **limits: int) -> None:
        """``app_calls_per_hour``, ``page_calls_per_hour``, ``app_over_code`` (4),
        ``page_over_code`` (32); a reset restores the defaults."""
        self._call("POST", "rate_limits", json=limits)

    def inject_faults(self, status: int = 503, count: int = 1, **options: Any) -> None:
        """See ``FacebookSandboxApp.inject_faults``: ``mode`` status (default), graph_error,
        after_commit_delay, after_commit_drop, malformed_json, empty_page, repeat_page,
        loop_back."""
        self._call("POST", "faults", json={"status": status, "count": count, **options})

    def inject_graph_error(
        self,
        code: int,
        *,
        subcode: int | None = None,
        message: str | None = None,
        status: int = 400,
        count: int = 1,
    ) -> None:
        """The next ``count`` calls answer Graph error ``code`` (e.g. 368, 506, 4, 613)."""
        options: dict[str, Any] = {"mode": "graph_error", "code": code}
        if subcode is not None:
            options["subcode"] = subcode
        if message is not None:
            options["message"] = message
        self.inject_faults(status, count, **options)

    def throttle(self, code: int = 4, *, count: int = 1, regain_minutes: int = 5) -> None:
        """The next ``count`` calls are throttled with ``code`` (4, 17, 32, 613, 80001)."""
        self.inject_faults(400, count, mode="graph_error", code=code, regain_minutes=regain_minutes)

    def inject_delay(self, seconds: float, count: int = 1) -> None:
        self.inject_faults(count=count, mode="after_commit_delay", delay=seconds)

    def inject_drop(self, count: int = 1) -> None:
        self.inject_faults(count=count, mode="after_commit_drop")

    # Webhooks

    def configure_webhooks(self, callback_url: str | None, app_secret: str | None) -> None:
        """Where to deliver webhooks and the secret to sign them with (None: stop)."""
        self._call(
            "POST", "webhooks", json={"callback_url": callback_url, "app_secret": app_secret}
        )

    def drop_webhooks(self, count: int = 1) -> None:
        """Skip the next ``count`` deliveries (so polling must catch those events)."""
        self._call("POST", "webhooks/drop", json={"count": count})

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until every queued delivery was attempted; False if ``timeout`` passed."""
        return bool(self._call("POST", "webhooks/wait", json={"timeout": timeout})["idle"])

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Each delivery: field, payload, url, outcome (delivered, refused, dropped, ...)."""
        return list(self._call("GET", "webhooks")["data"])


@dataclass(frozen=True)
class WebhookVerification:
    """The outcome of the subscribe handshake against the app's callback URL."""

    ok: bool
    status: int
    challenge: str
    answer: str


def verify_webhook(
    callback_url: str, verify_token: str, *, challenge: str | None = None, timeout: float = 5.0
) -> WebhookVerification:
    """Do what Meta does when a callback URL is saved: GET it with ``hub.mode=subscribe``,
    ``hub.verify_token`` and ``hub.challenge``; ``ok`` when it answers 200 with the challenge."""
    challenge = challenge or str(secrets.randbelow(10**9))
    session = requests.Session()
    session.trust_env = False
    with session:
        response = session.get(
            callback_url,
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": verify_token,
                "hub.challenge": challenge,
            },
            timeout=timeout,
        )
    answer = response.text
    return WebhookVerification(
        ok=response.status_code == 200 and answer == challenge,
        status=response.status_code,
        challenge=challenge,
        answer=answer,
    )


class GraphTransport(HTTPAdapter):
    """Sends ``https://graph.facebook.com`` to ``base_url``; everything else is untouched."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if request.url:
            for origin in GRAPH_ORIGINS:
                if request.url.startswith(origin + "/"):
                    request.url = self.base_url + request.url[len(origin) :]
                    break
        return super().send(request, **kwargs)


def graph_session(base_url: str) -> requests.Session:
    """A requests session for ``facebook.GraphAPI(session=...)`` that reaches the emulator.

    facebook-sdk builds every URL from ``FACEBOOK_GRAPH_URL`` (PLATFORMS.md), so the real
    client code runs unchanged; only the transport knows the host is the sandbox.
    """
    session = requests.Session()
    session.trust_env = False
    session.mount("https://graph.facebook.com/", GraphTransport(base_url))
    return session
