"""``manage.py run_x_sandbox``: serve the X API v2 emulator in the foreground until Ctrl-C.

Users, posts and DM events are kept in ``--state-file`` (default ``VAR_DIR/x_sandbox_state.json``)
so tickets from an earlier ``make run`` still point at posts the emulator knows; ``--no-state``
keeps everything in memory.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels_social.sandbox.x.app import create_app
from channels_social.sandbox.x.server import serve_forever


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
