"""Fixtures for the X sandbox emulator: one server per test session, a clean world per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from channels_social.sandbox.x.app import XSandboxApp, create_app
from channels_social.sandbox.x.control import SandboxControl
from channels_social.sandbox.x.server import RunningServer, start_in_thread

__all__ = ["XSandbox", "x_sandbox", "x_sandbox_clean"]


@dataclass
class XSandbox:
    """The running emulator: ``url`` for clients, ``app`` for the store, ``control`` for setup."""

    url: str
    app: XSandboxApp
    control: SandboxControl
    server: RunningServer

    def register_brand(
        self, *, id: str = "1000", username: str = "AcmeCare", name: str = "Acme"
    ) -> dict[str, object]:
        return self.control.upsert_user(
            id=id, username=username, name=name, followers_count=250_000
        )


@pytest.fixture(scope="session")
def x_sandbox() -> Iterator[XSandbox]:
    app = create_app()
    server = start_in_thread(app)
    control = SandboxControl(server.url)
    control.wait_until_up(5)
    yield XSandbox(url=server.url, app=app, control=control, server=server)
    server.stop()


@pytest.fixture
def x_sandbox_clean(x_sandbox: XSandbox) -> Iterator[XSandbox]:
    """The session's emulator with an empty store, a fresh log and default rate limits."""
    x_sandbox.app.reset()
    yield x_sandbox
    x_sandbox.app.reset()
