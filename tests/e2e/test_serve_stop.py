"""`hub serve` leaves nothing behind: after SIGTERM, every process of its tree is gone within
the stop grace period, even a search server that does not act on SIGTERM (busy)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.serve import free_port, wait_http

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 3


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from /proc, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])


def process_tree(root: int) -> set[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            parents[int(entry)] = st[1]
    tree, grew = {root}, True
    while grew:
        new = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= new
        grew = bool(new)
    return tree - {root}


def alive(pid: int) -> bool:
    st = _stat(pid)
    return (
        st is not None and st[0] != "Z"
    )  # a zombie has exited; only its parent's bookkeeping is left


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_no_process_of_hub_serve_outlives_it_even_a_search_server_ignoring_sigterm(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATA_DIR=str(tmp_path / "d"),
        HUB_CONFIG_DIR=str(tmp_path / "c"),
        HUB_REDIS_URL="redis://127.0.0.1:1/0",
        HUB_SERVE_STOP_GRACE_S=str(GRACE_S),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.client.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tree: set[int] = set()
    try:
        assert wait_http(f"http://127.0.0.1:{port}/api/v1/health", 120)
        tree = process_tree(proc.pid)
        # The search server itself (the binary behind noida-db's Python launcher), stopped: like
        # a busy server, it does not act on SIGTERM; only SIGKILL ends it.
        servers = [p for p in tree if cmdline(p).split(" ")[0].endswith("noida_db/noida-db")]
        assert servers, {p: cmdline(p) for p in tree}
        for pid in servers:
            os.kill(pid, signal.SIGSTOP)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
        deadline = time.monotonic() + GRACE_S + 10
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.1)
        left = {p: cmdline(p) for p in tree if alive(p)}
        assert not left, f"outlived hub serve: {left}\n{out}"
    finally:
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
