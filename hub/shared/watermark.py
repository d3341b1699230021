"""The green-list text watermark (Kirchenbauer et al., 2023, "A Watermark for Large Language
Models", arXiv:2301.10226), on the MoE workload's byte-level vocabulary. Shared by the hub
(the verify API) and the workers (the logits processor): Django-free, torch-free.

Scheme (``SCHEME``)
-------------------
* Vocabulary: the 256 byte values. The three special tokens of ``workers.moe.data``
  (``<|endoftext|>`` 256, ``<|bos|>`` 257, ``<|pad|>`` 258) are never biased and never scored;
  they may still appear in a context.
* Green list of a context ``c = (x_{t-h}, ..., x_{t-1})`` (``h = context_width``)::

      seed_c   = BLAKE2b-256(key=K, person="moehub-kgw-v1", data=uint16le(c))
      score_v  = uint32le(SHAKE-256(seed_c)[4v : 4v+4])            for v in 0..255
      G(c)     = the k = round(gamma * 256) tokens v with the smallest (score_v, v)

  Keyed BLAKE2b is a PRF (a MAC in its own right, no HMAC wrapper needed); SHAKE-256 stretches
  its 32-byte output into 256 scores. Both are in Python's ``hashlib``, so the split does not
  depend on numpy's or torch's random streams, and hub and worker agree bit for bit. Exactly
  ``k`` tokens are green in every context, so a token independent of the key is green with
  probability exactly ``gamma_eff = k / 256`` (taken over the key).
* Generation adds ``delta`` to the logits of ``G(c)`` before sampling (the paper's "soft"
  watermark). ``delta = DELTA_MAX * strength`` with ``DELTA_MAX = 10``: strength 0 is no
  watermark, 0.3 (the default) is delta = 3, 1.0 multiplies red tokens' odds by e^-10 (about the
  paper's "hard" red list).
* Detection scores each position ``t >= h`` whose token is a byte, and (as the reference
  implementation's ``ignore_repeated_ngrams``) each distinct (context, token) pair ONCE: a byte
  vocabulary repeats pairs constantly (indentation, ``"e "``, ``"th"``), and a repeated pair is
  the same coin, not a fresh one -- counting it again would inflate z on repetitive human text.
  With T distinct pairs of which G are green::

      z = (G - gamma_eff * T) / sqrt(T * gamma_eff * (1 - gamma_eff)),   p = P(N(0,1) >= z)
        = erfc(z / sqrt 2) / 2

  Under the null (text written without the key) distinct pairs in different contexts are
  independent Bernoulli(gamma_eff); pairs sharing a context are drawn without replacement,
  which only lowers the variance, so the test is conservative. The normal approximation is
  loose for small T: below ``MIN_TOKENS_FOR_DETECTION`` scored pairs nothing is "detected".

The small vocabulary costs power twice: a byte is often nearly determined by its prefix (low
entropy: delta cannot move it), and with h = 1 there are only 259 contexts, so a 200-byte text
holds far fewer than 200 distinct pairs. ``context_width`` 2 gives 67k contexts and more
distinct pairs per text, at the price of each edit breaking h + 1 scored pairs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

SCHEME = "kgw-blake2b-shake256-v1"
PERSON = b"moehub-kgw-v1"
BYTE_VOCAB = 256  # the biased / scored part of the byte tokenizer's 259 ids
TOKEN_ID_LIMIT = 1 << 16  # context ids are hashed as uint16
DELTA_MAX = 10.0
DEFAULT_GAMMA = 0.25
DEFAULT_STRENGTH = 0.3
DEFAULT_CONTEXT_WIDTH = 1
KEY_BYTES = 32
MIN_TOKENS_FOR_DETECTION = 16
DEFAULT_Z_THRESHOLD = 4.0


def strength_to_delta(strength: float) -> float:
    """The brief's "strength" s in [0, 1] as the logit bias delta = DELTA_MAX * s."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return DELTA_MAX * strength


def green_count(gamma: float) -> int:
    """k, the number of green tokens of every context."""
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must be in (0, 1), got {gamma}")
    return min(BYTE_VOCAB - 1, max(1, round(gamma * BYTE_VOCAB)))


@dataclass(frozen=True)
class WatermarkParams:
    """What generation needs (all fields) and what detection needs (all but ``delta``)."""

    key: bytes
    gamma: float = DEFAULT_GAMMA
    delta: float = DELTA_MAX * DEFAULT_STRENGTH
    context_width: int = DEFAULT_CONTEXT_WIDTH

    def __post_init__(self) -> None:
        if not 16 <= len(self.key) <= 64:
            raise ValueError("key must be 16..64 bytes")
        green_count(self.gamma)
        if not 0.0 <= self.delta <= 100.0:
            raise ValueError(f"delta must be in [0, 100], got {self.delta}")
        if not 1 <= self.context_width <= 8:
            raise ValueError(f"context_width must be 1..8, got {self.context_width}")

    @property
    def gamma_eff(self) -> float:
        return green_count(self.gamma) / BYTE_VOCAB

    def to_dict(self) -> dict:
        """The wire form a generation request carries (``key_hex`` is secret)."""
        return {
            "scheme": SCHEME,
            "key_hex": self.key.hex(),
            "gamma": self.gamma,
            "delta": self.delta,
            "context_width": self.context_width,
        }

    @classmethod
    def from_dict(cls, d: dict) -> WatermarkParams:
        scheme = d.get("scheme", SCHEME)
        if scheme != SCHEME:
            raise ValueError(f"unknown watermark scheme {scheme!r}")
        return cls(
            key=bytes.fromhex(d["key_hex"]),
            gamma=float(d.get("gamma", DEFAULT_GAMMA)),
            delta=float(d.get("delta", DELTA_MAX * DEFAULT_STRENGTH)),
            context_width=int(d.get("context_width", DEFAULT_CONTEXT_WIDTH)),
        )


# --- the green lists ----------------------------------------------------------------------------


def _sort_keys(key: bytes, contexts: Sequence[Sequence[int]]) -> np.ndarray:
    """(n, 256) uint64 ``score_v << 8 | v`` for each context: distinct, so the order is total
    and equal to a stable argsort of the scores."""
    out = np.empty((len(contexts), BYTE_VOCAB), dtype=np.uint64)
    for i, ctx in enumerate(contexts):
        seed = hashlib.blake2b(
            np.asarray(ctx, dtype="<u2").tobytes(), key=key, digest_size=32, person=PERSON
        ).digest()
        out[i] = np.frombuffer(hashlib.shake_256(seed).digest(4 * BYTE_VOCAB), dtype="<u4")
    return (out << np.uint64(8)) | np.arange(BYTE_VOCAB, dtype=np.uint64)


def green_mask(key: bytes, contexts: Sequence[Sequence[int]], gamma: float) -> np.ndarray:
    """(n, 256) bool: the green list of each context."""
    if len(contexts) == 0:
        return np.zeros((0, BYTE_VOCAB), dtype=bool)
    k = green_count(gamma)
    sk = _sort_keys(key, contexts)
    kth = np.partition(sk, k - 1, axis=1)[:, k - 1 : k]  # (n, 1) the k-th smallest sort key
    return sk <= kth


def green_table(key: bytes, gamma: float, n_ids: int = 259) -> np.ndarray:
    """(n_ids, 256) bool: the green list after each single token (context width 1)."""
    return green_mask(key, [(i,) for i in range(n_ids)], gamma)


# --- detection ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detection:
    tokens_scored: int  # distinct (context, token) pairs
    green: int
    gamma: float  # the effective green fraction the z-score uses
    z: float
    p_value: float

    def detected(self, z_threshold: float = DEFAULT_Z_THRESHOLD) -> bool:
        return self.tokens_scored >= MIN_TOKENS_FOR_DETECTION and self.z >= z_threshold


def p_value(z: float) -> float:
    """One-sided upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def z_threshold_p(z_threshold: float) -> float:
    return p_value(z_threshold)


def scored_pairs(
    ids: Sequence[int], context_width: int, *, ignore_repeated: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The (context, token) pairs of ``ids`` that detection scores: (n, h) contexts and (n,)
    tokens, tokens being bytes at positions >= h; each distinct pair once unless
    ``ignore_repeated`` is False (every position: only for showing why it is the default)."""
    a = np.asarray(ids, dtype=np.int64)
    h = context_width
    if a.ndim != 1 or len(a) <= h:
        return np.zeros((0, h), dtype=np.int64), np.zeros(0, dtype=np.int64)
    if a.min() < 0 or a.max() >= TOKEN_ID_LIMIT:
        raise ValueError("token ids must be in [0, 65536)")
    windows = np.lib.stride_tricks.sliding_window_view(a, h + 1)  # (L-h, h+1)
    windows = windows[windows[:, -1] < BYTE_VOCAB]
    if ignore_repeated:
        windows = np.unique(windows, axis=0)  # each (context, token) once
    return windows[:, :h], windows[:, h]


def _detection(t: int, green: int, gamma: float) -> Detection:
    g_eff = green_count(gamma) / BYTE_VOCAB
    if t == 0:
        return Detection(0, 0, g_eff, 0.0, 1.0)
    z = (green - g_eff * t) / math.sqrt(t * g_eff * (1.0 - g_eff))
    return Detection(t, green, g_eff, z, p_value(z))


def detect(
    ids: Sequence[int],
    *,
    key: bytes,
    gamma: float,
    context_width: int,
    ignore_repeated: bool = True,
) -> Detection:
    """Score token ids against one key: one keyed hash per distinct context."""
    contexts, tokens = scored_pairs(ids, context_width, ignore_repeated=ignore_repeated)
    if len(tokens) == 0:
        return _detection(0, 0, gamma)
    uniq, inverse = np.unique(contexts, axis=0, return_inverse=True)
    ctx_list = [tuple(c) for c in uniq.tolist()]
    sk = _sort_keys(key, ctx_list)[inverse.reshape(-1)]  # (n, 256)
    mine = sk[np.arange(len(tokens)), tokens][:, None]
    green = int(((sk < mine).sum(axis=1) < green_count(gamma)).sum())
    return _detection(len(tokens), green, gamma)


def detect_text(text: str, *, key: bytes, gamma: float, context_width: int) -> Detection:
    return detect(list(text.encode("utf-8")), key=key, gamma=gamma, context_width=context_width)


def detect_batch(
    texts: Sequence[Sequence[int]], *, key: bytes, gamma: float, context_width: int = 1
) -> list[Detection]:
    """:func:`detect` for many texts and one key; with context width 1 the 259-row green
    table is computed once and each text costs a lookup."""
    if context_width != 1:
        return [detect(t, key=key, gamma=gamma, context_width=context_width) for t in texts]
    table = green_table(
        key, gamma, n_ids=max(259, max((max(t, default=0) for t in texts), default=0) + 1)
    )
    out = []
    for t in texts:
        contexts, tokens = scored_pairs(t, 1)
        out.append(_detection(len(tokens), int(table[contexts[:, 0], tokens].sum()), gamma))
    return out


def bonferroni(p: float, comparisons: int) -> float:
    """The family-wise p-value of the best of ``comparisons`` tests."""
    return min(1.0, p * max(1, comparisons))


def detect_many(ids: Sequence[int], keys: Iterable[tuple[bytes, float, int]]) -> list[Detection]:
    """:func:`detect` against each (key, gamma, context_width)."""
    return [detect(ids, key=k, gamma=g, context_width=h) for k, g, h in keys]
