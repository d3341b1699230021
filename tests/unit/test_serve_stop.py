"""`hub serve` stops every process it started, even one that ignores SIGTERM behind a
wrapper (noida-db's launcher is a Python script whose server binary is a grandchild)."""

from __future__ import annotations

import os
import sys
import textwrap
import time

import pytest

from hub.serve import Child

pytestmark = pytest.mark.unit


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":  # exited, waiting to be reaped
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_grandchild_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    stubborn = textwrap.dedent(f"""
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a busy server that does not stop
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        while True:
            time.sleep(1)
    """)
    # Like noida-db's launcher: a wrapper that runs the real server as its child and dies on SIGTERM.
    wrapper = (
        f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {stubborn!r}]))"
    )
    child = Child("search", [sys.executable, "-c", wrapper], dict(os.environ))
    child.start()
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    grandchild = int(pidfile.read_text())
    try:
        child.stop(grace=1.0)
        assert child.proc.poll() is not None
        assert _gone(grandchild, 5), "the server behind the wrapper outlived hub serve's stop"
    finally:
        try:
            os.kill(grandchild, 9)
        except ProcessLookupError:
            pass
