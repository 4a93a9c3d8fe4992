"""The web process's warm-up (``careinbox/warmup.py``): the URL conf and every template built
once, then what start-up made frozen out of the garbage collector's sight."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.template import engines
from django.urls import reverse

from careinbox.warmup import keeps_compiled_templates, template_names, warm_up
from tests.conftest import Persona


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give the frozen objects back to the collector after the test (the rest of the test
    session is not a web process)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_every_project_template_is_found() -> None:
    names = set(template_names())
    root = Path(__file__).resolve().parents[1] / "templates"
    ours = {p.relative_to(root).as_posix() for p in root.rglob("*.html")}
    assert ours and ours <= names
    assert "tickets/partials/row.html" in names
    # Installed packages' templates (the admin's, DRF's) are not compiled at start-up.
    assert not any(n.startswith(("admin/", "rest_framework/")) for n in names - ours)


@pytest.mark.usefixtures("unfrozen")
def test_warm_up_compiles_the_templates_and_freezes(agent: Persona) -> None:
    assert gc.get_freeze_count() == 0
    done = warm_up()
    assert done.failed == 0
    assert keeps_compiled_templates()  # the default loaders: Django's cached loader
    assert done.templates == len(template_names())
    # Frozen objects that are freed later leave the permanent generation, so the count can
    # only have fallen by a few since (another thread's garbage), never risen.
    assert 0.99 * done.frozen <= gc.get_freeze_count() <= done.frozen
    assert done.frozen > 10_000
    # With the cached loader (DEBUG off, as in production) the compiled templates are kept:
    # the next get_template is the same object, not compiled again.
    engine = engines["django"].engine  # type: ignore[attr-defined]
    if not engine.debug:
        first = engine.get_template("tickets/partials/row.html")
        assert engine.get_template("tickets/partials/row.html") is first
    # Pages still render after it, templates and URL reversing included.
    page = agent.client().get(reverse("tickets:inbox"))
    assert page.status_code == 200
    assert b"All open" in page.content
    assert reverse("tickets:inbox") == "/"


def test_plain_loaders_skip_the_compiling(settings: Any) -> None:
    """Loaders that do not keep what they compile (no cached loader): nothing is compiled at
    start-up, only the URL conf is built."""
    gc.unfreeze()
    try:
        settings.TEMPLATES = [
            {
                **settings.TEMPLATES[0],
                "APP_DIRS": False,
                "OPTIONS": {
                    **settings.TEMPLATES[0]["OPTIONS"],
                    "loaders": [
                        "django.template.loaders.filesystem.Loader",
                        "django.template.loaders.app_directories.Loader",
                    ],
                },
            }
        ]
        assert not keeps_compiled_templates()
        done = warm_up()
        assert done.templates == 0 and done.failed == 0
    finally:
        gc.unfreeze()


def test_the_wsgi_entry_warms_up() -> None:
    """``careinbox.wsgi`` (what gunicorn imports, in a process of its own) has warmed up and
    frozen by the time it is imported."""
    import os
    import subprocess
    import sys

    script = "import gc, careinbox.wsgi as w; print(callable(w.application), gc.get_freeze_count())"
    env = {**os.environ, "CAREINBOX_TESTING": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    ok, frozen = done.stdout.split()
    assert ok == "True"
    assert int(frozen) > 10_000  # start-up's objects: about 150,000
