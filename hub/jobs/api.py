"""Jobs REST API: launch, list, show, cancel, relaunch, logs (tail and SSE follow), artifacts,
profiles; and the endpoints workers report through."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import UTC, datetime

from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.accounts import selectors as accounts
from hub.accounts.models import Role
from hub.common.errors import Forbidden, InvalidInput, NotAuthenticated
from hub.common.openapi import errors, page_of
from hub.common.pagination import paginate
from hub.jobs import selectors, services
from hub.jobs.models import Job
from hub.registry import services as registry
from hub.registry.api import ChunkOut, ChunksMissingOut
from hub.tracking import selectors as tracking


def job_out(j: Job, *, detail: bool = False) -> dict:
    out = {
        "id": j.pk,
        "project": j.project.full_name,
        "kind": j.kind,
        "status": j.status,
        "reason": j.status_reason,
        "base": {"repo": j.base_repo, "ref": j.base_ref, "commit": j.base_commit}
        if j.base_repo
        else None,
        "target": {"repo": j.target_repo, "branch": j.target_branch} if j.target_repo else None,
        "resources": j.resources,
        "queue": j.queue,
        "created_by": j.created_by.username if j.created_by_id else None,
        "created_at": j.created_at,
        "started_at": j.started_at,
        "ended_at": j.ended_at,
        "duration_s": ((j.ended_at or timezone.now()) - j.started_at).total_seconds()
        if j.started_at
        else None,
        "progress": j.progress,
        "run_id": j.run_id or None,
        "result": {"commit": j.result_commit, "branch": j.result_branch}
        if j.result_commit
        else None,
        "cancel_requested": j.cancel_requested,
        "attempt": j.attempt,
        "relaunched_from": j.relaunched_from or None,
    }
    if detail:
        out.update(
            config=j.config,
            summary=j.summary,
            worker=j.worker,
            gpus=j.gpus,
            heartbeat_at=j.heartbeat_at,
            events={"received": j.events_received, "rejected": j.events_rejected},
            transitions=[
                {"from": t.from_status or None, "to": t.to_status, "at": t.at, "reason": t.reason}
                for t in j.transitions.all()
            ],
            artifacts=[
                {"path": a.path, "kind": a.kind, "size": a.file.size, "oid": a.file_id}
                for a in j.artifacts.select_related("file").order_by("path")
            ],
        )
    return out


_ANY = serializers.JSONField


class JobBaseOut(serializers.Serializer):
    repo = serializers.CharField()
    ref = serializers.CharField()
    commit = serializers.CharField()


class JobTargetOut(serializers.Serializer):
    repo = serializers.CharField()
    branch = serializers.CharField()


class JobResultOut(serializers.Serializer):
    commit = serializers.CharField()
    branch = serializers.CharField(allow_blank=True)


class JobResourcesOut(serializers.Serializer):
    """What a job asked for (hub.shared.resources: defaults and bounds)."""

    gpus = serializers.IntegerField(required=False)
    cpus = serializers.FloatField(required=False)
    memory_mb = serializers.FloatField(required=False)
    time_limit_s = serializers.FloatField(required=False)


class JobProgressOut(serializers.Serializer):
    step = serializers.FloatField(required=False)
    total = serializers.FloatField(required=False)
    eta_s = serializers.FloatField(required=False, allow_null=True)


class JobOut(serializers.Serializer):
    id = serializers.CharField()
    project = serializers.CharField()
    kind = serializers.ChoiceField(choices=Job.Kind.choices)
    status = serializers.ChoiceField(choices=Job.Status.choices)
    reason = serializers.CharField(allow_blank=True)
    base = JobBaseOut(allow_null=True)
    target = JobTargetOut(allow_null=True)
    resources = JobResourcesOut()
    queue = serializers.CharField(allow_blank=True)
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    duration_s = serializers.FloatField(allow_null=True)
    progress = JobProgressOut(allow_null=True)
    run_id = serializers.CharField(allow_null=True)
    result = JobResultOut(allow_null=True)
    cancel_requested = serializers.BooleanField()
    attempt = serializers.IntegerField()
    relaunched_from = serializers.CharField(allow_null=True)


class JobEventsOut(serializers.Serializer):
    received = serializers.IntegerField()
    rejected = serializers.IntegerField()


class JobTransitionOut(serializers.Serializer):
    from_ = serializers.CharField(allow_null=True)
    to = serializers.CharField()
    at = serializers.DateTimeField()
    reason = serializers.CharField(allow_blank=True)

    def get_fields(self):  # "from" is a Python keyword
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class JobArtifactOut(serializers.Serializer):
    path = serializers.CharField()
    kind = serializers.CharField(allow_blank=True)
    size = serializers.IntegerField()
    oid = serializers.CharField()


class JobDetailOut(JobOut):
    config = serializers.DictField(child=_ANY())
    summary = serializers.DictField(child=_ANY())
    worker = serializers.CharField(allow_blank=True)
    gpus = serializers.ListField(child=serializers.IntegerField())
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    events = JobEventsOut()
    transitions = JobTransitionOut(many=True)
    artifacts = JobArtifactOut(many=True)


class JobStartedOut(JobDetailOut):
    credential = serializers.CharField(help_text="this attempt's own credential, shown once")
    watermark = serializers.JSONField(
        allow_null=True,
        required=False,
        help_text="evaluate jobs: the text-watermark parameters for this attempt's samples "
        "(secret key material: the worker hands them to the sandbox only), or null",
    )


class JobSchemaOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Job.Kind.choices)
    schema = serializers.DictField(child=_ANY(), help_text="a JSON Schema")
    defaults = serializers.DictField(child=_ANY())


class ValidOut(serializers.Serializer):
    valid = serializers.BooleanField()


class LogLineOut(serializers.Serializer):
    seq = serializers.IntegerField()
    time = serializers.FloatField(help_text="epoch seconds")
    stream = serializers.CharField()
    line = serializers.CharField(allow_blank=True)


class JobLogsOut(serializers.Serializer):
    lines = LogLineOut(many=True)
    status = serializers.ChoiceField(choices=Job.Status.choices)


class ProfileOpOut(serializers.Serializer):
    op = serializers.CharField()
    calls = serializers.IntegerField()
    self_us = serializers.FloatField()
    total_us = serializers.FloatField()
    flops = serializers.FloatField()
    self_memory_bytes = serializers.FloatField()


class ProfileOut(serializers.Serializer):
    job = serializers.CharField()
    commit = serializers.CharField(allow_blank=True)
    ops = ProfileOpOut(many=True)


class ProfileSideOut(serializers.Serializer):
    job = serializers.CharField()
    commit = serializers.CharField(allow_blank=True)
    total_self_us = serializers.FloatField()


class ProfileCompareRowOut(serializers.Serializer):
    op = serializers.CharField()
    a = ProfileOpOut(allow_null=True)
    b = ProfileOpOut(allow_null=True)
    self_us_ratio = serializers.FloatField(allow_null=True)


class ProfileCompareOut(serializers.Serializer):
    a = ProfileSideOut()
    b = ProfileSideOut()
    ops = ProfileCompareRowOut(many=True)


class HeartbeatOut(serializers.Serializer):
    status = serializers.ChoiceField(choices=Job.Status.choices)
    cancel_requested = serializers.BooleanField()


class AcceptedOut(serializers.Serializer):
    accepted = serializers.IntegerField()


class WorkerArtifactOut(serializers.Serializer):
    path = serializers.CharField()
    oid = serializers.CharField()
    size = serializers.IntegerField()


class SchemaApi(APIView):
    @extend_schema(
        operation_id="jobs_schema",
        responses=JobSchemaOut,
        summary="The workload's config JSON Schema and defaults for a job kind",
        parameters=[OpenApiParameter("kind", str, enum=Job.Kind.values)],
    )
    def get(self, request):
        from workers.moe.config import config_json_schema, default_config

        kind = request.query_params.get("kind", "train")
        if kind not in Job.Kind.values:
            raise InvalidInput(f"Unknown job kind {kind!r}.", code="invalid_kind")
        return Response(
            {"kind": kind, "schema": config_json_schema(kind), "defaults": default_config(kind)}
        )


class ValidateApi(APIView):
    class InputSerializer(serializers.Serializer):
        kind = serializers.CharField(help_text=f"one of {', '.join(Job.Kind.values)}")
        config = serializers.JSONField(help_text="the workload config (a JSON object)")

    @extend_schema(
        operation_id="jobs_validate",
        request=InputSerializer,
        responses=ValidOut,
        summary="Validate a job config without launching (every problem listed)",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.validate_job_config(data.validated_data["kind"], data.validated_data["config"])
        return Response({"valid": True})


class JobListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        project = serializers.CharField(help_text="namespace/project for the job's run")
        kind = serializers.ChoiceField(choices=Job.Kind.choices)
        config = serializers.JSONField()
        base = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="namespace/repo@ref"
        )
        target = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="namespace/repo@branch"
        )
        resources = serializers.JSONField(required=False, default=dict)

    @extend_schema(
        operation_id="jobs_list",
        responses={200: page_of(JobOut), **errors(404)},
        summary="List jobs",
        parameters=[
            OpenApiParameter("project", str),
            OpenApiParameter("status", str),
            OpenApiParameter("kind", str),
        ],
    )
    def get(self, request):
        project = None
        if request.query_params.get("project"):
            ns, _, name = request.query_params["project"].partition("/")
            project = tracking.project_for(request, namespace=ns, name=name)
        elif not request.user.is_authenticated:
            raise NotAuthenticated("Name a project, or sign in.")
        qs = selectors.jobs_list(
            project=project,
            status=request.query_params.get("status"),
            kind=request.query_params.get("kind"),
        )
        if project is None and not request.user.is_superuser:
            qs = qs.filter(project__namespace__memberships__user=request.user)
        return paginate(self, qs, job_out)

    @extend_schema(
        operation_id="jobs_launch",
        request=InputSerializer,
        responses={201: JobDetailOut, **errors(404, 409, 503)},
        summary="Launch a job (the config is validated before anything is queued)",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        if not request.user.is_authenticated:
            raise NotAuthenticated("Authentication required.")
        ns, _, name = d["project"].partition("/")
        namespace = accounts.namespace_get(name=ns)
        accounts.require_role(request, namespace=namespace, role=Role.WRITE)
        from hub.tracking.services import project_get_or_create

        project = project_get_or_create(namespace=namespace, name=name)
        job = services.job_launch(
            project=project,
            user=request.user,
            kind=d["kind"],
            config=d["config"],
            base=d["base"],
            target=d["target"],
            resources=d["resources"],
        )
        return Response(job_out(job, detail=True), status=201)


class JobDetailApi(APIView):
    @extend_schema(
        operation_id="jobs_get",
        responses=JobDetailOut,
        summary="A job: status, transitions, progress, lineage, artifacts",
    )
    def get(self, request, job_id):
        return Response(job_out(selectors.job_for(request, job_id=job_id), detail=True))


class JobCancelApi(APIView):
    @extend_schema(
        operation_id="jobs_cancel",
        request=None,
        responses={200: JobDetailOut, **errors(409)},
        summary="Cancel a job (queued: at once; running: the worker kills its sandbox)",
    )
    def post(self, request, job_id):
        job = selectors.job_for(request, job_id=job_id, role=Role.WRITE)
        return Response(job_out(services.job_cancel(job=job), detail=True))


class JobRelaunchApi(APIView):
    @extend_schema(
        operation_id="jobs_relaunch",
        request=None,
        responses={201: JobDetailOut, **errors(400, 409, 503)},
        summary="Launch a finished job again with the same config and pinned inputs",
    )
    def post(self, request, job_id):
        job = selectors.job_for(request, job_id=job_id, role=Role.WRITE)
        return Response(
            job_out(services.job_relaunch(job=job, user=request.user), detail=True), status=201
        )


_STREAM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def _log_time(qp, name: str) -> float | None:
    """``since``/``until``: epoch seconds, or an ISO 8601 time (UTC when it names no zone)."""
    raw = (qp.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            dt = datetime.fromisoformat(raw[:-1] + "+00:00" if raw[-1:] in "zZ" else raw)
        except ValueError:
            raise InvalidInput(
                f"{name} is epoch seconds or an ISO 8601 time, not {raw[:40]!r}.",
                code="invalid_log_filter",
            ) from None
        value = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite time.", code="invalid_log_filter")
    return value


def log_filters(qp) -> dict:
    """``stream=stdout,stderr`` (a comma list), ``since`` and ``until`` as job_logs arguments."""
    streams = None
    if qp.get("stream") is not None:
        streams = sorted({s.strip() for s in qp["stream"].split(",") if s.strip()})
        bad = [s for s in streams if not _STREAM_NAME.fullmatch(s)]
        if not streams or bad or len(streams) > 16:
            raise InvalidInput(
                "stream is a comma list of up to 16 stream names (letters, digits, _ . -), "
                "e.g. stream=stdout,stderr.",
                code="invalid_log_filter",
            )
    since, until = _log_time(qp, "since"), _log_time(qp, "until")
    if since is not None and until is not None and since > until:
        raise InvalidInput("since is after until.", code="invalid_log_filter")
    return {"streams": streams, "time_min": since, "time_max": until}


_LOG_FILTER_PARAMS = [
    OpenApiParameter(
        "stream", str, description="Only these streams, a comma list: stdout,stderr,supervisor"
    ),
    OpenApiParameter(
        "since", str, description="Lines at or after this time: epoch seconds or ISO 8601"
    ),
    OpenApiParameter(
        "until", str, description="Lines at or before this time: epoch seconds or ISO 8601"
    ),
]


class JobLogsApi(APIView):
    @extend_schema(
        operation_id="jobs_logs",
        responses={200: JobLogsOut, **errors(503)},
        summary="Log lines (after_seq for paging, tail=N for the last N; stream, since, until filter)",
        parameters=[
            OpenApiParameter("after_seq", int),
            OpenApiParameter("tail", int),
            OpenApiParameter("limit", int),
            *_LOG_FILTER_PARAMS,
        ],
    )
    def get(self, request, job_id):
        job = selectors.job_for(request, job_id=job_id)
        qp = request.query_params
        try:
            after = int(qp["after_seq"]) if qp.get("after_seq") not in (None, "") else None
            tail = int(qp["tail"]) if qp.get("tail") else None
            limit = min(10_000, int(qp.get("limit", 1000)))
        except ValueError as e:
            raise InvalidInput(
                "after_seq, tail and limit are integers.", code="invalid_page"
            ) from e
        filters = log_filters(qp)
        lines = selectors.job_logs(job=job, after_seq=after, limit=limit, tail=tail, **filters)
        return Response({"lines": lines, "status": job.status})


class _EventStreamRenderer(BaseRenderer):
    """Lets content negotiation accept ``Accept: text/event-stream`` (browsers' EventSource);
    the view streams the events itself."""

    media_type = "text/event-stream"
    format = "sse"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if data is not None else b""


_LOG_EVENT = inline_serializer(
    "LogStreamEvent",
    fields={
        "event": serializers.ChoiceField(choices=["line", "end"]),
        "data": serializers.CharField(help_text="JSON: a log line, or {status} for end"),
        "id": serializers.CharField(required=False, help_text="the line's seq"),
    },
)


class JobLogStreamApi(APIView):
    renderer_classes = [JSONRenderer, _EventStreamRenderer]

    @extend_schema(
        operation_id="jobs_logs_stream",
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                _LOG_EVENT,
                description="events `line` (data: a log line as JSON, id: its seq) and a last "
                "`end` (data: {status}); a comment every 15 s keeps the connection alive",
            ),
            **errors(503),
        },
        summary="Follow the logs as Server-Sent Events (ends when the job ends)",
        parameters=[OpenApiParameter("after_seq", int), *_LOG_FILTER_PARAMS],
    )
    def get(self, request, job_id):
        job = selectors.job_for(request, job_id=job_id)
        filters = log_filters(request.query_params)
        # A reconnecting EventSource sends the last id it saw as Last-Event-ID.
        after = request.query_params.get("after_seq") or request.headers.get("Last-Event-ID")
        try:
            last = [int(after) if after not in (None, "") else -1]
        except ValueError as e:
            raise InvalidInput(
                "after_seq (or Last-Event-ID) must be an integer.", code="invalid_page"
            ) from e

        def page():
            return selectors.job_logs(
                job=job, after_seq=last[0] if last[0] >= 0 else None, limit=1000, **filters
            )

        # The first page is read before the response starts, so a store outage is a 503 (from
        # the one exception handler) rather than a 200 cut short; later it can only cut the
        # stream, and the EventSource reconnects with Last-Event-ID.
        first = [page()]

        def stream():
            idle_since = time.monotonic()
            while True:
                lines = first.pop() if first else page()
                for line in lines:
                    last[0] = line["seq"]
                    yield f"id: {line['seq']}\nevent: line\ndata: {json.dumps(line)}\n\n"
                status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
                if lines:
                    idle_since = time.monotonic()
                if status in Job.TERMINAL and not lines:
                    yield f"event: end\ndata: {json.dumps({'status': status})}\n\n"
                    return
                if time.monotonic() - idle_since > 15:
                    idle_since = time.monotonic()
                    yield ": keep-alive\n\n"
                time.sleep(0.5)

        resp = StreamingHttpResponse(stream(), content_type="text/event-stream")
        resp["Cache-Control"] = "no-cache"
        resp["X-Accel-Buffering"] = "no"
        return resp


class JobArtifactDownloadApi(APIView):
    @extend_schema(
        operation_id="jobs_artifacts_download",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **errors(503)},
        summary="Download a job artifact (profile trace, folded stacks, eval results...)",
    )
    def get(self, request, job_id, path):
        from hub.registry.selectors import file_iter

        job = selectors.job_for(request, job_id=job_id)
        # An artifact is made from the base model (a graph, an ONNX copy of its weights, a
        # profile): reading it needs the base repo's read too, not only the project's.
        selectors.require_base_readable(request, job)
        art = job.artifacts.select_related("file").filter(path=path).first()
        if art is None:
            from hub.common.errors import NotFound

            raise NotFound(f"Job {job_id} has no artifact {path}.", code="artifact_not_found")
        resp = StreamingHttpResponse(
            file_iter(file=art.file), content_type="application/octet-stream"
        )
        resp["Content-Length"] = str(art.file.size)
        resp["Content-Disposition"] = f'attachment; filename="{path.rsplit("/", 1)[-1]}"'
        resp["ETag"] = f'"{art.file_id}"'
        return resp


class ProfileApi(APIView):
    @extend_schema(
        operation_id="jobs_profile",
        responses={200: ProfileOut, **errors(503)},
        summary="A profile job's operator table (top ops by self time)",
    )
    def get(self, request, job_id):
        return Response(selectors.profile_ops(job=selectors.job_for(request, job_id=job_id)))


class ProfileCompareApi(APIView):
    @extend_schema(
        operation_id="jobs_profile_compare",
        responses={200: ProfileCompareOut, **errors(404, 503)},
        summary="Compare two profiles (e.g. of two commits) operator by operator",
        parameters=[
            OpenApiParameter("a", str, required=True),
            OpenApiParameter("b", str, required=True),
        ],
    )
    def get(self, request):
        a = selectors.job_for(request, job_id=request.query_params.get("a", ""))
        b = selectors.job_for(request, job_id=request.query_params.get("b", ""))
        return Response(selectors.profile_compare(a=a, b=b))


# --- what workers call -------------------------------------------------------------------------
# Only worker credentials work here (selectors.job_for_worker): a job attempt's own credential,
# or, to claim a job or fail one it could not start, the workers' service credential.


class WorkerStartIn(serializers.Serializer):
    worker = serializers.CharField(required=False, allow_blank=True, help_text="kept to 200 chars")
    gpus = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False)


class WorkerCountersIn(serializers.Serializer):
    received = serializers.IntegerField(min_value=0, required=False)
    rejected = serializers.IntegerField(min_value=0, required=False)


class WorkerHeartbeatIn(serializers.Serializer):
    # eta_s is null until the job can estimate it
    progress = serializers.DictField(child=_ANY(allow_null=True), required=False, allow_null=True)
    counters = WorkerCountersIn(required=False, allow_null=True)


class WorkerLogsIn(serializers.Serializer):
    lines = serializers.ListField(
        child=serializers.ListField(child=_ANY()),
        max_length=50_000,
        help_text="[seq, time, stream, text] each",
    )


class WorkerChunksIn(serializers.Serializer):
    chunks = serializers.ListField(child=serializers.CharField(), max_length=200_000)


class WorkerArtifactIn(serializers.Serializer):
    path = serializers.CharField()
    kind = serializers.CharField(required=False, allow_blank=True, default="")
    chunks = serializers.ListField(
        child=serializers.ListField(child=_ANY()), help_text="[hash, size] of each chunk, in order"
    )


class WorkerProfileIn(serializers.Serializer):
    ops = serializers.ListField(child=serializers.DictField(child=_ANY()))


class WorkerFinishIn(serializers.Serializer):
    status = serializers.ChoiceField(choices=[s for s in Job.Status.values if s in Job.TERMINAL])
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    # a job's summary holds nulls (resumed_from, a stop_reason not given, ...)
    summary = serializers.DictField(child=_ANY(allow_null=True), required=False, allow_null=True)
    result_commit = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    result_branch = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    run_id = serializers.CharField(required=False, allow_blank=True, allow_null=True)


class WorkerRequeueIn(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, default="infrastructure failure; retrying"
    )


def _input(serializer_class, request) -> dict:
    """A worker call's body, validated (a 400 validation_error, never a 500 from a wrong type)."""
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


def _attempt(request) -> bool:
    return getattr(request.auth, "kind", None) == "attempt"


class WorkerStartApi(APIView):
    @extend_schema(
        operation_id="worker_start",
        request=WorkerStartIn,
        responses={200: JobStartedOut, **errors(409)},
        tags=["worker"],
        summary="(worker) Take a queued job: queued → running",
    )
    def post(self, request, job_id):
        job = selectors.job_for_worker(request, job_id=job_id, action="claim")
        d = _input(WorkerStartIn, request)
        job, credential = services.job_start(
            job_id=job.pk,
            worker=d.get("worker", "")[:200],
            gpus=d.get("gpus", []),
        )
        # The attempt's own credential, shown once: every later worker call of this attempt uses it.
        # An evaluate job's watermark parameters travel here too, and are stored nowhere.
        from hub.provenance.services import job_watermark

        return Response(
            {
                **job_out(job, detail=True),
                "credential": credential,
                "watermark": job_watermark(job=job),
            }
        )


class WorkerHeartbeatApi(APIView):
    @extend_schema(
        operation_id="worker_heartbeat",
        request=WorkerHeartbeatIn,
        responses={200: HeartbeatOut, **errors(409)},
        tags=["worker"],
        summary="(worker) Heartbeat with progress; answers whether to cancel",
    )
    def post(self, request, job_id):
        job = selectors.job_for_worker(request, job_id=job_id)
        d = _input(WorkerHeartbeatIn, request)
        job = services.job_heartbeat(
            job=job, progress=d.get("progress"), counters=d.get("counters")
        )
        return Response({"status": job.status, "cancel_requested": job.cancel_requested})


class WorkerLogsApi(APIView):
    @extend_schema(
        operation_id="worker_logs",
        request=WorkerLogsIn,
        responses={200: AcceptedOut, **errors(409, 503)},
        tags=["worker"],
        summary="(worker) Append log lines [seq, time, stream, text]",
    )
    def post(self, request, job_id):
        job = selectors.job_for_worker(
            request, job_id=job_id, action="report" if _attempt(request) else "unstarted"
        )
        lines = request.data.get("lines") if isinstance(request.data, dict) else None
        if not isinstance(lines, list) or len(lines) > 50_000:
            raise InvalidInput(
                "'lines' must be a list of at most 50000 lines.", code="invalid_log_line"
            )
        return Response({"accepted": services.job_logs_ingest(job=job, lines=lines)})


class WorkerChunksMissingApi(APIView):
    @extend_schema(
        operation_id="worker_chunks_missing",
        request=WorkerChunksIn,
        responses=ChunksMissingOut,
        tags=["worker"],
        summary="(worker) Which artifact chunks must be uploaded",
    )
    def post(self, request, job_id):
        selectors.job_for_worker(request, job_id=job_id)
        d = _input(WorkerChunksIn, request)
        return Response({"missing": registry.chunks_missing(hashes=d["chunks"])})


class WorkerChunkUploadApi(APIView):
    from hub.registry.api import _RawParser

    parser_classes = [_RawParser]

    @extend_schema(
        operation_id="worker_chunks_upload",
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={200: ChunkOut, 201: ChunkOut},
        tags=["worker"],
        summary="(worker) Upload one artifact chunk",
    )
    def put(self, request, job_id, digest):
        from hub.registry.api import _body_parts

        selectors.job_for_worker(request, job_id=job_id)
        size, created = registry.chunk_upload(digest=digest, parts=_body_parts(request._request))
        return Response(
            {"hash": digest, "size": size, "created": created}, status=201 if created else 200
        )


class WorkerArtifactApi(APIView):
    @extend_schema(
        operation_id="worker_artifacts_add",
        request=WorkerArtifactIn,
        responses={201: WorkerArtifactOut, **errors(409, 413)},
        tags=["worker"],
        summary="(worker) Register an artifact file from uploaded chunks",
    )
    def post(self, request, job_id):
        job = selectors.job_for_worker(request, job_id=job_id)
        d = _input(WorkerArtifactIn, request)
        art = services.job_artifact_add(
            job=job, path=d["path"], kind=d["kind"][:32], chunks=d["chunks"]
        )
        return Response({"path": art.path, "oid": art.file_id, "size": art.file.size}, status=201)


class WorkerProfileApi(APIView):
    @extend_schema(
        operation_id="worker_profile",
        request=WorkerProfileIn,
        responses={200: AcceptedOut, **errors(409, 503)},
        tags=["worker"],
        summary="(worker) Store a profile's operator rows in ClickHouse",
    )
    def post(self, request, job_id):
        job = selectors.job_for_worker(request, job_id=job_id)
        rows = request.data.get("ops") if isinstance(request.data, dict) else None
        return Response({"accepted": services.job_profile_ops(job=job, rows=rows)})


class WorkerFinishApi(APIView):
    @extend_schema(
        operation_id="worker_finish",
        request=WorkerFinishIn,
        responses={200: JobDetailOut, **errors(409)},
        tags=["worker"],
        summary="(worker) running → succeeded | failed | cancelled, with results and lineage",
    )
    def post(self, request, job_id):
        # The service credential may fail a job it could not start (still queued), nothing more.
        unstarted = not _attempt(request)
        job = selectors.job_for_worker(
            request, job_id=job_id, action="unstarted" if unstarted else "report"
        )
        d = _input(WorkerFinishIn, request)
        if unstarted and d.get("status") != Job.Status.FAILED:
            raise Forbidden(
                "The workers' service credential can only fail a job it could not start.",
                code="not_a_worker",
            )
        job = services.job_finish(
            job=job,
            status=d.get("status"),
            reason=d["reason"][:10_000],
            summary=d.get("summary"),
            result_commit=str(d.get("result_commit") or ""),
            result_branch=str(d.get("result_branch") or ""),
            run_id=str(d.get("run_id") or ""),
        )
        return Response(job_out(job, detail=True))


class WorkerRequeueApi(APIView):
    @extend_schema(
        operation_id="worker_requeue",
        request=WorkerRequeueIn,
        responses={200: JobOut, **errors(409)},
        tags=["worker"],
        summary="(worker) running → queued after an infrastructure failure (retried)",
    )
    def post(self, request, job_id):
        job = selectors.job_for_worker(request, job_id=job_id)
        d = _input(WorkerRequeueIn, request)
        job = services.job_transition(
            job_id=job.pk,
            to=Job.Status.QUEUED,
            expect=Job.Status.RUNNING,
            reason=d["reason"][:2000],
        )
        return Response(job_out(job))
