"""The client installs alone (``pip install moe-hub``): what ``hub.client`` reaches imports
only the base dependencies, every third-party import of the server and the workers is
declared in their extra, and the CLI runs, and says what to install for ``hub serve`` and
``hub admin``, where the server's packages cannot be imported. (The end-to-end proof, a fresh
virtualenv against a live hub, is ``tests/e2e/test_thin_client.py``.)"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
#: Reached from the CLI only through `hub serve` / `hub admin`, which first check that the
#: [server] extra is installed (hub.client.cli._require_server).
SERVER_ENTRY_POINTS = {"hub.serve", "django"}
#: What the client must never pull in.
SERVER_AND_WORKER_PACKAGES = (
    "django",
    "rest_framework",
    "drf_spectacular",
    "celery",
    "kombu",
    "redis",
    "psycopg",
    "chdb",
    "pyarrow",
    "clickhouse_driver",
    "elasticsearch",
    "boto3",
    "gunicorn",
    "safetensors",
    "torch",
)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    """The distributions each list of pyproject.toml names: "base" and one per extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lists = {"base": project["dependencies"], **project["optional-dependencies"]}
    return {
        k: {_norm(re.match(r"[A-Za-z0-9_.-]+", req).group()) for req in reqs}
        for k, reqs in lists.items()
    }


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module(p): p for top in ("hub", "workers") for p in sorted((ROOT / top).rglob("*.py"))}


def _optional(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``try: ... except ImportError: <fallback>`` (a handler that
    does not raise: the code works without the module, an optional dependency that no list
    has to declare)."""
    names = {"ImportError", "ModuleNotFoundError"}

    def falls_back(h: ast.ExceptHandler) -> bool:
        caught = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        return any(getattr(e, "id", "") in names for e in caught) and not any(
            isinstance(n, ast.Raise) for stmt in h.body for n in ast.walk(stmt)
        )

    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(falls_back(h) for h in node.handlers):
            out |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return out


def _imports(path: Path) -> set[str]:
    """Absolute module names the file imports, lazy imports included (relative ones resolved),
    optional ones (with a fallback when missing) left out."""
    pkg = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    out = set()
    tree = ast.parse(path.read_text())
    optional = _optional(tree)
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return out


def _closure(roots: set[str], stop: set[str] = frozenset()) -> tuple[set[str], set[str]]:
    """(project modules reachable from ``roots``, third-party top-level names they import),
    not following anything under ``stop``."""
    sources = _sources()

    def project_module(name: str) -> str | None:
        while name and name not in sources:
            name = name.rpartition(".")[0]
        return name or None

    seen, todo, third = set(), list(roots), set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        for name in _imports(sources[mod]):
            top = name.split(".")[0]
            if name in stop or top in stop or project_module(name) in stop:
                continue
            if top in {"hub", "workers"}:
                nxt = project_module(name)
                if nxt and nxt not in seen:
                    todo.append(nxt)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return seen, third


def _undeclared(modules: set[str], allowed: set[str]) -> dict[str, list[str]]:
    """Third-party modules whose distribution is not in ``allowed`` (module → its
    distributions; [] when nothing installed provides it)."""
    dists = packages_distributions()
    out = {}
    for m in sorted(modules):
        provided = {_norm(d) for d in dists.get(m, [])}
        if not provided & allowed:
            out[m] = sorted(provided)
    return out


def test_the_client_imports_only_the_base_dependencies():
    declared = _declared()
    roots = {m for m in _sources() if m == "hub.client" or m.startswith("hub.client.")}
    reached, third = _closure(roots, stop=SERVER_ENTRY_POINTS)
    assert "hub.client.cli" in reached and "hub.shared.chunking" in reached
    assert {"httpx", "blake3", "numpy", "pyfastcdc"} <= third  # the walk sees the client's own
    assert not reached & {m for m in _sources() if m.startswith(("hub.registry", "hub.jobs"))}
    assert _undeclared(third, declared["base"]) == {}


def test_every_server_and_worker_import_is_declared_in_its_extra():
    declared = _declared()
    assert {"server", "worker", "dev", "test"} <= declared.keys()
    # noida-db is development-only (the embedded search server `hub serve` starts when no
    # Elasticsearch is configured), nothing at runtime
    assert "noida-db" in declared["dev"] and "noida-db" not in declared["base"] | declared["server"]
    sources = _sources()
    server = {m for m in sources if m.startswith("hub")}
    workers = {m for m in sources if m.startswith("workers")}
    _, server_third = _closure(server)
    _, worker_third = _closure(workers, stop=SERVER_ENTRY_POINTS)  # the CLI is theirs too
    assert {"django", "chdb", "pyarrow"} <= server_third and "torch" in worker_third
    assert _undeclared(server_third, declared["base"] | declared["server"]) == {}
    assert _undeclared(worker_third, declared["base"] | declared["worker"]) == {}
    # the client's base is free of the server and worker stacks
    heavy = {"django", "torch", "celery", "redis", "psycopg", "chdb", "safetensors", "pyarrow"}
    assert not declared["base"] & {_norm(h) for h in heavy} and "psycopg" in declared["server"]


def test_the_cli_runs_where_server_packages_cannot_be_imported(tmp_path):
    """As in a client-only install: `hub --help`, `hub --version` and the client work, and
    `hub serve` / `hub admin` name the extra to install instead of a traceback."""
    code = f"""
import json, sys
for name in {SERVER_AND_WORKER_PACKAGES!r}:
    sys.modules[name] = None  # any import of it raises ImportError, find_spec says None
import hub.client, hub.client.cli, hub.client.run, hub.client.spool, hub.client.system
import hub.client.worker
from hub.client import cli
from hub.shared.wire import encode
assert cli.main(["serve", "--port", "1"]) == cli.EXIT_ERROR
assert cli.main(["admin", "list-users"]) == cli.EXIT_ERROR
assert cli.main(["serve", "--json"]) == cli.EXIT_USAGE  # serve has no --json
try:
    cli.main(["--version"])
except SystemExit as e:
    assert e.code == 0
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}})))
"""
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HUB_CONFIG_DIR": str(tmp_path)},
    )
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: hub serve runs the hub itself")
    assert lines[0].endswith("pip install 'moe-hub[server]'") and "django" in lines[0]
    assert lines[1].startswith("error: hub admin runs the hub itself") and "[server]" in lines[1]
    assert "Traceback" not in r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("hub ")
    loaded = set(json.loads(out[-1]))
    assert not loaded & set(SERVER_AND_WORKER_PACKAGES)


def test_the_hub_image_installs_the_server_and_worker_extras(tmp_path):
    """compose/Dockerfile lists its requirements from pyproject.toml: since the base is only
    the client, it must add the [server] and [worker] extras (the hub would not start)."""
    dockerfile = (ROOT / "compose" / "Dockerfile").read_text()
    m = re.search(r'^RUN (python -c "import tomllib.*?") > /tmp/requirements\.txt$', dockerfile,
                  re.S | re.M)  # fmt: skip
    assert m, "the Dockerfile's requirements step moved"
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    cmd = (
        m.group(1).replace("\\\n", "").replace("python -c", f"{shlex.quote(sys.executable)} -c", 1)
    )
    r = subprocess.run(["sh", "-c", cmd], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    listed = {_norm(re.match(r"[A-Za-z0-9_.-]+", ln).group()) for ln in r.stdout.split()}
    declared = _declared()
    assert listed == declared["base"] | declared["server"] | declared["worker"]
    assert {"django", "torch", "celery", "httpx"} <= listed and "noida-db" not in listed


def test_an_import_with_a_fallback_is_optional(tmp_path, monkeypatch):
    (tmp_path / "hub").mkdir()
    src = tmp_path / "hub" / "m.py"
    src.write_text(
        "import yaml\n"
        "def f():\n"
        "    try:\n"
        "        from scipy.optimize import linear_sum_assignment\n"
        "    except ImportError:\n"
        "        return None\n"
        "    try:\n"
        "        import orjson\n"
        "    except ValueError:\n"
        "        pass\n"
        "    try:\n"
        "        import chdb\n"
        "    except ImportError as e:\n"
        "        raise RuntimeError('chdb is a dependency') from e\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert {m.split(".")[0] for m in _imports(src)} == {"yaml", "orjson", "chdb"}
