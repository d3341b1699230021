"""Reads of the MLflow API, and the mapping of MLflow's objects onto the hub's.

**Experiments are projects.** An experiment's id is its project's id (the database key, as a
string). Experiment ``"0"`` is the caller's own ``<user>/default`` project, named
``Default``, made on first use. An experiment name is looked up in the caller's personal
namespace, or in namespace ``ns`` when written ``ns/name`` and ``ns`` exists; an experiment
outside the caller's namespace is named ``ns/name`` in answers, so the name a client reads
back finds the same experiment. A name that is not a valid project name gets a slug of it
as its project's name (``My run #3`` -> project ``my-run-3``), the MLflow name kept beside it.

**Runs are runs**, searched in the database (the canonical store, so a run is found the
moment it was written, as MLflow clients expect), with MLflow's filter translated to SQL on
the run's columns and JSON fields: ``metrics.k`` is the latest value of ``k`` (the run's
summary), ``params.k`` the param as text, ``tags.k`` the run's MLflow key/value tags.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

from django.db.models import F, Q, TextField
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast

from hub.accounts.models import Namespace, Role
from hub.common.errors import NotFound
from hub.compat.mlflow import filters
from hub.compat.mlflow.errors import invalid
from hub.compat.mlflow.models import Artifact, Experiment, LoggedModel, ModelArtifact, RunState
from hub.compat.mlflow.services import (
    DEFAULT_EXPERIMENT,
    DELETED_TAG,
    NOTE_TAG,
    RUN_NAME_TAG,
    default_experiment,
    own_namespace,
)
from hub.tracking import selectors as tracking
from hub.tracking.models import Project, Run

MAX_SEARCH_RESULTS = 50_000  # MLflow's own bound (SEARCH_MAX_RESULTS_THRESHOLD)
DEFAULT_SEARCH_RESULTS = 1000
MAX_HISTORY_RESULTS = 25_000
MAX_EXPERIMENT_IDS = 200
_SLUG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")


def ms(dt: datetime | None) -> int | None:
    return None if dt is None else int(dt.timestamp() * 1000)


# --- paging -----------------------------------------------------------------------------------


def page_offset(token: str | None) -> int:
    """MLflow's page tokens are opaque; here ``base64(json {"offset": N})``, as MLflow's own."""
    if not token:
        return 0
    try:
        offset = json.loads(base64.b64decode(token, validate=True))["offset"]
    except Exception:
        raise invalid("Invalid page token.") from None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 10**9:
        raise invalid("Invalid page token.")
    return offset


def page_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def max_results(value, *, default: int, most: int) -> int:
    if value is None:
        return default
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise invalid(f"max_results must be an integer in 1..{most}, not {value!r}.")
    return value


# --- experiments ------------------------------------------------------------------------------


def split_name(request, name: str) -> tuple[Namespace, str, bool]:
    """(namespace, label, is the caller's own namespace) for an experiment name."""
    own = own_namespace(request)
    head, sep, rest = name.partition("/")
    if sep and rest and head != own.name:
        ns = Namespace.objects.filter(name=head).first()
        if ns is not None:
            return ns, rest, False
    if sep and rest and head == own.name:
        return own, rest, True
    return own, name, True


def project_named(*, ns: Namespace, label: str) -> Project | None:
    row = Experiment.objects.select_related("project").filter(namespace=ns, name=label).first()
    if row is not None:
        return row.project
    if _SLUG.match(label):
        project = Project.objects.filter(namespace=ns, name=label).first()
        if project is not None:
            return project
    return None


def experiment_by_name(request, name: str) -> Project:
    if not isinstance(name, str) or not name:
        raise invalid("experiment_name is required.")
    ns, label, own = split_name(request, name)
    if own and label == DEFAULT_EXPERIMENT:
        return default_experiment(request)
    project = project_named(ns=ns, label=label)
    if project is None:
        raise NotFound(f"Could not find experiment with name {name!r}.")
    return _checked(request, project, Role.READ, name)


def _checked(request, project: Project, role: str, ident) -> Project:
    try:
        return tracking.project_for(
            request, namespace=project.namespace.name, name=project.name, role=role
        )
    except NotFound:
        raise NotFound(f"No experiment {ident!r}.") from None


def experiment_for(request, experiment_id, *, role: str = Role.READ) -> Project:
    ident = str(experiment_id) if experiment_id is not None else ""
    if ident == "0":
        project = default_experiment(request)
        return _checked(request, project, role, ident)
    if not ident.isdigit() or len(ident) > 18:
        raise NotFound(f"No experiment {ident!r}.")
    project = Project.objects.select_related("namespace").filter(pk=int(ident)).first()
    if project is None:
        raise NotFound(f"No experiment {ident!r}.")
    return _checked(request, project, role, ident)


def experiment_out(project: Project, *, caller: str) -> dict:
    row = getattr(project, "mlflow", None) if _has_row(project) else None
    label = row.name if row else project.name
    name = label if project.namespace.name == caller else f"{project.namespace.name}/{label}"
    tags = dict(row.tags) if row else {}
    if project.description:
        tags[NOTE_TAG] = project.description
    updated = row.updated_at if row else project.created_at
    return {
        "experiment_id": str(project.pk),
        "name": name,
        "artifact_location": f"mlflow-artifacts:/{project.pk}",
        "lifecycle_stage": "deleted" if row and row.deleted else "active",
        "creation_time": ms(project.created_at),
        "last_update_time": ms(max(updated, project.created_at)),
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
    }


def _has_row(project: Project) -> bool:
    try:
        project.mlflow  # noqa: B018 - the reverse one-to-one raises when there is no row
        return True
    except Experiment.DoesNotExist:
        return False


def _view_q(view_type: str | None, field: str) -> Q:
    view = view_type or "ACTIVE_ONLY"
    if view in ("ACTIVE_ONLY", 1, "1"):
        return ~Q(**{field: True})
    if view in ("DELETED_ONLY", 2, "2"):
        return Q(**{field: True})
    if view in ("ALL", 3, "3"):
        return Q()
    raise invalid(f"Invalid view type {view_type!r}: ACTIVE_ONLY, DELETED_ONLY or ALL.")


def experiments_search(
    request, *, filter_string, order_by, view_type, max_results_, token
) -> tuple[list[dict], str | None]:
    """Every experiment the caller may read (their namespaces' projects and public ones),
    filtered by ``name``, ``tags.<key>``, ``creation_time`` and ``last_update_time``."""
    try:
        default_experiment(request)  # MLflow lists Default first thing; made on first use
    except NotFound:
        pass  # a read-only token, before any write made it
    user = request.user
    qs = Project.objects.select_related("namespace", "mlflow").filter(
        _view_q(view_type, "mlflow__deleted")
    )
    if not user.is_superuser:
        qs = qs.filter(Q(private=False) | Q(namespace__memberships__user=user)).distinct()
    limit_ = max_results(max_results_, default=1000, most=MAX_SEARCH_RESULTS)
    offset = page_offset(token)
    comparisons = _experiment_filter(filter_string)
    orders = _experiment_order(order_by)
    caller = user.username
    rows = [experiment_out(p, caller=caller) for p in qs]
    rows = [r for r in rows if all(_experiment_match(r, c) for c in comparisons)]
    for key, ascending in reversed(orders):
        rows.sort(key=lambda r, k=key: _experiment_sort_key(r, k), reverse=not ascending)
    page = rows[offset : offset + limit_]
    more = offset + limit_ < len(rows)
    return page, page_token(offset + limit_) if more else None


_EXPERIMENT_STRING = ("name",)
_EXPERIMENT_NUMERIC = ("creation_time", "last_update_time")


def _experiment_filter(text) -> list[filters.Comparison]:
    if not text or not str(text).strip():
        return []
    try:
        parsed = filters.parse_filter(text, check=lambda c: c)  # the rules are checked below
    except filters.FilterError as e:
        raise invalid(f"Invalid filter: {e}") from None
    out = []
    for c in parsed:
        if c.entity == "tag" or (c.entity == "attribute" and c.key in _EXPERIMENT_STRING):
            if c.op not in filters.STRING_OPS or not isinstance(c.value, str):
                raise invalid(f"Invalid filter: {c.key} takes = != LIKE ILIKE and a string.")
        elif c.entity == "attribute" and c.key in _EXPERIMENT_NUMERIC:
            if c.op not in filters.NUMERIC_OPS or not isinstance(c.value, float):
                raise invalid(f"Invalid filter: {c.key} takes a numeric comparison.")
        else:
            raise invalid(
                "Invalid filter: experiments are searched by name, tags.<key>, creation_time "
                "and last_update_time."
            )
        out.append(c)
    return out


def _string_match(have: str | None, op: str, want: str) -> bool:
    if have is None:
        return False
    if op == "=":
        return have == want
    if op == "!=":
        return have != want
    flags = re.S | (re.I if op == "ILIKE" else 0)
    return re.match(filters.like_regex(want), have, flags) is not None


def _number_match(have: float | None, op: str, want: float) -> bool:
    if have is None:
        return False
    return {
        "=": have == want,
        "!=": have != want,
        "<": have < want,
        "<=": have <= want,
        ">": have > want,
        ">=": have >= want,
    }[op]


def _experiment_match(row: dict, c: filters.Comparison) -> bool:
    if c.entity == "tag":
        tags = {t["key"]: t["value"] for t in row["tags"]}
        return _string_match(tags.get(c.key), c.op, c.value)
    if c.key == "name":
        return _string_match(row["name"], c.op, c.value)
    return _number_match(row[c.key], c.op, c.value)


def _experiment_order(clauses) -> list[tuple[str, bool]]:
    out = []
    for clause in clauses or []:
        m = re.fullmatch(
            r"\s*(?:attributes?\.)?(name|experiment_id|creation_time|last_update_time)"
            r"(?:\s+(ASC|DESC))?\s*",
            str(clause),
            re.I,
        )
        if not m:
            raise invalid(f"Invalid order_by clause {clause!r}.")
        out.append((m.group(1).lower(), (m.group(2) or "ASC").upper() == "ASC"))
    if not any(k == "experiment_id" for k, _ in out):
        out = out or [("creation_time", False)]
        out.append(("experiment_id", True))
    return out


def _experiment_sort_key(row: dict, key: str):
    return int(row["experiment_id"]) if key == "experiment_id" else row[key]


# --- runs -------------------------------------------------------------------------------------


def run_for(request, run_id, *, role: str = Role.READ) -> Run:
    if not isinstance(run_id, str) or not run_id or len(run_id) > 64:
        raise invalid("run_id is required.")
    try:
        return tracking.run_for(request, run_id=run_id, role=role)
    except NotFound:
        raise NotFound(f"Run '{run_id}' not found.") from None


def _state(run: Run) -> RunState | None:
    try:
        return run.mlflow
    except RunState.DoesNotExist:
        return None


def _param_text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def run_tags(run: Run) -> dict[str, str]:
    """The run's MLflow tags: its key/value tags, then its hub tags (``k=v`` or ``k``)."""
    state = _state(run)
    tags = dict(state.tags) if state else {}
    for t in run.tags:
        if t == DELETED_TAG:
            continue
        k, _, v = t.partition("=")
        tags.setdefault(k, v)
    tags[RUN_NAME_TAG] = run.name
    if run.notes:
        tags["mlflow.note.content"] = run.notes
    return tags


def run_info(run: Run) -> dict:
    state = _state(run)
    info = {
        "run_id": run.pk,
        "run_uuid": run.pk,
        "run_name": run.name,
        "experiment_id": str(run.project_id),
        "user_id": run.user.username if run.user_id else "",
        "status": run.status.upper(),
        "start_time": ms(run.started_at),
        "artifact_uri": f"mlflow-artifacts:/{run.project_id}/{run.pk}/artifacts",
        "lifecycle_stage": "deleted" if state and state.deleted else "active",
    }
    if run.ended_at is not None:
        info["end_time"] = ms(run.ended_at)
    return info


def run_out(run: Run) -> dict:
    """MLflow's Run. ``data.metrics`` holds each key's latest value (highest step) from the
    run's summary; the summary keeps no wall time, so their timestamp is the run's last
    update (``get_metric_history`` has every point's own)."""
    updated = ms(run.updated_at)
    return {
        "info": run_info(run),
        "data": {
            "metrics": [
                {"key": k, "value": s["last"], "timestamp": updated, "step": s["last_step"]}
                for k, s in run.summary.items()
                if isinstance(s, dict) and "last" in s
            ],
            "params": [{"key": k, "value": _param_text(v)} for k, v in run.params.items()],
            "tags": [{"key": k, "value": v} for k, v in run_tags(run).items()],
        },
        "inputs": {},
        "outputs": {"model_outputs": list(state.outputs)}
        if (state := _state(run)) and state.outputs
        else {},
    }


_HUB_STATUS = {s.upper(): s for s in Run.Status.values}
_ATTRIBUTE_FIELDS = {
    "run_id": "pk",
    "run_name": "name",
    "status": "status",
    "user_id": "user__username",
    "start_time": "started_at",
    "end_time": "ended_at",
}


def _like(field: str, op: str, pattern: str) -> Q:
    return Q(**{f"{field}__{'iregex' if op == 'ILIKE' else 'regex'}": filters.like_regex(pattern)})


def _string_q(field: str, op: str, value: str) -> Q:
    if op == "=":
        return Q(**{field: value})
    if op == "!=":
        return ~Q(**{field: value})
    return _like(field, op, value)


def _numeric_q(field: str, op: str, value) -> Q:
    lookups = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
    if op == "=":
        return Q(**{field: value})
    if op == "!=":
        return ~Q(**{field: value})
    return Q(**{f"{field}__{lookups[op]}": value})


def _attribute_q(c: filters.Comparison) -> Q:
    field = _ATTRIBUTE_FIELDS[c.key]
    if c.key in filters.NUMERIC_ATTRIBUTES:
        at = datetime.fromtimestamp(c.value / 1000, tz=UTC)
        within = Q(**{f"{field}__gte": at, f"{field}__lt": at + timedelta(milliseconds=1)})
        present = Q(**{f"{field}__isnull": False})
        if c.op == "=":
            return within
        if c.op == "!=":
            return present & ~within
        return present & _numeric_q(field, c.op, at)
    if c.key == "status":  # MLflow's names (FINISHED) against the hub's (finished)
        names = list(_HUB_STATUS)
        if c.op in ("=", "!="):
            match = [n for n in names if n == c.value]
        else:
            flags = re.S | (re.I if c.op == "ILIKE" else 0)
            match = [n for n in names if re.match(filters.like_regex(c.value), n, flags)]
        q = Q(status__in=[_HUB_STATUS[n] for n in match])
        return ~q if c.op == "!=" else q
    if c.op in ("IN", "NOT IN"):
        q = Q(pk__in=list(c.value))
        return ~q if c.op == "NOT IN" else q
    return _string_q(field, c.op, c.value)


def _expression(entity: str, key: str):
    if entity == "metric":
        return KeyTransform("last", KeyTransform(key, "summary"))
    if entity == "param":
        return Cast(KeyTextTransform(key, "params"), TextField())
    return Cast(KeyTextTransform(key, "mlflow__tags"), TextField())


def _present(entity: str, key: str) -> Q:
    field = {"metric": "summary", "param": "params", "tag": "mlflow__tags"}[entity]
    return Q(**{f"{field}__has_key": key})


def runs_search(
    request,
    *,
    experiment_ids,
    filter_string,
    run_view_type,
    max_results_,
    order_by,
    token,
) -> tuple[list[dict], str | None]:
    if not isinstance(experiment_ids, list) or not experiment_ids:
        raise invalid("Name at least one experiment in experiment_ids.")
    if len(experiment_ids) > MAX_EXPERIMENT_IDS:
        raise invalid(f"At most {MAX_EXPERIMENT_IDS} experiment ids per search.")
    projects = [experiment_for(request, e) for e in dict.fromkeys(map(str, experiment_ids))]
    try:
        comparisons = filters.parse_filter(filter_string)
        orders = filters.parse_order_by(order_by)
    except filters.FilterError as e:
        raise invalid(f"Invalid filter or order_by: {e}") from None
    limit_ = max_results(max_results_, default=DEFAULT_SEARCH_RESULTS, most=MAX_SEARCH_RESULTS)
    offset = page_offset(token)
    qs = (
        Run.objects.select_related("project__namespace", "user", "mlflow")
        .filter(project__in=projects)
        .filter(_view_q(run_view_type, "mlflow__deleted"))
    )
    for i, c in enumerate(comparisons):
        if c.entity == "tag" and c.key == RUN_NAME_TAG:
            c = filters.Comparison("attribute", "run_name", c.op, c.value)
        if c.entity == "attribute":
            qs = qs.filter(_attribute_q(c))
            continue
        alias = f"_f{i}"
        qs = qs.alias(**{alias: _expression(c.entity, c.key)}).filter(_present(c.entity, c.key))
        if c.entity == "metric":
            qs = qs.filter(_numeric_q(alias, c.op, c.value))
        else:
            qs = qs.filter(_string_q(alias, c.op, c.value))
    ordering = []
    for i, o in enumerate(orders):
        if o.entity == "attribute":
            expr = F(_ATTRIBUTE_FIELDS[o.key])
        else:
            alias = f"_o{i}"
            qs = qs.alias(**{alias: _expression(o.entity, o.key)})
            expr = F(alias)
        ordering.append(expr.asc(nulls_last=True) if o.ascending else expr.desc(nulls_last=True))
    ordering += [F("started_at").desc(), F("pk").asc()]
    rows = list(qs.order_by(*ordering)[offset : offset + limit_ + 1])
    more = len(rows) > limit_
    return [run_out(r) for r in rows[:limit_]], page_token(offset + limit_) if more else None


def metric_history(*, run: Run, key: str, max_results_, token) -> tuple[list[dict], str | None]:
    """Every point of ``key`` in the metrics store, by step then time."""
    if not isinstance(key, str) or not key:
        raise invalid("metric_key is required.")
    limit_ = max_results(max_results_, default=MAX_HISTORY_RESULTS, most=MAX_HISTORY_RESULTS)
    offset = page_offset(token)
    points = []
    if key in run.summary:
        for batch in tracking.export_batches(run=run, keys=[key]):
            points.extend(batch)
    points.sort(key=lambda p: (p[1], p[2]))
    page = points[offset : offset + limit_]
    more = offset + limit_ < len(points)
    return [
        {"key": k, "value": v, "timestamp": int(round(t * 1000)), "step": s} for k, s, t, v in page
    ], page_token(offset + limit_) if more else None


# --- artifacts --------------------------------------------------------------------------------


def artifact_location(
    request, path: str, *, role: str = Role.READ
) -> tuple[Run | LoggedModel, str]:
    """The run or logged model, and the path inside its files, for
    ``<experiment>/<run>/artifacts/<path>`` or ``<experiment>/models/<model>/artifacts/<path>``
    (what an ``artifact_uri`` leads the client to); 404 for anything else."""
    parts = [p for p in (path or "").split("/") if p]
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        owner, rest_parts = logged_model_for(request, parts[2], role=role), parts[4:]
    elif len(parts) >= 3 and parts[2] == "artifacts":
        owner, rest_parts = run_for(request, parts[1], role=role), parts[3:]
    else:
        raise NotFound(f"No artifact location {path!r}: use <experiment>/<run>/artifacts/<path>.")
    if str(owner.project_id) != parts[0]:
        raise NotFound(f"{owner.pk!r} not found in experiment {parts[0]!r}.")
    if any(p in ("..", ".") for p in rest_parts):
        raise invalid(f"Invalid artifact path {path!r}.")
    return owner, "/".join(rest_parts)


def _files_of(owner: Run | LoggedModel):
    if isinstance(owner, LoggedModel):
        return ModelArtifact.objects.select_related("file").filter(model=owner)
    return Artifact.objects.select_related("file").filter(run=owner)


def artifact_list(*, owner: Run | LoggedModel, path: str) -> list[dict]:
    """The entries directly under ``path`` (a file path lists that one file)."""
    prefix = f"{path}/" if path else ""
    entries: dict[str, dict] = {}
    for art in _files_of(owner).order_by("path"):
        if art.path == path:
            return [{"path": path.rsplit("/", 1)[-1], "is_dir": False, "file_size": art.file.size}]
        if not art.path.startswith(prefix):
            continue
        head, sep, _ = art.path[len(prefix) :].partition("/")
        if sep:
            entries.setdefault(head, {"path": head, "is_dir": True})
        else:
            entries[head] = {"path": head, "is_dir": False, "file_size": art.file.size}
    return list(entries.values())


def artifact_get(*, owner: Run | LoggedModel, path: str) -> Artifact | ModelArtifact:
    art = _files_of(owner).filter(path=path).first()
    if art is None:
        raise NotFound(f"'{owner.pk}' has no artifact {path!r}.")
    return art


# --- logged models ----------------------------------------------------------------------------


def logged_model_for(
    request, model_id, *, role: str = Role.READ, allow_deleted: bool = False
) -> LoggedModel:
    if not isinstance(model_id, str) or not model_id or len(model_id) > 40:
        raise NotFound(f"No logged model {str(model_id)[:60]!r}.")
    model = LoggedModel.objects.select_related("project__namespace").filter(pk=model_id).first()
    if model is None or (model.deleted and not allow_deleted):
        raise NotFound(f"No logged model {model_id!r}.")
    _checked(request, model.project, role, model_id)
    return model


def logged_model_out(m: LoggedModel) -> dict:
    info = {
        "model_id": m.pk,
        "experiment_id": str(m.project_id),
        "name": m.name,
        "artifact_uri": f"mlflow-artifacts:/{m.project_id}/models/{m.pk}/artifacts",
        "status": m.status,
        "creation_timestamp_ms": ms(m.created_at),
        "last_updated_timestamp_ms": ms(m.updated_at),
        "model_type": m.model_type,
        "tags": [{"key": k, "value": v} for k, v in m.tags.items()],
        "lifecycle_stage": "deleted" if m.deleted else "active",
    }
    if m.source_run_id:
        info["source_run_id"] = m.source_run_id
    return {
        "info": info,
        "data": {"params": [{"key": k, "value": v} for k, v in m.params.items()], "metrics": []},
    }


_MODEL_FIELDS = {"name": "name", "source_run_id": "source_run_id", "model_id": "pk"}


def logged_models_search(
    request, *, experiment_ids, filter_string, max_results_, token
) -> tuple[list[dict], str | None]:
    """Logged models of the experiments, filtered by ``name``, ``source_run_id`` or
    ``model_id`` (``=``, ``!=``, ``LIKE``, ``ILIKE``), newest first."""
    if not isinstance(experiment_ids, list) or not experiment_ids:
        raise invalid("Name at least one experiment in experiment_ids.")
    if len(experiment_ids) > MAX_EXPERIMENT_IDS:
        raise invalid(f"At most {MAX_EXPERIMENT_IDS} experiment ids per search.")
    projects = [experiment_for(request, e) for e in dict.fromkeys(map(str, experiment_ids))]
    try:
        comparisons = filters.parse_filter(filter_string, check=lambda c: c)
    except filters.FilterError as e:
        raise invalid(f"Invalid filter: {e}") from None
    qs = LoggedModel.objects.filter(project__in=projects, deleted=False)
    for c in comparisons:
        field = _MODEL_FIELDS.get(c.key) if c.entity == "attribute" else None
        if field is None or c.op not in filters.STRING_OPS or not isinstance(c.value, str):
            raise invalid(
                "Invalid filter: logged models are searched by name, source_run_id and "
                "model_id (= != LIKE ILIKE and a string)."
            )
        qs = qs.filter(_string_q(field, c.op, c.value))
    limit_ = max_results(max_results_, default=100, most=MAX_SEARCH_RESULTS)
    offset = page_offset(token)
    rows = list(qs.order_by("-created_at", "pk")[offset : offset + limit_ + 1])
    more = len(rows) > limit_
    return [logged_model_out(m) for m in rows[:limit_]], page_token(
        offset + limit_
    ) if more else None
