"""WSGI entry point (gunicorn careinbox.wsgi)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "careinbox.settings")

application = get_wsgi_application()

# Build the URL conf and every template once, then freeze what start-up made out of the
# garbage collector's sight (careinbox/warmup.py says why: a full collection walked all of it).
from careinbox.warmup import warm_up  # noqa: E402 - after the app is set up

warm_up()
