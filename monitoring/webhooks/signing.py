"""How a webhook is signed, and how a receiver checks it (the README shows the same in prose).

``X-CareInbox-Signature: sha256=<hex>`` is the HMAC-SHA256, keyed with the endpoint's secret, of
``<X-CareInbox-Timestamp>.<raw body>``; the timestamp is Unix seconds when the attempt was
signed. A receiver recomputes it over the raw bytes it received, compares in constant time, and
refuses a timestamp too far from its clock (a replayed old request), as Stripe and GitHub ask.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-CareInbox-Signature"
TIMESTAMP_HEADER = "X-CareInbox-Timestamp"
EVENT_HEADER = "X-CareInbox-Event"
EVENT_ID_HEADER = "X-CareInbox-Event-Id"
DELIVERY_HEADER = "X-CareInbox-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` signed at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    *,
    body: bytes,
    timestamp: str,
    header: str,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """What a receiver does: the timestamp is recent, and the signature matches the raw body."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - sent_at) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, sent_at, body), header.strip())
