"""The SDK's batch encoder gives the points in record order, and drops exactly what is not a
finite number (never raising: a training loop must not die on a bad value)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hub.client.run import _encode
from hub.shared.wire import decode

pytestmark = pytest.mark.unit


def reference(records):
    """Point by point, the obvious way."""
    out, dropped = [], {}
    for step, t, d in records:
        for k, v in d.items():
            try:
                fv = float(v)
            except (TypeError, ValueError, OverflowError):
                fv = math.nan
            if math.isfinite(fv):
                out.append((k, step, t, fv))
            else:
                dropped[k] = dropped.get(k, 0) + 1
    return out, dropped


def decoded(body):
    keys, ki, step, wall, value = decode(body, max_points=10**7)
    return [
        (keys[i], int(s), float(t), float(v))
        for i, s, t, v in zip(ki, step, wall, value, strict=True)
    ]


def test_a_steady_loop_is_encoded_exactly():
    rng = np.random.default_rng(0)
    records = [
        (s, 1.7e9 + s, {"loss": float(rng.random()), "lr": 1e-3, "acc": int(s % 3)})
        for s in range(2000)
    ]
    body, n, dropped = _encode(records)
    ref, ref_dropped = reference(records)
    assert decoded(body) == ref and n == len(ref) == 6000 and dropped == ref_dropped == {}


def test_mixed_records_match_the_point_by_point_reference():
    grad = torch.tensor(2.5, requires_grad=True)  # refuses numpy conversion, float() works
    records = [
        (0, 1.0, {"loss": 1.0, "lr": 0.1}),
        (1, 2.0, {"loss": float("nan"), "lr": 0.1}),
        (2, 3.0, {"loss": float("inf"), "lr": None}),
        (3, 4.0, {"lr": 0.2, "loss": 0.5}),  # same keys, another order: its own group
        (4, 5.0, {"loss": "oops", "lr": 0.3}),  # not a number: the per-value path
        (5, 6.0, {"loss": grad, "lr": np.float32(0.25)}),
        (6, 7.0, {"loss": torch.tensor(0.75), "extra": True}),
        (7, 8.0, {}),
        (8, 9.0, {"big": 10**400}),
        (9, 10.0, {"loss": np.array([1.0, 2.0])}),
        (10, 11.0, {"loss": "1.5"}),
    ]
    body, n, dropped = _encode(records)
    ref, ref_dropped = reference(records)
    assert decoded(body) == ref and n == len(ref)
    assert dropped == ref_dropped == {"loss": 4, "lr": 1, "big": 1}


def test_nothing_to_send():
    body, n, dropped = _encode([(0, 1.0, {"x": float("nan")})])
    assert n == 0 and decoded(body) == [] and dropped == {"x": 1}
