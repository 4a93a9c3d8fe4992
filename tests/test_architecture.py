"""The apps depend one way: careinbox (base) <- channels_social <- tickets <- monitoring.

Every import is read from the source (module level, inside functions, under TYPE_CHECKING), so a
lazy import inside a function cannot hide a cycle. The project's composition root (URL conf,
WSGI entry, the demo seed) wires the apps together and may import any of them; nothing imports it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPS = ("careinbox", "channels_social", "tickets", "monitoring")
# Each app may import these (and itself), nothing else of ours.
ALLOWED = {
    "careinbox": set(),
    "channels_social": {"careinbox"},
    "tickets": {"careinbox", "channels_social"},
    "monitoring": {"careinbox", "channels_social", "tickets"},
}
COMPOSITION_ROOT = {
    "careinbox.urls",
    "careinbox.wsgi",
    "careinbox.demo",
    "careinbox.accounts.management.commands.seed_demo",
    "careinbox.accounts.management.commands.demo_banner",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _component(module: str) -> str | None:
    if module in COMPOSITION_ROOT:
        return "project"
    top = module.split(".")[0]
    return top if top in APPS else None


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _app_graph() -> dict[str, dict[str, set[str]]]:
    """component -> component it imports -> the modules that do it (for the failure message)."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            module = _module_name(path)
            source = _component(module)
            if source is None:
                continue
            for imported in _imports(path, module):
                target = _component(imported)
                if target is not None and target != source:
                    graph[source][target].add(module)
    return graph


def test_apps_depend_one_way() -> None:
    graph = _app_graph()
    wrong = {
        f"{source} -> {target} (in {', '.join(sorted(modules))})"
        for source, targets in graph.items()
        if source != "project"
        for target, modules in targets.items()
        if target not in ALLOWED[source]
    }
    assert not wrong, "imports against the direction of the apps:\n" + "\n".join(sorted(wrong))


def test_there_is_no_cycle_between_the_apps() -> None:
    graph = _app_graph()
    # The composition root imports everything by design; the other test keeps it a root.
    edges = {source: set(targets) - {"project"} for source, targets in graph.items()}
    edges.pop("project", None)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges.get(start, set()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = [app for app in APPS if reaches(app, app, {app})]
    assert cycles == []


def test_the_walker_sees_imports_inside_functions() -> None:
    """The checker itself must be able to fail: a lazy import is an import."""
    source = "def f():\n    from tickets.services import ingest_posts\n    return ingest_posts\n"
    tmp = ROOT / "var" / "arch_probe.py"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_text(source)
    try:
        assert "tickets.services.ingest_posts" in _imports(tmp, "channels_social.probe")
    finally:
        tmp.unlink()


def test_only_the_event_module_writes_ticket_events() -> None:
    """``tickets.events`` is the one writer, so every event is published to the handlers."""
    writers = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            text = path.read_text()
            for call in ("TicketEvent.objects.create", "TicketEvent.objects.bulk_create"):
                if call in text:
                    writers.add(str(path.relative_to(ROOT)))
    assert writers == {"tickets/events.py"}
