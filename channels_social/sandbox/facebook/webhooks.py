"""Webhook deliveries as Meta sends them: the ``object: "page"`` envelope, signed with the app
secret, POSTed to the app's callback URL from a background thread.

The body is serialised as Meta serialises it (ASCII only, ``/`` escaped as ``\\/``), so an app
that checks the signature against re-serialised JSON instead of the raw body fails here as it
would against Meta. ``X-Hub-Signature-256`` is ``sha256=<hex HMAC-SHA256(app_secret, body)>``;
the legacy ``X-Hub-Signature`` (SHA-1) comes too.

A delivery is tried once; a refused or unreachable callback is logged, not retried, and
``drop_next(n)`` skips the next ``n`` deliveries outright, so an app must also poll.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import requests

logger = logging.getLogger(__name__)
LOG_SIZE = 1000


def sign(body: bytes, app_secret: str, algorithm: str = "sha256") -> str:
    """The ``X-Hub-Signature-256`` value (``sha1`` gives the legacy ``X-Hub-Signature``)."""
    digest = hmac.new(app_secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    return f"{algorithm}={digest}"


def serialise(payload: dict[str, Any]) -> bytes:
    return (
        json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()
    )


def feed_change(page_id: str, value: dict[str, Any], when: int) -> dict[str, Any]:
    """A ``feed`` change (new comment, reply or visitor post) for ``page_id``."""
    return {
        "object": "page",
        "entry": [{"id": page_id, "time": when, "changes": [{"field": "feed", "value": value}]}],
    }


def messaging_event(
    page_id: str, sender_id: str, mid: str, text: str, when_ms: int
) -> dict[str, Any]:
    """A Messenger ``messages`` event: times in milliseconds, as Meta sends them."""
    return {
        "object": "page",
        "entry": [
            {
                "id": page_id,
                "time": when_ms,
                "messaging": [
                    {
                        "sender": {"id": sender_id},
                        "recipient": {"id": page_id},
                        "timestamp": when_ms,
                        "message": {"mid": mid, "text": text},
                    }
                ],
            }
        ],
    }


@dataclass
class WebhookConfig:
    callback_url: str | None = None
    app_secret: str | None = None
    timeout: float = 5.0


class WebhookDispatcher:
    """Queues payloads and delivers them, one at a time, from a daemon thread."""

    def __init__(self, config: WebhookConfig | None = None) -> None:
        self.config = config or WebhookConfig()
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._drop = 0
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self._thread: threading.Thread | None = None
        # No proxies from the environment: callbacks in the sandbox are local.
        self._session = requests.Session()
        self._session.trust_env = False

    def configure(
        self, *, callback_url: str | None, app_secret: str | None, timeout: float | None = None
    ) -> None:
        if callback_url and not app_secret:
            raise ValueError("A webhook callback URL needs the app secret to sign deliveries.")
        with self._lock:
            self.config = WebhookConfig(
                callback_url=callback_url or None,
                app_secret=app_secret or None,
                timeout=timeout if timeout is not None else self.config.timeout,
            )

    def drop_next(self, count: int) -> None:
        if count < 0:
            raise ValueError("count must not be negative.")
        with self._lock:
            self._drop += count

    def enqueue(self, field: str, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` (a ``field`` event: feed or messages) soon."""
        with self._lock:
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="facebook-sandbox-webhooks", daemon=True
                )
                self._thread.start()
        self._queue.put((field, payload))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued delivery is done; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self.log]

    def reset(self) -> None:
        self.wait_idle()
        with self._lock:
            self._drop = 0
            self.log.clear()

    def close(self) -> None:
        self.wait_idle()
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=2)
        self._session.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._deliver(*item)
            except Exception:  # a delivery must never kill the thread
                logger.exception("Facebook sandbox: webhook delivery failed unexpectedly")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, field: str, payload: dict[str, Any]) -> None:
        with self._lock:
            config = self.config
            dropped = self._drop > 0
            if dropped:
                self._drop -= 1
        entry: dict[str, Any] = {
            "field": field,
            "payload": payload,
            "url": config.callback_url,
            "time": time.time(),
            "outcome": None,
            "status": None,
        }
        if dropped:
            entry["outcome"] = "dropped"
        elif not config.callback_url or not config.app_secret:
            entry["outcome"] = "no_callback"
        else:
            body = serialise(payload)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "facebookexternalua",
                "X-Hub-Signature-256": sign(body, config.app_secret),
                "X-Hub-Signature": sign(body, config.app_secret, "sha1"),
            }
            try:
                response = self._session.post(
                    config.callback_url, data=body, headers=headers, timeout=config.timeout
                )
                entry["status"] = response.status_code
                entry["outcome"] = "delivered" if response.ok else "refused"
            except requests.RequestException as exc:
                entry["outcome"] = f"unreachable ({type(exc).__name__})"
        with self._lock:
            self.log.append(entry)
