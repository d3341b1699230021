"""Computation graphs REST API (the Inspector's Graph tab): a job's graph, a commit's newest
graph, and the diff of two commits' graphs. The ONNX file downloads through the job
artifacts endpoint (``onnx_url``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.common.openapi import errors
from hub.graphs import selectors


class GraphSourceOut(serializers.Serializer):
    job = serializers.CharField(help_text="the inspect job that made the graph")
    repo = serializers.CharField(help_text="namespace/name of the model")
    commit = serializers.CharField(help_text="the commit id the graph is of")
    created_at = serializers.DateTimeField()
    onnx_url = serializers.CharField(
        allow_null=True, help_text="the ONNX export (open it in Netron); null if it failed"
    )


class GraphOut(GraphSourceOut):
    graph = serializers.JSONField(
        help_text="graph.json: format, model, params_total, flops_total, dispatch, notes, "
        "modules [{path, type, params}], nodes [{id, op, kind, target, module, module_type, "
        "inputs, outputs [{shape, dtype}], params, flops, args}], edges [[from, to]]"
    )


class GraphDiffSummaryOut(serializers.Serializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    changed = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    params_a = serializers.IntegerField(allow_null=True)
    params_b = serializers.IntegerField(allow_null=True)


class GraphDiffBodyOut(serializers.Serializer):
    summary = GraphDiffSummaryOut()
    added = serializers.ListField(child=serializers.JSONField(), help_text="nodes only in B")
    removed = serializers.ListField(child=serializers.JSONField(), help_text="nodes only in A")
    changed = serializers.ListField(
        child=serializers.JSONField(),
        help_text="matched nodes that differ: {key, module, target, a_id, b_id, changes "
        "[{field, a, b}]}",
    )
    modules_added = serializers.ListField(child=serializers.CharField())
    modules_removed = serializers.ListField(child=serializers.CharField())


class GraphDiffOut(serializers.Serializer):
    a = GraphSourceOut()
    b = GraphSourceOut()
    diff = GraphDiffBodyOut()


class JobGraphApi(APIView):
    @extend_schema(
        operation_id="jobs_graph",
        responses={200: GraphOut, **errors(401, 404, 413)},
        summary="An inspect job's computation graph (nodes, edges, shapes, params, FLOPs)",
    )
    def get(self, request, job_id):
        return Response(GraphOut(selectors.job_graph(request, job_id=job_id)).data)


class CommitGraphApi(APIView):
    @extend_schema(
        operation_id="repos_commits_graph",
        responses={200: GraphOut, **errors(401, 404, 413)},
        summary="A commit's newest computation graph (from an inspect job)",
    )
    def get(self, request, namespace, name, sha):
        data = selectors.commit_graph(request, namespace=namespace, name=name, ref=sha)
        return Response(GraphOut(data).data)


class GraphDiffApi(APIView):
    @extend_schema(
        operation_id="graphs_diff",
        parameters=[
            OpenApiParameter("a", OpenApiTypes.STR, required=True, description="ns/repo@ref"),
            OpenApiParameter("b", OpenApiTypes.STR, required=True, description="ns/repo@ref"),
        ],
        responses={200: GraphDiffOut, **errors(400, 401, 404, 413)},
        summary="Diff of two commits' computation graphs: added, removed and changed nodes",
    )
    def get(self, request):
        qp = request.query_params
        data = selectors.graph_diff(request, a=qp.get("a", ""), b=qp.get("b", ""))
        return Response(GraphDiffOut(data).data)
