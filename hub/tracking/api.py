"""Tracking REST API: projects, runs, params, metric ingest and reads, search, comparison."""

from __future__ import annotations

import csv
import io
import json
import math

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.accounts import selectors as accounts
from hub.accounts.models import Role
from hub.common.errors import InvalidInput, NotAuthenticated
from hub.common.limits import BoundedJSONParser, limit, loads, read_body, request_too_large
from hub.common.openapi import errors, page_of
from hub.common.renderers import FastJSONRenderer
from hub.shared.moe_health import ACTIONS as ALERT_ACTIONS
from hub.shared.moe_health import ALERT_KINDS
from hub.tracking import ingest, report, selectors, services
from hub.tracking.models import Project, Run


class _RunJSONParser(BoundedJSONParser):
    """Run bodies: at most ``HUB_MAX_REQUEST_BYTES``; params are their only deep part."""

    too_deep_code = "params_too_deep"


def project_out(p: Project) -> dict:
    return {
        "id": p.full_name,
        "namespace": p.namespace.name,
        "name": p.name,
        "private": p.private,
        "description": p.description,
        "metric_directions": p.metric_directions,
        "created_at": p.created_at,
    }


def run_out(r: Run) -> dict:
    return {
        "id": r.pk,
        "project": r.project.full_name,
        "name": r.name,
        "group": r.group,
        "status": r.status,
        "user": r.user.username if r.user_id else None,
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "updated_at": r.updated_at,
        "params": r.params,
        "tags": r.tags,
        "notes": r.notes,
        "summary": r.summary,
        "commit": {"repo": r.commit_repo, "sha": r.commit_sha} if r.commit_sha else None,
        "job_id": r.job_id or None,
    }


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "array", "items": {}},
        ],
        "nullable": True,
    },
    component_name="ParamValue",
)
class ParamValueField(serializers.JSONField):
    """A run param: a scalar or a list (nested objects are flattened to dotted keys)."""


class SummaryStatsOut(serializers.Serializer):
    """What a run's summary keeps per metric key (maintained on ingest)."""

    last = serializers.FloatField()
    last_step = serializers.IntegerField(required=False)
    min = serializers.FloatField()
    min_step = serializers.IntegerField(required=False)
    max = serializers.FloatField()
    max_step = serializers.IntegerField(required=False)
    count = serializers.IntegerField(required=False, help_text="exact point count (GET /runs/{id})")


class ProjectOut(serializers.Serializer):
    id = serializers.CharField(help_text="namespace/name")
    namespace = serializers.CharField()
    name = serializers.CharField()
    private = serializers.BooleanField()
    description = serializers.CharField(allow_blank=True)
    metric_directions = serializers.DictField(
        child=serializers.ChoiceField(choices=["min", "max", "none"]),
        help_text="{metric key or glob: min | max | none}",
    )
    created_at = serializers.DateTimeField()


class AlertCountsOut(serializers.Serializer):
    count = serializers.IntegerField(help_text="alerts on the run")
    kinds = serializers.DictField(child=serializers.IntegerField(), help_text="{kind: count}")


class RunCommitOut(serializers.Serializer):
    repo = serializers.CharField()
    sha = serializers.CharField()


class RunOut(serializers.Serializer):
    id = serializers.CharField()
    project = serializers.CharField()
    name = serializers.CharField()
    group = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Run.Status.choices)
    user = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField()
    params = serializers.DictField(child=ParamValueField(), help_text="dotted keys")
    tags = serializers.ListField(child=serializers.CharField())
    notes = serializers.CharField(allow_blank=True)
    summary = serializers.DictField(child=SummaryStatsOut(), help_text="per metric key")
    commit = RunCommitOut(allow_null=True)
    job_id = serializers.CharField(allow_null=True)
    alerts = AlertCountsOut(required=False, help_text="MoE health alerts (GET /runs/{id})")


class RunHitOut(serializers.Serializer):
    id = serializers.CharField()
    project = serializers.CharField()
    name = serializers.CharField()
    group = serializers.CharField(allow_blank=True)
    user = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=Run.Status.choices)
    tags = serializers.ListField(child=serializers.CharField())
    notes = serializers.CharField(allow_blank=True)
    commit = serializers.CharField(allow_null=True, help_text="ns/repo@sha")
    job = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    params = serializers.DictField(child=ParamValueField())
    summary = serializers.DictField(child=SummaryStatsOut())
    alerts = AlertCountsOut(required=False, help_text="MoE health alerts on the run")


class FacetValueOut(serializers.Serializer):
    value = serializers.CharField(allow_blank=True)
    count = serializers.IntegerField()


class RunSearchOut(serializers.Serializer):
    results = RunHitOut(many=True)
    total = serializers.IntegerField()
    facets = serializers.DictField(child=FacetValueOut(many=True))
    next = serializers.ListField(
        child=serializers.JSONField(),
        allow_null=True,
        help_text="pass as ?cursor= (JSON) for the next page",
    )
    took_ms = serializers.FloatField()
    engine_elapsed_ms = serializers.FloatField()
    source = serializers.CharField(required=False, help_text="'database' when not from the index")


class MetricKeyOut(serializers.Serializer):
    key = serializers.CharField()
    count = serializers.IntegerField()
    first_step = serializers.IntegerField()
    last_step = serializers.IntegerField()
    last_value = serializers.FloatField()
    min_value = serializers.FloatField()
    max_value = serializers.FloatField()
    last_wall_time = serializers.FloatField()


class MetricKeysOut(serializers.Serializer):
    keys = MetricKeyOut(many=True)


class IngestOut(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="points written")
    keys = serializers.IntegerField(help_text="distinct keys in the batch")


class SeriesItemOut(serializers.Serializer):
    run_id = serializers.CharField()
    key = serializers.CharField()
    x_axis = serializers.ChoiceField(choices=["step", "time"])
    downsampled = serializers.BooleanField()
    points = serializers.IntegerField(help_text="points stored (before downsampling)")
    step = serializers.ListField(child=serializers.IntegerField())
    wall_time = serializers.ListField(child=serializers.FloatField())
    value = serializers.ListField(child=serializers.FloatField())
    min = serializers.ListField(child=serializers.FloatField(), required=False)
    max = serializers.ListField(child=serializers.FloatField(), required=False)
    count = serializers.ListField(child=serializers.IntegerField(), required=False)


class SeriesOut(serializers.Serializer):
    series = SeriesItemOut(many=True)


class CompareRunOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Run.Status.choices)


class CompareParamOut(serializers.Serializer):
    key = serializers.CharField()
    values = serializers.DictField(child=ParamValueField(), help_text="{run id: value}")
    recorded_in = serializers.ListField(child=serializers.CharField(), required=False)


class CompareMetricRunOut(serializers.Serializer):
    final = serializers.FloatField(help_text="the last value")
    final_step = serializers.IntegerField(required=False, allow_null=True)
    best = serializers.FloatField(help_text="the best value in the metric's direction")
    best_step = serializers.IntegerField(required=False, allow_null=True)
    delta_final = serializers.FloatField(required=False, help_text="final - the baseline's")
    delta_final_pct = serializers.FloatField(required=False, allow_null=True)


class CompareMetricOut(serializers.Serializer):
    key = serializers.CharField()
    direction = serializers.ChoiceField(choices=["min", "max", "none"])
    shared = serializers.BooleanField(required=False)
    missing = serializers.ListField(child=serializers.CharField(), required=False)
    best_run = serializers.CharField(allow_null=True)
    best_final_run = serializers.CharField(allow_null=True, required=False)
    runs = serializers.DictField(child=CompareMetricRunOut(), help_text="per run id")


class CorrelationOut(serializers.Serializer):
    param = serializers.CharField()
    spearman = serializers.FloatField()
    n = serializers.IntegerField()


class CompareReportOut(serializers.Serializer):
    runs = CompareRunOut(many=True)
    baseline = serializers.CharField()
    target = serializers.CharField(allow_null=True)
    params = CompareParamOut(many=True)
    same_params = serializers.IntegerField()
    partial_params = CompareParamOut(many=True, required=False)
    metrics = CompareMetricOut(many=True)
    correlations = CorrelationOut(many=True)
    summary = serializers.ListField(child=serializers.CharField())
    kind = serializers.CharField(required=False, help_text="comparing commits: the run kind")
    commits = serializers.DictField(child=serializers.CharField(), required=False)
    resolved = serializers.DictField(child=serializers.CharField(), required=False)


_METRICS_BATCH = inline_serializer(
    "MetricsBatch",
    fields={
        "key": serializers.JSONField(
            help_text="one key for every point, or a list (one per point)"
        ),
        "step": serializers.ListField(child=serializers.IntegerField()),
        "value": serializers.ListField(child=serializers.FloatField()),
        "time": serializers.ListField(
            child=serializers.FloatField(), required=False, allow_null=True
        ),
    },
)


def _csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def _float(value: str | None, name: str) -> float | None:
    """A finite number (``nan``, ``inf`` and ``1e999`` parse as floats but bound nothing)."""
    if value in (None, ""):
        return None
    try:
        f = float(value)
    except ValueError as e:
        raise InvalidInput(f"{name} must be a number.", code=f"invalid_{name}") from e
    if not math.isfinite(f):
        raise InvalidInput(f"{name} must be a finite number.", code=f"invalid_{name}")
    return f


def _int(value: str | None, name: str, default: int | None = None) -> int | None:
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as e:
        raise InvalidInput(f"{name} must be an integer.", code=f"invalid_{name}") from e


class ProjectListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        namespace = serializers.CharField(required=False)
        name = serializers.CharField(max_length=64)
        private = serializers.BooleanField(default=False)
        description = serializers.CharField(default="", allow_blank=True, max_length=10_000)

    @extend_schema(
        operation_id="projects_list",
        responses=page_of(ProjectOut),
        summary="List projects you can see",
        parameters=[OpenApiParameter("namespace", str)],
    )
    def get(self, request):
        from django.db.models import Q

        from hub.common.pagination import paginate

        qs = Project.objects.select_related("namespace").order_by("namespace__name", "name")
        if request.query_params.get("namespace"):
            qs = qs.filter(namespace__name=request.query_params["namespace"])
        if not (request.user.is_authenticated and request.user.is_superuser):
            visible = Q(private=False)
            if request.user.is_authenticated:
                visible |= Q(namespace__memberships__user=request.user)
            qs = qs.filter(visible).distinct()
        return paginate(self, qs, project_out)

    @extend_schema(
        operation_id="projects_create",
        request=InputSerializer,
        responses={201: ProjectOut, **errors(404)},
        summary="Create a project (or get it if it exists)",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not request.user.is_authenticated:
            raise NotAuthenticated("Authentication required: pass 'Authorization: Bearer <token>'.")
        d = data.validated_data
        ns = accounts.namespace_get(name=d.get("namespace") or request.user.username)
        accounts.require_role(request, namespace=ns, role=Role.WRITE)
        p = services.project_get_or_create(
            namespace=ns, name=d["name"], private=d["private"], description=d["description"]
        )
        return Response(project_out(p), status=201)


class ProjectDetailApi(APIView):
    class InputSerializer(serializers.Serializer):
        description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
        metric_directions = serializers.JSONField(required=False)

    @extend_schema(operation_id="projects_get", responses=ProjectOut, summary="A project")
    def get(self, request, namespace, name):
        return Response(project_out(selectors.project_for(request, namespace=namespace, name=name)))

    @extend_schema(
        operation_id="projects_update",
        request=InputSerializer,
        responses=ProjectOut,
        summary="Change a project: description, metric_directions ({key or glob: min|max|none})",
    )
    def patch(self, request, namespace, name):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = selectors.project_for(request, namespace=namespace, name=name, role=Role.WRITE)
        d = data.validated_data
        project = services.project_update(
            project=project,
            description=d.get("description"),
            metric_directions=d.get("metric_directions"),
        )
        return Response(project_out(project))


class ProjectRunsApi(APIView):
    parser_classes = [_RunJSONParser]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(required=False, allow_null=True, max_length=200)
        group = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
        params = serializers.JSONField(required=False, default=dict)
        tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        notes = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=100_000
        )
        run_id = serializers.CharField(
            required=False, allow_null=True, help_text="client-chosen id: idempotent create"
        )
        commit = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="ns/repo@sha"
        )
        job_id = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)

    @extend_schema(
        operation_id="projects_runs_search",
        responses={200: RunSearchOut, **errors(503)},
        summary="Search a project's runs (query syntax: params.moe.top_k:4 AND summary.val_loss:<2.1 ...)",
        parameters=[
            OpenApiParameter("q", str),
            OpenApiParameter("sort", str, description="comma list, '-' = desc"),
            OpenApiParameter("page_size", int),
            OpenApiParameter("offset", int),
            OpenApiParameter("cursor", str, description="'next' of the previous page"),
            OpenApiParameter("facets", str),
        ],
    )
    def get(self, request, namespace, name):
        project = selectors.project_for(request, namespace=namespace, name=name)
        qp = request.query_params
        cursor = None
        if qp.get("cursor"):
            try:
                cursor = json.loads(qp["cursor"])
            except ValueError as e:
                raise InvalidInput("Bad cursor.", code="invalid_cursor") from e
        page_size = min(1000, max(1, _int(qp.get("page_size"), "page_size", 50)))
        return Response(
            selectors.run_search(
                project=project,
                q=qp.get("q", ""),
                sort=_csv(qp.get("sort")),
                page_size=page_size,
                offset=_int(qp.get("offset"), "offset", 0),
                search_after=cursor,
                facets=_csv(qp.get("facets")),
            )
        )

    @extend_schema(
        operation_id="projects_runs_create",
        request=InputSerializer,
        responses={200: RunOut, 201: RunOut, **errors(409)},
        summary="Start a run (200: the run of a client-chosen run_id that exists)",
    )
    def post(self, request, namespace, name):
        project = selectors.project_for(request, namespace=namespace, name=name, role=Role.WRITE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = dict(data.validated_data)
        repo, _, sha = (d.pop("commit") or "").partition("@")
        run, created = services.run_create(
            project=project, user=request.user, commit_repo=repo, commit_sha=sha, **d
        )
        return Response(run_out(run), status=201 if created else 200)


class RunDetailApi(APIView):
    parser_classes = [_RunJSONParser]

    class PatchSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Run.Status.choices, required=False)
        name = serializers.CharField(required=False, max_length=200)
        group = serializers.CharField(required=False, allow_blank=True, max_length=200)
        notes = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
        add_tags = serializers.ListField(child=serializers.CharField(), required=False)
        remove_tags = serializers.ListField(child=serializers.CharField(), required=False)
        commit = serializers.CharField(
            required=False, allow_blank=True, help_text="ns/repo@sha (lineage)"
        )
        job_id = serializers.CharField(required=False, allow_blank=True, max_length=64)

    @extend_schema(
        operation_id="runs_get",
        responses=RunOut,
        summary="A run (its summary carries each key's exact point count)",
    )
    def get(self, request, run_id):
        run = selectors.run_for(request, run_id=run_id)
        alerts = selectors.alert_counts([run.pk]).get(run.pk, {"count": 0, "kinds": {}})
        return Response(
            {**run_out(run), "summary": selectors.summary_with_counts(run=run), "alerts": alerts}
        )

    @extend_schema(
        operation_id="runs_update",
        request=PatchSerializer,
        responses={200: RunOut, **errors(409)},
        summary="Finish a run, rename it, edit notes or tags",
    )
    def patch(self, request, run_id):
        run = selectors.run_for(request, run_id=run_id, role=Role.WRITE)
        data = self.PatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = dict(data.validated_data)
        if "commit" in d:
            d["commit_repo"], _, d["commit_sha"] = d.pop("commit").partition("@")
        return Response(run_out(services.run_update(run=run, **d)))

    @extend_schema(
        operation_id="runs_delete",
        request=None,
        responses={204: None, **errors(503)},
        summary="Delete a run and its metrics",
    )
    def delete(self, request, run_id):
        services.run_delete(run=selectors.run_for(request, run_id=run_id, role=Role.WRITE))
        return Response(status=204)


class RunParamsApi(APIView):
    parser_classes = [_RunJSONParser]

    class InputSerializer(serializers.Serializer):
        params = serializers.JSONField()

    @extend_schema(
        operation_id="runs_params_log",
        request=InputSerializer,
        responses={200: RunOut, **errors(409)},
        summary="Log params (write-once per key)",
    )
    def post(self, request, run_id):
        run = selectors.run_for(request, run_id=run_id, role=Role.WRITE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            run_out(services.run_log_params(run=run, params=data.validated_data["params"]))
        )


class _BinaryOrJsonParser(JSONParser):
    """Binary batches are read raw by the view. JSON is parsed leniently (NaN, Infinity
    allowed) so that non-finite values meet the explicit ``non_finite_value`` policy
    instead of a generic parse error."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        if media_type and media_type.startswith(ingest.BINARY_CONTENT_TYPE):
            return None
        return loads(
            read_body(stream, parser_context, limit("HUB_MAX_METRICS_REQUEST_BYTES")),
            too_deep_code="invalid_batch",
        )


class RunMetricsApi(APIView):
    parser_classes = [_BinaryOrJsonParser]

    @extend_schema(
        operation_id="runs_metrics_keys",
        responses={200: MetricKeysOut, **errors(503)},
        summary="Metric keys a run logged, with counts and last/min/max",
    )
    def get(self, request, run_id):
        return Response(
            {"keys": selectors.metric_keys(run=selectors.run_for(request, run_id=run_id))}
        )

    @extend_schema(
        operation_id="runs_metrics_ingest",
        request={
            "application/json": _METRICS_BATCH,
            ingest.BINARY_CONTENT_TYPE: OpenApiTypes.BINARY,
        },
        responses={200: IngestOut, **errors(409, 503)},
        summary="Ingest a batch of points: JSON columns {key, step, value, time} or the binary encoding",
    )
    def post(self, request, run_id):
        run = selectors.run_for(request, run_id=run_id, role=Role.WRITE)
        max_body, max_key = limit("HUB_MAX_METRICS_REQUEST_BYTES"), limit("HUB_MAX_KEY_CHARS")
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > max_body:
            raise request_too_large(max_body, length)
        if (request.content_type or "").startswith(ingest.BINARY_CONTENT_TYPE):
            body = request._request.read(max_body + 1)
            if len(body) > max_body:
                raise request_too_large(max_body)
            batch = ingest.decode_binary(body, max_key=max_key)
        else:
            batch = ingest.decode_json(request.data, max_key=max_key)
        return Response(services.metrics_ingest(run=run, batch=batch))


class SeriesApi(APIView):
    renderer_classes = [FastJSONRenderer]

    @extend_schema(
        operation_id="metrics_series",
        responses={200: SeriesOut, **errors(404, 503)},
        summary="Series for many runs × keys, downsampled server-side to `buckets` (min/max/last per bucket)",
        parameters=[
            OpenApiParameter("runs", str, required=True),
            OpenApiParameter("keys", str, required=True),
            OpenApiParameter("x", str),
            OpenApiParameter("buckets", int),
            OpenApiParameter("min", float),
            OpenApiParameter("max", float),
        ],
    )
    def get(self, request):
        qp = request.query_params
        runs = selectors.runs_for(request, run_ids=_csv(qp.get("runs")))
        return Response(
            {
                "series": selectors.series(
                    runs=runs,
                    keys=_csv(qp.get("keys")),
                    x=qp.get("x", "step"),
                    buckets=_int(qp.get("buckets"), "buckets"),
                    x_min=_float(qp.get("min"), "min"),
                    x_max=_float(qp.get("max"), "max"),
                )
            }
        )


class ExportApi(APIView):
    @extend_schema(
        summary="Every point of a run at full resolution, streamed as CSV (default) or Parquet",
        parameters=[
            OpenApiParameter("keys", str),
            OpenApiParameter(
                "as",
                str,
                enum=["csv", "parquet"],
                description="the file format (`format` is DRF's own)",
            ),
        ],
        operation_id="runs_metrics_export",
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            **errors(503),
        },
    )
    def get(self, request, run_id):
        fmt = request.query_params.get("as", "csv")
        if fmt not in ("csv", "parquet"):
            raise InvalidInput("as must be csv or parquet.", code="invalid_format")
        run = selectors.run_for(request, run_id=run_id)
        batches = selectors.export_batches(run=run, keys=_csv(request.query_params.get("keys")))
        if fmt == "parquet":
            resp = StreamingHttpResponse(
                _parquet_stream(batches), content_type="application/vnd.apache.parquet"
            )
        else:
            resp = StreamingHttpResponse(_csv_stream(batches), content_type="text/csv")
        resp["Content-Disposition"] = f'attachment; filename="{run.pk}-metrics.{fmt}"'
        return resp


def _csv_stream(batches):
    buf = io.StringIO()
    csv.writer(buf).writerow(["key", "step", "wall_time", "value"])
    yield buf.getvalue()
    for batch in batches:
        buf = io.StringIO()
        csv.writer(buf).writerows((k, s, repr(t), repr(v)) for k, s, t, v in batch)
        yield buf.getvalue()


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken out as they come, so a Parquet file can be
    streamed row group by row group (its footer goes out last)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self._parts.append(bytes(b))
        self._pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def _parquet_stream(batches):
    """One row group per store batch (50,000 points), zstd-compressed; pandas, polars and
    DuckDB read the result directly."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("key", pa.string()),
            ("step", pa.int64()),
            ("wall_time", pa.float64()),
            ("value", pa.float64()),
        ]
    )
    sink = _Drain()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for batch in batches:
            cols = list(zip(*batch, strict=True))
            writer.write_table(
                pa.Table.from_arrays(
                    [pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)],
                    schema=schema,
                )
            )
            yield sink.take()
    yield sink.take()


def _commit_label(ref: str, run: Run) -> str:
    """``repo@abcdef12`` for a commit id, ``repo@branch (abcdef12)`` for a branch or tag."""
    repo, _, name = ref.partition("@")
    short = run.commit_sha[:8]
    is_id = short and run.commit_sha.startswith(name.lower())
    return f"{repo.split('/')[-1]}@{short}" if is_id else f"{repo.split('/')[-1]}@{name} ({short})"


class CompareApi(APIView):
    @extend_schema(
        operation_id="runs_compare",
        responses={
            (200, "application/json"): CompareReportOut,
            (200, "text/markdown"): OpenApiTypes.STR,
            (200, "text/html"): OpenApiTypes.STR,
            **errors(404, 503),
        },
        summary="Comparison report of 2..N runs, or of N model commits through their linked runs",
        description=(
            "With commits, each commit's run of one kind is compared (``kind``, else the kind "
            "every commit has a run of); the report's ``kind`` says which, ``commits`` maps each "
            "ref to its run and ``resolved`` to its commit id. Each metric carries its "
            "``direction`` (min, max or none: the project's metric_directions, then the names); "
            "``best_run`` is set only for a metric every run logged that has a direction."
        ),
        parameters=[
            OpenApiParameter("runs", str),
            OpenApiParameter(
                "commits", str, description="ns/repo@ref,... (commit ids, branches or tags)"
            ),
            OpenApiParameter("kind", str, enum=[*selectors.RUN_KINDS, "run"]),
            OpenApiParameter("baseline", str, description="a run id, or one of the commits"),
            OpenApiParameter("target", str),
            OpenApiParameter("goal", str, enum=["min", "max", "none"]),
            OpenApiParameter("metrics", str),
            OpenApiParameter("render", str, enum=["json", "markdown", "html"]),
        ],
    )
    def get(self, request):
        qp = request.query_params
        baseline, labels, by_commit = qp.get("baseline"), None, None
        if qp.get("commits"):
            if qp.get("runs"):
                raise InvalidInput("Pass runs or commits, not both.", code="invalid_runs")
            by_commit = selectors.runs_for_commits(
                request, commits=_csv(qp.get("commits")), kind=qp.get("kind") or None
            )
            runs = list(dict.fromkeys(by_commit.runs.values()))
            labels = {r.pk: _commit_label(ref, r) for ref, r in by_commit.runs.items()}
            if baseline in by_commit.runs:
                baseline = by_commit.runs[baseline].pk
        else:
            runs = selectors.runs_for(request, run_ids=_csv(qp.get("runs")))
        rep = selectors.compare(
            runs=runs,
            target=qp.get("target"),
            baseline=baseline,
            goal=qp.get("goal"),
            metrics=_csv(qp.get("metrics")) or None,
            labels=labels,
        )
        if by_commit is not None:
            rep["commits"] = {ref: r.pk for ref, r in by_commit.runs.items()}
            rep["resolved"] = by_commit.shas
            rep["kind"] = by_commit.kind
        fmt = qp.get("render", "json")  # not "format": DRF reserves it for content negotiation
        if fmt == "markdown":
            resp = HttpResponse(
                report.to_markdown(rep), content_type="text/markdown; charset=utf-8"
            )
            resp["Content-Disposition"] = 'attachment; filename="comparison.md"'
            return resp
        if fmt == "html":  # a download: never rendered inline in the hub's origin
            resp = HttpResponse(report.to_html(rep), content_type="text/html; charset=utf-8")
            resp["Content-Disposition"] = 'attachment; filename="comparison.html"'
            return resp
        if fmt != "json":
            raise InvalidInput("render must be json, markdown or html.", code="invalid_render")
        return Response(rep)


# --- MoE health alerts (hub/shared/moe_health.py) ---------------------------------------------

#: Alerts one post may carry, and the JSON text of one alert's details.
MAX_ALERTS_PER_POST = 100
MAX_ALERT_DETAILS_CHARS = 8192


class RunAlertOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(ALERT_KINDS))
    key = serializers.CharField(help_text="the episode's subject: collapse/layer1/expert3, ...")
    step = serializers.IntegerField()
    time = serializers.DateTimeField()
    message = serializers.CharField()
    details = serializers.DictField(child=serializers.JSONField())
    action = serializers.ChoiceField(choices=list(ALERT_ACTIONS))


class RunAlertsOut(serializers.Serializer):
    run = serializers.CharField()
    count = serializers.IntegerField()
    kinds = serializers.DictField(child=serializers.IntegerField())
    results = RunAlertOut(many=True)


class RunAlertsPostOut(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="already recorded (same key and step)")


def _alert_out(a) -> dict:
    return {
        "kind": a.kind,
        "key": a.key,
        "step": a.step,
        "time": a.time,
        "message": a.message,
        "details": a.details,
        "action": a.action,
    }


class RunAlertsApi(APIView):
    parser_classes = [_RunJSONParser]

    class AlertIn(serializers.Serializer):
        kind = serializers.ChoiceField(choices=list(ALERT_KINDS))
        key = serializers.CharField(max_length=200)
        step = serializers.IntegerField(min_value=0, max_value=2**62)
        message = serializers.CharField(max_length=2000)
        details = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)
        action = serializers.ChoiceField(
            choices=list(ALERT_ACTIONS), required=False, default="none"
        )
        time = serializers.FloatField(
            required=False, allow_null=True, min_value=0, max_value=1e11, help_text="unix seconds"
        )

        def validate_details(self, value):
            if len(json.dumps(value, default=str)) > MAX_ALERT_DETAILS_CHARS:
                raise serializers.ValidationError(
                    f"at most {MAX_ALERT_DETAILS_CHARS} characters of JSON"
                )
            return value

    class InputSerializer(serializers.Serializer):
        alerts = serializers.ListField(
            child=serializers.DictField(), min_length=1, max_length=MAX_ALERTS_PER_POST
        )

    @extend_schema(
        operation_id="runs_alerts_list",
        parameters=[OpenApiParameter("kind", str, enum=list(ALERT_KINDS))],
        responses={200: RunAlertsOut, **errors(400, 404)},
        summary="A run's MoE health alerts, in step order",
    )
    def get(self, request, run_id):
        run = selectors.run_for(request, run_id=run_id)
        kind = request.query_params.get("kind") or None
        if kind is not None and kind not in ALERT_KINDS:
            raise InvalidInput(
                f"kind must be one of {', '.join(ALERT_KINDS)}.", code="invalid_alert_kind"
            )
        alerts = selectors.run_alerts(run=run, kind=kind)
        counts = selectors.alert_counts([run.pk]).get(run.pk, {"count": 0, "kinds": {}})
        return Response({"run": run.pk, **counts, "results": [_alert_out(a) for a in alerts]})

    @extend_schema(
        operation_id="runs_alerts_add",
        request=inline_serializer(
            "RunAlertsIn", {"alerts": AlertIn(many=True, help_text="at most 100")}
        ),
        responses={200: RunAlertsPostOut, **errors(400, 404, 413)},
        summary="Record MoE health alerts on a run (a job's supervisor does; idempotent)",
    )
    def post(self, request, run_id):
        from datetime import UTC, datetime

        run = selectors.run_for(request, run_id=run_id, role=Role.WRITE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        items = self.AlertIn(data=data.validated_data["alerts"], many=True)
        items.is_valid(raise_exception=True)
        alerts = []
        for a in items.validated_data:
            a = dict(a)
            t = a.pop("time", None)
            a["time"] = datetime.fromtimestamp(t, UTC) if t is not None else None
            alerts.append(a)
        return Response(services.run_alerts_add(run=run, alerts=alerts))
