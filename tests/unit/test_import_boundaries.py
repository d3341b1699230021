"""Where the hub and the workers meet: only through the broker (tasks sent by name) and the
hub's API (``hub.client.worker``). The checks read every import statement under ``hub/`` and
``workers/`` with ``ast`` — a lazy import inside a function counts like one at the top — and
then import the worker side in a fresh interpreter with Django unimportable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
#: What the workers' code may import from the hub: the SDK (its worker client included), the
#: Django-free shared package, and the Redis adapter that fixes the presence key's format.
WORKERS_MAY_IMPORT_FROM_HUB = ("hub.client", "hub.shared", "hub.stores.redis")
NEVER_IN_WORKERS = ("django", "rest_framework")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names, at any depth; ``from a import b``
    names ``a`` and ``a.b`` (b may be a module)."""
    package = (
        _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    )
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.add(module)
            out |= {f"{module}.{alias.name}" for alias in node.names}
    return out


def _sources() -> dict[str, Path]:
    return {
        _module_name(p): p
        for top in ("hub", "workers")
        for p in sorted((ROOT / top).rglob("*.py"))
        if "migrations" not in p.parts
    }


def _graph() -> dict[str, set[str]]:
    """module → the project modules it imports (an imported name is mapped to the module it
    names, or to its longest prefix that is a module)."""
    sources = _sources()

    def resolve(name: str) -> str | None:
        while name and name not in sources:
            name = name.rpartition(".")[0]
        return name or None

    return {
        mod: {m for m in map(resolve, _imports(path)) if m and m != mod}
        for mod, path in sources.items()
    }


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycle_through(graph: dict[str, set[str]], a: str, b: str) -> bool:
    return b in _reachable(graph, a) and a in _reachable(graph, b)


def test_the_jobs_services_and_the_workers_import_each_other_in_no_cycle():
    graph = _graph()
    assert "hub.jobs.services" in graph and "workers.tasks" in graph
    workers = sorted(m for m in graph if m.startswith("workers"))
    assert [w for w in workers if _cycle_through(graph, "hub.jobs.services", w)] == []
    # The hub sends the job's task by name: it reaches neither the task nor the supervisor.
    assert {"workers.tasks", "workers.supervisor"} & _reachable(graph, "hub.jobs.services") == set()


def test_search_indexing_and_its_tasks_import_each_other_in_no_cycle():
    graph = _graph()
    assert "hub.tracking.indexing" in _reachable(graph, "hub.tracking.tasks")  # the tasks call it
    assert "hub.tracking.tasks" not in _reachable(
        graph, "hub.tracking.indexing"
    )  # it sends them by name


def test_the_workers_code_imports_only_the_sdk_and_shared_code_of_the_hub():
    offending = {}
    for mod, path in _sources().items():
        if not mod.startswith("workers"):
            continue
        bad = sorted(
            name
            for name in _imports(path)
            if (
                name.split(".")[0] == "hub"
                and name != "hub"
                and not name.startswith(
                    tuple(p + suffix for p in WORKERS_MAY_IMPORT_FROM_HUB for suffix in ("", "."))
                )
            )
            or name.split(".")[0] in NEVER_IN_WORKERS
        )
        if bad:
            offending[mod] = bad
    assert offending == {}


def test_the_import_walk_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "workers"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "lazy.py").write_text(
        "def f():\n    from hub.jobs.services import job_transition\n    from . import other\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _imports(pkg / "lazy.py") == {
        "hub.jobs.services",
        "hub.jobs.services.job_transition",
        "workers",
        "workers.other",
    }


def test_the_worker_side_imports_with_django_unimportable():
    code = (
        "import os, sys\n"
        "os.environ.pop('DJANGO_SETTINGS_MODULE', None)\n"
        "for name in ('django', 'rest_framework'):\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        "import workers.settings, workers.presence, workers.supervisor, workers.tasks, workers.launch\n"
        "import hub.client.worker\n"
        "import workers.celery_app  # the job workers' Celery app: no Django settings either\n"
        "workers.celery_app.app.loader.import_default_modules()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('hub.jobs', 'hub.tracking', 'hub.accounts',\n"
        "                                                       'hub.registry', 'hub.settings', 'hub.celery_app')))\n"
        "print(loaded)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
