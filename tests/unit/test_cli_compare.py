"""``hub runs compare`` sends branch and tag refs to the hub as they are (the hub resolves
them with its one resolver) and the kind of run to compare."""

import json

import pytest

from hub.client import cli

pytestmark = pytest.mark.unit


class _Client:
    def __init__(self):
        self.calls = []

    def compare_runs(self, runs, **kw):
        self.calls.append((runs, kw))
        return {"kind": kw.get("kind"), "commits": kw.get("commits")}


def test_compare_sends_refs_and_the_kind_to_the_hub(monkeypatch, capsys):
    fake = _Client()
    monkeypatch.setattr(cli, "_client", lambda args: fake)
    code = cli.main(
        ["runs", "compare", "alice/moe@top2", "alice/moe@v1.0", "--kind", "evaluate", "--json"]
    )
    assert code == 0
    [(runs, kw)] = fake.calls
    assert runs is None and kw["commits"] == ["alice/moe@top2", "alice/moe@v1.0"]
    assert kw["kind"] == "evaluate" and kw["format"] == "json"
    assert json.loads(capsys.readouterr().out)["kind"] == "evaluate"


def test_compare_refuses_a_mix_of_runs_and_commits(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_client", lambda args: _Client())
    assert cli.main(["runs", "compare", "abc123", "alice/moe@top2"]) == 2
    assert "ns/repo@ref" in capsys.readouterr().err
