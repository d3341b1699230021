"""The Inspector's model views, answered by the sandboxed inference engine.

``POST /api/v1/repos/{ns}/{name}/attention``      {ref, prompt}
    per layer and head the attention weights over the prompt's byte tokens (uint8: round(255·a),
    lower triangle: row i holds i+1 values), per MoE layer each token's experts and gates, and
    per layer ``max_abs_diff``: |explicit attention output - SDPA output| (the weights shown are
    the ones the model used; ``workers.moe.introspect``).
``POST /api/v1/repos/{ns}/{name}/routing-diff``   {a, b, b_repo?}
    the routing of commit a (this repo) and commit b (``b_repo``, default this repo) on the
    probe set (``workers.moe.probe_set``), compared by ``hub.shared.routing_diff``.

Both are engine requests (``inspect_attention``, ``routing_probe``) on the inference queue:
the generation's limits, rate limit, per-user cap, credential and sandbox apply unchanged.
Authorisation is a read of each repo (private repos 404 to others).
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.common.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from hub.common.limits import limit
from hub.common.openapi import errors
from hub.inference import services
from hub.inference.api import _start_error
from hub.registry import selectors as registry
from hub.shared.routing_diff import RoutingDiffError, routing_diff

PROBE_SET_VERSION = 1  # workers.moe.probe_set.PROBE_SET_VERSION (the hub imports no torch side)


def run_engine_request(
    request, *, repo, ref: str, op: str, prompt: str = "", extra: dict | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One inspection request through the inference worker: (head {repo, commit, ...},
    the engine's result)."""
    from hub.accounts.api import _client_address

    try:
        gen = services.generation_start(
            user=request.user,
            address=_client_address(request),
            repo=repo,
            ref=ref,
            prompt=prompt,
            params={"max_new_tokens": 1},
            watermark=False,
            op=op,
            extra=extra,
        )
    except services.RateLimited as e:
        raise Throttled(wait=e.retry_after, detail=str(e)) from None
    try:
        first = gen.wait_start()
        if first.get("type") == "error":
            raise _start_error(first)
        parts: list[str] = []
        done = None
        for ev in gen.events():
            if ev.get("type") == "part":
                parts.append(str(ev.get("data", "")))
            elif ev.get("type") == "error":
                raise _start_error(ev)
            elif ev.get("type") == "done":
                done = ev
        if done is None or int(done.get("parts", -1)) != len(parts):
            raise ServiceUnavailable(
                "The inference worker's answer was incomplete.", code="inference_failed"
            )
        result = json.loads("".join(parts))
        head = {"repo": gen.repo, "commit": gen.commit, "ref": ref, "cold": bool(first.get("cold"))}
        return head, result
    finally:
        gen.close()


# --- attention ---------------------------------------------------------------------------------


class TokenRoutingOut(serializers.Serializer):
    experts = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="per token, its top-k expert ids (best first)",
    )
    gates = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="per token, the combine weights of those experts",
    )


class AttentionLayerOut(serializers.Serializer):
    layer = serializers.IntegerField()
    max_abs_diff = serializers.FloatField(
        help_text="max |explicit attention output - fused SDPA output| on this prompt"
    )
    heads = serializers.ListField(
        child=serializers.ListField(
            child=serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=255))
        ),
        help_text="[head][query token i][key token j ≤ i] = round(255 · weight)",
    )
    routing = TokenRoutingOut(required=False, allow_null=True)


class AttentionApi(APIView):
    class InputSerializer(serializers.Serializer):
        ref = serializers.CharField(default="HEAD", max_length=255)
        prompt = serializers.CharField(trim_whitespace=False, max_length=1 << 16)

    class OutputSerializer(serializers.Serializer):
        repo = serializers.CharField()
        commit = serializers.CharField()
        ref = serializers.CharField()
        tokens = serializers.ListField(
            child=serializers.CharField(), help_text="each byte token shown as a character"
        )
        token_ids = serializers.ListField(child=serializers.IntegerField())
        n_layer = serializers.IntegerField()
        n_head = serializers.IntegerField()
        n_experts = serializers.IntegerField()
        top_k = serializers.IntegerField()
        quant = serializers.IntegerField(help_text="weights are stored as round(quant · a)")
        layers = AttentionLayerOut(many=True)

    @extend_schema(
        operation_id="repos_attention",
        request=InputSerializer,
        responses={200: OutputSerializer, **errors(400, 404, 409, 413, 429, 503)},
        summary="Attention weights per layer and head, and routing per token, for a prompt",
    )
    def post(self, request, namespace: str, name: str):
        repo = registry.repo_for(request, namespace=namespace, name=name)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        bound = limit("HUB_INSPECT_MAX_PROMPT_BYTES")
        size = len(v["prompt"].encode("utf-8"))
        if size > bound:
            raise PayloadTooLarge(
                f"The prompt is {size} bytes; at most {bound} (HUB_INSPECT_MAX_PROMPT_BYTES).",
                code="prompt_too_large",
                details={"limit": bound, "size": size},
            )
        head, result = run_engine_request(
            request,
            repo=repo,
            ref=v["ref"],
            op="inspect_attention",
            prompt=v["prompt"],
            extra={"max_tokens": bound, "max_cells": limit("HUB_INSPECT_MAX_ATTN_CELLS")},
        )
        return Response(self.OutputSerializer({**head, **result}).data)


# --- routing diff ------------------------------------------------------------------------------


class CommitRefOut(serializers.Serializer):
    repo = serializers.CharField()
    commit = serializers.CharField()
    ref = serializers.CharField()


class SwapOut(serializers.Serializer):
    a = serializers.IntegerField(help_text="expert id in A")
    b = serializers.IntegerField(help_text="the expert of B that took its role")
    overlap = serializers.FloatField(help_text="share of a's tokens routed to b in B")


class RoutingDiffLayerOut(serializers.Serializer):
    layer = serializers.IntegerField()
    tokens = serializers.IntegerField()
    same_top1 = serializers.FloatField()
    matched_same_top1 = serializers.FloatField()
    load_a = serializers.ListField(child=serializers.FloatField())
    load_b = serializers.ListField(child=serializers.FloatField())
    load_delta = serializers.ListField(child=serializers.FloatField())
    entropy_a = serializers.FloatField()
    entropy_b = serializers.FloatField()
    matching = serializers.ListField(child=serializers.IntegerField())
    method = serializers.ChoiceField(choices=["hungarian", "greedy"])
    swaps = SwapOut(many=True)


class RoutingDiffSummaryOut(serializers.Serializer):
    same_top1 = serializers.FloatField()
    swaps = serializers.IntegerField()
    max_abs_load_delta = serializers.FloatField()


class RoutingDiffOut(serializers.Serializer):
    a = CommitRefOut()
    b = CommitRefOut()
    probe_version = serializers.IntegerField()
    n_experts = serializers.IntegerField()
    top_k_a = serializers.IntegerField()
    top_k_b = serializers.IntegerField()
    tokens = serializers.IntegerField()
    summary = RoutingDiffSummaryOut()
    layers = RoutingDiffLayerOut(many=True)


def routing_diff_of(request, *, repo_a, ref_a: str, repo_b, ref_b: str) -> dict[str, Any]:
    extra = {"probe_version": PROBE_SET_VERSION}
    head_a, pa = run_engine_request(
        request, repo=repo_a, ref=ref_a, op="routing_probe", extra=extra
    )
    head_b, pb = run_engine_request(
        request, repo=repo_b, ref=ref_b, op="routing_probe", extra=extra
    )
    try:
        d = routing_diff(pa, pb)
    except RoutingDiffError as e:
        raise InvalidInput(str(e), code="routing_not_comparable") from None
    out = {
        "a": {k: head_a[k] for k in ("repo", "commit", "ref")},
        "b": {k: head_b[k] for k in ("repo", "commit", "ref")},
        "probe_version": PROBE_SET_VERSION,
        **d,
    }
    from hub.inference import routing_cache

    routing_cache.remember(out)  # for the comparison report of the runs behind A and B
    return out


class RoutingDiffApi(APIView):
    class InputSerializer(serializers.Serializer):
        a = serializers.CharField(max_length=255, help_text="ref or commit of this repo")
        b = serializers.CharField(max_length=255, help_text="ref or commit of b_repo")
        b_repo = serializers.CharField(
            max_length=255, required=False, help_text="ns/name (default: this repo)"
        )

    @extend_schema(
        operation_id="repos_routing_diff",
        request=InputSerializer,
        responses={200: RoutingDiffOut, **errors(400, 404, 409, 429, 503)},
        summary="Compare the expert routing of two commits on the probe set",
    )
    def post(self, request, namespace: str, name: str):
        repo_a = registry.repo_for(request, namespace=namespace, name=name)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        repo_b = repo_a
        if v.get("b_repo"):
            ns, _, nm = v["b_repo"].partition("/")
            if not ns or not nm:
                raise InvalidInput("b_repo must be ns/name.", code="invalid_repo")
            repo_b = registry.repo_for(request, namespace=ns, name=nm)
        out = routing_diff_of(request, repo_a=repo_a, ref_a=v["a"], repo_b=repo_b, ref_b=v["b"])
        return Response(RoutingDiffOut(out).data)
