"""Facebook webhooks: the fast path. Polling stays the safety net for what a webhook misses.

``GET /webhooks/facebook/`` answers Meta's verification handshake (``hub.mode=subscribe``,
``hub.verify_token`` equal to ``FACEBOOK_VERIFY_TOKEN``: the challenge is echoed; anything else
403). ``POST`` takes a delivery only when ``X-Hub-Signature-256`` is the HMAC-SHA256 of the raw
body with ``FACEBOOK_APP_SECRET`` (compared in constant time); anything else is 403 and stores
nothing. Each entry is read by the page's adapter and handed to ``intake.store_posts``, the
same sink polling uses, so a delivery Meta repeats, or a post polling also finds, is stored once
(the unique constraint on the platform id); customers' edits and removals of stored posts go
to ``intake.store_updates``. No cursor moves and no lock is taken here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from channels_social.base import InboundPost, PostUpdate
from channels_social.facebook.adapter import FacebookAdapter
from channels_social.intake import store_posts, store_updates
from channels_social.models import Platform, SocialAccount

log = logging.getLogger(__name__)


def _text(body: str, status: int) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")


def signature_is_valid(body: bytes, header: str, secret: str) -> bool:
    """``header`` is ``sha256=<hex HMAC-SHA256(secret, body)>`` of exactly these bytes."""
    algorithm, _, given = header.strip().partition("=")
    if algorithm.lower() != "sha256" or not given:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


@csrf_exempt
@require_http_methods(["GET", "POST"])
def facebook_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verify(request)
    return _deliver(request)


def _verify(request: HttpRequest) -> HttpResponse:
    expected = settings.FACEBOOK_VERIFY_TOKEN
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    if not expected:
        log.warning("Facebook webhook verification refused: FACEBOOK_VERIFY_TOKEN is not set")
        return _text("Webhook verification is not configured.", 403)
    if mode != "subscribe" or not hmac.compare_digest(token.encode(), expected.encode()):
        return _text("Wrong verify token.", 403)
    return _text(challenge, 200)


def _deliver(request: HttpRequest) -> HttpResponse:
    secret = settings.FACEBOOK_APP_SECRET
    if not secret:
        log.warning("Facebook webhook refused: FACEBOOK_APP_SECRET is not set")
        return _text("Webhooks are not configured.", 403)
    limit = settings.FACEBOOK_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _text("Bad Content-Length.", 400)
    if declared > limit:
        return _text(f"The body is over {limit:,} bytes.", 413)
    body = request.read(limit + 1)  # the raw bytes, exactly as signed
    if len(body) > limit:
        return _text(f"The body is over {limit:,} bytes.", 413)
    if not signature_is_valid(body, request.headers.get("X-Hub-Signature-256", ""), secret):
        log.warning("Facebook webhook refused: missing or wrong X-Hub-Signature-256")
        return _text("Missing or wrong signature.", 403)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        return _text("The body is not JSON.", 400)
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        return _text("The body is not a webhook delivery (no entry list).", 400)
    if payload.get("object") != "page":
        return _text("Ignored: not a page event.", 200)
    try:
        stored = _store_entries(payload["entry"])
    except ValueError as exc:
        return _text(f"An entry could not be read: {exc}", 400)
    return _text(f"EVENT_RECEIVED ({stored} new)", 200)


def _store_entries(entries: list[Any]) -> int:
    """Store what each entry carries for every enabled account of its page; the number stored.

    Reads everything first, so a malformed entry (ValueError) stores nothing of the delivery.
    """
    work: list[tuple[SocialAccount, str, list[InboundPost]]] = []
    changes: list[tuple[SocialAccount, list[PostUpdate]]] = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("id"):
            raise ValueError("an entry without a page id")
        page_id = str(entry["id"])
        accounts = SocialAccount.objects.pollable().filter(
            platform=Platform.FACEBOOK, external_id=page_id
        )
        found = False
        for account in accounts:
            found = True
            try:
                adapter = FacebookAdapter(account)
                found_posts = adapter.webhook_posts(entry)
                changes.append((account, adapter.webhook_updates(entry)))
            except (KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{type(exc).__name__}: {exc}") from None
            by_stream: dict[str, list[InboundPost]] = defaultdict(list)
            for stream, post in found_posts:
                by_stream[stream].append(post)
            work += [(account, stream, items) for stream, items in by_stream.items()]
        if not found:
            log.info("Facebook webhook for page %s: no enabled account has it", page_id)
    stored = 0
    with transaction.atomic():
        for account, stream_name, posts in work:
            result = store_posts(account=account, posts=posts, stream=stream_name)
            stored += result.stored
        # Edits and removals after the posts: an edit delivered with its post finds it.
        for account, updates in changes:
            store_updates(account=account, updates=updates)
    return stored
