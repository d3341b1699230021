"""The tracking SDK against a live hub: batching, spooling, outages, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from hub.client import Client
from tests.e2e.conftest import HUB, ROOT, LiveHub
from tests.fixtures_services import unique_name

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def bob(live_hub):
    return live_hub.make_user("bob")


def _series(client, run_id, key):
    [s] = client.series([run_id], [key])
    return s


def test_log_finish_and_read_back(live_hub, bob, tmp_path):
    c = Client(url=live_hub.url, token=bob)
    with c.init_run(
        "bob/sdk",
        name="first",
        params={"moe": {"top_k": 2}, "lr": 1e-3},
        tags=["smoke"],
        spool_dir=tmp_path,
    ) as run:
        for step in range(5000):
            run.log(
                {"loss": 1.0 / (step + 1), "lr": 1e-3, "tokens_per_s": 1000.0 + step}, step=step
            )
        run.log({"val_loss": float("nan")}, step=5000)  # dropped client-side, with a warning
    assert run.finished and run.pending() == 0
    info = c.get_run(run.id)
    assert info["status"] == "finished" and info["params"]["moe.top_k"] == 2
    assert info["summary"]["loss"]["last_step"] == 4999
    counts = {
        k["key"]: k["count"]
        for k in c._json("GET", f"/runs/{run.id}/metrics")["keys"]
        if not k["key"].startswith("system/")
    }  # sampled every 10 s by the SDK
    assert counts == {"loss": 5000, "lr": 5000, "tokens_per_s": 5000}
    s = _series(c, run.id, "loss")
    assert s["step"] == list(range(5000)) and s["value"][9] == pytest.approx(0.1)
    assert "val_loss" not in info["summary"]


def test_failed_block_marks_the_run_failed(live_hub, bob, tmp_path):
    c = Client(url=live_hub.url, token=bob)
    with pytest.raises(RuntimeError):
        with c.init_run("bob/sdk", name="crash", spool_dir=tmp_path) as run:
            run.log({"loss": 1.0})
            raise RuntimeError("diverged")
    assert c.get_run(run.id)["status"] == "failed"


def test_unreachable_hub_spools_to_disk_and_sync_replays(live_hub, bob, tmp_path):
    c = Client(url=live_hub.url, token=bob)
    run = c.init_run("bob/sdk", name="offline", spool_dir=tmp_path)
    run.client = Client(url="http://127.0.0.1:9", token=bob, retries=0)  # the network is gone
    t0 = time.perf_counter()
    for step in range(20_000):
        run.log({"loss": float(step)}, step=step)
    log_s = time.perf_counter() - t0
    report = run.finish(timeout=2)
    assert report["pending"] == 20_000 and report["spool"]  # said, not hidden
    assert list((tmp_path / run.id).glob("*.bin"))
    assert log_s < 5  # log() never waited on the network (a loose bound, not a benchmark)
    assert c.get_run(run.id)["summary"] == {}
    from hub.client.spool import sync_spool

    assert sync_spool(c, tmp_path) == {"sent_points": 20_000, "runs_left": 0}
    assert c.get_run(run.id)["summary"]["loss"]["last"] == 19_999.0
    assert not (tmp_path / run.id).exists()


def test_a_run_started_while_the_hub_is_down_is_created_by_sync(live_hub, bob, tmp_path):
    """The hub is unreachable when training starts: init_run does not raise, the run is
    created (with its params, in a project that did not exist yet) by `hub sync` later."""
    offline = Client(url="http://127.0.0.1:9", token=bob, retries=0)
    with pytest.warns(UserWarning, match="created when the hub answers"):
        run = offline.init_run(
            "bob/offline-start",
            name="born-offline",
            params={"moe": {"top_k": 8}, "lr": 3e-4},
            tags=["offline"],
            spool_dir=tmp_path,
            system_metrics=False,
        )
    assert run.pending_creation
    for step in range(3000):
        run.log({"loss": 1.0 / (step + 1), "lr": 3e-4}, step=step)
    with pytest.warns(UserWarning):
        report = run.finish(timeout=2)
    assert report["pending"] == 6000 and report["created"] is False and report["spool"]
    from hub.client.spool import sync_spool

    c = Client(url=live_hub.url, token=bob)
    assert sync_spool(c, tmp_path) == {"sent_points": 6000, "runs_left": 0}
    info = c.get_run(run.id)
    assert (
        info["name"] == "born-offline"
        and info["status"] == "finished"
        and "offline" in info["tags"]
    )
    assert info["params"]["moe.top_k"] == 8 and info["params"]["lr"] == 3e-4
    counts = {k["key"]: k["count"] for k in c._json("GET", f"/runs/{run.id}/metrics")["keys"]}
    assert counts == {"loss": 3000, "lr": 3000}
    assert not (tmp_path / run.id).exists()


def test_runs_cli_search_show_compare(live_hub, bob, tmp_path):
    c = Client(url=live_hub.url, token=bob)
    ids = []
    for k, loss in ((2, 2.0), (4, 1.7)):
        with c.init_run(
            "bob/cli", name=f"top{k}", params={"moe": {"top_k": k}}, spool_dir=tmp_path
        ) as run:
            run.log({"val_loss": loss + 1}, step=0)
            run.log({"val_loss": loss}, step=100)
        ids.append(run.id)
    deadline = time.time() + 30  # indexing is asynchronous (Celery, debounced)
    while time.time() < deadline:
        r = live_hub.cli(
            "runs",
            "search",
            "bob/cli",
            "params.moe.top_k:4 AND summary.val_loss:<1.8",
            "--json",
            token=bob,
        )
        if r.returncode == 0 and '"total": 1' in r.stdout:
            break
        time.sleep(0.5)
    assert ids[1] in r.stdout, r.stdout + r.stderr
    r = live_hub.cli(
        "runs",
        "list",
        "bob/cli",
        "--sort",
        "summary.val_loss",
        "--columns",
        "params.moe.top_k,summary.val_loss",
        token=bob,
        check=True,
    )
    assert "top4" in r.stdout and "top2" in r.stdout, r.stdout
    assert r.stdout.index("top4") < r.stdout.index("top2"), r.stdout
    r = live_hub.cli("runs", "search", "bob/cli", "params.moe.top_k:(4", token=bob)
    assert r.returncode == 2 and "position" in r.stderr
    r = live_hub.cli("runs", "show", ids[1], token=bob, check=True)
    assert "moe.top_k = 4" in r.stdout
    out = tmp_path / "cmp.md"
    live_hub.cli("runs", "compare", *ids, "-o", str(out), token=bob, check=True)
    assert "top4 reaches 15.0% lower final val_loss than top2" in out.read_text()


def test_clickhouse_outage_during_ingest_loses_nothing_and_duplicates_nothing(
    clickhouse_server_restartable, tmp_path
):
    """Stop the ClickHouse server while the SDK ingests, restart it: every point is there once."""
    from hub.serve import free_port, wait_http

    ch = clickhouse_server_restartable
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATA_DIR=str(tmp_path / "data"),
        HUB_CONFIG_DIR=str(tmp_path / "cfg"),
        HUB_CLICKHOUSE_URL=ch.url_for(unique_name("outage")),
        HUB_BLOB_FSYNC="0",
    )
    proc = subprocess.Popen(
        [*HUB, "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=open(tmp_path / "serve.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/api/v1/health", 90), (
            tmp_path / "serve.log"
        ).read_text()
        hub = LiveHub(
            f"http://127.0.0.1:{port}", env, proc, tmp_path / "data", tmp_path / "serve.log"
        )
        token = hub.make_user("carol")
        c = Client(url=hub.url, token=token)
        run = c.init_run(
            "carol/outage",
            name="through-an-outage",
            spool_dir=tmp_path / "spool",
            flush_interval=0.2,
        )
        n = 3000
        outage = threading.Event()

        def train():
            for step in range(n):
                run.log({"loss": step * 0.5, "acc": step / n}, step=step)
                if step == n // 3:
                    outage.set()
                time.sleep(0.002)

        t = threading.Thread(target=train)
        t.start()
        outage.wait(30)
        ch.stop()
        time.sleep(3)  # the hub answers 503; the SDK spools
        assert not run.online
        ch.start()
        t.join()
        report = run.finish(timeout=60)
        assert report["pending"] == 0, report
        for key, fn in (("loss", lambda s: s * 0.5), ("acc", lambda s: s / n)):
            s = _series(c, run.id, key)
            assert s["step"] == list(range(n)), f"{key}: {len(s['step'])} points"
            assert s["value"] == pytest.approx([fn(i) for i in range(n)])
        keys = {k["key"]: k["count"] for k in c._json("GET", f"/runs/{run.id}/metrics")["keys"]}
        assert keys == {"loss": n, "acc": n}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
