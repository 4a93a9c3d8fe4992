"""``manage.py run_x_sandbox``: serve the X API v2 emulator in the foreground until Ctrl-C."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels_social.sandbox.x.server import serve_forever


class Command(BaseCommand):
    help = "Serve the X API v2 sandbox emulator (in-memory; Ctrl-C stops it)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        self.stdout.write(f"X sandbox emulator on http://{host}:{port} (Ctrl-C stops it)")
        try:
            serve_forever(host, port)
        except KeyboardInterrupt:
            pass  # werkzeug usually swallows it; either way Ctrl-C ends here
        except OSError as exc:
            raise CommandError(f"Cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
        self.stdout.write("X sandbox stopped.")
