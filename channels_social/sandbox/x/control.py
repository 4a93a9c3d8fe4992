"""A small client for the emulator's private ``/_sandbox/`` endpoints (tests, commands, demo)."""

from __future__ import annotations

import re
from typing import Any

from channels_social.sandbox.control_client import ControlClient
from channels_social.sandbox.control_client import SandboxError as SandboxError
from channels_social.sandbox.control_client import SandboxUnreachable as SandboxUnreachable


class SandboxControl(ControlClient):
    """Drives the X emulator at ``base_url`` (e.g. ``http://127.0.0.1:8765``)."""

    label = "X sandbox"
    command = "manage.py run_x_sandbox"

    def reset(self) -> None:
        self._call("POST", "reset")

    def revoke_token(self, token: str) -> None:
        """Every call with this access token (or bearer token) answers 401 from now on."""
        self._call("POST", "tokens/revoke", json={"token": token})

    def restore_token(self, token: str) -> None:
        self._call("POST", "tokens/restore", json={"token": token})

    def upsert_user(
        self,
        *,
        id: str,
        username: str,
        name: str = "",
        followers_count: int | None = None,
        verified: bool | None = None,
        accepts_dms: bool | None = None,
    ) -> dict[str, Any]:
        """Create or change a user; ``accepts_dms=False``: X refuses the brand's DMs to them."""
        payload: dict[str, Any] = {"id": str(id), "username": username, "name": name or username}
        if followers_count is not None:
            payload["followers_count"] = followers_count
        if verified is not None:
            payload["verified"] = verified
        if accepts_dms is not None:
            payload["accepts_dms"] = accepts_dms
        return dict(self._call("POST", "users", json=payload))

    def user_by_username(self, username: str) -> dict[str, Any]:
        return dict(self._call("GET", f"users/by-username/{username.lstrip('@')}"))

    def post_mention(
        self,
        to_username: str,
        author_id: str,
        author_username: str,
        followers: int,
        text: str,
        in_reply_to: str | None = None,
        created_at: str | None = None,
        author_name: str | None = None,
    ) -> dict[str, Any]:
        """Inject a customer's post that mentions ``@to_username``; returns the stored post.

        ``@to_username`` is put in front of the text unless the text already names it, as the
        X apps do for replies.
        """
        handle = to_username.lstrip("@")
        try:
            self.user_by_username(handle)
        except SandboxUnreachable:
            raise
        except SandboxError:
            raise SandboxError(
                f"@{handle} is not a user in the X sandbox; register the brand's account first "
                "(manage.py sandbox_demo registers every account that points at the sandbox)."
            ) from None
        if not re.search(rf"(?<![A-Za-z0-9_])@{re.escape(handle)}(?![A-Za-z0-9_])", text, re.I):
            text = f"@{handle} {text}"
        payload: dict[str, Any] = {
            "author": {
                "id": str(author_id),
                "username": author_username.lstrip("@"),
                "name": author_name or author_username.lstrip("@"),
                "followers_count": int(followers),
            },
            "text": text,
        }
        if in_reply_to:
            payload["in_reply_to_tweet_id"] = str(in_reply_to)
        if created_at:
            payload["created_at"] = created_at
        return dict(self._call("POST", "tweets", json=payload))

    def post_tweet(
        self,
        author_id: str,
        author_username: str,
        text: str = "",
        *,
        followers: int | None = None,
        in_reply_to: str | None = None,
        quote_of: str | None = None,
        retweet_of: str | None = None,
        verified: bool | None = None,
        created_at: str | None = None,
    ) -> dict[str, Any]:
        """Any post, as written (no mention added): a listening match, a quote
        (``quote_of``), a pure retweet (``retweet_of``; the text is X's own), or a post by the
        brand's own account from the X app (``in_reply_to`` a customer's post)."""
        author: dict[str, Any] = {"id": str(author_id), "username": author_username.lstrip("@")}
        if followers is not None:
            author["followers_count"] = int(followers)
        if verified is not None:
            author["verified"] = verified
        payload: dict[str, Any] = {"author": author, "text": text}
        for key, value in (
            ("in_reply_to_tweet_id", in_reply_to),
            ("quote_of", quote_of),
            ("retweet_of", retweet_of),
            ("created_at", created_at),
        ):
            if value:
                payload[key] = str(value)
        return dict(self._call("POST", "tweets", json=payload))

    def send_dm(
        self,
        to_username: str,
        author_id: str,
        author_username: str,
        text: str,
        *,
        followers: int | None = None,
        created_at: str | None = None,
    ) -> dict[str, Any]:
        """A customer's direct message to ``@to_username``; returns the stored DM event."""
        sender: dict[str, Any] = {"id": str(author_id), "username": author_username.lstrip("@")}
        if followers is not None:
            sender["followers_count"] = int(followers)
        payload: dict[str, Any] = {
            "from": sender,
            "to_username": to_username.lstrip("@"),
            "text": text,
        }
        if created_at:
            payload["created_at"] = created_at
        return dict(self._call("POST", "dms", json=payload))

    def get_tweet(self, tweet_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"tweets/{tweet_id}"))

    def dm_events(self, participant_id: str | None = None) -> list[dict[str, Any]]:
        params = {"participant_id": participant_id} if participant_id else None
        return list(self._call("GET", "dm_events", params=params)["data"])

    def requests_log(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "requests")["data"])

    def set_rate_limits(self, **limits: int) -> None:
        """E.g. ``set_rate_limits(mentions=2)``; a reset restores the defaults."""
        self._call("POST", "rate_limits", json=limits)

    def inject_faults(
        self, status: int = 503, count: int = 1, *, mode: str = "status", delay: float = 0.0
    ) -> None:
        """Make the next ``count`` X API calls (not ``/_sandbox/``) misbehave.

        ``mode="status"`` (default): the call is not processed and answers ``status`` with the
        Problem X sends for it: 400 invalid-request, 401 Unauthorized, 403 client-forbidden,
        404 Not Found, 429 Too Many Requests (``x-rate-limit-remaining: 0``), 500/502/503/504.

        ``mode="after_commit_delay"``: the call is processed (the post or DM IS stored), then
        the response waits ``delay`` seconds, so a client with a shorter read timeout gives up
        on a write X accepted. ``mode="after_commit_drop"``: the call is processed, then the
        connection is closed with no response at all (``requests`` raises ConnectionError).
        ``mode="malformed"``: processed, then a 200 whose JSON body is cut in half.
        ``status`` is ignored by every mode but ``status``.

        ``mode="repeat_page"`` waits for the next paged list call (with a ``pagination_token``
        or ``next_token``) and answers it with the caller's previous page of that endpoint
        again, the same ``next_token`` included; ``count`` in a row make a loop that long.
        """
        self._call(
            "POST",
            "faults",
            json={"status": status, "count": count, "mode": mode, "delay": delay},
        )

    def inject_delay(self, seconds: float, count: int = 1) -> None:
        """Shorthand for ``inject_faults(mode="after_commit_delay", delay=seconds)``."""
        self.inject_faults(count=count, mode="after_commit_delay", delay=seconds)

    def inject_drop(self, count: int = 1) -> None:
        """Shorthand for ``inject_faults(mode="after_commit_drop")``."""
        self.inject_faults(count=count, mode="after_commit_drop")
