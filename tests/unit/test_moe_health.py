"""The MoE health rules (hub/shared/moe_health.py): each alert fires past its threshold, not
at it, after its window of consecutive logged steps, once per episode."""

from __future__ import annotations

import math

import pytest

from hub.shared.moe_health import DEFAULTS, HealthDetector, Thresholds, replay, rule_notes

pytestmark = pytest.mark.unit


def loads(layer: int, shares: list[float]) -> dict[str, float]:
    return {f"moe/layer{layer}/load/expert{e}": s for e, s in enumerate(shares)}


def uniform(n: int = 8, layer: int = 1) -> dict[str, float]:
    return loads(layer, [1 / n] * n)


def kinds(alerts) -> list[str]:
    return [a.kind for a in alerts]


# ---- dead expert ---------------------------------------------------------------------------


def dead_step(share: float, n: int = 8) -> dict[str, float]:
    rest = (1 - share) / (n - 1)
    return loads(1, [share] + [rest] * (n - 1))


def test_dead_expert_fires_after_its_window_of_consecutive_steps():
    t = Thresholds(dead_expert_fraction=0.1, dead_expert_steps=4)
    floor = 0.1 / 8
    alerts = replay([(s, dead_step(floor * 0.99)) for s in range(1, 8)], t)
    assert kinds(alerts) == ["dead_expert"]  # once, at the 4th step, not again while it lasts
    a = alerts[0]
    assert (a.step, a.key) == (4, "dead_expert/layer1/expert0")
    assert a.details["expert"] == 0 and a.details["threshold"] == pytest.approx(floor)


def test_dead_expert_at_exactly_the_threshold_does_not_fire():
    t = Thresholds(dead_expert_fraction=0.1, dead_expert_steps=2)
    assert replay([(s, dead_step(0.1 / 8)) for s in range(1, 10)], t) == []


def test_dead_expert_window_restarts_when_the_expert_recovers():
    t = Thresholds(dead_expert_fraction=0.1, dead_expert_steps=3)
    low, ok = dead_step(0.001), dead_step(1 / 8)
    # 2 low, 1 recovered, 2 low: never 3 in a row
    assert replay(list(enumerate([low, low, ok, low, low], 1)), t) == []
    # a second episode after a recovery fires again
    seq = [low, low, low, ok, low, low, low]
    assert [a.step for a in replay(list(enumerate(seq, 1)), t)] == [3, 7]


# ---- collapse ------------------------------------------------------------------------------


def collapse_step(token_share: float, top_k: int = 2, n: int = 8) -> dict[str, float]:
    share = token_share / top_k
    rest = (1 - share) / (n - 1)
    return loads(1, [rest] * 3 + [share] + [rest] * (n - 4))


def test_collapse_fires_when_one_expert_serves_more_than_the_share_of_tokens():
    t = Thresholds(collapse_share=0.5, collapse_steps=2)
    det = HealthDetector(t, top_k=2)
    assert det.observe(1, collapse_step(0.6)) == []  # 1 of 2 steps
    alerts = det.observe(2, collapse_step(0.6))
    assert kinds(alerts) == ["collapse"]
    assert alerts[0].details["expert"] == 3
    assert alerts[0].details["token_share"] == pytest.approx(0.6)
    assert "expert 3 serves 60% of the tokens" in alerts[0].message


def test_collapse_at_exactly_the_share_does_not_fire():
    t = Thresholds(collapse_share=0.5, collapse_steps=1)
    assert replay([(s, collapse_step(0.5)) for s in range(1, 5)], t, top_k=2) == []


def test_collapse_needs_the_same_expert_over_its_window():
    t = Thresholds(collapse_share=0.5, collapse_steps=2)
    a = loads(1, [0.45] + [0.55 / 7] * 7)  # expert 0 serves 90 %
    b = loads(1, [0.55 / 7] * 7 + [0.45])  # expert 7 serves 90 %
    assert replay([(1, a), (2, b), (3, a), (4, b)], t, top_k=2) == []
    assert [x.key for x in replay([(1, a), (2, b), (3, b)], t, top_k=2)] == [
        "collapse/layer1/expert7"
    ]


def test_collapse_reads_the_token_share_through_top_k():
    # load share 0.3 of the assignments: 60 % of the tokens with top-2, 30 % with top-1
    t = Thresholds(collapse_share=0.5, collapse_steps=1)
    step = collapse_step(0.6, top_k=2)
    assert kinds(HealthDetector(t, top_k=2).observe(1, step)) == ["collapse"]
    assert HealthDetector(t, top_k=1).observe(1, step) == []


def test_a_collapse_threshold_under_the_uniform_share_is_off_and_said_so():
    t = Thresholds(collapse_share=0.5, collapse_steps=1)
    # 4 experts, top-2: every expert serves 50 % of the tokens when perfectly balanced
    assert replay([(1, loads(1, [0.26, 0.24, 0.25, 0.25]))], t, top_k=2) == []
    assert "collapse alert off" in rule_notes(t, n_experts=4, top_k=2)[0]
    assert rule_notes(t, n_experts=8, top_k=2) == []


# ---- dropped tokens ------------------------------------------------------------------------


def test_dropped_tokens_fire_above_the_threshold_for_the_window_only():
    t = Thresholds(dropped_tokens=0.1, dropped_tokens_steps=2)
    at = {"moe/layer2/dropped_frac": 0.1}
    above = {"moe/layer2/dropped_frac": 0.1000001}
    assert replay([(1, at), (2, at), (3, at)], t) == []
    alerts = replay([(1, above), (2, above)], t)
    assert kinds(alerts) == ["dropped_tokens"] and alerts[0].details["layer"] == 2


# ---- non-finite loss -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf])
def test_a_non_finite_loss_fires(bad):
    alerts = replay([(1, {"loss": 2.0}), (2, {"loss": bad})])
    assert kinds(alerts) == ["nonfinite_loss"] and alerts[0].step == 2


def test_a_finite_loss_or_no_loss_does_not_fire_nonfinite():
    assert replay([(1, {"loss": 1e30}), (2, uniform())]) == []


def test_nonfinite_loss_can_be_turned_off():
    assert replay([(1, {"loss": None})], Thresholds(nonfinite_loss=False)) == []


# ---- divergence ----------------------------------------------------------------------------


def test_divergence_fires_over_factor_times_the_rolling_median():
    t = Thresholds(divergence_factor=1.5, divergence_window=5, divergence_min_history=5)
    history = [(s, {"loss": v}) for s, v in enumerate([3.0, 2.0, 2.2, 1.9, 2.0], 1)]
    # median of the 5 = 2.0: 3.0 is exactly 1.5 ×, not over
    assert replay([*history, (6, {"loss": 3.0})], t) == []
    alerts = replay([*history, (6, {"loss": 3.0001})], t)
    assert kinds(alerts) == ["divergence"]
    assert alerts[0].details["baseline"] == pytest.approx(2.0)


def test_divergence_waits_for_its_minimum_history():
    t = Thresholds(divergence_factor=1.5, divergence_window=5, divergence_min_history=3)
    assert replay([(1, {"loss": 2.0}), (2, {"loss": 2.0}), (3, {"loss": 100.0})], t) == []


def test_a_decreasing_loss_never_diverges_with_the_defaults():
    points = [(s, {"loss": 5.5 * math.exp(-s / 30) + 1.0}) for s in range(1, 200)]
    assert replay(points) == []


# ---- limits --------------------------------------------------------------------------------


def test_the_detector_caps_its_alerts_and_counts_the_rest():
    det = HealthDetector(Thresholds(dead_expert_fraction=0.5, dead_expert_steps=1), max_alerts=3)
    out = det.observe(1, loads(1, [1.0] + [0.0] * 7))  # 7 dead experts
    assert len(out) == 3 and det.suppressed == 4


def test_healthy_routing_raises_nothing_with_the_defaults():
    points = [(s, {**uniform(), "moe/layer1/dropped_frac": 0.0, "loss": 2.0}) for s in range(60)]
    assert replay(points, DEFAULTS, top_k=2) == []
