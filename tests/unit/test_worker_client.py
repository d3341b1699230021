"""The workers' client (``hub.client.worker.WorkerClient``) against a small stand-in hub over
real HTTP: which credential each call carries, what it sends, and how failures surface."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hub.client import HubClientError, HubUnreachable
from hub.client.worker import WorkerClient

pytestmark = pytest.mark.unit

SERVICE, ATTEMPT = "hubw_service", "hubj_attempt"


class StandInHub(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str, object]] = []

    def _answer(self, status: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size) if size else b""
        body = (
            raw
            if self.headers.get("Content-Type") == "application/octet-stream"
            else json.loads(raw or b"null")
        )
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append((self.command, self.path, token, body))
        if self.path.endswith("/worker/start"):
            if token != SERVICE:
                return self._answer(
                    403, {"error": {"code": "not_a_worker", "message": "service only"}}
                )
            return self._answer(200, {"id": "j1", "status": "running", "credential": ATTEMPT})
        if self.path.endswith("/worker/finish") and token == SERVICE:
            return self._answer(
                409,
                {
                    "error": {
                        "code": "job_state_conflict",
                        "message": "running",
                        "details": {"status": "running"},
                    }
                },
            )
        if self.path.endswith("/worker/chunks/missing"):
            return self._answer(200, {"missing": body["chunks"][:1]})
        if self.path.endswith("/worker/heartbeat"):
            return self._answer(200, {"status": "running", "cancel_requested": False})
        return self._answer(200, {"ok": True})

    do_GET = do_POST = do_PUT = do_PATCH = _handle

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hub_url():
    StandInHub.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_start_claims_with_the_service_credential_and_the_rest_uses_the_attempts(hub_url):
    service = WorkerClient(hub_url, SERVICE)
    started = service.start("j1", worker="w1", gpus=[0])
    assert started.job == {"id": "j1", "status": "running"}  # the credential is not part of the job
    attempt = started.client
    assert attempt is not service and service.sdk.token == SERVICE and attempt.sdk.token == ATTEMPT
    attempt.heartbeat("j1", progress={"step": 1}, counters={"received": 2, "rejected": 0})
    attempt.logs("j1", [[0, 1.0, "stdout", "hello"]])
    assert attempt.chunks_missing("j1", ["a" * 64, "b" * 64]) == {"a" * 64}
    attempt.upload_chunk("j1", "a" * 64, b"bytes")
    attempt.artifact("j1", path="eval.json", kind="eval", chunks=[("a" * 64, 5)])
    attempt.finish("j1", status="succeeded", reason="completed", summary={}, run_id="r1")
    attempt.link_run("r1", commit="alice/moe@" + "c" * 40, job_id="j1")
    sent = [(m, p, t) for m, p, t, _ in StandInHub.seen]
    assert sent == [
        ("POST", "/api/v1/jobs/j1/worker/start", SERVICE),
        ("POST", "/api/v1/jobs/j1/worker/heartbeat", ATTEMPT),
        ("POST", "/api/v1/jobs/j1/worker/logs", ATTEMPT),
        ("POST", "/api/v1/jobs/j1/worker/chunks/missing", ATTEMPT),
        ("PUT", f"/api/v1/jobs/j1/worker/chunks/{'a' * 64}", ATTEMPT),
        ("POST", "/api/v1/jobs/j1/worker/artifacts", ATTEMPT),
        ("POST", "/api/v1/jobs/j1/worker/finish", ATTEMPT),
        ("PATCH", "/api/v1/runs/r1", ATTEMPT),
    ]
    bodies = [b for *_, b in StandInHub.seen]
    assert bodies[0] == {"worker": "w1", "gpus": [0]} and bodies[4] == b"bytes"
    assert bodies[6] == {
        "status": "succeeded",
        "reason": "completed",
        "summary": {},
        "run_id": "r1",
    }


def test_the_hubs_error_codes_reach_the_worker(hub_url):
    with pytest.raises(HubClientError) as e:
        WorkerClient(hub_url, SERVICE).finish("j1", status="failed", reason="gave up")
    assert e.value.code == "job_state_conflict" and e.value.details == {"status": "running"}
    assert StandInHub.seen[-1][3] == {
        "status": "failed",
        "reason": "gave up",
    }  # nothing it was not given


def test_a_hub_out_of_reach_is_hub_unreachable_after_the_retries():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = WorkerClient(f"http://127.0.0.1:{port}", SERVICE, retries=1, backoff=0.01)
    with pytest.raises(HubUnreachable):
        client.job("j1")
