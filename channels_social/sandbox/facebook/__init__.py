"""A Facebook Graph API emulator (werkzeug WSGI) for tests, demos and local development.

``create_app()`` builds it, ``server.start_in_thread()`` serves it,
``control.FacebookSandboxControl`` drives its private ``/_sandbox/`` endpoints and
``control.graph_session()`` points facebook-sdk's ``GraphAPI`` at it.
"""

from __future__ import annotations

from channels_social.sandbox.facebook.app import FacebookSandboxApp, create_app
from channels_social.sandbox.facebook.store import FacebookStore

__all__ = ["FacebookSandboxApp", "FacebookStore", "create_app"]
