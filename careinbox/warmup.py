"""What a web process does once before its first request: build what every request then keeps
(the URL conf, every template compiled), and take it out of the garbage collector's sight.

Why: after start-up a process holds ~150,000 long-lived objects (the URL resolver, compiled
templates, model metadata) that nothing frees. CPython's full (generation-2) collection walks
every one of them each time it runs, and at 1,000,000 tickets the inbox's slowest request of
ten was such a collection (``bench/read_paths.py --breakdown`` splits a request's time into
SQL, templates and the collector's pauses; docs/benchmarks.md, "The inbox's slow request: the
garbage collector"). ``gc.freeze()`` moves everything alive at that moment to a permanent
generation the collector never walks; it is built first so that it is there to be frozen,
rather than made lazily by the first requests and then walked for the process's whole life.

Called from ``careinbox/wsgi.py`` after ``get_wsgi_application()``: gunicorn imports the WSGI
module in each worker (docker-compose runs it without ``--preload``), so each worker warms up
and freezes once, before it serves; with ``--preload`` the master does it before forking,
and the frozen pages stay shared with the workers (a collection never writes to them).
``bench/read_paths.py`` calls the same function, so it measures what gunicorn serves.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Warmup:
    templates: int  # template files compiled
    failed: int  # files that did not compile (logged; never fatal: a page would say so)
    frozen: int  # objects moved out of the collector's sight (gc.get_freeze_count())


def template_names() -> list[str]:
    """The name of every template file the configured engines can load, once each (the first
    directory that has a name is the one ``get_template`` reads, as the loaders search)."""
    from django.conf import settings
    from django.template import engines

    project = Path(settings.BASE_DIR).resolve()
    names: list[str] = []
    seen: set[str] = set()
    for engine in engines.all():
        for folder in getattr(engine, "template_dirs", ()):
            root = Path(folder).resolve()
            # The project's own templates only: those of installed packages (the admin's,
            # DRF's browsable API: ~110 files) are rendered seldom, by staff, and compiling
            # them would only lengthen start-up.
            if not root.is_dir() or not root.is_relative_to(project) or ".venv" in root.parts:
                continue
            for path in sorted(root.rglob("*")):
                if not path.is_file() or path.suffix not in (".html", ".txt", ".xml", ".json"):
                    continue
                name = path.relative_to(root).as_posix()
                if name not in seen:
                    seen.add(name)
                    names.append(name)
    return names


def keeps_compiled_templates() -> bool:
    """Whether every template engine keeps what it compiled: its loaders are Django's cached
    loader (the default since Django 4.1, ``DEBUG`` or not, unless ``loaders`` is set). With
    plain loaders each render compiles again, and compiling at start-up would be time spent
    for nothing."""
    from django.template import engines
    from django.template.loaders.cached import Loader as Cached

    def keeps(loader: object) -> bool:
        # A wrapping loader (django-template-partials' wraps the cached one) keeps what
        # the loaders it wraps keep.
        if isinstance(loader, Cached):
            return True
        inner = getattr(loader, "loaders", None) or ()
        return bool(inner) and all(keeps(i) for i in inner)

    for backend in engines.all():
        engine = getattr(backend, "engine", None)
        loaders = getattr(engine, "template_loaders", None)
        if not loaders or not all(keeps(loader) for loader in loaders):
            return False
    return True


def warm_up() -> Warmup:
    """Resolve the URL conf, compile every template once, then collect and freeze.

    Compiling is useful only where the loaders keep what they compiled (Django's cached
    loader, ``keeps_compiled_templates``); where they do not, only the URL conf is built."""
    from django.template import TemplateDoesNotExist, TemplateSyntaxError
    from django.template.loader import get_template
    from django.urls import get_resolver

    resolver = get_resolver()
    # The reverse lookups' tables (every {% url %} and reverse() reads them) are built on
    # first use; build them now.
    resolver.reverse_dict  # noqa: B018 - read for its side effect
    for namespace in list(resolver.namespace_dict):
        resolver.namespace_dict[namespace][1].reverse_dict  # noqa: B018
    compiled = failed = 0
    for name in template_names() if keeps_compiled_templates() else ():
        try:
            get_template(name)
        except (TemplateDoesNotExist, TemplateSyntaxError, UnicodeDecodeError) as error:
            # A template of a package that needs a library or context this project lacks
            # (it is never rendered here): skipped.
            failed += 1
            logger.debug("warm-up: %s not compiled: %s", name, error)
        else:
            compiled += 1
    gc.collect()
    gc.freeze()
    return Warmup(templates=compiled, failed=failed, frozen=gc.get_freeze_count())
