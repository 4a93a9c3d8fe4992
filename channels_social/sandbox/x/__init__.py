"""An X API v2 emulator (werkzeug WSGI) for tests, demos and local development.

``create_app()`` builds it, ``server.start_in_thread()`` serves it, ``control.SandboxControl``
drives its private ``/_sandbox/`` endpoints.
"""

from __future__ import annotations

from channels_social.sandbox.x.app import XSandboxApp, create_app
from channels_social.sandbox.x.store import XStore

__all__ = ["XSandboxApp", "XStore", "create_app"]
