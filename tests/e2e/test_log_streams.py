"""Long-lived log streams do not stall the site: ``hub serve``'s web server (gunicorn, threaded
workers) holds more live Server-Sent-Event streams than it has worker processes, and ordinary
requests still answer. With gunicorn's default one-request-per-process workers, four open streams
took compose's four processes and every other request waited behind them."""

from __future__ import annotations

import threading

import httpx
import pytest

from hub.client import Client
from tests.helpers import TINY

pytestmark = pytest.mark.e2e

#: Streams held open at once: twice compose's default web processes (4), eight times hub serve's.
STREAMS = 8
#: A training run that outlasts the test (it is cancelled at the end).
LONG = {"steps": 20_000, "checkpoint_every": 500, "eval_every": 500, "log_every": 5}
#: A generous bound for an ordinary request while the streams are open (not a benchmark).
ANSWER_WITHIN_S = 20


def _follow(url: str, token: str, opened: threading.Semaphore, events: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    with httpx.Client(timeout=httpx.Timeout(30, read=600)) as http:
        with http.stream("GET", url, headers=headers) as r:
            events.append(f"status {r.status_code}")
            opened.release()
            for line in r.iter_lines():
                if line.startswith("event: "):
                    events.append(line[len("event: ") :])
                    if events[-1] == "end":
                        return


def test_more_live_log_streams_than_web_processes_leave_ordinary_requests_answering(live_hub):
    token = live_hub.make_user("streamer")
    c = Client(url=live_hub.url, token=token)
    job = c._json(
        "POST",
        "/jobs",
        json={
            "project": "streamer/streams",
            "kind": "train",
            "config": {**TINY, "train": {**TINY["train"], **LONG}},
            "resources": {"cpus": 1, "memory_mb": 3072, "time_limit_s": 600},
        },
    )
    url = f"{live_hub.url}/api/v1/jobs/{job['id']}/logs/stream"
    opened = threading.Semaphore(0)
    streams = [[] for _ in range(STREAMS)]
    threads = [
        threading.Thread(target=_follow, args=(url, token, opened, events), daemon=True)
        for events in streams
    ]
    for t in threads:
        t.start()
    try:
        for _ in range(STREAMS):
            assert opened.acquire(timeout=60), "a log stream did not open"
        assert all(events[0] == "status 200" for events in streams)
        with httpx.Client(base_url=live_hub.url, timeout=ANSWER_WITHIN_S) as http:
            auth = {"Authorization": f"Bearer {token}"}
            for _ in range(5):
                for path in ("/api/v1/health", "/api/v1/whoami", f"/api/v1/jobs/{job['id']}"):
                    r = http.get(path, headers=auth)  # times out (fails) past the bound
                    assert r.status_code == 200, (path, r.text)
        assert all(t.is_alive() for t in threads), "every stream is still open"
    finally:
        c._json("POST", f"/jobs/{job['id']}/cancel")
        for t in threads:
            t.join(120)
    assert all(events[-1] == "end" for events in streams), [e[-3:] for e in streams]
