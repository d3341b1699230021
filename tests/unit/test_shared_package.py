"""``hub.shared`` is the Django-free package the SDK, the server and the workers share: it
(and the SDK on top of it) imports with Django and torch absent, and no module in it names
a server-side or heavyweight framework in an import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "hub" / "shared"
FORBIDDEN = {"django", "rest_framework", "celery", "torch"}


def _imported_roots(source: str) -> set[str]:
    """Top-level names of every module an import statement names, at any depth (a function
    that imports lazily counts too)."""
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_shared_module_imports_django_drf_celery_or_torch():
    modules = sorted(SHARED.rglob("*.py"))
    assert len(modules) >= 6  # __init__, paths, tensors, chunking, wire, spool, resources
    offending = {
        str(p.relative_to(ROOT)): sorted(_imported_roots(p.read_text()) & FORBIDDEN)
        for p in modules
    }
    assert {p: names for p, names in offending.items() if names} == {}


def test_the_import_check_sees_lazy_imports():
    assert _imported_roots("def f():\n    from django.conf import settings\n") == {"django"}


def test_shared_and_the_sdk_import_with_django_and_torch_unimportable():
    code = (
        "import sys\n"
        "for name in ('django', 'rest_framework', 'celery', 'torch'):\n"
        "    sys.modules[name] = None  # any import of them raises ImportError\n"
        "import hub.shared, hub.shared.paths, hub.shared.tensors, hub.shared.chunking, hub.shared.wire\n"
        "import hub.shared.spool, hub.shared.resources\n"
        "import hub.client, hub.client.api, hub.client.run, hub.client.spool, hub.client.system\n"
        "from hub.client import Client, HubClientError, HubUnreachable, PushResult\n"
        "print('ok')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
