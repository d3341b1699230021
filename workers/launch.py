"""``python -m workers.launch KIND ARGS...``: run a workload entry point, saying so first.

The entry points import torch before they can write anything (~1 s). The supervisor starts
jobs through this launcher, which writes one ``log`` event on the event descriptor before
that import, so "the job is alive inside its sandbox" is known at once; then it runs
``workers.moe.<KIND>`` exactly as ``python -m`` would, whose event writer continues the
launcher's ``seq`` (0 here, 1, 2, ... there). Pure standard library.
"""

from __future__ import annotations

import os
import runpy
import sys

from workers.moe.events import EventWriter  # standard library only, like this module

KINDS = ("train", "finetune", "evaluate", "profile", "quantize", "inspect")


def _event_fd(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        if a == "--event-fd" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--event-fd="):
            return int(a.split("=", 1)[1])
    return 1


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in KINDS:
        sys.exit(f"usage: python -m workers.launch {{{','.join(KINDS)}}} [entry point arguments]")
    kind, rest = sys.argv[1], sys.argv[2:]
    try:
        events = EventWriter(_event_fd(rest))
        events.log(f"{kind}: started (pid {os.getpid()})")
        events.hand_over()  # the entry point's writer goes on at seq 1: one sequence per process
    except (ValueError, OSError):
        pass  # the entry point reports a bad --event-fd itself
    sys.argv = [f"workers.moe.{kind}", *rest]
    runpy.run_module(f"workers.moe.{kind}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
