"""A live hub started the way users start it: ``hub serve`` in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.serve import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
HUB = [sys.executable, "-m", "hub.client.cli"]


@dataclass
class LiveHub:
    url: str
    env: dict
    proc: subprocess.Popen
    data_dir: Path
    log: Path

    def cli(
        self,
        *args: str,
        token: str | None = None,
        check: bool = False,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        env = dict(self.env)
        if token:
            env["HUB_TOKEN"] = token
        elif token == "":
            # Anonymous: an empty config folder, so a login another test saved is not used.
            env.pop("HUB_TOKEN", None)
            env["HUB_CONFIG_DIR"] = tempfile.mkdtemp(prefix="hub-anonymous-")
        r = subprocess.run(
            [*HUB, *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"hub {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
            )
        return r

    def make_user(self, name: str, *, admin: bool = False, scope: str = "write") -> str:
        args = ["admin", "create-user", "--user", name] + (["--site-admin"] if admin else [])
        self.cli(*args, check=True)
        return self.cli(
            "admin", "create-token", "--user", name, "--scope", scope, check=True
        ).stdout.strip()


@pytest.fixture(scope="session")
def live_hub(tmp_path_factory, request) -> LiveHub:
    data = tmp_path_factory.mktemp("live-hub")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATA_DIR=str(data / "data"),
        HUB_CONFIG_DIR=str(data / "config"),
        HUB_URL=f"http://127.0.0.1:{port}",
        HUB_BLOB_FSYNC="0",
        PYTHONUNBUFFERED="1",
        HUB_JOB_LOST_AFTER_S="10",
    )
    for key in ("HUB_DATABASE_URL",):
        if os.environ.get(key):
            env[key] = os.environ[key]
    log = data / "serve.log"
    proc = subprocess.Popen(
        [*HUB, "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if not wait_http(f"http://127.0.0.1:{port}/api/v1/health", 90):
        proc.kill()
        raise RuntimeError(f"hub serve did not start:\n{log.read_text()}")
    hub = LiveHub(f"http://127.0.0.1:{port}", env, proc, data / "data", log)
    yield hub
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


def wait_gone(pid: int, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False
