"""MoE health rules: alerts raised from a run's logged routing statistics and losses.

One implementation for every side: the training job feeds its detector at each logged step
(so it can act on an alert at once), and anything that reads a run's metrics back (the hub,
the SDK, a notebook) can replay the same rules over the same values. The detector reads the
metric names the MoE workload logs (workers/moe/README.md):

    loss                                   the training loss of the step (null = non-finite)
    moe/layer{L}/load/expert{e}            share of the step's N·k assignments (sums to 1)
    moe/layer{L}/dropped_frac              share of assignments over capacity (0 = dropless)

The rules, evaluated at every logged step, with E experts, top-k routing and the defaults of
:data:`DEFAULTS` (each threshold ``None`` = rule off):

* ``dead_expert``   an expert's load share < ``dead_expert_fraction`` · 1/E (10 % of its
  uniform share) for ``dead_expert_steps`` (20) consecutive logged steps. Switch/GShard and
  DeepSeek report experts that stop receiving tokens; one that gets a tenth of its fair share
  for 20 logs is not recovering by itself.
* ``collapse``      the same expert serves more than ``collapse_share`` (0.5) of the tokens
  for ``collapse_steps`` (3) consecutive logged steps. The same one: in the first steps of
  training a small router swings from one favourite to another from step to step, which is
  not a collapse and recovers by itself. The token share of expert e is k · load_e
  (the fraction of tokens with e among their k choices; 1 = every token), so the rule means
  the same for top-1 and top-8. It can only fire when the threshold exceeds the uniform
  token share k/E (see :func:`rule_notes`).
* ``dropped_tokens`` a layer drops more than ``dropped_tokens`` (0.1) of its assignments
  over expert capacity for ``dropped_tokens_steps`` (3) consecutive logged steps (Switch
  Transformer keeps drops around 1 % with capacity factor 1.25; 10 % means capacity is far
  too small or routing far too skewed).
* ``nonfinite_loss`` the logged loss is NaN or ±inf (logged as null).
* ``divergence``    the loss exceeds ``divergence_factor`` (1.5) × the median of the previous
  ``divergence_window`` (20) finite logged losses, once at least ``divergence_min_history``
  (10) are known. The median, not the mean, so that one earlier spike does not raise the
  baseline; a ratio, not a z-score, because a healthy run's loss noise is tiny next to its
  scale and a z-score would fire on ordinary wiggles of a flat curve.

Every rule fires once per episode: when its condition has held for the required number of
consecutive logged steps; it is re-armed when the condition stops holding. An alert's ``key``
names the episode's subject (``collapse/layer2/expert3``, ``dead_expert/layer1/expert5``, ``loss``).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ALERT_KINDS = ("dead_expert", "collapse", "dropped_tokens", "nonfinite_loss", "divergence")
#: What a job does when an alert of a kind fires: nothing more than recording it, stop at once
#: (the job ends cancelled, nothing saved), or write a checkpoint and its weights, then stop.
ACTIONS = ("none", "stop", "checkpoint_stop")
#: Alerts one detector raises at most (a run with 64 dead experts in 30 layers says enough
#: after this many); the hub applies its own cap per run too.
MAX_ALERTS = 200

_LOAD = re.compile(r"^moe/layer(\d+)/load/expert(\d+)$")
_DROPPED = re.compile(r"^moe/layer(\d+)/dropped_frac$")


@dataclass(frozen=True)
class Thresholds:
    """The rules' parameters (see the module docstring); ``None`` turns a rule off."""

    dead_expert_fraction: float | None = 0.1
    dead_expert_steps: int = 20
    collapse_share: float | None = 0.5
    collapse_steps: int = 3
    dropped_tokens: float | None = 0.1
    dropped_tokens_steps: int = 3
    nonfinite_loss: bool = True
    divergence_factor: float | None = 1.5
    divergence_window: int = 20
    divergence_min_history: int = 10

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> Thresholds:
        """The thresholds among ``raw``'s keys (a job's ``alerts`` section); others ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


DEFAULTS = Thresholds()


@dataclass
class Alert:
    kind: str
    step: int
    key: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rule_notes(t: Thresholds, *, n_experts: int, top_k: int) -> list[str]:
    """Rules that cannot fire for this model, said once at the start of a job."""
    notes = []
    uniform = min(1.0, top_k / n_experts)
    if t.collapse_share is not None and t.collapse_share < 1.0 and t.collapse_share <= uniform:
        notes.append(
            f"collapse alert off: its threshold {t.collapse_share:g} is not above the uniform "
            f"token share top_k/n_experts = {uniform:g} (raise alerts.collapse_share)"
        )
    return notes


def parse_step(values: dict[str, float | None]) -> dict[str, Any]:
    """The values of one logged step that the rules read: ``loss`` (absent, a float, or None
    for non-finite), ``load`` {layer: {expert: share}}, ``dropped`` {layer: share}."""
    out: dict[str, Any] = {"load": {}, "dropped": {}}
    for name, v in values.items():
        if name == "loss":
            out["loss"] = v if v is not None and math.isfinite(v) else None
            continue
        if v is None or not math.isfinite(v):
            continue
        if m := _LOAD.match(name):
            out["load"].setdefault(int(m[1]), {})[int(m[2])] = float(v)
        elif m := _DROPPED.match(name):
            out["dropped"][int(m[1])] = float(v)
    return out


class HealthDetector:
    """Feed it each logged step in order (``observe``); it answers the alerts that fire then.

    ``top_k`` converts a load share into a token share for the collapse rule (replaying a run
    whose top-k is unknown, 1 reads loads as token shares, the strictest reading)."""

    def __init__(
        self, thresholds: Thresholds = DEFAULTS, *, top_k: int = 1, max_alerts: int = MAX_ALERTS
    ):
        self.t = thresholds
        self.top_k = max(1, int(top_k))
        self.max_alerts = max_alerts
        self.raised = 0
        self.suppressed = 0
        self._streak: dict[str, int] = {}
        self._losses: deque[float] = deque(maxlen=max(1, thresholds.divergence_window))

    def observe(self, step: int, values: dict[str, float | None]) -> list[Alert]:
        s = parse_step(values)
        alerts: list[Alert] = []
        seen: set[str] = set()  # the streaks whose condition held at this step
        t = self.t

        def hold(key: str, need: int) -> bool:
            """The condition of ``key`` holds now: True on the step its streak reaches ``need``."""
            seen.add(key)
            self._streak[key] = self._streak.get(key, 0) + 1
            return self._streak[key] == max(1, need)

        for layer, loads in sorted(s["load"].items()):
            n = len(loads)
            if n < 2:
                continue
            if t.dead_expert_fraction is not None:
                floor = t.dead_expert_fraction / n
                for e, share in sorted(loads.items()):
                    key = f"dead_expert/layer{layer}/expert{e}"
                    if share < floor and hold(key, t.dead_expert_steps):
                        alerts.append(
                            Alert(
                                "dead_expert",
                                step,
                                key,
                                f"layer {layer} expert {e}: load share {share:.3g} below "
                                f"{floor:.3g} ({t.dead_expert_fraction:g} × 1/{n}) for "
                                f"{t.dead_expert_steps} logged steps",
                                {
                                    "layer": layer,
                                    "expert": e,
                                    "share": share,
                                    "threshold": floor,
                                    "steps": t.dead_expert_steps,
                                },
                            )
                        )
            if t.collapse_share is not None and t.collapse_share > min(1.0, self.top_k / n):
                for e, share in sorted(loads.items()):
                    tokens = min(1.0, self.top_k * share)
                    key = f"collapse/layer{layer}/expert{e}"
                    if tokens > t.collapse_share and hold(key, t.collapse_steps):
                        alerts.append(
                            Alert(
                                "collapse",
                                step,
                                key,
                                f"layer {layer}: expert {e} serves {tokens:.0%} of the tokens "
                                f"(threshold {t.collapse_share:.0%}) for {t.collapse_steps} "
                                "logged steps",
                                {
                                    "layer": layer,
                                    "expert": e,
                                    "token_share": tokens,
                                    "load_share": share,
                                    "threshold": t.collapse_share,
                                    "steps": t.collapse_steps,
                                    "top_k": self.top_k,
                                },
                            )
                        )
        if t.dropped_tokens is not None:
            for layer, frac in sorted(s["dropped"].items()):
                key = f"dropped_tokens/layer{layer}"
                if frac > t.dropped_tokens and hold(key, t.dropped_tokens_steps):
                    alerts.append(
                        Alert(
                            "dropped_tokens",
                            step,
                            key,
                            f"layer {layer} drops {frac:.1%} of its assignments over capacity "
                            f"(threshold {t.dropped_tokens:.1%}) for {t.dropped_tokens_steps} "
                            "logged steps",
                            {
                                "layer": layer,
                                "dropped_frac": frac,
                                "threshold": t.dropped_tokens,
                                "steps": t.dropped_tokens_steps,
                            },
                        )
                    )
        if "loss" in s:
            loss = s["loss"]
            if loss is None:
                if t.nonfinite_loss and hold("nonfinite_loss", 1):
                    alerts.append(
                        Alert(
                            "nonfinite_loss",
                            step,
                            "nonfinite_loss",
                            f"the loss is not finite at step {step}",
                            {"loss": _raw_loss(values.get("loss"))},
                        )
                    )
            else:
                history = self._losses
                if t.divergence_factor is not None and len(history) >= max(
                    1, t.divergence_min_history
                ):
                    baseline = statistics.median(history)
                    limit = baseline * t.divergence_factor
                    if loss > limit and hold("divergence", 1):
                        alerts.append(
                            Alert(
                                "divergence",
                                step,
                                "divergence",
                                f"loss {loss:.4g} is over {t.divergence_factor:g} × the median "
                                f"{baseline:.4g} of the last {len(history)} logged losses",
                                {
                                    "loss": loss,
                                    "baseline": baseline,
                                    "factor": t.divergence_factor,
                                    "window": len(history),
                                },
                            )
                        )
                history.append(loss)
        for key in [k for k in self._streak if k not in seen]:
            del self._streak[key]  # the condition stopped holding: re-armed
        room = max(0, self.max_alerts - self.raised)
        self.suppressed += max(0, len(alerts) - room)
        alerts = alerts[:room]
        self.raised += len(alerts)
        return alerts


def _raw_loss(v: Any) -> str | None:
    if v is None:
        return None
    return str(v)  # "nan", "inf": JSON has no spelling for them


def replay(
    points: list[tuple[int, dict[str, float | None]]],
    thresholds: Thresholds = DEFAULTS,
    *,
    top_k: int = 1,
) -> list[Alert]:
    """Every alert the rules raise over logged steps ``[(step, values), ...]`` in step order."""
    det = HealthDetector(thresholds, top_k=top_k)
    out: list[Alert] = []
    for step, values in points:
        out.extend(det.observe(step, values))
    return out
