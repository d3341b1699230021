"""finish() stays bounded and honest when the hub accepts connections but never answers."""

import json
import socket
import threading
import time

import pytest

from hub.client.api import Client
from hub.client.run import Run
from hub.client.spool import sync_spool
from hub.shared import wire
from hub.shared.spool import STATUS_FILE

pytestmark = pytest.mark.unit


@pytest.fixture
def hung_hub():
    """A server that accepts every connection and reads, but never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    conns, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                conns.append(c)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


def _points_in(spool):
    return sum(len(wire.decode(f.read_bytes(), max_points=10**6)[2]) for f in spool.glob("*.bin"))


def test_a_hung_post_counts_as_pending_and_is_spooled_by_finish(hung_hub, tmp_path):
    client = Client(hung_hub, "token", timeout=60)  # the POST would hang for a minute
    run = Run(
        client,
        {"id": "hung0123456789ab"},
        spool_dir=tmp_path,
        flush_interval=0.05,
        batch_points=100,
    )
    for step in range(250):
        run.log({"loss": 1.0, "lr": 0.1}, step=step)  # 500 points: 5 batches, the first one hangs
    deadline = time.monotonic() + 5
    while run._inflight_points == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run._inflight_points == 500 and run.pending() == 500  # in flight is pending, not 0
    started = time.monotonic()
    with pytest.warns(UserWarning):
        report = run.finish(timeout=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 5.0 + 1.0, (
        elapsed
    )  # flush budget + the short status call, not 60 s × retries
    spool = tmp_path / "hung0123456789ab"
    assert report["pending"] == 500 == _points_in(spool) and not report["status_sent"]
    assert json.loads((spool / STATUS_FILE).read_text()) == {"status": "finished"}


def test_the_status_call_is_short_and_not_retried(tmp_path):
    calls = []

    class Recorder:
        def request(self, *a, **kw):
            return None

        def _json(self, method, path, **kw):
            calls.append((method, kw))
            from hub.client.errors import HubUnreachable

            raise HubUnreachable("timed out")

    run = Run(Recorder(), {"id": "stat0123456789ab"}, spool_dir=tmp_path, flush_interval=3600)
    with pytest.warns(UserWarning, match="spooled"):
        report = run.finish("failed", timeout=0.2)
    [(method, kw)] = calls
    assert method == "PATCH" and kw["retries"] == 0 and kw["timeout"] <= 5.0
    assert report["status_sent"] is False and report["pending"] == 0
    assert json.loads((tmp_path / "stat0123456789ab" / STATUS_FILE).read_text()) == {
        "status": "failed"
    }


def test_sync_sends_the_spooled_points_then_the_status(tmp_path):
    sent = []

    class Hub:
        def request(self, method, path, **kw):
            sent.append((method, path, len(wire.decode(kw["content"], max_points=10**6)[2])))

        def _json(self, method, path, **kw):
            sent.append((method, path, kw["json"]))
            return {}

    spool = tmp_path / "sync0123456789ab"
    spool.mkdir()
    (spool / "00000000000000000001000001-3.bin").write_bytes(
        wire.encode(["a"], [0, 0, 0], [0, 1, 2], [1.0] * 3, [1.0] * 3)
    )
    (spool / STATUS_FILE).write_text(json.dumps({"status": "finished"}))
    assert sync_spool(Hub(), tmp_path) == {"sent_points": 3, "runs_left": 0}
    assert sent == [
        ("POST", "/runs/sync0123456789ab/metrics", 3),
        ("PATCH", "/runs/sync0123456789ab", {"status": "finished"}),
    ]
    assert not spool.exists()
