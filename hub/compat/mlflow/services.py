"""Writes of the MLflow API. Everything a hub run or project holds is written by the tracking
app's services (``hub.tracking.services``); this module writes only what MLflow has beyond
them (:mod:`hub.compat.mlflow.models`) and keeps the two in step:

- the run tag ``mlflow.runName`` is the run's name, ``mlflow.note.content`` its notes;
- a user's tag ``k`` = ``v`` (not ``mlflow.*``) is also the hub tag ``k=v`` (``k`` when
  ``v`` is empty) while it fits the hub's tag limits, so the dashboard and ``tags:k=v``
  searches see it;
- an MLflow-deleted run keeps its data and carries the hub tag ``mlflow.deleted`` (the
  dashboard can hide it with ``NOT tags:mlflow.deleted``); ``restore_run`` removes it.
"""

from __future__ import annotations

import math
import re
import secrets
from datetime import UTC, datetime

from django.db import IntegrityError, transaction

from hub.accounts import selectors as accounts
from hub.accounts.models import Namespace, Role
from hub.common.errors import Forbidden, NotFound
from hub.common.limits import limit
from hub.common.validation import validate_path
from hub.compat.mlflow.errors import RESOURCE_ALREADY_EXISTS, MlflowError, invalid
from hub.compat.mlflow.models import Artifact, Experiment, LoggedModel, ModelArtifact, RunState
from hub.shared.chunking import CDC_MAX, chunk_hash
from hub.tracking import ingest
from hub.tracking import services as tracking
from hub.tracking.models import Project, Run

DELETED_TAG = "mlflow.deleted"
RUN_NAME_TAG = "mlflow.runName"
NOTE_TAG = "mlflow.note.content"
DEFAULT_PROJECT = "default"
DEFAULT_EXPERIMENT = "Default"

# MLflow's own limits (mlflow/utils/validation.py); the client splits bigger batches itself.
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100
MAX_BATCH_ENTITIES = 1000
MAX_EXPERIMENT_NAME = 500
MAX_TAG_KEY = 250
MAX_TAG_VALUE = 8000
MAX_EXPERIMENT_TAGS = 100
_KEY = re.compile(r"^[/\w.\- :]*$")

STATUS_TO_HUB = {
    "RUNNING": Run.Status.RUNNING,
    "SCHEDULED": Run.Status.RUNNING,
    "FINISHED": Run.Status.FINISHED,
    "FAILED": Run.Status.FAILED,
    "KILLED": Run.Status.KILLED,
}


def ms_to_datetime(ms) -> datetime:
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms):
        raise invalid(f"A time must be milliseconds since the epoch, not {ms!r}.")
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise invalid(f"Time {ms!r} ms is out of range.") from None


def check_key(key, what: str) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_TAG_KEY or not _KEY.match(key):
        raise invalid(
            f"Invalid {what} name {str(key)[:260]!r}: 1-{MAX_TAG_KEY} letters, digits, "
            "underscores, dashes, periods, spaces, colons or slashes."
        )
    if ".." in key.split("/") or key.startswith("/"):
        raise invalid(f"Invalid {what} name {key!r}: no '..' and no leading '/'.")
    return key


def _tag_value(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid("Tag values must be strings.")
    if len(value) > MAX_TAG_VALUE:
        raise invalid(f"Tag values are at most {MAX_TAG_VALUE} characters.")
    return value


# --- experiments -------------------------------------------------------------------------------


def own_namespace(request) -> Namespace:
    """The caller's personal namespace: where experiment "0" (Default) and experiments named
    without a namespace live."""
    return accounts.namespace_get(name=request.user.username)


def default_experiment(request) -> Project:
    """Experiment "0": the caller's project ``<user>/default``, named ``Default`` in MLflow,
    created on first use (MLflow's client starts runs in it without looking it up)."""
    ns = own_namespace(request)
    project = Project.objects.filter(namespace=ns, name=DEFAULT_PROJECT).first()
    if project is None:
        try:
            accounts.require_role(request, namespace=ns, role=Role.WRITE)
        except Forbidden:  # a read-only token cannot make it: to that token it does not exist
            raise NotFound(
                f"Experiment 0 ({ns.name}/{DEFAULT_PROJECT}) does not exist yet; a write token "
                "creates it on first use."
            ) from None
        project = tracking.project_get_or_create(namespace=ns, name=DEFAULT_PROJECT)
    if not Experiment.objects.filter(project=project).exists():
        try:
            with transaction.atomic():
                Experiment.objects.create(project=project, namespace=ns, name=DEFAULT_EXPERIMENT)
        except IntegrityError:  # a concurrent first use, or a project renamed Default earlier
            pass
    return project


def _slug_for(label: str, ns: Namespace) -> str:
    """A free project name for an experiment named ``label``: the label itself when it is a
    valid project name, else a slug of it (``My run #3`` -> ``my-run-3``), numbered when taken."""
    base = re.sub(r"[^a-z0-9._-]+", "-", label.lower()).strip("-._")[:56] or "experiment"
    base = re.sub(r"\.{2,}", ".", base)
    candidates = (
        [label]
        if re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?", label)
        and ".." not in label
        else []
    )
    candidates += [base] + [f"{base}-{i}" for i in range(2, 1000)]
    taken = set(
        Project.objects.filter(namespace=ns, name__in=candidates).values_list("name", flat=True)
    )
    for name in candidates:
        if name not in taken:
            return name
    return f"{base}-{secrets.token_hex(4)}"


def experiment_create(request, *, ns: Namespace, label: str, tags: dict[str, str]) -> Project:
    """A new experiment ``label`` in ``ns`` (a new project); RESOURCE_ALREADY_EXISTS when the
    name is taken there, deleted experiments included (as in MLflow)."""
    from hub.compat.mlflow import selectors

    if not isinstance(label, str) or not label.strip():
        raise invalid("An experiment needs a non-empty name.")
    if len(label) > MAX_EXPERIMENT_NAME:
        raise invalid(f"Experiment names are at most {MAX_EXPERIMENT_NAME} characters.")
    tags = _experiment_tags(tags)
    accounts.require_role(request, namespace=ns, role=Role.WRITE)
    own = ns.name == request.user.username
    if (own and label == DEFAULT_EXPERIMENT) or selectors.project_named(ns=ns, label=label):
        raise MlflowError(RESOURCE_ALREADY_EXISTS, f"Experiment {label!r} already exists.")
    note = tags.pop(NOTE_TAG, "")
    for _ in range(3):  # a concurrent create of the same name or slug: look again
        try:
            with transaction.atomic():
                name = _slug_for(label, ns)
                project = Project.objects.create(namespace=ns, name=name, description=note)
                Experiment.objects.create(project=project, namespace=ns, name=label, tags=tags)
                return project
        except IntegrityError:
            if Experiment.objects.filter(namespace=ns, name=label).exists():
                raise MlflowError(
                    RESOURCE_ALREADY_EXISTS, f"Experiment {label!r} already exists."
                ) from None
    raise MlflowError(RESOURCE_ALREADY_EXISTS, f"Experiment {label!r} could not be created.")


def _experiment_tags(tags) -> dict[str, str]:
    if len(tags) > MAX_EXPERIMENT_TAGS:
        raise invalid(f"An experiment has at most {MAX_EXPERIMENT_TAGS} tags.")
    return {check_key(k, "tag"): _tag_value(v) for k, v in tags.items()}


def _experiment_row(project: Project) -> Experiment:
    row = Experiment.objects.filter(project=project).first()
    if row is None:
        row, _ = Experiment.objects.get_or_create(
            project=project, defaults={"namespace": project.namespace, "name": project.name}
        )
    return row


@transaction.atomic
def experiment_update(*, project: Project, new_name: str) -> None:
    if not isinstance(new_name, str) or not new_name.strip():
        raise invalid("An experiment needs a non-empty name.")
    if len(new_name) > MAX_EXPERIMENT_NAME:
        raise invalid(f"Experiment names are at most {MAX_EXPERIMENT_NAME} characters.")
    row = _experiment_row(project)
    if (
        Experiment.objects.filter(namespace=project.namespace, name=new_name)
        .exclude(project=project)
        .exists()
    ):
        raise MlflowError(RESOURCE_ALREADY_EXISTS, f"Experiment {new_name!r} already exists.")
    row.name = new_name
    row.save(update_fields=["name", "updated_at"])


@transaction.atomic
def experiment_set_deleted(*, project: Project, deleted: bool) -> None:
    """MLflow's delete is a soft one: the project and its runs stay; the experiment leaves
    the active listings and takes no new runs until it is restored."""
    row = _experiment_row(project)
    row.deleted = deleted
    row.save(update_fields=["deleted", "updated_at"])


@transaction.atomic
def experiment_set_tag(*, project: Project, key: str, value: str) -> None:
    key, value = check_key(key, "tag"), _tag_value(value)
    if key == NOTE_TAG:
        tracking.project_update(project=project, description=value)
        return
    row = Experiment.objects.select_for_update().filter(project=project).first() or (
        _experiment_row(project)
    )
    tags = {**row.tags, key: value}
    _experiment_tags(tags)
    row.tags = tags
    row.save(update_fields=["tags", "updated_at"])


# --- runs --------------------------------------------------------------------------------------


def _hub_tag(key: str, value: str | None) -> str | None:
    """The hub tag mirroring an MLflow tag, or None (MLflow's own ``mlflow.*`` tags, and tags
    longer than the hub's ``HUB_MAX_TAG_CHARS``, stay MLflow-only)."""
    if value is None or key.startswith("mlflow."):
        return None
    tag = f"{key}={value}" if value else key
    return tag if len(tag) <= limit("HUB_MAX_TAG_CHARS") else None


def _mirror(run: Run, old: dict[str, str], new: dict[str, str | None]) -> tuple[list, list]:
    add, remove = [], []
    for key, value in new.items():
        before, after = _hub_tag(key, old.get(key)), _hub_tag(key, value)
        if before != after:
            if before:
                remove.append(before)
            if after:
                add.append(after)
    room = limit("HUB_MAX_TAGS_PER_RUN") - len(set(run.tags) - set(remove))
    add = [t for t in dict.fromkeys(add) if t not in run.tags][: max(room, 0)]
    return add, [t for t in remove if t in run.tags]


def run_create(
    request,
    *,
    project: Project,
    run_name: str | None,
    start_time: int | None,
    tags: dict[str, str],
) -> Run:
    """A hub run in ``project`` with an MLflow run id (32 hex digits, as MLflow makes them)."""
    row = Experiment.objects.filter(project=project).only("deleted").first()
    if row is not None and row.deleted:
        raise invalid(f"Experiment {project.pk} is deleted: restore it to start runs in it.")
    tags = {check_key(k, "tag"): _tag_value(v) for k, v in tags.items()}
    if len(tags) > MAX_BATCH_TAGS:
        raise invalid(f"A run is created with at most {MAX_BATCH_TAGS} tags.")
    name = run_name or tags.get(RUN_NAME_TAG) or _generated_name()
    if not isinstance(name, str) or len(name) > 200:
        raise invalid("Run names are at most 200 characters.")
    tags[RUN_NAME_TAG] = name
    hub_tags = [t for k, v in tags.items() if (t := _hub_tag(k, v))]
    hub_tags = hub_tags[: limit("HUB_MAX_TAGS_PER_RUN")]
    with transaction.atomic():
        run, _ = tracking.run_create(
            project=project,
            user=request.user,
            name=name,
            tags=hub_tags,
            notes=tags.get(NOTE_TAG, ""),
            run_id=secrets.token_hex(16),
            started_at=ms_to_datetime(start_time) if start_time is not None else None,
        )
        RunState.objects.create(run=run, tags=tags)
    return run


_ADJECTIVES = ("bold", "calm", "eager", "fast", "keen", "lucid", "merry", "quiet", "sly", "wise")
_NOUNS = ("ant", "bee", "crow", "deer", "eel", "fox", "gnu", "hare", "ibis", "lynx")


def _generated_name() -> str:
    """A readable name when the client gives none (MLflow generates ``adjective-animal-N``)."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{secrets.randbelow(1000)}"


def _state(run: Run, *, lock: bool = False) -> RunState:
    qs = RunState.objects.select_for_update() if lock else RunState.objects
    state = qs.filter(run=run).first()
    if state is None:
        RunState.objects.get_or_create(run=run)
        state = qs.get(run=run)
    return state


def run_update(*, run: Run, status: str | None, run_name: str | None) -> Run:
    hub_status = None
    if status is not None:
        hub_status = STATUS_TO_HUB.get(status) if isinstance(status, str) else None
        if hub_status is None:
            raise invalid(f"Unknown run status {status!r}.")
    if run_name is not None and (not isinstance(run_name, str) or len(run_name) > 200):
        raise invalid("Run names are at most 200 characters.")
    with transaction.atomic():
        if run_name:
            state = _state(run, lock=True)
            state.tags = {**state.tags, RUN_NAME_TAG: run_name}
            state.save(update_fields=["tags"])
        return tracking.run_update(run=run, status=hub_status, name=run_name or None)


def run_set_tags(*, run: Run, tags: dict[str, str]) -> None:
    """Set (overwrite) key/value tags; the special ones move the run's name and notes."""
    tags = {check_key(k, "tag"): _tag_value(v) for k, v in tags.items()}
    if not tags:
        return
    with transaction.atomic():
        state = _state(run, lock=True)
        run = Run.objects.select_for_update().get(pk=run.pk)
        add, remove = _mirror(run, state.tags, tags)
        state.tags = {**state.tags, **tags}
        state.save(update_fields=["tags"])
        name, notes = tags.get(RUN_NAME_TAG), tags.get(NOTE_TAG)
        if add or remove or name or notes is not None:
            if name is not None and len(name) > 200:
                raise invalid("Run names are at most 200 characters.")
            tracking.run_update(
                run=run,
                name=name or None,
                notes=notes,
                add_tags=add or None,
                remove_tags=remove or None,
            )


def run_delete_tag(*, run: Run, key: str) -> None:
    key = check_key(key, "tag")
    with transaction.atomic():
        state = _state(run, lock=True)
        if key not in state.tags:
            raise NotFound(f"Run {run.pk} has no tag {key!r}.")
        run = Run.objects.select_for_update().get(pk=run.pk)
        _, remove = _mirror(run, state.tags, {key: None})
        state.tags = {k: v for k, v in state.tags.items() if k != key}
        state.save(update_fields=["tags"])
        if remove or key == NOTE_TAG:
            tracking.run_update(
                run=run, remove_tags=remove or None, notes="" if key == NOTE_TAG else None
            )


def run_set_deleted(*, run: Run, deleted: bool) -> None:
    with transaction.atomic():
        state = _state(run, lock=True)
        state.deleted = deleted
        state.save(update_fields=["deleted"])
        tracking.run_update(
            run=run,
            add_tags=[DELETED_TAG] if deleted else None,
            remove_tags=None if deleted else [DELETED_TAG],
        )


def _number(value) -> float:
    """A metric value: a JSON number, or NaN/Infinity as MLflow's client sends them (strings)."""
    if isinstance(value, bool):
        raise invalid(f"Metric values must be numbers, not {value!r}.")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in (
        "nan",
        "infinity",
        "-infinity",
        "inf",
        "-inf",
    ):
        return float(value.strip().lower().replace("infinity", "inf"))
    raise invalid(f"Metric values must be numbers, not {str(value)[:40]!r}.")


def _int(value, what: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value):
        value = int(value)  # int64 may arrive as a JSON string
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{what} must be an integer, not {str(value)[:40]!r}.")
    return value


def _metrics_batch(metrics: list) -> tuple[ingest.Batch | None, dict[str, int]]:
    """The points as a validated ingest batch, and the non-finite ones dropped per key: the
    hub's metrics store keeps finite values only (see ``hub.tracking.ingest``), and a training
    loop must not fail on a NaN loss, so they are counted on the run instead."""
    keys, steps, values, times, dropped = [], [], [], [], {}
    checked: set[str] = set()
    for m in metrics:
        if not isinstance(m, dict):
            raise invalid("Each metric is an object {key, value, timestamp, step}.")
        key = m.get("key")
        if not isinstance(key, str) or key not in checked:  # few keys over many steps
            checked.add(check_key(key, "metric"))
        value = _number(m.get("value"))
        step = _int(m.get("step"), "step", 0)
        ts = _int(m.get("timestamp"), "timestamp", 0)
        if not math.isfinite(value):
            dropped[key] = dropped.get(key, 0) + 1
            continue
        if not 0 <= step < 2**53:
            raise invalid(f"Metric steps here are in [0, 2^53); {key!r} has step {step}.")
        keys.append(key)
        steps.append(step)
        values.append(value)
        times.append(ts / 1000 if ts else datetime.now(tz=UTC).timestamp())
    if not keys:
        return None, dropped
    batch = ingest.decode_json(
        {"key": keys, "step": steps, "value": values, "time": times},
        max_key=limit("HUB_MAX_KEY_CHARS"),
    )
    return batch, dropped


def _params(params: list) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in params:
        if not isinstance(p, dict):
            raise invalid("Each param is an object {key, value}.")
        key = check_key(p.get("key"), "param")
        value = p.get("value")
        value = "" if value is None else value
        if not isinstance(value, str):
            value = str(value)
        if key in out and out[key] != value:
            raise invalid(f"Duplicate param {key!r} with different values in one batch.")
        out[key] = value
    return out


def run_log_batch(*, run: Run, metrics: list, params: list, tags: list) -> None:
    """MLflow's log-batch: everything is validated before anything is written; then params
    (write-once: a different value is INVALID_PARAMETER_VALUE and nothing is written), tags,
    and the metric points. A retry after a failure part-way (an outage) is harmless: equal
    params are accepted again, tags overwrite, re-sent points collapse in the store."""
    for what, items, most in (
        ("metrics", metrics, MAX_BATCH_METRICS),
        ("params", params, MAX_BATCH_PARAMS),
        ("tags", tags, MAX_BATCH_TAGS),
    ):
        if not isinstance(items, list):
            raise invalid(f"'{what}' must be a list.")
        if len(items) > most:
            raise invalid(f"A batch holds at most {most} {what}; this one has {len(items)}.")
    if len(metrics) + len(params) + len(tags) > MAX_BATCH_ENTITIES:
        raise invalid(f"A batch holds at most {MAX_BATCH_ENTITIES} metrics, params and tags.")
    flat = _params(params)
    tag_map: dict[str, str] = {}
    for t in tags:
        if not isinstance(t, dict):
            raise invalid("Each tag is an object {key, value}.")
        tag_map[check_key(t.get("key"), "tag")] = _tag_value(t.get("value"))
    batch, dropped = _metrics_batch(metrics)
    if flat:
        tracking.run_log_params(run=run, params=flat)
    if tag_map:
        run_set_tags(run=run, tags=tag_map)
    if batch is not None:
        tracking.metrics_ingest(run=run, batch=batch)
    if dropped:
        with transaction.atomic():
            state = _state(run, lock=True)
            counts = dict(state.dropped_non_finite)
            for k, n in dropped.items():
                counts[k] = counts.get(k, 0) + n
            state.dropped_non_finite = counts
            state.save(update_fields=["dropped_non_finite"])


# --- artifacts ---------------------------------------------------------------------------------


def artifact_put(*, owner: Run | LoggedModel, path: str, read, declared: int | None) -> None:
    """Store one uploaded file as a registry file (pieces of at most 4 MiB, each a chunk of
    the blob store, verified and deduplicated like every other chunk) and record it at
    ``path`` of the run or logged model, replacing what was there. ``read(n)`` reads the
    request body."""
    from hub.registry import services as registry

    validate_path(path)
    most = limit("HUB_MLFLOW_MAX_ARTIFACT_BYTES")
    if declared is not None and declared > most:
        raise invalid(f"An artifact is at most {most} bytes (HUB_MLFLOW_MAX_ARTIFACT_BYTES).")
    chunks, total = [], 0
    while True:
        piece = read(CDC_MAX)
        if not piece:
            break
        total += len(piece)
        if total > most:
            raise invalid(f"An artifact is at most {most} bytes (HUB_MLFLOW_MAX_ARTIFACT_BYTES).")
        digest = chunk_hash(piece)
        registry.chunk_upload(digest=digest, parts=[piece])
        chunks.append([digest, len(piece)])
    with transaction.atomic():
        file = registry._file_from_chunks(path=path, chunks=chunks)
        if isinstance(owner, LoggedModel):
            ModelArtifact.objects.update_or_create(model=owner, path=path, defaults={"file": file})
        else:
            Artifact.objects.update_or_create(run=owner, path=path, defaults={"file": file})


# --- logged models (MLflow 3: every log_model) -------------------------------------------------

MODEL_STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
MAX_MODEL_PARAMS = 1000


def _model_params(params, *, most: int = MAX_BATCH_PARAMS) -> dict[str, str]:
    if not isinstance(params, list):
        raise invalid("'params' must be a list of {key, value} objects.")
    if len(params) > most:
        raise invalid(f"At most {most} params per request.")
    return _params(params)


def _model_tags(tags) -> dict[str, str]:
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise invalid("'tags' must be a list of {key, value} objects.")
    if len(tags) > MAX_BATCH_TAGS:
        raise invalid(f"At most {MAX_BATCH_TAGS} tags per request.")
    return {check_key(t.get("key"), "tag"): _tag_value(t.get("value")) for t in tags}


def logged_model_create(
    *,
    project: Project,
    name,
    source_run: Run | None,
    model_type,
    params: list,
    tags: list,
) -> LoggedModel:
    """A new logged model in ``project``, PENDING until the client finalizes it. Its files go
    to ``mlflow-artifacts:/<experiment>/models/<model_id>/artifacts``."""
    row = Experiment.objects.filter(project=project).only("deleted").first()
    if row is not None and row.deleted:
        raise invalid(f"Experiment {project.pk} is deleted: restore it to log models in it.")
    for what, value in (("name", name), ("model_type", model_type)):
        if value is not None and (not isinstance(value, str) or len(value) > 500):
            raise invalid(f"A model's {what} is a string of at most 500 characters.")
    return LoggedModel.objects.create(
        model_id=f"m-{secrets.token_hex(16)}",
        project=project,
        name=name or _generated_name(),
        source_run=source_run,
        model_type=model_type or "",
        params=_model_params(params),
        tags=_model_tags(tags),
    )


@transaction.atomic
def logged_model_update(
    *,
    model: LoggedModel,
    status=None,
    params: list | None = None,
    tags: list | None = None,
    remove_tag=None,
    deleted: bool | None = None,
) -> LoggedModel:
    model = LoggedModel.objects.select_for_update().get(pk=model.pk)
    if status is not None:
        if status not in MODEL_STATUSES:
            raise invalid(f"A model's status is one of {', '.join(MODEL_STATUSES)}.")
        model.status = status
    if params is not None:
        merged = {**model.params, **_model_params(params)}
        if len(merged) > MAX_MODEL_PARAMS:
            raise invalid(f"A logged model has at most {MAX_MODEL_PARAMS} params.")
        model.params = merged
    if tags is not None:
        merged = {**model.tags, **_model_tags(tags)}
        if len(merged) > MAX_MODEL_PARAMS:
            raise invalid(f"A logged model has at most {MAX_MODEL_PARAMS} tags.")
        model.tags = merged
    if remove_tag is not None:
        model.tags = {k: v for k, v in model.tags.items() if k != check_key(remove_tag, "tag")}
    if deleted is not None:
        model.deleted = deleted
    model.save()
    return model


def run_log_outputs(*, run: Run, models: list, request) -> None:
    """Record that ``run`` produced these logged models (``[{model_id, step}]``); each must
    be a model the caller may read."""
    from hub.compat.mlflow import selectors

    if not isinstance(models, list) or len(models) > MAX_BATCH_TAGS:
        raise invalid(f"'models' is a list of at most {MAX_BATCH_TAGS} {{model_id, step}}.")
    outputs = []
    for m in models:
        if not isinstance(m, dict):
            raise invalid("Each output is an object {model_id, step}.")
        model = selectors.logged_model_for(request, m.get("model_id"))
        outputs.append({"model_id": model.pk, "step": _int(m.get("step"), "step", 0)})
    with transaction.atomic():
        state = _state(run, lock=True)
        known = {(o["model_id"], o["step"]) for o in state.outputs}
        state.outputs = state.outputs + [
            o for o in outputs if (o["model_id"], o["step"]) not in known
        ]
        state.save(update_fields=["outputs"])
