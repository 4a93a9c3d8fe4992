"""Serve the X emulator: in a background thread for tests, or in the foreground for demos."""

from __future__ import annotations

from channels_social.sandbox import serving
from channels_social.sandbox.serving import QuietRequestHandler, RunningServer
from channels_social.sandbox.x.app import XSandboxApp, create_app

__all__ = ["QuietRequestHandler", "RunningServer", "serve_forever", "start_in_thread"]


def start_in_thread(
    app: XSandboxApp, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True
) -> RunningServer[XSandboxApp]:
    """Start ``app`` on ``host:port`` (0 picks a free port) and return at once."""
    return serving.start_in_thread(app, host, port, quiet=quiet, name="x-sandbox")


def serve_forever(
    host: str = "127.0.0.1", port: int = 8765, app: XSandboxApp | None = None
) -> None:
    """Serve until Ctrl-C, writing the emulator's pending state however serving ends."""
    serving.serve(app or create_app(), host, port)
