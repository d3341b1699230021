"""`hub serve`'s process supervisor: a shutdown asked for during start-up is a clean stop,
never an error, and never leaves a child running."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from hub.serve import Child, ShutdownRequested, Supervisor, free_port

pytestmark = pytest.mark.unit


def test_a_signal_while_a_child_is_starting_stops_it_and_is_not_an_error():
    sup = Supervisor()
    # A child that never becomes ready: without the shutdown, add() would wait 60 s.
    child = Child(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        {},
        ready_url=f"http://127.0.0.1:{free_port()}/health",
    )
    threading.Timer(0.5, sup.stop_all).start()  # what the SIGTERM handler does
    t = time.monotonic()
    with pytest.raises(ShutdownRequested):
        sup.add(child, wait=60)
    assert time.monotonic() - t < 10
    sup.stop_all()  # what hub serve does on ShutdownRequested
    assert child.proc.wait(10) is not None


def test_nothing_starts_after_shutdown_was_asked_for():
    sup = Supervisor()
    sup.stop_all()
    child = Child("late", [sys.executable, "-c", "pass"], {})
    with pytest.raises(ShutdownRequested):
        sup.add(child)
    assert child.proc is None
