"""What every entry point shares: arguments, config loading, the event writer, exit codes.

    python -m workers.moe.<kind> --config FILE --out DIR [--event-fd N] [--init-weights DIR]

Before the work starts every entry point sends a ``config`` event: the full resolved config
(:func:`resolved_config`), which the supervisor records as the run's params.

Exit codes: 0 done; 1 unexpected failure (an ``error`` event carries the traceback);
2 bad input: invalid config, unusable corpus or weights (an ``error`` event says what, no
traceback); 143 terminated by SIGTERM (an ``error`` event says so).
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import torch

from workers.moe.checkpoint import read_weights_config, resolve_model_config
from workers.moe.config import (
    Config,
    ConfigError,
    InputError,
    RuntimeConfig,
    fp16_needs_cuda,
    load_config,
    validate_config,
)
from workers.moe.events import EventWriter

RunFn = Callable[[Config, Path, EventWriter, Path | None], dict[str, Any]]


class Terminated(Exception):
    """Raised in the main thread by SIGTERM, so the job can report before it dies."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError([{"path": "", "message": f"bad arguments: {message}"}])


def _event_fd(argv: list[str]) -> int:
    """--event-fd before full parsing, so argument errors still reach the right descriptor."""
    for i, a in enumerate(argv):
        try:
            if a == "--event-fd" and i + 1 < len(argv):
                return int(argv[i + 1])
            if a.startswith("--event-fd="):
                return int(a.split("=", 1)[1])
        except ValueError:
            break
    return 1


def build_parser(kind: str) -> argparse.ArgumentParser:
    p = _Parser(
        prog=f"python -m workers.moe.{kind}",
        description=f"MoE {kind} job: JSON-line events on --event-fd.",
    )
    p.add_argument("--config", type=Path, help="job config JSON (defaults when omitted)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--event-fd", type=int, default=1, help="file descriptor for events")
    p.add_argument(
        "--init-weights",
        "--weights",
        dest="weights",
        type=Path,
        default=None,
        help="a directory with model.safetensors + config.json",
    )
    return p


def run_cli(kind: str, run: RunFn, argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    events = EventWriter(_event_fd(argv))
    if events.fd == 1:
        # Events own stdout: a stray print() from any library must not corrupt the stream.
        sys.stdout = sys.stderr
    old = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        args = build_parser(kind).parse_args(argv)
        if args.config is not None:
            cfg = load_config(kind, args.config)
        else:
            cfg, errors = validate_config(kind, {})
            assert cfg is not None, errors
        for note in cfg.notes:  # defaults validation fitted to this config
            events.log(note, level="warning")
        if cfg.runtime.threads:
            torch.set_num_threads(cfg.runtime.threads)
        resolve_device(cfg.runtime)  # before any work: no CUDA for a CUDA config is an input error
        events.config(resolved_config(cfg, args.weights))
        args.out.mkdir(parents=True, exist_ok=True)
        summary = run(cfg, args.out, events, args.weights)
        events.done(summary)
        return 0
    except InputError as exc:
        events.error(exc.message, exc.details)
        return 2
    except (Terminated, KeyboardInterrupt) as exc:
        events.error(f"stopped: {'SIGTERM' if isinstance(exc, Terminated) else 'interrupted'}")
        return 143
    except Exception as exc:  # noqa: BLE001 - the job must always end with an event
        events.error(f"{type(exc).__name__}: {exc}", {"traceback": traceback.format_exc()[-6000:]})
        return 1
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def resolved_config(cfg: Config, weights: Path | None) -> dict[str, Any]:
    """The config the job really runs with, to record as its run's params: every section of
    its kind with defaults filled in, and with ``weights`` the model the weights describe (the
    job's own model keys on top, as :func:`workers.moe.checkpoint.load_weights` builds it), not
    the keys the job happened to type."""
    out = cfg.to_dict()
    if weights is not None:
        out["model"] = asdict(
            resolve_model_config(read_weights_config(weights), cfg.model_overrides)
        )
    return out


def resolve_device(rt: RuntimeConfig) -> torch.device:
    """The device a job runs on; an :class:`InputError` (an ``error`` event, not a traceback)
    when the config needs CUDA and there is none."""
    if rt.device == "cuda" or (rt.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise InputError("runtime.device is cuda but no CUDA device is available")
        return torch.device("cuda")
    problem = fp16_needs_cuda(rt, no_cuda=f"runtime.device={rt.device} found no CUDA device")
    if problem:
        raise InputError(problem)
    return torch.device("cpu")


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def main_for(kind: str, run: RunFn) -> NoReturn:
    sys.exit(run_cli(kind, run))
