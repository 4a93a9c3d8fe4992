"""One HTTP attempt of a delivery: where it may go (no SSRF), what it sends, what came back."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings

from monitoring.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)

EXCERPT_CHARS = 500
# Read at most this much of an answer: a receiver cannot make the worker hold megabytes.
MAX_READ_BYTES = 16_384
USER_AGENT = "CareInbox-Webhooks/1"


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an endpoint's address (its form), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "Enter an http:// or https:// address."
    if not parts.hostname:
        return "The address has no host."
    if parts.username or parts.password:
        return "The address must not carry a user name or password."
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "The port is not a number from 0 to 65535."
    return None


def _refused_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def address_problem(url: str) -> str | None:
    """None if every address the host resolves to may be called; else why not.

    Loopback, private, link-local (cloud metadata at 169.254.169.254), shared and reserved
    addresses are refused unless ``WEBHOOKS_ALLOW_PRIVATE_ADDRESSES``. Checked when the
    endpoint is saved and again before every attempt (DNS may have changed)."""
    problem = url_problem(url)
    if problem:
        return problem
    if settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return f"The host {host} cannot be resolved."
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or any(_refused_address(address) for address in addresses):
        return (
            f"{host} resolves to a private, loopback or reserved address; webhooks go to "
            "public addresses only."
        )
    return None


@dataclass(frozen=True)
class AttemptResult:
    succeeded: bool
    retryable: bool
    status_code: int | None
    duration_ms: int
    error: str
    response_excerpt: str


def post_signed(
    *,
    url: str,
    secret: str,
    body: str,
    event_type: str,
    event_id: str,
    delivery_id: int,
    timestamp: int | None = None,
) -> AttemptResult:
    """POST ``body`` once, signed. A 2xx succeeds; a 5xx, a 429, a timeout or a connection
    error may pass and is retried; any other answer (a 4xx, a redirect) and a refused address
    are permanent."""
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    problem = address_problem(url)
    if problem:
        return AttemptResult(False, False, None, took(), problem[:300], "")
    raw = body.encode()
    sent_at = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature(secret, sent_at, raw),
        TIMESTAMP_HEADER: str(sent_at),
        EVENT_HEADER: event_type,
        EVENT_ID_HEADER: event_id,
        DELIVERY_HEADER: str(delivery_id),
    }
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    try:
        with requests.post(
            url,
            data=raw,
            headers=headers,
            timeout=(min(timeout, 5), timeout),
            allow_redirects=False,
            stream=True,
        ) as response:
            content = response.raw.read(MAX_READ_BYTES, decode_content=True) or b""
            status_code = response.status_code
    except requests.Timeout:
        return AttemptResult(False, True, None, took(), f"No answer within {timeout} s.", "")
    except requests.RequestException as error:
        reason = str(error.__class__.__name__)
        detail = str(error).split("(Caused by ")[-1].rstrip(")")[:200]
        return AttemptResult(False, True, None, took(), f"{reason}: {detail}"[:300], "")
    excerpt = content.decode("utf-8", errors="replace").replace("\x00", "")[:EXCERPT_CHARS]
    if 200 <= status_code < 300:
        return AttemptResult(True, False, status_code, took(), "", excerpt)
    retryable = status_code == 429 or status_code >= 500
    return AttemptResult(False, retryable, status_code, took(), "", excerpt)
