"""Fixtures for the Facebook Graph emulator: one server per test session, a clean world per test,
and facebook-sdk's real GraphAPI client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import facebook
import pytest

from channels_social.sandbox.facebook.app import FacebookSandboxApp, create_app
from channels_social.sandbox.facebook.control import FacebookSandboxControl, graph_session
from channels_social.sandbox.facebook.server import RunningServer, start_in_thread

__all__ = [
    "FB_PAGE_ID",
    "FB_PAGE_TOKEN",
    "FacebookSandbox",
    "facebook_sandbox",
    "facebook_sandbox_clean",
]

FB_PAGE_ID = "1000000001"
FB_PAGE_TOKEN = "EAAsandbox-acme-page-token"
GRAPH_VERSION = "v21.0"


@dataclass
class FacebookSandbox:
    """The running emulator: ``url`` for clients, ``app`` for the store, ``control`` for setup."""

    url: str
    app: FacebookSandboxApp
    control: FacebookSandboxControl
    server: RunningServer

    def register_page(
        self,
        *,
        id: str = FB_PAGE_ID,
        name: str = "Acme Support",
        access_token: str = FB_PAGE_TOKEN,
        **extra: Any,
    ) -> dict[str, Any]:
        return self.control.create_page(id=id, name=name, access_token=access_token, **extra)

    def graph(self, access_token: str = FB_PAGE_TOKEN) -> facebook.GraphAPI:
        """facebook-sdk's client, unmocked; only its session's transport knows the host.

        Its constructor accepts only versions 2.8 to 3.1 (PLATFORMS.md), so the version is
        set after construction.
        """
        graph = facebook.GraphAPI(
            access_token=access_token, timeout=5, session=graph_session(self.url)
        )
        graph.version = GRAPH_VERSION
        return graph


@pytest.fixture(scope="session")
def facebook_sandbox() -> Iterator[FacebookSandbox]:
    app = create_app()
    server = start_in_thread(app)
    control = FacebookSandboxControl(server.url)
    control.wait_until_up(5)
    yield FacebookSandbox(url=server.url, app=app, control=control, server=server)
    server.stop()


@pytest.fixture
def facebook_sandbox_clean(facebook_sandbox: FacebookSandbox) -> Iterator[FacebookSandbox]:
    """The session's emulator with an empty world, fresh logs, the real clock, no webhooks."""
    facebook_sandbox.app.reset()
    yield facebook_sandbox
    facebook_sandbox.app.reset()
