"""Provenance API: verify a text's watermark, and a repo's watermark setting.

``POST /api/v1/watermark/verify``      {text, repo?} → detected, z, p, tokens scored, the key
                                       that matched (repo, key id) -- never the key. Anonymous
                                       callers verify against public repos. Rate-limited per
                                       user or client address (429 + Retry-After).
``GET  /api/v1/repos/{ns}/{name}/watermark``   the setting and the repo's key ids (readers)
``PATCH /api/v1/repos/{ns}/{name}/watermark``  {enabled?, strength?} (admins)
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.accounts.api import _client_address
from hub.accounts.models import Role
from hub.common.errors import InvalidInput, PayloadTooLarge
from hub.common.limits import limit
from hub.common.openapi import errors
from hub.provenance import selectors, services
from hub.registry import selectors as registry
from hub.shared import watermark as wm


class MatchOut(serializers.Serializer):
    repo = serializers.CharField(help_text="namespace/name of the repo whose key matched")
    repo_id = serializers.IntegerField()
    key_id = serializers.CharField(help_text="public id of the key (wmk_…); never the key")


class VerifyOut(serializers.Serializer):
    detected = serializers.BooleanField(
        help_text="p_value_corrected <= p_threshold and at least 16 pairs scored"
    )
    keys_tested = serializers.IntegerField()
    tokens_scored = serializers.IntegerField(
        help_text="distinct (previous byte, byte) pairs scored (each counted once)"
    )
    green_tokens = serializers.IntegerField()
    gamma = serializers.FloatField(allow_null=True, help_text="green fraction of the best key")
    z_score = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True, help_text="one-sided, of the best key")
    p_value_corrected = serializers.FloatField(
        allow_null=True, help_text="Bonferroni: min(1, keys_tested * p_value)"
    )
    z_threshold = serializers.FloatField()
    p_threshold = serializers.FloatField()
    match = MatchOut(allow_null=True)
    scheme = serializers.CharField()


class WatermarkVerifyApi(APIView):
    class InputSerializer(serializers.Serializer):
        text = serializers.CharField(trim_whitespace=False, help_text="the text to test")
        repo = serializers.RegexField(
            r"^[^/\s]+/[^/\s]+$",
            required=False,
            allow_null=True,
            help_text="namespace/name: test this repo's keys only; default every key you may read",
        )

    @extend_schema(
        operation_id="watermark_verify",
        request=InputSerializer,
        responses={200: VerifyOut, **errors(400, 404, 413, 429, 503)},
        summary="Does a text carry a repo's watermark? (z-score, p-value, matching key id)",
    )
    def post(self, request):
        who = (
            f"user:{request.user.pk}"
            if request.user.is_authenticated
            else f"addr:{_client_address(request)}"
        )
        try:
            services.verify_rate_hit(who=who)
        except services.VerifyRateLimited as e:
            raise Throttled(wait=e.retry_after, detail=str(e)) from None
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        text = data.validated_data["text"]
        max_bytes = limit("HUB_WATERMARK_MAX_TEXT_BYTES")
        # (a lone surrogate, valid JSON but not UTF-8, is refused by CharField: 400)
        size = len(text.encode("utf-8"))
        if size > max_bytes:
            raise PayloadTooLarge(
                f"Texts to verify are limited to {max_bytes} UTF-8 bytes (HUB setting).",
                code="text_too_large",
                details={"limit": max_bytes, "size": size},
            )
        repo = None
        if data.validated_data.get("repo"):
            ns, name = data.validated_data["repo"].split("/")
            repo = registry.repo_for(request, namespace=ns, name=name)
        result = selectors.verify(
            text=text,
            user=request.user,
            repo=repo,
            z_threshold=float(settings.HUB_WATERMARK_Z_THRESHOLD),
            max_keys=limit("HUB_WATERMARK_MAX_KEYS"),
        )
        return Response(VerifyOut(result).data)


class KeyOut(serializers.Serializer):
    key_id = serializers.CharField()
    scheme = serializers.CharField()
    gamma = serializers.FloatField()
    context_width = serializers.IntegerField()
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class SettingOut(serializers.Serializer):
    enabled = serializers.BooleanField(
        help_text="generations from this repo are watermarked unless a request turns it off"
    )
    strength = serializers.FloatField(help_text="in (0, 1]; delta = 10 * strength")
    delta = serializers.FloatField()
    keys = KeyOut(many=True)
    can_edit = serializers.BooleanField(help_text="whether the caller may switch it (admins)")


def _setting_out(repo, user) -> dict:
    from hub.accounts import selectors as accounts

    s = selectors.setting_get(repo=repo)
    return {
        "can_edit": accounts.role_in(user=user, namespace=repo.namespace) == Role.ADMIN,
        "enabled": s.enabled,
        "strength": s.strength,
        "delta": wm.strength_to_delta(s.strength),
        "keys": [
            {
                "key_id": k.key_id,
                "scheme": k.scheme,
                "gamma": k.gamma,
                "context_width": k.context_width,
                "active": k.active,
                "created_at": k.created_at,
            }
            for k in selectors.keys_for_verify(user=None, repo=repo)
        ],
    }


class RepoWatermarkApi(APIView):
    class PatchSerializer(serializers.Serializer):
        enabled = serializers.BooleanField(required=False)
        strength = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
        rotate_key = serializers.BooleanField(
            required=False,
            help_text="make a new key for new generations; older keys still verify old texts",
        )

    @extend_schema(
        operation_id="repos_watermark_get",
        responses={200: SettingOut, **errors(404)},
        summary="The repo's watermark setting and key ids",
    )
    def get(self, request, namespace, name):
        repo = registry.repo_for(request, namespace=namespace, name=name)
        return Response(SettingOut(_setting_out(repo, request.user)).data)

    @extend_schema(
        operation_id="repos_watermark_update",
        request=PatchSerializer,
        responses={200: SettingOut, **errors(400, 403, 404)},
        summary="Switch watermarking of the repo's generations on or off, set its strength, or "
        "rotate its key (admins)",
    )
    def patch(self, request, namespace, name):
        repo = registry.repo_for(request, namespace=namespace, name=name, role=Role.ADMIN)
        data = self.PatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = dict(data.validated_data)
        rotate = d.pop("rotate_key", False)
        if not d and not rotate:
            raise InvalidInput(
                "Pass enabled, strength and/or rotate_key.", code="nothing_to_update"
            )
        if d:
            services.watermark_setting_update(repo=repo, user=request.user, **d)
        if rotate:
            services.watermark_key_create(repo=repo)
        return Response(SettingOut(_setting_out(repo, request.user)).data)
