"""Build facebook-sdk's ``GraphAPI`` for one Facebook page, pointed at Graph or at the emulator.

facebook-sdk builds every URL from ``facebook.FACEBOOK_GRAPH_URL`` and sends it through its
``session``, so reaching the emulator means a requests session whose transport rewrites
``https://graph.facebook.com`` to ``account.api_base_url``; the real client code still builds
and sends every request. Its constructor accepts only Graph versions 2.8 to 3.1, so the version
(``FACEBOOK_GRAPH_VERSION``) is set after construction (PLATFORMS.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import facebook
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from channels_social.base import ChannelError, RateObservation

GRAPH_ORIGIN = "https://graph.facebook.com"
TOKEN_FIELD = "page_access_token"  # noqa: S105 - a field name, not a secret


class _RedactAccessToken(logging.Filter):
    """urllib3's DEBUG lines print the request line, ``access_token=...`` included."""

    pattern = re.compile(r"(access_token=)[^&\s'\"]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = ()
        if isinstance(record.msg, str) and "access_token=" in record.msg:
            record.msg = self.pattern.sub(r"\1[redacted]", record.msg)
        return True


_urllib3_log = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(existing, _RedactAccessToken) for existing in _urllib3_log.filters):
    _urllib3_log.addFilter(_RedactAccessToken())


class GraphTransport(HTTPAdapter):
    """Applies the default timeout, and sends Graph's origin to ``base_url`` when one is set."""

    def __init__(self, *, base_url: str = "", timeout: float) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.base_url and request.url and request.url.startswith(GRAPH_ORIGIN + "/"):
            request.url = self.base_url + request.url[len(GRAPH_ORIGIN) :]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class GraphSession(requests.Session):
    """Remembers the last answer's status and usage headers: facebook-sdk raises from the body
    alone, and the time to regain access after throttling is only in a header."""

    def __init__(self) -> None:
        super().__init__()
        self.last_status: int | None = None
        self.last_headers: dict[str, str] = {}
        self.budgets: dict[str, RateObservation] = {}
        self.hooks["response"].append(self._remember)

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.last_status = response.status_code
        self.last_headers = {
            name: value
            for name, value in response.headers.items()
            if name.lower() in ("x-business-use-case-usage", "x-app-usage", "x-page-usage")
        }
        now = datetime.now(UTC)
        for observation in usage_observations(self.last_headers, now=now):
            self.budgets[observation.endpoint] = observation

    def regain_access_seconds(self) -> float | None:
        """The longest ``estimated_time_to_regain_access`` (minutes) of the last answer."""
        raw = next(
            (v for k, v in self.last_headers.items() if k.lower() == "x-business-use-case-usage"),
            None,
        )
        if not raw:
            return None
        try:
            usage = json.loads(raw)
            minutes = [
                float(item.get("estimated_time_to_regain_access") or 0)
                for items in usage.values()
                for item in items
            ]
        except (ValueError, TypeError, AttributeError):
            return None
        longest = max(minutes, default=0.0)
        return longest * 60 if longest > 0 else None


def _share(usage: Any) -> int | None:
    """The highest of Graph's three shares (call count, CPU time, total time), in percent."""
    if not isinstance(usage, dict):
        return None
    shares = [
        int(float(usage[name]))
        for name in ("call_count", "total_cputime", "total_time")
        if isinstance(usage.get(name), int | float | str) and str(usage[name]).strip()
    ]
    return max(shares) if shares else None


def usage_observations(headers: dict[str, str], *, now: datetime) -> list[RateObservation]:
    """The app budget (``X-App-Usage``) and the page budgets (``X-Business-Use-Case-Usage``)
    one answer reports; an unreadable header is skipped (it must never fail a call)."""
    found: list[RateObservation] = []
    lowered = {name.lower(): value for name, value in headers.items()}
    app = lowered.get("x-app-usage")
    if app:
        try:
            share = _share(json.loads(app))
        except (ValueError, TypeError):
            share = None
        if share is not None:
            found.append(
                RateObservation(
                    endpoint="app", observed_at=now, used_percent=share, raw={"X-App-Usage": app}
                )
            )
    buc = lowered.get("x-business-use-case-usage")
    if buc:
        try:
            usage = json.loads(buc)
            items = [item for entries in usage.values() for item in entries]
        except (ValueError, TypeError, AttributeError):
            items = []
        shares = [share for share in (_share(item) for item in items) if share is not None]
        minutes = []
        for item in items:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                minutes.append(float(item.get("estimated_time_to_regain_access") or 0))
        if shares:
            regain = max(minutes, default=0.0)
            found.append(
                RateObservation(
                    endpoint="page",
                    observed_at=now,
                    used_percent=max(shares),
                    reset_at=now + timedelta(minutes=regain) if regain > 0 else None,
                    raw={"X-Business-Use-Case-Usage": buc},
                )
            )
    return found


def page_token(account: Any) -> str:
    token = str((account.credentials or {}).get(TOKEN_FIELD) or "")
    if not token:
        raise ChannelError(
            f"The Facebook page {account.username or account.external_id} has no page access "
            "token: add it in Settings → Brands and channels.",
            permanent=True,
        )
    return token


def build_graph(account: Any) -> facebook.GraphAPI:
    """facebook-sdk's client for ``account`` (a SocialAccount for a page), with a
    ``GraphSession``; the Graph version from settings, set after construction."""
    session = GraphSession()
    base_url = (account.api_base_url or "").strip()
    transport = GraphTransport(base_url=base_url, timeout=settings.CHANNEL_HTTP_TIMEOUT_SECONDS)
    session.mount(GRAPH_ORIGIN, transport)
    if base_url:
        # The emulator is local: environment proxies chosen for graph.facebook.com must not apply.
        session.trust_env = False
    graph = facebook.GraphAPI(
        access_token=page_token(account),
        timeout=settings.CHANNEL_HTTP_TIMEOUT_SECONDS,
        session=session,
    )
    graph.version = settings.FACEBOOK_GRAPH_VERSION
    return graph
