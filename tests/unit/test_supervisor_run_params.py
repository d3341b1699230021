"""A job's run records the job's full resolved config, which the job sends as a ``config``
event: the supervisor validates it like every event and logs it as the run's params."""

import json

import pytest

from tests.unit.test_supervisor import FakeClient, FakeRun, supervise

pytestmark = pytest.mark.unit

RESOLVED = {
    "seed": 0,
    "model": {"block_size": 128, "n_experts": 8, "top_k": 2},
    "train": {"steps": 1, "lr": 0.001},
}


def _event(seq, type_, **fields):
    return json.dumps({"type": type_, "seq": seq, "time": 1.0, **fields}).encode()


class ParamsRun(FakeRun):
    def __init__(self, error=None):
        super().__init__()
        self.params: list[dict] = []
        self.error = error

    def log_params(self, params):
        if self.error is not None:
            raise self.error
        self.params.append(params)
        return params


def test_the_jobs_config_event_becomes_the_runs_params(tmp_path):
    client = FakeClient()
    client.run = ParamsRun()
    sup, _ = supervise(tmp_path, client=client, events=[_event(0, "config", params=RESOLVED)])
    assert sup.run() == "succeeded"
    assert client.run_kwargs["params"] == {"train": {"steps": 1}}  # as typed, at creation
    assert client.run.params == [RESOLVED]  # then everything the job resolved


def test_a_malformed_config_event_is_rejected_not_recorded(tmp_path):
    client = FakeClient()
    client.run = ParamsRun()
    sup, _ = supervise(tmp_path, client=client, events=[_event(0, "config", params=[1, 2])])
    assert sup.run() == "succeeded"
    assert client.run.params == [] and sup.counters.rejected == 1


def test_params_the_hub_refuses_are_logged_and_the_job_goes_on(tmp_path):
    from hub.client import HubClientError

    client = FakeClient()
    client.run = ParamsRun(HubClientError(409, "param_conflict", "1 param(s) already logged"))
    sup, _ = supervise(tmp_path, client=client, events=[_event(0, "config", params=RESOLVED)])
    assert sup.run() == "succeeded"
    assert any("resolved config was not recorded" in line for line in client.log_lines())
