"""What every emulator's control client shares: calls to its private ``/_sandbox/`` endpoints,
errors that say whether it is down or refused, and waiting for it to come up."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import requests


class SandboxError(Exception):
    """The emulator could not be reached or refused the request; the message says which."""


class SandboxUnreachable(SandboxError):
    """Nothing answered at the emulator's address."""


class ControlClient:
    """Drives one emulator at ``base_url``. Subclasses name it and the command that starts it."""

    label: ClassVar[str] = "sandbox"  # "X sandbox", "Facebook sandbox"
    command: ClassVar[str] = ""  # "manage.py run_x_sandbox"

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # No proxies from the environment: the emulator is always local.
        self.session = requests.Session()
        self.session.trust_env = False

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}/_sandbox/{path}"
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise SandboxUnreachable(
                f"The {self.label} at {self.base_url} is not reachable "
                f"({type(exc).__name__}). Is `{self.command}` running?"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not response.ok:
            message = body.get("error") if isinstance(body, dict) else None
            raise SandboxError(
                f"The {self.label} refused {method} /_sandbox/{path}: "
                f"{message or f'HTTP {response.status_code}'}"
            )
        return body

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "health"))

    def wait_until_up(self, timeout: float = 10.0) -> None:
        """Poll the health endpoint until it answers; SandboxError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except SandboxError:
                if time.monotonic() >= deadline:
                    raise SandboxError(
                        f"The {self.label} at {self.base_url} did not answer within "
                        f"{timeout:g} s. Start it with `{self.command}`."
                    ) from None
                time.sleep(0.2)
