"""Slack-compatible incoming webhooks: ``{"text": ...}`` POSTed as JSON.

Slack, Mattermost, Rocket.Chat, Discord's ``/slack`` endpoint and Microsoft Teams' incoming
webhooks all take this body. ``post_webhook`` makes one attempt with a timeout and raises
``WebhookError`` saying whether trying again can help; the Celery task
(``careinbox.notifications.tasks.deliver_webhook``) retries the ones that can, with backoff.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

# Connect, read: a slow chat server must not hold a worker for long.
TIMEOUT_SECONDS = (3.05, 10)
MAX_TEXT = 3000  # Slack truncates long messages anyway; keep ours short and whole


class WebhookError(Exception):
    """One delivery failed. ``permanent``: the same request will fail again (a bad URL, a
    4xx other than 429), so it is logged and not retried."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def webhook_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook address, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Enter an http:// or https:// address."
    if parts.username or parts.password:
        return "The address must not carry a user name or password."
    return None


def describe_url(url: str) -> str:
    """The host only: the path of an incoming webhook is its secret (logs, audit trail)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…" if parts.hostname else "(no address)"


def slack_escape(text: str) -> str:
    """Slack reads ``<…>`` as links and mentions (``<!channel>`` pings everyone) and ``&`` as
    the start of an entity: a customer's handle or words must arrive as plain text, so the
    three are escaped as Slack's message formatting asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post_webhook(url: str, text: str) -> int:
    """POST ``{"text": text}`` to ``url`` once (``text`` escaped for Slack's formatting); the
    status code on success (2xx)."""
    problem = webhook_problem(url)
    if problem:
        raise WebhookError(f"{describe_url(url)}: {problem}", permanent=True)
    try:
        response = requests.post(
            url,
            json={"text": slack_escape(text[:MAX_TEXT])},
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as error:
        raise WebhookError(
            f"{describe_url(url)}: {type(error).__name__}", permanent=False
        ) from error
    if 200 <= response.status_code < 300:
        return response.status_code
    retry = response.status_code == 429 or response.status_code >= 500
    raise WebhookError(f"{describe_url(url)} answered {response.status_code}", permanent=not retry)
