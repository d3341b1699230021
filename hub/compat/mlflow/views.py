"""MLflow's REST endpoints: parse MLflow's message, call one selector or service, answer in
MLflow's JSON (``mlflow/protos/service.proto``, proto field names; int64 as numbers).

Every endpoint needs a hub token (``MLFLOW_TRACKING_TOKEN`` sends it as ``Authorization:
Bearer``): 401 ``UNAUTHENTICATED`` without one. Reads need read access to the project, writes
the write role and a write token, as in the hub's own API; a private project is
``RESOURCE_DOES_NOT_EXIST`` (404) to whoever may not read it. The views are left out of the
OpenAPI schema (``schema = None``): they follow MLflow's contract, not the hub's.
"""

from __future__ import annotations

import json
import logging

from django.http import JsonResponse, StreamingHttpResponse
from rest_framework.views import APIView

from hub.accounts.models import Role
from hub.common.errors import NotAuthenticated
from hub.common.limits import limit, read_body
from hub.compat.mlflow import errors, selectors, services

log = logging.getLogger(__name__)


class _MlflowView(APIView):
    schema = None  # MLflow's contract, not the hub's: not in /api/schema
    parser_classes: list = []  # bodies are read here (JSON) or streamed (artifacts)
    authenticated_only = True

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.authenticated_only and not request.user.is_authenticated:
            raise NotAuthenticated(
                "Authentication required: set MLFLOW_TRACKING_TOKEN to a hub token."
            )

    def handle_exception(self, exc):
        resp = errors.translate(exc)
        if resp is None:
            log.exception("mlflow api: unexpected error", exc_info=exc)
            resp = errors.response(errors.INTERNAL_ERROR, "The hub hit an unexpected error.")
        return resp


def _json_body(request) -> dict:
    raw = read_body(request._request, {"request": request._request}, limit("HUB_MAX_REQUEST_BYTES"))
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise errors.MlflowError(errors.BAD_REQUEST, "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise errors.MlflowError(errors.BAD_REQUEST, "The body must be a JSON object.")
    return data


def _kv(items, what: str) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise errors.invalid(f"'{what}' must be a list of {{key, value}} objects.")
    return {services.check_key(t.get("key"), "tag"): t.get("value") for t in items}


def _run_id(data) -> str:
    return data.get("run_id") or data.get("run_uuid")


def _text(data, field: str) -> str | None:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        raise errors.invalid(f"'{field}' must be a string.")
    return value


def _order_by(data) -> list[str] | None:
    value = data.get("order_by")
    if isinstance(value, str):
        return [value]
    if value is not None and not (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        raise errors.invalid("'order_by' must be a list of strings.")
    return value


# --- handlers: (request, data) -> answer --------------------------------------------------------


def experiments_create(request, data):
    ns, label, _ = selectors.split_name(request, _text(data, "name") or "")
    project = services.experiment_create(
        request, ns=ns, label=label, tags=_kv(data.get("tags"), "tags")
    )
    return {"experiment_id": str(project.pk)}


def experiments_get(request, data):
    project = selectors.experiment_for(request, data.get("experiment_id"))
    return {"experiment": selectors.experiment_out(project, caller=request.user.username)}


def experiments_get_by_name(request, data):
    project = selectors.experiment_by_name(request, data.get("experiment_name"))
    return {"experiment": selectors.experiment_out(project, caller=request.user.username)}


def experiments_search(request, data):
    order_by = _order_by(data)
    found, token = selectors.experiments_search(
        request,
        filter_string=_text(data, "filter"),
        order_by=order_by,
        view_type=data.get("view_type"),
        max_results_=data.get("max_results"),
        token=data.get("page_token"),
    )
    return {"experiments": found, **({"next_page_token": token} if token else {})}


def experiments_update(request, data):
    project = selectors.experiment_for(request, data.get("experiment_id"), role=Role.WRITE)
    services.experiment_update(project=project, new_name=data.get("new_name"))
    return {}


def experiments_delete(request, data):
    project = selectors.experiment_for(request, data.get("experiment_id"), role=Role.WRITE)
    services.experiment_set_deleted(project=project, deleted=True)
    return {}


def experiments_restore(request, data):
    project = selectors.experiment_for(request, data.get("experiment_id"), role=Role.WRITE)
    services.experiment_set_deleted(project=project, deleted=False)
    return {}


def experiments_set_tag(request, data):
    project = selectors.experiment_for(request, data.get("experiment_id"), role=Role.WRITE)
    services.experiment_set_tag(project=project, key=data.get("key"), value=data.get("value"))
    return {}


def runs_create(request, data):
    project = selectors.experiment_for(request, data.get("experiment_id") or "0", role=Role.WRITE)
    run = services.run_create(
        request,
        project=project,
        run_name=_text(data, "run_name") or None,
        start_time=data.get("start_time"),
        tags=_kv(data.get("tags"), "tags"),
    )
    return {"run": selectors.run_out(run)}


def runs_get(request, data):
    return {"run": selectors.run_out(selectors.run_for(request, _run_id(data)))}


def runs_update(request, data):
    run = selectors.run_for(request, _run_id(data), role=Role.WRITE)
    run = services.run_update(run=run, status=data.get("status"), run_name=_text(data, "run_name"))
    return {"run_info": selectors.run_info(run)}


def runs_delete(request, data):
    run = selectors.run_for(request, _run_id(data), role=Role.WRITE)
    services.run_set_deleted(run=run, deleted=True)
    return {}


def runs_restore(request, data):
    run = selectors.run_for(request, _run_id(data), role=Role.WRITE)
    services.run_set_deleted(run=run, deleted=False)
    return {}


def runs_search(request, data):
    order_by = _order_by(data)
    runs, token = selectors.runs_search(
        request,
        experiment_ids=data.get("experiment_ids"),
        filter_string=_text(data, "filter"),
        run_view_type=data.get("run_view_type"),
        max_results_=data.get("max_results"),
        order_by=order_by,
        token=data.get("page_token"),
    )
    return {"runs": runs, **({"next_page_token": token} if token else {})}


def runs_log_parameter(request, data):
    run = selectors.run_for(request, _run_id(data), role=Role.WRITE)
    services.run_log_batch(
        run=run, metrics=[], params=[{"key": data.get("key"), "value": data.get("value")}], tags=[]
    )
    return {}


def runs_log_metric(request, data):
    run = selectors.run_for(request, _run_id(data), role=Role.WRITE)
    metric = {k: data.get(k) for k in ("key", "value", "timestamp", "step")}
    services.run_log_batch(run=run, metrics=[metric], params=[], tags=[])
    return {}


def runs_log_batch(request, data):
    run = selectors.run_for(request, _run_id(data), role=Role.WRITE)
    services.run_log_batch(
        run=run,
        metrics=data.get("metrics") or [],
        params=data.get("params") or [],
        tags=data.get("tags") or [],
    )
    return {}


def runs_set_tag(request, data):
    run = selectors.run_for(request, _run_id(data), role=Role.WRITE)
    key = services.check_key(data.get("key"), "tag")
    services.run_set_tags(run=run, tags={key: data.get("value")})
    return {}


def runs_delete_tag(request, data):
    run = selectors.run_for(request, _run_id(data), role=Role.WRITE)
    services.run_delete_tag(run=run, key=data.get("key"))
    return {}


def runs_log_inputs(request, data):
    """Accepted and not kept: the hub has no dataset records (documented); refusing would
    break ``mlflow.log_input`` and autologging that logs datasets."""
    selectors.run_for(request, _run_id(data), role=Role.WRITE)
    return {}


def metrics_get_history(request, data):
    run = selectors.run_for(request, _run_id(data))
    points, token = selectors.metric_history(
        run=run,
        key=data.get("metric_key"),
        max_results_=data.get("max_results"),
        token=data.get("page_token"),
    )
    return {"metrics": points, **({"next_page_token": token} if token else {})}


def runs_log_outputs(request, data):
    run = selectors.run_for(request, _run_id(data), role=Role.WRITE)
    services.run_log_outputs(run=run, models=data.get("models") or [], request=request)
    return {}


def runs_log_model(request, data):
    """MLflow 2's ``log-model`` (the model's MLmodel JSON on the run): MLflow 3 still sends it
    and ignores failures; the model's files and its logged-model record carry the same."""
    selectors.run_for(request, _run_id(data), role=Role.WRITE)
    return {}


def logged_models_create(request, data):
    project = selectors.experiment_for(request, data.get("experiment_id") or "0", role=Role.WRITE)
    run_id = _text(data, "source_run_id")
    source = selectors.run_for(request, run_id) if run_id else None
    model = services.logged_model_create(
        project=project,
        name=data.get("name"),
        source_run=source,
        model_type=data.get("model_type"),
        params=data.get("params") or [],
        tags=data.get("tags") or [],
    )
    return {"model": selectors.logged_model_out(model)}


def logged_models_search(request, data):
    found, token = selectors.logged_models_search(
        request,
        experiment_ids=data.get("experiment_ids"),
        filter_string=_text(data, "filter"),
        max_results_=data.get("max_results"),
        token=data.get("page_token"),
    )
    return {"models": found, **({"next_page_token": token} if token else {})}


def logged_model(request, data, model_id: str, rest: list[str]):
    """``logged-models/{id}`` and below: get, finalize (PATCH), delete, params, tags."""
    method = request.method
    if not rest and method == "GET":
        allow = str(data.get("allow_deleted", "")).lower() == "true"
        model = selectors.logged_model_for(request, model_id, allow_deleted=allow)
        return {"model": selectors.logged_model_out(model)}
    model = selectors.logged_model_for(request, model_id, role=Role.WRITE)
    if not rest and method == "PATCH":
        model = services.logged_model_update(model=model, status=data.get("status"))
        return {"model": selectors.logged_model_out(model)}
    if not rest and method == "DELETE":
        services.logged_model_update(model=model, deleted=True)
        return {}
    if rest == ["params"] and method == "POST":
        services.logged_model_update(model=model, params=data.get("params") or [])
        return {}
    if rest == ["tags"] and method == "PATCH":
        services.logged_model_update(model=model, tags=data.get("tags") or [])
        return {}
    if len(rest) >= 2 and rest[0] == "tags" and method == "DELETE":
        services.logged_model_update(model=model, remove_tag="/".join(rest[1:]))
        return {}
    raise errors.MlflowError(
        errors.ENDPOINT_NOT_FOUND, f"No MLflow endpoint {method} logged-models/{model_id}/..."
    )


ROUTES = {
    ("POST", "experiments/create"): experiments_create,
    ("GET", "experiments/get"): experiments_get,
    ("GET", "experiments/get-by-name"): experiments_get_by_name,
    ("POST", "experiments/search"): experiments_search,
    ("GET", "experiments/search"): experiments_search,
    ("POST", "experiments/update"): experiments_update,
    ("POST", "experiments/delete"): experiments_delete,
    ("POST", "experiments/restore"): experiments_restore,
    ("POST", "experiments/set-experiment-tag"): experiments_set_tag,
    ("POST", "runs/create"): runs_create,
    ("GET", "runs/get"): runs_get,
    ("POST", "runs/update"): runs_update,
    ("POST", "runs/delete"): runs_delete,
    ("POST", "runs/restore"): runs_restore,
    ("POST", "runs/search"): runs_search,
    ("POST", "runs/log-parameter"): runs_log_parameter,
    ("POST", "runs/log-metric"): runs_log_metric,
    ("POST", "runs/log-batch"): runs_log_batch,
    ("POST", "runs/set-tag"): runs_set_tag,
    ("POST", "runs/delete-tag"): runs_delete_tag,
    ("POST", "runs/log-inputs"): runs_log_inputs,
    ("GET", "metrics/get-history"): metrics_get_history,
    ("POST", "runs/outputs"): runs_log_outputs,
    ("POST", "runs/log-model"): runs_log_model,
    ("POST", "logged-models"): logged_models_create,
    ("POST", "logged-models/search"): logged_models_search,
}


class TrackingApi(_MlflowView):
    """``/api/2.0/mlflow/<endpoint>`` (and ``/ajax-api/2.0/mlflow/...``): one table of routes."""

    def _dispatch(self, request, endpoint: str):
        endpoint = endpoint.strip("/")
        handler = ROUTES.get((request.method, endpoint))
        parts = endpoint.split("/")
        if handler is None and len(parts) >= 2 and parts[0] == "logged-models":
            model_id, rest = parts[1], parts[2:]

            def handler(request, data):
                return logged_model(request, data, model_id, rest)

        if handler is None:
            raise errors.MlflowError(
                errors.ENDPOINT_NOT_FOUND,
                f"No MLflow endpoint {request.method} {endpoint!r} on this server.",
            )
        if request.method == "GET":
            data = {k: v for k, v in request.query_params.items()}
        else:
            data = _json_body(request)
        return JsonResponse(handler(request, data))

    def get(self, request, endpoint):
        return self._dispatch(request, endpoint)

    def post(self, request, endpoint):
        return self._dispatch(request, endpoint)

    def patch(self, request, endpoint):
        return self._dispatch(request, endpoint)

    def delete(self, request, endpoint):
        return self._dispatch(request, endpoint)


class ArtifactsApi(_MlflowView):
    """MLflow's proxied artifact API: ``PUT``/``GET`` ``.../artifacts/<exp>/<run>/artifacts/<p>``
    uploads and downloads a file, ``GET .../artifacts?path=<dir>`` lists a directory."""

    def get(self, request, path=""):
        if not path:  # a listing
            owner, rel = selectors.artifact_location(request, request.query_params.get("path", ""))
            return JsonResponse({"files": selectors.artifact_list(owner=owner, path=rel)})
        owner, rel = selectors.artifact_location(request, path)
        art = selectors.artifact_get(owner=owner, path=rel)
        from hub.registry.selectors import file_iter

        resp = StreamingHttpResponse(
            file_iter(file=art.file), content_type="application/octet-stream"
        )
        resp["Content-Length"] = str(art.file.size)
        return resp

    def put(self, request, path=""):
        owner, rel = selectors.artifact_location(request, path, role=Role.WRITE)
        if not rel:
            raise errors.invalid("Name a file under the artifacts.")
        declared = request.META.get("CONTENT_LENGTH")
        services.artifact_put(
            owner=owner,
            path=rel,
            read=request._request.read,
            declared=int(declared) if declared and declared.isdigit() else None,
        )
        return JsonResponse({})


class ServerInfoApi(_MlflowView):
    """``/api/3.0/mlflow/server-info``: MLflow 3's capability probe (no auth, as MLflow's):
    no multipart uploads or downloads, no workspaces."""

    authenticated_only = False

    def get(self, request):
        return JsonResponse(
            {
                "workspaces_enabled": False,
                "multipart_uploads_enabled": False,
                "multipart_downloads_enabled": False,
            }
        )


class NotFoundApi(_MlflowView):
    authenticated_only = False

    def _answer(self, request, *args, **kwargs):
        raise errors.MlflowError(
            errors.ENDPOINT_NOT_FOUND, f"No MLflow endpoint {request.method} {request.path}."
        )

    get = post = put = patch = delete = _answer
