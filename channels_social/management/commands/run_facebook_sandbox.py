"""``manage.py run_facebook_sandbox``: serve the Facebook Graph API emulator until Ctrl-C.

Pages, people, posts, comments and Messenger threads are kept in ``--state`` (default
``VAR_DIR/facebook_sandbox_state.json``) so tickets from an earlier ``make run`` still point at
objects the emulator knows; ``--no-state`` keeps everything in memory. ``--page
ID:TOKEN:NAME`` (repeatable) makes sure a page exists at start. With ``--webhook-url`` and
``--app-secret`` every customer comment, visitor post and Messenger message is also delivered
to that URL, signed as Meta signs it.

While it serves, it records where it listens in ``VAR_DIR/facebook_sandbox.json``, so other
commands find it whatever port it was given.
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

from channels_social.sandbox.facebook.app import FacebookSandboxApp, create_app
from channels_social.sandbox.facebook.store import StoreError

ADDRESS_FILE = "facebook_sandbox.json"
STATE_FILE = "facebook_sandbox_state.json"


def address_file() -> Path:
    return Path(settings.VAR_DIR) / ADDRESS_FILE


def record_address(url: str) -> Path:
    """Write ``{"url", "pid"}`` atomically, as it may be read at any moment."""
    path = address_file()
    path.parent.mkdir(parents=True, exist_ok=True)
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


def parse_page(value: str) -> tuple[str, str, str]:
    """``ID:TOKEN:NAME`` (the name may contain colons)."""
    page_id, _, rest = value.partition(":")
    token, _, name = rest.partition(":")
    if not page_id.isdigit() or not token or not name:
        raise CommandError(f"--page wants ID:TOKEN:NAME with a numeric id, not {value!r}.")
    return page_id, token, name


def serve_forever(host: str, port: int, app: FacebookSandboxApp) -> None:
    """Bind, record the address, serve until Ctrl-C or SIGTERM; the state is saved either way.

    The address is recorded only once the port is ours, so an emulator that cannot bind never
    replaces a running one's record.
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
    help = (
        "Serve the Facebook Graph API sandbox emulator (state kept in a JSON file; optional "
        "signed webhooks; Ctrl-C stops it)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8766)
        parser.add_argument(
            "--state",
            type=Path,
            default=None,
            help=f"JSON file holding the emulator's world across restarts "
            f"(default: VAR_DIR/{STATE_FILE}).",
        )
        parser.add_argument(
            "--no-state", action="store_true", help="Keep everything in memory only."
        )
        parser.add_argument(
            "--webhook-url", default="", help="Deliver signed webhooks to this callback URL."
        )
        parser.add_argument(
            "--app-secret", default="", help="The app secret that signs webhook deliveries."
        )
        parser.add_argument(
            "--page",
            action="append",
            default=[],
            metavar="ID:TOKEN:NAME",
            help="Make sure this page exists (repeatable).",
        )

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        state: Path | None = None,
        no_state: bool = False,
        webhook_url: str = "",
        app_secret: str = "",
        page: list[str] | None = None,
        **options: Any,
    ) -> None:
        if webhook_url and not app_secret:
            raise CommandError("--webhook-url needs --app-secret to sign the deliveries.")
        pages = [parse_page(value) for value in page or []]
        state_path = None if no_state else (state or Path(settings.VAR_DIR) / STATE_FILE)
        app = create_app(
            state_path=state_path, webhook_url=webhook_url or None, app_secret=app_secret or None
        )
        for page_id, token, name in pages:
            try:
                app.store.upsert_page(id=page_id, name=name, access_token=token)
            except StoreError as exc:
                app.close()
                raise CommandError(f"--page {page_id}: {exc}") from exc
        where = f"state in {state_path}" if state_path else "in memory only"
        hooks = f"webhooks to {webhook_url}" if webhook_url else "no webhooks"
        self.stdout.write(
            f"Facebook sandbox emulator on http://{host}:{port} ({where}; {hooks}; "
            f"{len(app.store.pages)} pages, {len(app.store.posts)} posts; Ctrl-C stops it)"
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
        self.stdout.write("Facebook sandbox stopped.")
