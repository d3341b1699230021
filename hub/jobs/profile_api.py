"""Profile memory (tensor lifetimes) and profile diff endpoints (``hub/jobs/profiles.py``)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.common.errors import InvalidInput
from hub.common.openapi import errors
from hub.jobs import profiles, selectors
from hub.jobs.models import Job

# --- memory -----------------------------------------------------------------------------------


class TensorLifetimeOut(serializers.Serializer):
    id = serializers.IntegerField()
    category = serializers.CharField(
        help_text="parameter, gradient, optimizer_state, activation, temporary, input or other"
    )
    bytes = serializers.IntegerField()
    alloc_ms = serializers.FloatField(
        allow_null=True, help_text="ms from the first memory event; null: before profiling"
    )
    free_ms = serializers.FloatField(allow_null=True, help_text="null: alive at the end")
    op = serializers.CharField(allow_null=True, help_text="the aten op that allocated it")
    module = serializers.CharField(allow_null=True, help_text="module path or moe:: scope")


class MemoryPeakOut(serializers.Serializer):
    t_ms = serializers.FloatField()
    bytes = serializers.IntegerField()
    by_category = serializers.DictField(child=serializers.IntegerField())
    live_count = serializers.IntegerField(help_text="tensors live at the peak (all of them)")
    live = serializers.ListField(
        child=serializers.IntegerField(), help_text="ids of the largest of them, largest first"
    )


class ProfileMemoryOut(serializers.Serializer):
    job = serializers.CharField()
    commit = serializers.CharField(allow_blank=True)
    device = serializers.CharField()
    categories = serializers.ListField(child=serializers.CharField())
    columns = serializers.ListField(child=serializers.CharField())
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="[t_ms, bytes per category...] (columns)",
    )
    duration_ms = serializers.FloatField()
    peak = MemoryPeakOut()
    tensor_count = serializers.IntegerField(help_text="tensors the profile saw")
    tensors = TensorLifetimeOut(many=True)
    longest = serializers.ListField(child=serializers.IntegerField())
    largest = serializers.ListField(child=serializers.IntegerField())
    snapshot = serializers.BooleanField(
        help_text="a CUDA allocator snapshot (profile/memory_snapshot.pickle) is available"
    )


class ProfileMemoryApi(APIView):
    @extend_schema(
        operation_id="jobs_profile_memory",
        responses={200: ProfileMemoryOut, **errors(400, 404, 409, 413)},
        summary="A profile's memory by category over time, its peak and tensor lifetimes",
    )
    def get(self, request, job_id):
        return Response(profiles.memory(job=selectors.job_for(request, job_id=job_id)))


# --- diff -------------------------------------------------------------------------------------


class ProfileDiffPrepareIn(serializers.Serializer):
    a = serializers.CharField(help_text="a profile job id, or namespace/repo@ref")
    b = serializers.CharField(help_text="a profile job id, or namespace/repo@ref")
    config = serializers.JSONField(
        required=False,
        default=None,
        help_text="profile settings for both; default: a side's job's, or the newest profile "
        "of either commit",
    )
    project = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="where to launch missing ones"
    )
    resources = serializers.JSONField(required=False, default=dict)


class ProfileDiffSideOut(serializers.Serializer):
    spec = serializers.CharField()
    job = serializers.CharField()
    commit = serializers.CharField(allow_blank=True)
    repo = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=Job.Status.choices)
    launched = serializers.BooleanField()


class ProfileDiffPrepareOut(serializers.Serializer):
    a = ProfileDiffSideOut()
    b = ProfileDiffSideOut()
    ready = serializers.BooleanField(help_text="both succeeded: GET the diff")


class ProfileDiffJobOut(serializers.Serializer):
    job = serializers.CharField()
    commit = serializers.CharField(allow_blank=True)
    repo = serializers.CharField(allow_blank=True)
    steps = serializers.IntegerField()


class ProfileDiffOpOut(serializers.Serializer):
    op = serializers.CharField()
    a_self_us = serializers.FloatField(allow_null=True, help_text="per step")
    b_self_us = serializers.FloatField(allow_null=True)
    self_ratio = serializers.FloatField(allow_null=True, help_text="B/A")
    a_memory_bytes = serializers.FloatField(allow_null=True)
    b_memory_bytes = serializers.FloatField(allow_null=True)
    memory_ratio = serializers.FloatField(allow_null=True)
    delta_us = serializers.FloatField(help_text="B - A self time per step: the sort key")
    only = serializers.CharField(allow_null=True, help_text="a or b: the op is on one side only")


class ProfileDiffFrameOut(serializers.Serializer):
    name = serializers.CharField()
    a_us = serializers.FloatField()
    b_us = serializers.FloatField()
    ratio = serializers.FloatField(allow_null=True)
    only = serializers.CharField(allow_null=True)
    children = serializers.ListField(child=serializers.DictField(), help_text="frames, nested")


class ProfileDiffFlameOut(serializers.Serializer):
    root = ProfileDiffFrameOut()
    frames = serializers.IntegerField()
    truncated = serializers.BooleanField()


class ProfileDiffSummaryOut(serializers.Serializer):
    a_total_us = serializers.FloatField()
    b_total_us = serializers.FloatField()
    total_ratio = serializers.FloatField(allow_null=True)
    ops_only_in_a = serializers.IntegerField()
    ops_only_in_b = serializers.IntegerField()


class ProfileDiffOut(serializers.Serializer):
    a = ProfileDiffJobOut()
    b = ProfileDiffJobOut()
    same_settings = serializers.BooleanField()
    summary = ProfileDiffSummaryOut()
    ops = ProfileDiffOpOut(many=True)
    flame = ProfileDiffFlameOut()


class ProfileDiffApi(APIView):
    @extend_schema(
        operation_id="jobs_profile_diff",
        responses={200: ProfileDiffOut, **errors(400, 404, 409, 413, 503)},
        summary="Diff two finished profiles: per-op self time / memory ratios (B/A) and a "
        "differential flame graph",
        parameters=[
            OpenApiParameter("a", str, required=True, description="profile job id"),
            OpenApiParameter("b", str, required=True, description="profile job id"),
        ],
    )
    def get(self, request):
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        if not a or not b:
            raise InvalidInput("Both a and b are needed.", code="profile_side_missing")
        return Response(
            profiles.diff(
                a=selectors.job_for(request, job_id=a), b=selectors.job_for(request, job_id=b)
            )
        )

    @extend_schema(
        operation_id="jobs_profile_diff_prepare",
        request=ProfileDiffPrepareIn,
        responses={200: ProfileDiffPrepareOut, **errors(400, 401, 403, 404, 409, 503)},
        summary="Pair two profiles of identical settings for a diff: jobs or refs; for a ref "
        "reuse its commit's profile with those settings or launch one",
    )
    def post(self, request):
        data = ProfileDiffPrepareIn(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        return Response(
            profiles.prepare(
                request,
                a=d["a"],
                b=d["b"],
                config=d["config"],
                project=d["project"],
                resources=d["resources"] or None,
            )
        )
