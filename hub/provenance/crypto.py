"""Sealing watermark secrets at rest: AES-256-GCM (``cryptography``), with the key id as
associated data so a sealed secret copied onto another key's row does not open.

The key-encryption key is ``HUB_WATERMARK_KEK`` (64 hex characters) when set, else derived from
the hub's ``SECRET_KEY`` with keyed BLAKE2b (person ``moehub-wm-kek``). Changing either makes
every stored watermark key unreadable (verification then answers 500 storage_corrupt for those
keys): rotate by re-sealing, not by changing the setting.
"""

from __future__ import annotations

import hashlib
import os

from django.conf import settings

from hub.common.errors import StorageCorrupt


def _kek() -> bytes:
    kek_hex = getattr(settings, "HUB_WATERMARK_KEK", "")
    if kek_hex:
        return bytes.fromhex(kek_hex)
    return hashlib.blake2b(
        settings.SECRET_KEY.encode(), digest_size=32, person=b"moehub-wm-kek"
    ).digest()


def seal(secret: bytes, *, key_id: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return nonce + AESGCM(_kek()).encrypt(nonce, secret, key_id.encode())


def unseal(sealed: bytes, *, key_id: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = bytes(sealed)
    try:
        return AESGCM(_kek()).decrypt(sealed[:12], sealed[12:], key_id.encode())
    except (InvalidTag, ValueError):
        raise StorageCorrupt(
            f"Watermark key {key_id} cannot be opened (the key-encryption key changed?).",
            code="watermark_key_unreadable",
        ) from None
