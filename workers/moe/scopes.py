"""Profiling scopes: free when off, labelled ``record_function`` blocks when the profiler asks.

The model (``model.py``) and its dispatch kernel (``dispatch.py``) wrap their work in
``scope("attention" | "router" | "dispatch" | "experts")``; ``profile.py`` switches the labels
on and groups the time it measures by them.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

# Names of the module-level scopes the profiler groups time by (see ``profile.py``).
PROFILE_SCOPES = ("attention", "router", "dispatch", "experts")

_PROFILE_SCOPES_ON = False


def set_profile_scopes(on: bool) -> None:
    """Label attention / router / dispatch / experts with ``record_function`` (profile.py)."""
    global _PROFILE_SCOPES_ON
    _PROFILE_SCOPES_ON = on


def scope(name: str) -> Any:
    if _PROFILE_SCOPES_ON:
        return torch.profiler.record_function(f"moe::{name}")
    return nullcontext()
