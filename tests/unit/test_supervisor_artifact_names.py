"""An artifact's name goes into the hub as a repository path: the supervisor applies the
hub's path rule (hub.shared.paths) to it before it opens or uploads anything."""

import json

import pytest

from tests.unit.test_supervisor import FakeClient, supervise

pytestmark = pytest.mark.unit


class Client(FakeClient):
    def _json(self, method, path, json=None, idempotent=False, params=None):
        if path.endswith("/worker/chunks/missing"):
            self.calls.append((method, path, json))
            return {"missing": []}
        return super()._json(method, path, json, idempotent, params)


def run_with_artifact(tmp_path, name: str):
    art = json.dumps(
        {"type": "artifact", "seq": 0, "time": 1.0, "path": name, "kind": "eval"}
    ).encode()

    def write(sandbox):
        target = sandbox.spec.job_dir / "out" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"accuracy": 0.5}))

    sup, client = supervise(tmp_path, client=Client(), events=[art], during=write)
    assert sup.run() == "succeeded"
    return client


def test_an_artifact_with_an_ordinary_name_is_uploaded(tmp_path):
    client = run_with_artifact(tmp_path, "eval/results.json")
    assert "artifacts" in client.paths()


@pytest.mark.parametrize(
    "name",
    [
        ".git/config",
        "sub/.GIT/hooks/post-checkout",
        "eval\u202enosj.txt",
        "a\x85b.json",
        "results.",
        "dir /x.json",
    ],
)
def test_an_artifact_whose_name_breaks_the_path_rule_is_ignored_and_said_so(tmp_path, name):
    client = run_with_artifact(tmp_path, name)
    assert "artifacts" not in client.paths()
    assert any("ignored artifact" in line and "path rule" in line for line in client.log_lines())
