"""A repo's watermark setting and its keys.

A key's secret is stored sealed (AES-256-GCM under a key derived from the hub's secret key or
``HUB_WATERMARK_KEK``, bound to the key's id as associated data; see ``crypto.py``). No API
returns it and nothing writes it into a commit: it leaves the hub only inside a generation
request to the sandbox (``services.generation_watermark``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from hub.registry.models import Repo


class WatermarkSetting(models.Model):
    """The owner's switch: generations from this repo are watermarked by default."""

    repo = models.OneToOneField(Repo, on_delete=models.CASCADE, related_name="watermark_setting")
    enabled = models.BooleanField(default=False)
    strength = models.FloatField(default=0.3)  # delta = DELTA_MAX * strength (hub.shared.watermark)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )


class WatermarkKey(models.Model):
    """One key of a repo. The newest active key marks new generations; every key of the repo
    still verifies the texts it marked. gamma and context_width belong to the key (detection
    needs them), so a text keeps verifying whatever the setting becomes."""

    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="watermark_keys")
    key_id = models.CharField(max_length=32, unique=True)  # public: "wmk_" + 16 hex
    sealed_secret = models.BinaryField()  # nonce (12) || AES-GCM(secret) || tag (16)
    scheme = models.CharField(max_length=64)
    gamma = models.FloatField()
    context_width = models.PositiveSmallIntegerField()
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["repo", "active"])]
