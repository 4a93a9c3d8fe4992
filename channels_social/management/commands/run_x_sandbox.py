"""``manage.py run_x_sandbox``: serve the X API v2 emulator in the foreground until Ctrl-C.

Users, posts and DM events are kept in ``--state-file`` (default ``VAR_DIR/x_sandbox_state.json``)
so tickets from an earlier ``make run`` still point at posts the emulator knows; ``--no-state``
keeps everything in memory.

While it serves, it records where it listens in ``VAR_DIR/x_sandbox.json``, so that
``manage.py sandbox_post`` in a second terminal finds it whatever ``SANDBOX_PORT`` was.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from werkzeug.serving import make_server

from channels_social.sandbox.x.app import XSandboxApp, create_app

ADDRESS_FILE = "x_sandbox.json"


def address_file() -> Path:
    return Path(settings.VAR_DIR) / ADDRESS_FILE


def record_address(url: str) -> Path:
    """Write ``{"url", "pid"}`` for sandbox_post; atomically, as it may be read at any moment."""
    path = address_file()
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")
    os.replace(temp, path)
    return path


def forget_address() -> None:
    """Remove the record if it is still ours (a newer emulator may have replaced it)."""
    path = address_file()
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()


def recorded_url() -> str | None:
    """The URL a running emulator recorded, or None when none did (or its process is gone)."""
    try:
        record = json.loads(address_file().read_text(encoding="utf-8"))
        url, pid = str(record["url"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # a record left by an emulator that was killed
    except PermissionError:
        pass  # alive, run by another user
    return url


def serve_forever(host: str, port: int, app: XSandboxApp) -> None:
    """Bind, record the address, serve until Ctrl-C or SIGTERM; the state is saved either way.

    As ``channels_social.sandbox.x.server.serve_forever``, but the address is recorded only
    once the port is ours, so an emulator that cannot bind never replaces a running one's.
    """
    try:
        server = make_server(host, port, app, threaded=True)
        record_address(f"http://{host}:{server.port}")
        try:
            server.serve_forever()  # werkzeug's: returns on Ctrl-C and closes the socket
        finally:
            forget_address()
    finally:
        app.close()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # unwinds through serve_forever, which saves the state


def _install_sigterm_handler() -> Any:
    """honcho stops processes with SIGTERM: turn it into SystemExit so the state is saved."""
    try:
        return signal.signal(signal.SIGTERM, _exit_on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        return None


class Command(BaseCommand):
    help = "Serve the X API v2 sandbox emulator (state kept in a JSON file; Ctrl-C stops it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--state-file",
            type=Path,
            default=None,
            help="JSON file holding users, posts and DMs across restarts "
            "(default: VAR_DIR/x_sandbox_state.json).",
        )
        parser.add_argument(
            "--no-state", action="store_true", help="Keep everything in memory only."
        )

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        state_file: Path | None = None,
        no_state: bool = False,
        **options: Any,
    ) -> None:
        state_path = (
            None if no_state else (state_file or Path(settings.VAR_DIR) / "x_sandbox_state.json")
        )
        app = create_app(state_path=state_path)
        where = f"state in {state_path}" if state_path else "in memory only"
        self.stdout.write(
            f"X sandbox emulator on http://{host}:{port} ({where}; "
            f"{len(app.store.users)} users, {len(app.store.tweets)} posts; Ctrl-C stops it)"
        )
        previous = _install_sigterm_handler()
        try:
            serve_forever(host, port, app)
        except KeyboardInterrupt:
            pass  # werkzeug usually swallows it; either way Ctrl-C ends here
        except OSError as exc:
            raise CommandError(f"Cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        self.stdout.write("X sandbox stopped.")
