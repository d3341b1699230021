"""``POST /api/v1/repos/{ns}/{name}/generate``: prompt a commit of a model repo.

Streams Server-Sent Events by default (``"stream": true``), or answers one JSON object
(``"stream": false``). Events of a stream, each ``event: <type>`` + ``data: <JSON>``::

    start   {"id", "repo", "commit", "cold", "load_s", "fetch_s", "queue_s", "worker"}
    token   {"index", "id", "text", "routing": [{"layer", "experts": [..], "weights": [..]}]}
    text    {"text"}                     text held back until the end (rare)
    done    {"finish_reason", "text", "prompt_tokens", "tokens", "time_to_first_token_s",
             "tokens_per_s", "elapsed_s", "kv_cache", "watermark": {"key_id", "strength"}|null}
    error   {"code", "message"}          instead of done, when the generation failed midway

A failure before the first token (no worker, a commit without a model, bad parameters) is
an ordinary error answer (4xx/503), not a stream.
"""

from __future__ import annotations

import json

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.common.errors import Conflict, HubError, InvalidInput, ServiceUnavailable
from hub.common.openapi import errors
from hub.inference import services
from hub.registry import selectors as registry


class _EventStreamRenderer(BaseRenderer):
    """Lets content negotiation accept ``Accept: text/event-stream``; the view streams."""

    media_type = "text/event-stream"
    format = "sse"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode() if data is not None else b""


class RoutingOut(serializers.Serializer):
    layer = serializers.IntegerField()
    experts = serializers.ListField(child=serializers.IntegerField())
    weights = serializers.ListField(child=serializers.FloatField())


class GeneratedTokenOut(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.IntegerField(help_text="token id (byte tokenizer: 0-255 bytes, 256 EOT)")
    text = serializers.CharField(allow_blank=True)
    routing = RoutingOut(many=True)


class GenerationStatsOut(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    tokens = serializers.IntegerField()
    time_to_first_token_s = serializers.FloatField(allow_null=True)
    tokens_per_s = serializers.FloatField(allow_null=True)
    elapsed_s = serializers.FloatField()
    kv_cache = serializers.BooleanField()
    cold = serializers.BooleanField()
    load_s = serializers.FloatField()
    fetch_s = serializers.FloatField()
    queue_s = serializers.FloatField()


class WatermarkUsedOut(serializers.Serializer):
    key_id = serializers.CharField()
    strength = serializers.FloatField()


class GenerateApi(APIView):
    renderer_classes = [JSONRenderer, _EventStreamRenderer]

    class InputSerializer(serializers.Serializer):
        ref = serializers.CharField(default="HEAD", max_length=255)
        prompt = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=1 << 20)
        max_new_tokens = serializers.IntegerField(default=64, min_value=1)
        temperature = serializers.FloatField(default=1.0, min_value=0.0, max_value=100.0)
        top_k = serializers.IntegerField(default=0, min_value=0, max_value=1 << 20)
        top_p = serializers.FloatField(default=1.0, min_value=0.0, max_value=1.0)
        seed = serializers.IntegerField(
            default=None, allow_null=True, min_value=0, max_value=2**63 - 1
        )
        stop = serializers.ListField(
            child=serializers.CharField(max_length=64, trim_whitespace=False),
            default=list,
            max_length=8,
        )
        watermark = serializers.BooleanField(
            default=None,
            allow_null=True,
            help_text="null: the repo owner's setting; false: no watermark; true: watermark",
        )
        stream = serializers.BooleanField(default=True, help_text="false: one JSON answer")

        def validate_top_p(self, v):
            if v <= 0:
                raise serializers.ValidationError("top_p must be above 0 (1: off).")
            return v

    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        repo = serializers.CharField()
        commit = serializers.CharField()
        text = serializers.CharField(allow_blank=True)
        finish_reason = serializers.ChoiceField(
            choices=["length", "stop", "eos", "time", "cancelled"]
        )
        tokens = GeneratedTokenOut(many=True)
        stats = GenerationStatsOut()
        watermark = WatermarkUsedOut(allow_null=True)

    @extend_schema(
        operation_id="repos_generate",
        request=InputSerializer,
        responses={
            (200, "application/json"): OutputSerializer,
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR,
                description="events start, token*, text?, then done or error (see the "
                "module docs); a comment every 10 s keeps the connection alive",
            ),
            **errors(400, 409, 413, 429, 503),
        },
        summary="Generate text from a commit of a model repo (SSE stream or JSON)",
    )
    def post(self, request, namespace: str, name: str):
        repo = registry.repo_for(request, namespace=namespace, name=name)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        params = {
            k: v[k] for k in ("max_new_tokens", "temperature", "top_k", "top_p", "seed", "stop")
        }
        from hub.accounts.api import _client_address

        try:
            gen = services.generation_start(
                user=request.user,
                address=_client_address(request),
                repo=repo,
                ref=v["ref"],
                prompt=v["prompt"],
                params=params,
                watermark=v["watermark"],
            )
        except services.RateLimited as e:
            raise Throttled(wait=e.retry_after, detail=str(e)) from None
        try:
            first = gen.wait_start()
            if first.get("type") == "error":
                raise _start_error(first)
            head = {
                "id": gen.id,
                "repo": gen.repo,
                "commit": gen.commit,
                **{k: first.get(k) for k in ("cold", "load_s", "fetch_s", "queue_s", "worker")},
            }
            gen.first[0] = {**first, **head}
        except BaseException:
            gen.close()
            raise
        if not v["stream"]:
            try:
                return Response(_collect(gen, head))
            finally:
                gen.close()
        resp = StreamingHttpResponse(_Stream(gen), content_type="text/event-stream")
        resp["Cache-Control"] = "no-cache"
        resp["X-Accel-Buffering"] = "no"
        return resp


def _start_error(ev: dict) -> HubError:
    code, msg = str(ev.get("code") or "inference_failed"), str(ev.get("message") or "")
    if code == "invalid_params":
        return InvalidInput(msg, code=code)
    if code in ("not_a_model", "model_too_large", "bad_request"):
        return Conflict(msg, code=code)
    return ServiceUnavailable(msg or "The inference worker failed.", code=code, retry_after=10)


class _Stream:
    """The SSE body. Its ``close`` (Django calls it when the response ends, also when the
    client left before the first byte, when a generator's own ``finally`` would never run)
    ends the generation: cancel on the worker, revoke the credential, free the slot."""

    def __init__(self, gen: services.Generation) -> None:
        self.gen = gen
        self.it = _sse(gen)

    def __iter__(self):
        return self.it

    def close(self) -> None:
        try:
            self.it.close()
        finally:
            self.gen.close()


def _sse(gen: services.Generation):
    try:
        for ev in gen.events(keepalive=True):
            kind = ev.pop("type", "")
            if kind == "keepalive":
                yield ": keep-alive\n\n"
                continue
            yield f"event: {kind}\ndata: {json.dumps(ev, separators=(',', ':'))}\n\n"
    finally:
        gen.close()


def _collect(gen: services.Generation, head: dict) -> dict:
    tokens, tail, done = [], "", None
    for ev in gen.events():
        kind = ev.get("type")
        if kind == "token":
            tokens.append({k: ev[k] for k in ("index", "id", "text", "routing")})
        elif kind == "text":
            tail += ev.get("text", "")
        elif kind == "error":
            raise ServiceUnavailable(
                str(ev.get("message") or "The generation failed."),
                code=str(ev.get("code") or "inference_failed"),
                retry_after=10,
            )
        elif kind == "done":
            done = ev
    assert done is not None
    stats = {
        k: done.get(k)
        for k in (
            "prompt_tokens",
            "tokens",
            "time_to_first_token_s",
            "tokens_per_s",
            "elapsed_s",
            "kv_cache",
        )
    }
    stats.update({k: head.get(k) for k in ("cold", "load_s", "fetch_s", "queue_s")})
    return {
        "id": head["id"],
        "repo": head["repo"],
        "commit": head["commit"],
        "text": done.get("text", ""),
        "finish_reason": done.get("finish_reason"),
        "tokens": tokens,
        "stats": stats,
        "watermark": done.get("watermark"),
    }
