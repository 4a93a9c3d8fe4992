"""Serve the Facebook emulator: in a background thread for tests, or in the foreground for demos."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from channels_social.sandbox.facebook.app import FacebookSandboxApp, create_app


class QuietRequestHandler(WSGIRequestHandler):
    """Keeps test output readable: no access log line per request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class RunningServer:
    """A server running in a daemon thread; ``stop()`` shuts it down and frees the port."""

    app: FacebookSandboxApp
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def stop(self) -> None:
        """Stop serving, free the port, finish webhooks and write any pending state."""
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()
        self.app.close()


def start_in_thread(
    app: FacebookSandboxApp, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True
) -> RunningServer:
    """Start ``app`` on ``host:port`` (0 picks a free port) and return at once."""
    server = make_server(
        host,
        port,
        app,
        threaded=True,
        request_handler=QuietRequestHandler if quiet else None,
    )
    thread = threading.Thread(target=server.serve_forever, name="facebook-sandbox", daemon=True)
    thread.start()
    return RunningServer(app=app, server=server, thread=thread)


def serve_forever(
    host: str = "127.0.0.1", port: int = 8766, app: FacebookSandboxApp | None = None
) -> None:
    """Serve until Ctrl-C; werkzeug's server swallows the KeyboardInterrupt and returns.

    However serving ends (Ctrl-C, SystemExit from a SIGTERM handler, an error), pending
    webhooks are finished and the state is written before this returns or raises.
    """
    app = app or create_app()
    try:
        server = make_server(host, port, app, threaded=True)
        server.serve_forever()
    finally:
        app.close()
