"""MoE health alerts inside a training job: the shared rules (hub/shared/moe_health.py) fed
at every logged step, each alert sent as an ``alert`` event, and the action the job's
``alerts`` section chose for it (none, stop, checkpoint_stop) handed back to the loop."""

from __future__ import annotations

from typing import Any

from hub.shared.moe_health import ACTIONS, HealthDetector, Thresholds, rule_notes
from workers.moe.config import Config
from workers.moe.events import EventWriter


class JobHealth:
    def __init__(self, cfg: Config, events: EventWriter) -> None:
        assert cfg.alerts is not None
        a = cfg.alerts
        self.events = events
        self.thresholds = Thresholds.from_mapping(vars(a))
        self.actions = {k[3:]: v for k, v in vars(a).items() if k.startswith("on_")}
        self.detector = HealthDetector(self.thresholds, top_k=cfg.model.top_k)
        self.raised: dict[str, int] = {}
        self.stop_reason: str | None = None
        self.stop_action: str | None = None
        for note in rule_notes(
            self.thresholds, n_experts=cfg.model.n_experts, top_k=cfg.model.top_k
        ):
            events.log(note, "warning")

    @classmethod
    def for_config(cls, cfg: Config, events: EventWriter) -> JobHealth | None:
        """The job's monitor, or None when its config has no alerts section or turns it off."""
        if cfg.alerts is None or not cfg.alerts.enabled:
            return None
        return cls(cfg, events)

    def observe(self, step: int, values: dict[str, Any]) -> str | None:
        """Check one logged step; send its alerts; the strongest action they ask for (None,
        "stop" or "checkpoint_stop"), remembered with its reason for the job's summary."""
        strongest: str | None = None
        for alert in self.detector.observe(step, values):
            action = self.actions.get(alert.kind, "none")
            self.raised[alert.kind] = self.raised.get(alert.kind, 0) + 1
            self.events.alert(
                alert.kind, alert.step, alert.key, alert.message, alert.details, action
            )
            self.events.log(
                f"MoE health alert ({alert.kind}) at step {step}: {alert.message}", "warning"
            )
            if action != "none" and self.stop_reason is None:
                self.stop_reason = (
                    f"stopped by the {alert.kind} alert at step {step} "
                    f"(alerts.on_{alert.kind}: {action}): {alert.message}"
                )
            if action != "none" and (
                strongest is None or ACTIONS.index(action) > ACTIONS.index(strongest)
            ):
                strongest = action
        if strongest is not None and self.stop_action is None:
            self.stop_action = strongest
        return strongest

    def summary(self) -> dict[str, Any]:
        return {
            "raised": dict(self.raised),
            "suppressed": self.detector.suppressed,
            "stop_reason": self.stop_reason,
        }
