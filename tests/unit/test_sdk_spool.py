"""The SDK keeps memory bounded by spilling to disk, in batches the hub will accept."""

import pytest

from hub.client.errors import HubUnreachable
from hub.client.run import Run
from hub.shared import wire

pytestmark = pytest.mark.unit


class Offline:
    def request(self, *a, **kw):
        raise HubUnreachable("no network")

    def _json(self, *a, **kw):
        raise HubUnreachable("no network")


def test_spill_writes_hub_sized_batches_and_loses_nothing(tmp_path):
    run = Run(
        Offline(),
        {"id": "abcdef0123456789"},
        spool_dir=tmp_path,
        batch_points=1000,
        max_pending=5000,
        flush_interval=3600,
    )
    for step in range(6000):
        run.log({"a": float(step), "b": 1.0}, step=step)  # 12,000 points: spills past 5,000 pending
    report = run.finish(timeout=0.5)
    files = sorted((tmp_path / "abcdef0123456789").glob("*.bin"))
    counts = [len(wire.decode(f.read_bytes(), max_points=10**6)[2]) for f in files]
    assert all(c <= 1000 for c in counts) and sum(counts) == 12_000 == report["pending"]
