"""Serving a sandbox emulator (any of them): in a background thread for tests, or in the
foreground for demos. Each emulator's ``server`` module names its app and default port."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class SandboxApp(Protocol):
    """A WSGI app that writes its pending state (and finishes deliveries) on ``close``."""

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]: ...

    def close(self) -> None: ...


App = TypeVar("App", bound=SandboxApp)


class QuietRequestHandler(WSGIRequestHandler):
    """Keeps test output readable: no access log line per request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class RunningServer(Generic[App]):
    """A server running in a daemon thread; ``stop()`` shuts it down and frees the port."""

    app: App
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    def stop(self) -> None:
        """Stop serving, free the port and let the app write what is pending."""
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()
        self.app.close()


def start_in_thread(
    app: App, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True, name: str
) -> RunningServer[App]:
    """Start ``app`` on ``host:port`` (0 picks a free port) and return at once."""
    server = make_server(
        host,
        port,
        app,  # type: ignore[arg-type]
        threaded=True,
        request_handler=QuietRequestHandler if quiet else None,
    )
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return RunningServer(app=app, server=server, thread=thread)


def serve(app: SandboxApp, host: str, port: int) -> None:
    """Serve until Ctrl-C; werkzeug's server swallows the KeyboardInterrupt and returns.

    However serving ends (Ctrl-C, SystemExit from a SIGTERM handler, an error), the app's
    pending state is written before this returns or raises.
    """
    try:
        server = make_server(host, port, app, threaded=True)  # type: ignore[arg-type]
        server.serve_forever()
    finally:
        app.close()
