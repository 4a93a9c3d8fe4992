"""The Facebook side of the demo commands: ``sandbox_post --platform facebook`` and the Facebook
customers of ``sandbox_demo`` (comments, visitor posts, Messenger messages), in the Graph
emulator. Each customer action is also delivered by the emulator as a signed webhook when it
runs with ``--webhook-url`` (as under ``make run``); polling finds it either way."""

from __future__ import annotations

import logging
import os
import random
from typing import Any

from django.conf import settings

from channels_social.management.commands.run_facebook_sandbox import address_file, recorded_url
from channels_social.models import Platform, SocialAccount
from channels_social.sandbox.facebook.control import FacebookSandboxControl, SandboxError

logger = logging.getLogger(__name__)

FACEBOOK_KINDS = ("comment", "visitor_post", "messenger")
WELCOME_POST = "Welcome to our page! Questions about an order? Comment below or message us."


def facebook_sandbox_url(option: str | None) -> tuple[str, str]:
    """Where the Facebook emulator is, and where that came from (for the error message)."""
    if option:
        return option, "--sandbox-url"
    if os.environ.get("FACEBOOK_SANDBOX_URL"):
        return settings.FACEBOOK_SANDBOX_URL, "FACEBOOK_SANDBOX_URL"
    recorded = recorded_url()
    if recorded:
        return recorded, str(address_file())
    return settings.FACEBOOK_SANDBOX_URL, "the default FACEBOOK_SANDBOX_URL"


def resolve_page(to: str) -> str:
    """The page id for ``--to``: a numeric page id, or the name of a Facebook account."""
    to = to.strip().lstrip("@")
    if to.isdigit():
        return to
    account = (
        SocialAccount.objects.filter(platform=Platform.FACEBOOK, username__iexact=to)
        .order_by("pk")
        .first()
    )
    if account is None:
        raise SandboxError(
            f"No Facebook page called {to!r} is set up: give its page id, or the name of a "
            "Facebook account in Settings (the demo's is Acme)."
        )
    return account.external_id


def commentable_post(control: FacebookSandboxControl, page_id: str) -> str:
    """The page's newest own post, for customers to comment under (made once if none)."""
    posts = control.sent(page_id).get("posts") or []
    if posts:
        return str(posts[-1]["id"])
    return str(control.page_post(page_id, WELCOME_POST)["id"])


def post_as_customer(
    control: FacebookSandboxControl,
    *,
    page_id: str,
    kind: str,
    person_id: str,
    name: str,
    text: str,
    in_reply_to: str | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """One customer action in the emulator; returns the new object (its ``id``)."""
    if kind == "comment":
        target = in_reply_to or commentable_post(control, page_id)
        return control.comment(
            target, person_id=person_id, name=name, message=text, created_time=created_at
        )
    if kind == "visitor_post":
        return control.visitor_post(
            page_id, person_id=person_id, name=name, message=text, created_time=created_at
        )
    if kind == "messenger":
        return control.message(
            page_id, person_id=person_id, name=name, text=text, created_time=created_at
        )
    raise SandboxError(f"--kind must be one of {', '.join(FACEBOOK_KINDS)} for Facebook.")


class FacebookDemo:
    """The demo generator's Facebook customers: now and then a comment under the page's post,
    a reply in a comment thread, a visitor post, or a Messenger message."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.control = FacebookSandboxControl(settings.FACEBOOK_SANDBOX_URL)
        self.pages: list[str] = []
        self.comments: dict[str, list[tuple[str, str]]] = {}  # person id -> (comment id, page)

    def pages_in_sandbox(self) -> list[str]:
        """The Facebook pages that point at the emulator (empty: no Facebook demo)."""
        url = settings.FACEBOOK_SANDBOX_URL.rstrip("/")
        self.pages = [
            account.external_id
            for account in SocialAccount.objects.filter(platform=Platform.FACEBOOK)
            if account.api_base_url.rstrip("/") == url
        ]
        return self.pages

    def post_one(self, *, person_id: str, name: str, text: str, follow_up: str) -> str:
        """Post one Facebook item for this customer; returns a line for the log. The emulator
        down (or restarted empty) is logged, and Facebook pauses until the pages are looked
        up again; X goes on."""
        try:
            return self._post_one(person_id=person_id, name=name, text=text, follow_up=follow_up)
        except SandboxError as exc:
            self.pages = []
            self.comments.clear()
            logger.warning("Demo: a Facebook post failed (%s); Facebook pauses a while.", exc)
            return f"facebook skipped: {exc}"

    def _post_one(self, *, person_id: str, name: str, text: str, follow_up: str) -> str:
        page_id = self.rng.choice(self.pages)
        earlier = self.comments.get(person_id)
        roll = self.rng.random()
        if earlier and roll < 0.2:
            comment_id, page_id = earlier[-1]
            kind, body = "comment", follow_up
            made = post_as_customer(
                self.control,
                page_id=page_id,
                kind=kind,
                person_id=person_id,
                name=name,
                text=body,
                in_reply_to=comment_id,
            )
        else:
            kind = self.rng.choices(FACEBOOK_KINDS, weights=[55, 20, 25])[0]
            body = text
            made = post_as_customer(
                self.control, page_id=page_id, kind=kind, person_id=person_id, name=name, text=body
            )
            if kind == "comment":
                self.comments.setdefault(person_id, []).append((str(made["id"]), page_id))
        return f"facebook {kind:<12} {name} -> {made['id']}: {body}"
