"""The unmodified ``mlflow`` client (mlflow-skinny, pinned in the test extra) against a live hub.

A script that imports only ``mlflow`` runs in a subprocess whose environment holds nothing but
``MLFLOW_*`` variables (the hub's URL and a hub token); the test then reads what it logged
through the hub's own API: one data set, whichever API wrote it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import httpx
import pytest

from tests.fixtures_services import unique_name

pytestmark = [pytest.mark.integration, pytest.mark.pg, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hub(make_user, blob_dir, settings, live_server, chdb_path, monkeypatch):
    """(hub URL, alice's token); the tracker on a fresh chdb database, search off (the MLflow
    API searches the database)."""
    import hub.tracking.selectors as sel
    import hub.tracking.services as svc
    from hub.stores.metrics import ChdbMetricsStore

    store = ChdbMetricsStore(chdb_path, database=unique_name())
    store.ensure_schema()
    monkeypatch.setattr(svc, "get_metrics_store", lambda: store)
    monkeypatch.setattr(sel, "get_metrics_store", lambda: store)
    settings.HUB_ELASTICSEARCH_URL = ""
    _, token = make_user("alice")
    yield live_server.url, token
    store.drop_database()
    store.close()


def run_mlflow(url: str, token: str | None, script: str, tmp_path) -> dict:
    """Run ``script`` with only MLflow's variables set; it prints one JSON line last."""
    path = tmp_path / "mlflow_script.py"
    path.write_text(textwrap.dedent(script))
    env = {"MLFLOW_TRACKING_URI": url, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    r = subprocess.run(
        [sys.executable, str(path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


SCRIPT = """
import json, os, pathlib, tempfile

import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

out = {}
mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
work = pathlib.Path(tempfile.mkdtemp())

# --- the fluent API --------------------------------------------------------------------------
exp = mlflow.set_experiment("MoE sweep #1")
out["experiment_id"] = exp.experiment_id
with mlflow.start_run(run_name="baseline") as run:
    mlflow.log_param("lr", "0.1")
    mlflow.log_params({"top_k": 2, "optimizer": "adamw"})
    mlflow.log_metric("loss", 2.5, step=0)
    mlflow.log_metric("loss", 1.5, step=1)
    mlflow.log_metrics({"acc": 0.75, "loss": 1.0}, step=2)
    mlflow.set_tag("stage", "baseline")
    (work / "notes.txt").write_text("routing looks balanced")
    (work / "curve.csv").write_text("step,loss\\n0,2.5\\n")
    mlflow.log_artifact(str(work / "notes.txt"))
    mlflow.log_artifact(str(work / "curve.csv"), artifact_path="plots")
out["baseline"] = run.info.run_id

# a plain training loop
with mlflow.start_run(run_name="loop") as run:
    mlflow.log_params({"lr": "0.01", "top_k": 4})
    for step in range(40):
        mlflow.log_metrics({"train/loss": 3.0 / (step + 1), "loss": 2.0 - step / 40}, step=step)
    mlflow.set_tag("stage", "sweep")
out["loop"] = run.info.run_id

# a logged model (MLflow 3: logged-models, run outputs, the model's own artifact location)
class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [2 * x for x in model_input]


mlflow.set_experiment("models")
with mlflow.start_run(run_name="with-model") as run:
    mlflow.log_param("kind", "doubler")
    info = mlflow.pyfunc.log_model(name="doubler", python_model=Doubler())
out["model_run"] = run.info.run_id
out["model_id"] = info.model_id
loaded = mlflow.pyfunc.load_model(info.model_uri)
out["model_predicts"] = list(loaded.predict([1, 2, 3]))
by_run = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/doubler")
out["model_by_run_predicts"] = list(by_run.predict([5]))
model = MlflowClient().get_logged_model(info.model_id)
out["model"] = [model.name, model.source_run_id, str(model.status), model.params]
out["model_outputs"] = [
    o.model_id for o in MlflowClient().get_run(run.info.run_id).outputs.model_outputs
]

# Default experiment ("0") without set_experiment
mlflow.set_experiment(experiment_id="0")
with mlflow.start_run() as run:
    mlflow.log_metric("x", 1.0)
out["default_run"] = run.info.run_id
out["default_run_experiment"] = run.info.experiment_id

# --- MlflowClient ----------------------------------------------------------------------------
c = MlflowClient()
eid = c.create_experiment("client-exp", tags={"team": "moe"})
out["client_exp"] = eid
out["found_experiments"] = [
    e.name for e in c.search_experiments(filter_string="name = 'client-exp'")
]
out["all_experiments"] = sorted(e.name for e in c.search_experiments())
try:
    c.create_experiment("client-exp")
except MlflowException as e:
    out["duplicate_experiment"] = e.error_code
try:
    c.create_experiment("Default")
except MlflowException as e:
    out["duplicate_default"] = e.error_code
c.delete_experiment(eid)
out["deleted_experiments"] = [
    e.name for e in c.search_experiments(view_type=ViewType.DELETED_ONLY)
]
try:
    c.create_run(eid)
except MlflowException as e:
    out["run_in_deleted_experiment"] = e.error_code
c.restore_experiment(eid)
c.set_experiment_tag(eid, "owner", "moe-team")
out["like_experiments"] = [
    e.name for e in c.search_experiments(filter_string="name LIKE 'client-%'")
]
out["experiment_tags"] = c.get_experiment(eid).tags
r = c.create_run(eid, run_name="client-run", tags={"k": "v"})
c.log_batch(
    r.info.run_id,
    metrics=[mlflow.entities.Metric("m", float(i), 1_700_000_000_000 + i, i) for i in range(5)],
    params=[mlflow.entities.Param("p", "1")],
    tags=[mlflow.entities.RunTag("t", "x")],
)
c.set_terminated(r.info.run_id, status="FAILED")
got = c.get_run(r.info.run_id)
out["client_run"] = {
    "status": got.info.status,
    "metrics": got.data.metrics,
    "params": got.data.params,
    "tags": {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.source")},
    "name": got.info.run_name,
}

runs = c.search_runs(
    [out["experiment_id"]],
    filter_string="metrics.loss < 1.2 and params.lr = '0.1'",
    order_by=["metrics.loss ASC"],
)
out["search_filter"] = [x.info.run_id for x in runs]
runs = c.search_runs([out["experiment_id"]], order_by=["metrics.loss DESC"])
out["search_order"] = [(x.info.run_name, x.data.metrics["loss"]) for x in runs]
runs = c.search_runs(
    [out["experiment_id"]], filter_string="tags.stage = 'sweep' and attributes.status = 'FINISHED'"
)
out["search_tag"] = [x.info.run_name for x in runs]
runs = c.search_runs([out["experiment_id"]], filter_string="run_name LIKE 'base%'")
out["search_like"] = [x.info.run_name for x in runs]
runs = c.search_runs([out["experiment_id"]], max_results=1, order_by=["start_time ASC"])
out["page"] = [x.info.run_name for x in runs]
runs = c.search_runs(
    [out["experiment_id"]], max_results=1, order_by=["start_time ASC"], page_token=runs.token
)
out["page2"] = [[x.info.run_name for x in runs], runs.token]

# resume a finished run by id, log more, end it again
mlflow.set_experiment(experiment_id=out["experiment_id"])
with mlflow.start_run(run_id=out["baseline"]):
    mlflow.log_dict({"experts": 16}, "config/moe.json")
out["resumed_status"] = c.get_run(out["baseline"]).info.status

hist = c.get_metric_history(out["baseline"], "loss")
out["history"] = [(m.step, m.value) for m in hist]
out["history_long"] = len(c.get_metric_history(out["loop"], "train/loss"))

c.delete_run(out["loop"])
out["after_delete"] = sorted(x.info.run_name for x in c.search_runs([out["experiment_id"]]))
out["deleted_only"] = [
    x.info.run_name
    for x in c.search_runs([out["experiment_id"]], run_view_type=ViewType.DELETED_ONLY)
]
c.restore_run(out["loop"])
out["after_restore"] = sorted(x.info.run_name for x in c.search_runs([out["experiment_id"]]))

dest = pathlib.Path(mlflow.artifacts.download_artifacts(run_id=out["baseline"], dst_path=str(work / "dl")))
out["downloaded"] = sorted(
    str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()
)
out["downloaded_notes"] = (dest / "notes.txt").read_text()
out["listed"] = sorted(f.path for f in c.list_artifacts(out["baseline"]))

# --- bad input -------------------------------------------------------------------------------
for name, call in [
    ("unknown_run", lambda: c.get_run("0" * 32)),
    ("bad_filter", lambda: c.search_runs([out["experiment_id"]], filter_string="metrics.loss >> 1")),
    ("or_filter", lambda: c.search_runs([out["experiment_id"]], filter_string="metrics.a < 1 OR metrics.b < 1")),
    ("param_overwrite", lambda: c.log_param(out["baseline"], "lr", "0.5")),
    ("unknown_experiment", lambda: c.get_experiment("99999999")),
]:
    try:
        call()
        out[name] = None
    except MlflowException as e:
        out[name] = [e.error_code, e.get_http_status_code()]
del os.environ["MLFLOW_TRACKING_TOKEN"]
try:
    MlflowClient().get_experiment("0")
    out["no_token"] = None
except MlflowException as e:
    out["no_token"] = [e.error_code, e.get_http_status_code()]
print(json.dumps(out))
"""


def test_mlflow_client_logs_an_ordinary_hub_run(hub, tmp_path):
    from hub.compat.mlflow.models import Artifact
    from hub.registry.selectors import file_iter
    from tests.conftest import client_for

    url, token = hub
    out = run_mlflow(url, token, SCRIPT, tmp_path)
    api = client_for(token)

    # the experiment is a hub project, the runs are hub runs with their params and metrics
    baseline = api.get(f"/api/v1/runs/{out['baseline']}").json()
    assert baseline["project"] == "alice/moe-sweep-1"
    assert baseline["name"] == "baseline" and baseline["status"] == "finished"
    assert baseline["params"] == {"lr": "0.1", "top_k": "2", "optimizer": "adamw"}
    assert baseline["summary"]["loss"]["last"] == 1.0 and baseline["summary"]["loss"]["count"] == 3
    assert baseline["summary"]["acc"]["last"] == 0.75
    assert "stage=baseline" in baseline["tags"]
    listing = api.get("/api/v1/projects/alice/moe-sweep-1/runs").json()
    assert {r["id"] for r in listing["results"]} == {out["baseline"], out["loop"]}
    series = api.get(f"/api/v1/runs/{out['loop']}/metrics/export?keys=train/loss")
    rows = b"".join(series.streaming_content).decode().splitlines()[1:]
    assert len(rows) == 40 and rows[0].startswith("train/loss,0,")
    assert out["history_long"] == 40
    report = api.get(f"/api/v1/runs/compare?runs={out['baseline']},{out['loop']}")
    assert report.status_code == 200, report.content

    # artifacts: registry files of the run, with the bytes the client sent
    arts = {a.path: a for a in Artifact.objects.filter(run_id=out["baseline"])}
    assert set(arts) == {"notes.txt", "plots/curve.csv", "config/moe.json"}
    assert b"".join(file_iter(file=arts["notes.txt"].file)) == b"routing looks balanced"
    assert out["downloaded"] == ["config/moe.json", "notes.txt", "plots/curve.csv"]
    assert out["downloaded_notes"] == "routing looks balanced"
    assert out["listed"] == ["config", "notes.txt", "plots"]

    # a logged model: its record, its files (registry files), loading it back by either URI
    from hub.compat.mlflow.models import LoggedModel, ModelArtifact

    assert out["model_predicts"] == [2, 4, 6] and out["model_by_run_predicts"] == [10]
    assert out["model"][:2] == ["doubler", out["model_run"]]
    assert out["model"][2] == "READY" and out["model"][3]["kind"] == "doubler"
    assert out["model_outputs"] == [out["model_id"]]
    assert LoggedModel.objects.get(pk=out["model_id"]).source_run_id == out["model_run"]
    files = set(
        ModelArtifact.objects.filter(model_id=out["model_id"]).values_list("path", flat=True)
    )
    assert "MLmodel" in files and "python_model.pkl" in files

    # experiment "0" is alice's default project
    default_run = api.get(f"/api/v1/runs/{out['default_run']}").json()
    assert default_run["project"] == "alice/default"
    assert "Default" in out["all_experiments"] and "MoE sweep #1" in out["all_experiments"]

    # MlflowClient: experiments, runs, batches, search, history, delete/restore
    assert out["found_experiments"] == ["client-exp"]
    assert out["duplicate_experiment"] == "RESOURCE_ALREADY_EXISTS"
    assert out["duplicate_default"] == "RESOURCE_ALREADY_EXISTS"
    assert out["deleted_experiments"] == ["client-exp"]
    assert out["run_in_deleted_experiment"] == "INVALID_PARAMETER_VALUE"
    assert out["like_experiments"] == ["client-exp"]
    assert out["experiment_tags"] == {"team": "moe", "owner": "moe-team"}
    cr = out["client_run"]
    assert cr["status"] == "FAILED" and cr["name"] == "client-run"
    assert cr["metrics"] == {"m": 4.0} and cr["params"] == {"p": "1"}
    assert cr["tags"]["k"] == "v" and cr["tags"]["t"] == "x"
    assert cr["tags"]["mlflow.runName"] == "client-run"
    assert out["search_filter"] == [out["baseline"]]
    assert out["search_order"] == [["loop", 1.025], ["baseline", 1.0]]
    assert out["search_tag"] == ["loop"]
    assert out["search_like"] == ["baseline"]
    assert out["page"] == ["baseline"]
    assert out["page2"] == [["loop"], None]
    assert out["resumed_status"] == "FINISHED"
    assert out["history"] == [[0, 2.5], [1, 1.5], [2, 1.0]]
    assert out["after_delete"] == ["baseline"] and out["deleted_only"] == ["loop"]
    assert out["after_restore"] == ["baseline", "loop"]

    # bad input: MLflow's codes and statuses, never a 5xx
    assert out["unknown_run"] == ["RESOURCE_DOES_NOT_EXIST", 404]
    assert out["bad_filter"] == ["INVALID_PARAMETER_VALUE", 400]
    assert out["or_filter"] == ["INVALID_PARAMETER_VALUE", 400]
    assert out["param_overwrite"] == ["INVALID_PARAMETER_VALUE", 400]
    assert out["unknown_experiment"] == ["RESOURCE_DOES_NOT_EXIST", 404]
    assert out["no_token"] == ["UNAUTHENTICATED", 401]


def _post(url, token, endpoint, body):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/api/2.0/mlflow/{endpoint}", json=body, headers=headers)


def test_private_projects_are_hidden_and_writes_need_the_role(hub, make_user):
    """The MLflow API asks the hub's permission questions: bob's private project does not
    exist for alice, his public one she may read but not write, and a read-only token
    writes nothing."""
    from tests.conftest import client_for

    url, alice = hub
    _, bob = make_user("bob")
    bob_api = client_for(bob)
    assert (
        bob_api.post(
            "/api/v1/projects", {"name": "secret", "private": True}, format="json"
        ).status_code
        == 201
    )
    assert bob_api.post("/api/v1/projects", {"name": "open"}, format="json").status_code == 201
    from hub.tracking.models import Project

    secret_id = str(Project.objects.get(name="secret").pk)
    open_id = str(Project.objects.get(name="open").pk)
    run = _post(url, bob, "runs/create", {"experiment_id": secret_id}).json()["run"]

    def get(endpoint, token, **params):
        return httpx.get(
            f"{url}/api/2.0/mlflow/{endpoint}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )

    model = _post(url, bob, "logged-models", {"experiment_id": secret_id}).json()["model"]
    mid = model["info"]["model_id"]
    model_files = f"{url}/api/2.0/mlflow-artifacts/artifacts/{secret_id}/models/{mid}/artifacts"
    auth = {"Authorization": f"Bearer {alice}"}
    for r in (
        get(f"logged-models/{mid}", alice),
        httpx.put(f"{model_files}/MLmodel", content=b"x", headers=auth),
        httpx.get(f"{model_files}/MLmodel", headers=auth),
        _post(url, alice, "runs/outputs", {"run_id": run["info"]["run_id"], "models": []}),
    ):
        assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", r.text
    for r in (
        get("experiments/get", alice, experiment_id=secret_id),
        get("experiments/get-by-name", alice, experiment_name="bob/secret"),
        get("runs/get", alice, run_id=run["info"]["run_id"]),
        _post(
            url,
            alice,
            "runs/log-metric",
            {"run_id": run["info"]["run_id"], "key": "x", "value": 1, "timestamp": 0, "step": 0},
        ),
    ):
        assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", r.text
    assert (
        get("experiments/get", alice, experiment_id=open_id).json()["experiment"]["name"]
        == "bob/open"
    )
    denied = _post(url, alice, "runs/create", {"experiment_id": open_id})
    assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
    from hub.accounts import services as accounts
    from hub.accounts.models import User

    _, read_only = accounts.token_create(
        user=User.objects.get(username="bob"), name="ro", scope="read"
    )
    ro = _post(url, read_only, "runs/create", {"experiment_id": open_id})
    assert ro.status_code == 403 and ro.json()["error_code"] == "PERMISSION_DENIED"
    found = _post(url, alice, "runs/search", {"experiment_ids": [open_id, secret_id]})
    assert found.status_code == 404
    nobody = _post(url, None, "runs/search", {"experiment_ids": [open_id]})
    assert nobody.status_code == 401 and nobody.json()["error_code"] == "UNAUTHENTICATED"
    bad = httpx.post(
        f"{url}/api/2.0/mlflow/runs/search",
        content=b"{not json",
        headers={"Authorization": f"Bearer {alice}", "Content-Type": "application/json"},
    )
    assert bad.status_code == 400 and bad.json()["error_code"] == "BAD_REQUEST"
    _, carol_ro = make_user("carol", scope="read")  # read-only, nothing made yet
    listed = _post(url, carol_ro, "experiments/search", {"max_results": 100})
    assert listed.status_code == 200 and "bob/open" in [
        e["name"] for e in listed.json()["experiments"]
    ]
    assert "bob/secret" not in [e["name"] for e in listed.json()["experiments"]]
    zero = get("experiments/get", carol_ro, experiment_id="0")
    assert zero.status_code == 404 and zero.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    ajax = httpx.get(
        f"{url}/ajax-api/2.0/mlflow/experiments/get",
        params={"experiment_id": open_id},
        headers={"Authorization": f"Bearer {alice}"},
    )
    assert ajax.status_code == 200 and ajax.json()["experiment"]["name"] == "bob/open"
    info = httpx.get(f"{url}/api/3.0/mlflow/server-info")  # MLflow's probe: no token, no uploads
    assert info.status_code == 200 and info.json()["multipart_uploads_enabled"] is False
    unknown = get("no/such/endpoint", alice)
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    schema = client_for(alice).get("/api/schema?format=json").json()
    assert not [p for p in schema["paths"] if "mlflow" in p]


def test_log_batch_limits_and_nan_values(hub):
    """MLflow's batch limits are enforced (nothing written on refusal); NaN and infinite
    values, which the hub's metrics store does not keep, are dropped and counted on the run
    instead of failing the training loop."""
    from hub.compat.mlflow.models import RunState
    from hub.tracking.models import Run

    url, alice = hub
    run_id = _post(url, alice, "runs/create", {"experiment_id": "0"}).json()["run"]["info"][
        "run_id"
    ]
    too_many = [{"key": f"p{i}", "value": "1"} for i in range(101)]
    r = _post(url, alice, "runs/log-batch", {"run_id": run_id, "params": too_many})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert Run.objects.get(pk=run_id).params == {}
    points = [
        {"key": "loss", "value": v, "timestamp": 1_700_000_000_000, "step": i}
        for i, v in enumerate([1.5, "NaN", "Infinity", 0.5])
    ]
    ok = _post(url, alice, "runs/log-batch", {"run_id": run_id, "metrics": points})
    assert ok.status_code == 200, ok.text
    assert Run.objects.get(pk=run_id).summary["loss"]["last"] == 0.5
    assert RunState.objects.get(run_id=run_id).dropped_non_finite == {"loss": 2}
    bad_key = _post(
        url,
        alice,
        "runs/log-metric",
        {"run_id": run_id, "key": "../x", "value": 1, "timestamp": 0, "step": 0},
    )
    assert bad_key.status_code == 400 and bad_key.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_registry_gc_keeps_the_files_mlflow_clients_logged(hub, settings):
    """An MLflow artifact is a registry file no commit references: GC must count it live.
    A file over HUB_MLFLOW_MAX_ARTIFACT_BYTES is refused and leaves nothing behind."""
    import os

    from hub.compat.mlflow.models import Artifact
    from hub.registry.gc import gc

    url, alice = hub
    info = _post(url, alice, "runs/create", {"experiment_id": "0"}).json()["run"]["info"]
    where = f"{url}/api/2.0/mlflow-artifacts/artifacts/{info['experiment_id']}/{info['run_id']}"
    auth = {"Authorization": f"Bearer {alice}"}
    body = os.urandom(9 * 1024 * 1024 + 7)  # three chunks
    assert httpx.put(f"{where}/artifacts/load.bin", content=body, headers=auth).status_code == 200
    assert len(Artifact.objects.get(path="load.bin").file.chunks) == 3
    settings.HUB_MLFLOW_MAX_ARTIFACT_BYTES = 1000
    big = httpx.put(f"{where}/artifacts/big.bin", content=b"x" * 1001, headers=auth)
    assert big.status_code == 400 and big.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert not Artifact.objects.filter(path="big.bin").exists()
    gc(dry_run=False, grace_seconds=0)
    again = httpx.get(f"{where}/artifacts/load.bin", headers=auth)
    assert again.status_code == 200 and again.content == body
    escape = httpx.put(f"{where}/artifacts/a/%2E%2E/%2E%2E/x", content=b"x", headers=auth)
    assert escape.status_code in (400, 404) and "error_code" in escape.json()


FIELDS = (
    "experiment_id experiment_ids experiment_name name new_name tags filter order_by view_type "
    "run_view_type max_results page_token key value run_id run_uuid status run_name start_time "
    "end_time metrics params timestamp step metric_key"
).split()
WRONG = ([1], {"a": 1}, True, "../x")


def test_no_client_mistake_is_a_server_error(hub):
    """Every endpoint, every field of MLflow's messages given a value of the wrong type (or an
    odd one), next to a real run and experiment: a 4xx in MLflow's shape, never a 5xx (which
    the client would retry for minutes)."""
    from hub.compat.mlflow.views import ROUTES
    from tests.conftest import client_for

    url, alice = hub
    run = _post(url, alice, "runs/create", {"experiment_id": "0"}).json()["run"]["info"]
    api = client_for(alice)
    base = {"run_id": run["run_id"], "experiment_id": run["experiment_id"]}
    model = _post(url, alice, "logged-models", {"experiment_id": "0"}).json()["model"]["info"]
    mid = model["model_id"]
    routes = list(ROUTES) + [
        ("GET", f"logged-models/{mid}"),
        ("PATCH", f"logged-models/{mid}"),
        ("POST", f"logged-models/{mid}/params"),
        ("PATCH", f"logged-models/{mid}/tags"),
        ("DELETE", f"logged-models/{mid}/tags/k"),
    ]
    seen = set()
    for method, endpoint in routes:
        for field in FIELDS:
            for wrong in WRONG:
                body = {**base, field: wrong}
                path = f"/api/2.0/mlflow/{endpoint}"
                if method == "GET":
                    r = api.get(path, {k: json.dumps(v) for k, v in body.items()})
                else:
                    r = api.generic(method, path, json.dumps(body), "application/json")
                assert r.status_code < 500, (method, endpoint, body, r.content)
                if r.status_code >= 400:
                    assert r.json()["error_code"], r.content
                seen.add(r.status_code)
    assert 400 in seen


def test_a_run_logged_with_the_hub_api_is_an_mlflow_run(hub):
    """The other direction: a run made with the hub's own API reads and searches as an
    MLflow run (params as strings, hub tags as key/value tags, latest metric values)."""
    from tests.conftest import client_for

    url, alice = hub
    api = client_for(alice)
    assert api.post("/api/v1/projects", {"name": "native"}, format="json").status_code == 201
    run = api.post(
        "/api/v1/projects/alice/native/runs",
        {"name": "sdk-run", "params": {"moe": {"top_k": 2}, "lr": 0.001}, "tags": ["base", "k=v"]},
        format="json",
    ).json()
    cols = {"key": ["loss", "loss"], "step": [0, 1], "value": [2.0, 1.5]}
    assert api.post(f"/api/v1/runs/{run['id']}/metrics", cols, format="json").status_code == 200
    got = httpx.get(
        f"{url}/api/2.0/mlflow/runs/get",
        params={"run_id": run["id"]},
        headers={"Authorization": f"Bearer {alice}"},
    ).json()["run"]
    assert {p["key"]: p["value"] for p in got["data"]["params"]} == {
        "moe.top_k": "2",
        "lr": "0.001",
    }
    tags = {t["key"]: t["value"] for t in got["data"]["tags"]}
    assert tags["base"] == "" and tags["k"] == "v" and tags["mlflow.runName"] == "sdk-run"
    assert [(m["key"], m["value"], m["step"]) for m in got["data"]["metrics"]] == [("loss", 1.5, 1)]
    experiment = got["info"]["experiment_id"]
    for flt in ("params.moe.top_k = '2' and metrics.loss < 2", "params.lr LIKE '0.00%'"):
        found = _post(url, alice, "runs/search", {"experiment_ids": [experiment], "filter": flt})
        assert [r["info"]["run_id"] for r in found.json()["runs"]] == [run["id"]], flt
    none = _post(
        url, alice, "runs/search", {"experiment_ids": [experiment], "filter": "metrics.loss > 2"}
    )
    assert none.status_code == 200 and none.json().get("runs", []) == []
