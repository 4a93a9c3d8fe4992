"""Build the tweepy client for one SocialAccount, pointed at X or at the sandbox emulator.

tweepy hard-codes ``https://api.twitter.com`` in ``BaseClient.request()``, so reaching the
emulator means giving the client a requests session whose transport adapter rewrites the
origin. The real tweepy code still builds, signs and sends every request.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import tweepy
from django.conf import settings
from requests.adapters import HTTPAdapter

from channels_social.base import ChannelError, RateLimit, RateObservation

X_ORIGINS = ("https://api.twitter.com", "https://api.x.com")
USER_CONTEXT_KEYS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")


class _RedactTokens(logging.Filter):
    """tweepy's DEBUG log prints request headers, bearer token included; blank it out."""

    pattern = re.compile(r"(Bearer )[^'\"\s,}]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "Bearer " in record.msg:
            record.msg = self.pattern.sub(r"\1[redacted]", record.msg)
        return True


class _DropDebug(logging.Filter):
    """oauthlib and requests-oauthlib DEBUG lines carry the access token and consumer key."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _guard_logger(name: str, guard: logging.Filter) -> None:
    # Logger filters do not inherit, so each module's own logger gets one.
    logger = logging.getLogger(name)
    if not any(type(existing) is type(guard) for existing in logger.filters):
        logger.addFilter(guard)


_guard_logger("tweepy.client", _RedactTokens())
for _name in (
    "oauthlib",
    "oauthlib.oauth1.rfc5849",
    "oauthlib.oauth1.rfc5849.signature",
    "requests_oauthlib.oauth1_auth",
):
    _guard_logger(_name, _DropDebug())


class XTransport(HTTPAdapter):
    """Applies the default timeout, and sends X's origins to ``base_url`` when one is set."""

    def __init__(self, *, base_url: str = "", timeout: float) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.base_url and request.url:
            for origin in X_ORIGINS:
                if request.url.startswith(origin + "/"):
                    request.url = self.base_url + request.url[len(origin) :]
                    break
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


def endpoint_name(method: str, url: str) -> str:
    """``GET /2/users/:id/mentions``: X's rate limits are per endpoint, whatever the ids."""
    segments = (urlsplit(url).path or "/").split("/")  # ["", "2", "users", "1000", ...]
    named = [":id" if i > 1 and part.isdigit() else part for i, part in enumerate(segments)]
    return f"{method.upper()} {'/'.join(named)}"


class XSession(requests.Session):
    """Remembers the rate-limit headers of the last response, for ``RateLimit`` reports, and
    of the last response of each endpoint (X budgets every endpoint on its own)."""

    def __init__(self) -> None:
        super().__init__()
        self.last_rate_limit: RateLimit | None = None
        self.budgets: dict[str, RateObservation] = {}
        self.hooks["response"].append(self._remember_rate_limit)

    def _remember_rate_limit(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        rate_limit = rate_limit_from_headers(response.headers)
        if rate_limit is not None:
            self.last_rate_limit = rate_limit
            request = response.request
            endpoint = endpoint_name(request.method or "GET", request.url or "")
            self.budgets[endpoint] = RateObservation(
                endpoint=endpoint,
                observed_at=datetime.now(UTC),
                limit=rate_limit.limit,
                remaining=rate_limit.remaining,
                reset_at=rate_limit.reset_at,
                raw={
                    name: str(response.headers[name])
                    for name in (
                        "x-rate-limit-limit",
                        "x-rate-limit-remaining",
                        "x-rate-limit-reset",
                    )
                    if name in response.headers
                },
            )


def rate_limit_from_headers(headers: Any) -> RateLimit | None:
    def number(name: str) -> int | None:
        value = headers.get(name)
        return int(value) if value is not None and str(value).isdigit() else None

    limit, remaining, reset = (
        number("x-rate-limit-limit"),
        number("x-rate-limit-remaining"),
        number("x-rate-limit-reset"),
    )
    if limit is None and remaining is None and reset is None:
        return None
    reset_at = datetime.fromtimestamp(reset, tz=UTC) if reset is not None else None
    return RateLimit(limit=limit, remaining=remaining, reset_at=reset_at)


def uses_user_context(credentials: dict[str, Any]) -> bool:
    return all(credentials.get(key) for key in USER_CONTEXT_KEYS)


def build_client(account: Any) -> tweepy.Client:
    """A tweepy Client for ``account`` (a SocialAccount), with an ``XSession`` as its session.

    OAuth 1.0a user context when all four user keys are present, else app-only bearer token.
    ``wait_on_rate_limit`` stays off: a worker must never sleep inside tweepy (PLATFORMS.md).
    """
    credentials: dict[str, Any] = dict(account.credentials or {})
    if uses_user_context(credentials):
        client = tweepy.Client(
            consumer_key=credentials["consumer_key"],
            consumer_secret=credentials["consumer_secret"],
            access_token=credentials["access_token"],
            access_token_secret=credentials["access_token_secret"],
            wait_on_rate_limit=False,
        )
    elif credentials.get("bearer_token"):
        client = tweepy.Client(bearer_token=credentials["bearer_token"], wait_on_rate_limit=False)
    else:
        raise ChannelError(
            f"@{account.username} has no X credentials: it needs the four OAuth 1.0a user keys "
            "or a bearer token.",
            permanent=True,
        )
    session = XSession()
    base_url = (account.api_base_url or "").strip()
    transport = XTransport(base_url=base_url, timeout=settings.CHANNEL_HTTP_TIMEOUT_SECONDS)
    for origin in X_ORIGINS:
        session.mount(origin, transport)
    if base_url:
        # The emulator is local: environment proxies chosen for api.twitter.com must not apply.
        session.trust_env = False
    client.session = session
    return client
