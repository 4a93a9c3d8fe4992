"""``manage.py sandbox_post``: make a customer mention a brand in the X sandbox (or, with
``--platform facebook``, comment, post on the page or write on Messenger in the Facebook one).

Prints only the new post's id, so scripts can capture it (``ID=$(manage.py sandbox_post ...)``).

The emulator is found at ``--sandbox-url``, else ``X_SANDBOX_URL`` from the environment, else
where the running ``run_x_sandbox`` recorded it (``VAR_DIR/x_sandbox.json``), so the same
command works in a second terminal whatever ``SANDBOX_PORT`` ``make run`` was given.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from channels_social.management.commands.run_x_sandbox import address_file, recorded_url
from channels_social.management.facebook_sandbox import (
    FACEBOOK_KINDS,
    facebook_sandbox_url,
    post_as_customer,
    resolve_page,
)
from channels_social.sandbox.facebook.control import FacebookSandboxControl
from channels_social.sandbox.facebook.control import SandboxError as FacebookSandboxError
from channels_social.sandbox.facebook.control import (
    SandboxUnreachable as FacebookSandboxUnreachable,
)
from channels_social.sandbox.x.control import SandboxControl, SandboxError, SandboxUnreachable
from channels_social.sandbox.x.store import ID_RE, USERNAME_RE, parse_iso

X_KINDS = ("mention", "dm")


class Command(BaseCommand):
    help = "Post a mention of a brand handle into the X sandbox emulator; prints the post id."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--platform",
            choices=("x", "facebook"),
            default="x",
            help="x (default) or facebook: then --to names the page (Acme), --author-username "
            "is the person's display name, and --kind is comment, visitor_post or messenger.",
        )
        parser.add_argument("--to", required=True, help="The brand's handle (without @).")
        parser.add_argument("--author-id", required=True, help="The customer's numeric X id.")
        parser.add_argument("--author-username", required=True, help="The customer's handle.")
        parser.add_argument("--followers", type=int, default=100)
        parser.add_argument("--text", required=True)
        parser.add_argument("--in-reply-to", default=None, help="Id of the post this replies to.")
        parser.add_argument("--created-at", default=None, help="ISO 8601, e.g. 2025-01-31T09:00Z")
        parser.add_argument(
            "--kind",
            default="mention",
            help="X: 'mention' (a public post naming --to) or 'dm' (a direct message to --to).",
        )
        parser.add_argument(
            "--sandbox-url",
            default=None,
            help="Default: X_SANDBOX_URL if set, else where the running emulator recorded it "
            "(VAR_DIR/x_sandbox.json), else settings.X_SANDBOX_URL.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["platform"] == "facebook":
            self.stdout.write(self._facebook(options))
            return
        author_id = str(options["author_id"])
        author_username = str(options["author_username"]).lstrip("@")
        if not ID_RE.match(author_id):
            raise CommandError(f"--author-id must be 1 to 19 digits, not {author_id!r}.")
        if not USERNAME_RE.match(author_username):
            raise CommandError("--author-username must be 1 to 15 letters, digits or _.")
        if options["followers"] < 0:
            raise CommandError("--followers cannot be negative.")
        if not options["text"].strip():
            raise CommandError("--text cannot be empty.")
        created_at = options["created_at"]
        if created_at:
            try:
                created_at = parse_iso(created_at).isoformat()
            except ValueError:
                raise CommandError(
                    f"--created-at {created_at!r} is not an ISO 8601 date and time "
                    "(e.g. 2025-01-31T09:00:00Z)."
                ) from None
        if options["kind"] not in X_KINDS:
            raise CommandError(f"--kind must be one of {', '.join(X_KINDS)} for X.")
        if options["kind"] == "dm" and options["in_reply_to"]:
            raise CommandError("A direct message replies to no post: drop --in-reply-to.")
        url, source = sandbox_url(options["sandbox_url"])
        control = SandboxControl(url)
        try:
            if options["kind"] == "dm":
                event = control.send_dm(
                    options["to"],
                    author_id,
                    author_username,
                    options["text"],
                    followers=options["followers"],
                    created_at=created_at,
                )
                self.stdout.write(str(event["id"]))
                return
            post = control.post_mention(
                to_username=options["to"],
                author_id=author_id,
                author_username=author_username,
                followers=options["followers"],
                text=options["text"],
                in_reply_to=options["in_reply_to"],
                created_at=created_at,
            )
        except SandboxUnreachable as exc:
            raise CommandError(f"{exc} (address from {source})") from exc
        except SandboxError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(post["id"])

    def _facebook(self, options: dict[str, Any]) -> str:
        """A comment (under --in-reply-to, else the page's newest post), a visitor post or a
        Messenger message, by the person --author-id, named --author-username."""
        kind = "comment" if options["kind"] == "mention" else options["kind"]
        if kind not in FACEBOOK_KINDS:
            raise CommandError(f"--kind must be one of {', '.join(FACEBOOK_KINDS)} for Facebook.")
        person_id = str(options["author_id"])
        if not person_id.isdigit():
            raise CommandError(f"--author-id must be digits, not {person_id!r}.")
        name = str(options["author_username"]).strip()
        if not name or not options["text"].strip():
            raise CommandError("--author-username (a display name) and --text cannot be empty.")
        if options["in_reply_to"] and kind != "comment":
            raise CommandError("Only a comment replies to something: drop --in-reply-to.")
        created_at = options["created_at"]
        if created_at:
            try:
                created_at = parse_iso(created_at).isoformat()
            except ValueError:
                raise CommandError(f"--created-at {created_at!r} is not ISO 8601.") from None
        url, source = facebook_sandbox_url(options["sandbox_url"])
        try:
            made = post_as_customer(
                FacebookSandboxControl(url),
                page_id=resolve_page(options["to"]),
                kind=kind,
                person_id=person_id,
                name=name,
                text=options["text"],
                in_reply_to=options["in_reply_to"],
                created_at=created_at,
            )
        except FacebookSandboxUnreachable as exc:
            raise CommandError(f"{exc} (address from {source})") from exc
        except FacebookSandboxError as exc:
            raise CommandError(str(exc)) from exc
        return str(made["id"])


def sandbox_url(option: str | None) -> tuple[str, str]:
    """Where the emulator is, and where that came from (for the error when it is not there)."""
    if option:
        return option, "--sandbox-url"
    if os.environ.get("X_SANDBOX_URL"):
        return settings.X_SANDBOX_URL, "X_SANDBOX_URL"
    recorded = recorded_url()
    if recorded:
        return recorded, str(address_file())
    return settings.X_SANDBOX_URL, "the default X_SANDBOX_URL; no emulator recorded its address"
