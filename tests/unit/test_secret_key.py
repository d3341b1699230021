"""The session-signing key: one random key per data dir, created by ``hub serve`` with mode
0600 from the start, kept across restarts; never a fixed key in production."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hub.serve import ROOT, secret_key_for

pytestmark = pytest.mark.unit


def test_hub_serve_creates_a_random_key_per_data_dir_and_keeps_it(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    key = secret_key_for(a)
    assert len(key) >= 40 and key != "dev-only-insecure-key-change-me"
    assert secret_key_for(a) == key  # the next start reuses it: sessions survive a restart
    assert secret_key_for(b) != key
    assert stat.S_IMODE((a / "secret-key").stat().st_mode) == 0o600


def test_the_key_file_is_never_readable_by_others_even_for_a_moment(tmp_path, monkeypatch):
    """Created with mode 0600 by open() itself (O_EXCL), not chmod'ed afterwards."""
    calls = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *a, **kw):
        calls.append((str(path), flags, mode))
        return real_open(path, flags, mode, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    monkeypatch.setattr(os, "chmod", lambda *a, **kw: pytest.fail("chmod after creation"))
    secret_key_for(tmp_path)
    created = [(f, m) for p, f, m in calls if p.endswith("secret-key") and f & os.O_CREAT]
    assert created and all(f & os.O_EXCL and m == 0o600 for f, m in created)


def _settings_key(env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.SECRET_KEY)"],
        env={**base, "DJANGO_SETTINGS_MODULE": "hub.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_production_settings_refuse_to_start_without_a_key(tmp_path):
    r = _settings_key({"HUB_DATA_DIR": str(tmp_path)})
    assert r.returncode != 0 and "HUB_SECRET_KEY" in r.stderr, r.stdout


def test_settings_use_the_data_dirs_key_and_hub_secret_key_overrides_it(tmp_path):
    key = secret_key_for(tmp_path)
    assert _settings_key({"HUB_DATA_DIR": str(tmp_path)}).stdout.strip() == key
    assert (
        _settings_key({"HUB_DATA_DIR": str(tmp_path), "HUB_SECRET_KEY": "from-env"}).stdout.strip()
        == "from-env"
    )
    assert Path(tmp_path / "secret-key").read_text().strip() == key
