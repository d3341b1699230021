"""The client installs alone: a fresh virtualenv gets ``pip install <this checkout>`` with no
extras, and its `hub` CLI and SDK log a run, push a model and pull it back byte for byte
against a live `hub serve`; that environment holds no torch, Django, Celery, database
drivers or server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from hub.client import Client
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

#: pip resolves and downloads the base dependencies (PyPI or the machine's wheel folders);
#: the default pip cache makes a rerun take seconds.
PIP_TIMEOUT_S = 900
#: Distributions the client must not pull in (names as `pip list` normalises them).
NOT_IN_A_CLIENT = {
    "torch",
    "django",
    "djangorestframework",
    "celery",
    "kombu",
    "redis",
    "psycopg",
    "psycopg-binary",
    "chdb",
    "pyarrow",
    "clickhouse-driver",
    "elasticsearch",
    "boto3",
    "gunicorn",
    "safetensors",
    "noida-db",
}

TRAIN = '''
"""A training script that only has the client: logs a run, writes a safetensors file."""
import json, sys
from pathlib import Path

import numpy as np

from hub.client import Client
from hub.shared.tensors import build_header

out = Path(sys.argv[1])
c = Client()
with c.init_run(
    "thin/experiments", name="from-a-thin-env", params={"lr": 3e-4, "moe": {"top_k": 2}},
    tags=["thin"], spool_dir=out / "spool",
) as run:
    for step in range(200):
        run.log({"loss": 2.0 / (step + 1), "aux_loss": 0.01}, step=step)
assert run.pending() == 0

rng = np.random.default_rng(7)
tensors = {
    "embed.weight": rng.standard_normal((64, 32)).astype("<f4"),
    "layers.0.router.weight": rng.standard_normal((8, 32)).astype("<f4"),
    "layers.0.experts.w1": rng.standard_normal((8, 32, 48)).astype("<f4"),
    "layers.0.experts.w2": rng.standard_normal((8, 48, 32)).astype("<f4"),
}
header, spans = build_header([(k, "F32", v.shape) for k, v in tensors.items()], {"format": "pt"})
model = out / "model"
model.mkdir()
with open(model / "model.safetensors", "wb") as f:
    f.write(header)
    for v in tensors.values():
        f.write(v.tobytes())
(model / "config.json").write_text(json.dumps({"num_experts": 8, "top_k": 2}))
np.savez(out / "expected.npz", **tensors)
print(run.id)
'''


@pytest.fixture(scope="module")
def thin_venv(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("thin-client")
    # Built from a copy of what the package holds, so the build leaves nothing in the checkout.
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("hub", "workers"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input", str(src)],
        env=env,
        cwd=base,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return venv


def test_the_client_alone_logs_a_run_and_pushes_and_pulls_a_model(live_hub, thin_venv, tmp_path):
    token = live_hub.make_user("thin")
    bin_dir = thin_venv / "bin"
    env = {
        k: v
        for k, v in live_hub.env.items()
        if k not in {"VIRTUAL_ENV", "PYTHONPATH", "HUB_TOKEN", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(PATH=f"{bin_dir}{os.pathsep}/usr/bin:/bin", HUB_CONFIG_DIR=str(tmp_path / "cfg"))

    def run(*cmd: str, input: str | None = None) -> subprocess.CompletedProcess:
        # cwd outside the checkout: `hub` must come from the venv, not from ./hub
        r = subprocess.run(
            list(cmd), env=env, cwd=tmp_path, capture_output=True, text=True, input=input,
            timeout=300,
        )  # fmt: skip
        assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    py, hub = str(bin_dir / "python"), str(bin_dir / "hub")

    # what is installed: the client and its few dependencies, nothing of the server
    installed = {
        d["name"].lower().replace("_", "-")
        for d in json.loads(run(py, "-m", "pip", "list", "--format=json").stdout)
    }
    assert {"moe-hub", "httpx", "numpy", "blake3", "pyfastcdc", "tqdm"} <= installed
    assert installed & NOT_IN_A_CLIENT == set()
    where = run(py, "-c", "import hub.client, hub; print(hub.__file__)").stdout.strip()
    assert where.startswith(str(thin_venv)), where
    assert run(hub, "--version").stdout.strip() == "hub 0.1.0"

    # the CLI logs in (saved under HUB_CONFIG_DIR) and every later command uses that login
    r = run(hub, "login", input=token + "\n")
    assert "as thin" in r.stdout

    # a training script with only the client: a tracked run, then a safetensors file
    (tmp_path / "train.py").write_text(TRAIN)
    run_id = run(py, str(tmp_path / "train.py"), str(tmp_path)).stdout.strip().splitlines()[-1]
    shown = json.loads(run(hub, "runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "finished" and shown["params"]["moe.top_k"] == 2
    assert shown["summary"]["loss"]["last_step"] == 199
    assert shown["summary"]["loss"]["min"] == pytest.approx(2.0 / 200)
    assert "thin" in shown["tags"]

    # push, then pull into a fresh folder: the same bytes
    run(hub, "repo", "create", "thin/moe-tiny")
    model = tmp_path / "model"
    r = run(hub, "push", str(model), "--repo", "thin/moe-tiny", "-m", "from a thin env", "-q")
    assert "2 of 2 file(s) changed" in r.stdout
    run(hub, "pull", "thin/moe-tiny@main", str(tmp_path / "pulled"), "-q")
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "pulled" / name).read_bytes() == (model / name).read_bytes(), name

    # the file the client wrote with numpy alone is one the safetensors library reads
    expected = np.load(tmp_path / "expected.npz")
    got = load_file(str(tmp_path / "pulled" / "model.safetensors"))
    assert sorted(got) == sorted(expected.files)
    assert all(np.array_equal(got[k], expected[k]) for k in expected.files)

    # seen from the hub's side too, with the full SDK
    c = Client(url=live_hub.url, token=token)
    assert c.get_run(run_id)["summary"]["aux_loss"]["last"] == pytest.approx(0.01)
    assert [f["path"] for f in c.list_files("thin/moe-tiny", "main")["files"]] == [
        "config.json",
        "model.safetensors",
    ]

    # the server's commands say what to install, without a traceback
    for args in (["serve", "--port", "1"], ["admin", "list-users"]):
        r = subprocess.run(
            [hub, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "pip install 'moe-hub[server]'" in r.stderr
