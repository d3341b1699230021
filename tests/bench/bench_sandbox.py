"""Sandbox benchmarks: launch latency and the overhead on a training-like loop.

1. Launch latency: from ``Sandbox(spec).start()`` being called to the first event line read
   from inside the sandbox, for a trivial job (``python -c`` writing one line to fd 3),
   p50/p95 over N launches; the same for a plain ``subprocess.Popen`` of the same command
   (goal: sandboxed p50 < 1.5 s on an idle worker). Also the same for a job that imports torch
   first (what a real training job pays before its first event).
2. Overhead: a CPU-bound torch loop (square matmuls for S seconds, 1 thread by default) run
   sandboxed (cpus=2, all layers) and unsandboxed, alternating to spread the machine's noise; the ratio
   of the median throughputs (goal >= 0.95), both per wall-clock second (what a user sees,
   at the mercy of whatever else runs on the machine) and per CPU-second of the job (the
   sandbox's own cost on the computation: seccomp, Landlock and cgroup accounting).

Needs root and bubblewrap (like the sandbox itself); otherwise it says why and exits 0.
Run: .venv/bin/python tests/bench/bench_sandbox.py [--launches 20] [--seconds 6] [--pairs 4]
     [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from workers.sandbox import PYTHON, Sandbox, SandboxSpec, probe  # noqa: E402

TRIVIAL = 'import os; os.write(3, b\'{"type": "log"}\\n\')'
TORCH_FIRST = 'import os, torch; os.write(3, b\'{"type": "log"}\\n\')'
LOOP = """
import json, os, time, torch
torch.set_num_threads({threads})
a = torch.randn(384, 384)
b = torch.randn(384, 384)
for _ in range(20):
    a @ b                                   # warm-up
n, t0, c0 = 0, time.perf_counter(), time.process_time()
while time.perf_counter() - t0 < {seconds}:
    for _ in range(10):
        a @ b
    n += 10
dt, dc = time.perf_counter() - t0, time.process_time() - c0
os.write(3, (json.dumps({{"it_per_s": n / dt, "it_per_cpu_s": n / dc}}) + "\\n").encode())
"""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def sandboxed(code: str, job_dir: Path, **kw) -> tuple[float, bytes]:
    """Seconds from start() to the first event, and that event."""
    t0 = time.perf_counter()
    spec = SandboxSpec(argv=[PYTHON, "-c", code], job_dir=job_dir, **kw)
    with Sandbox(spec) as sb:
        sb.start()
        lines = sb.read_events(timeout=600)
        first = time.perf_counter() - t0
        res = sb.wait(timeout=600)
    if not res.ok or not lines:
        raise RuntimeError(f"sandboxed job failed: {res.message}\n{res.stderr_tail}")
    return first, lines[0]


def plain(code: str) -> tuple[float, bytes]:
    """The same job as a plain subprocess, its event pipe on fd 3 as well."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    # dup the write end to 3 in the child via a tiny shell redirection: same fd contract.
    proc = subprocess.Popen(
        ["/bin/sh", "-c", f'exec "$@" 3>&{w}', "sh", PYTHON, "-c", code],
        pass_fds=[w],
        stdout=subprocess.DEVNULL,
    )
    os.close(w)
    buf = b""
    while b"\n" not in buf:
        select.select([r], [], [])
        chunk = os.read(r, 65536)
        if not chunk:
            break
        buf += chunk
    first = time.perf_counter() - t0
    proc.wait()
    os.close(r)
    return first, buf.split(b"\n", 1)[0]


def summary(xs: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(xs), "p95": pct(xs, 95), "min": min(xs), "n": len(xs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launches", type=int, default=20)
    p.add_argument("--torch-launches", type=int, default=3)
    p.add_argument("--seconds", type=float, default=6.0, help="length of each loop run")
    p.add_argument("--pairs", type=int, default=4, help="sandboxed/plain loop pairs")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads in the loop (1: least sensitive to a busy machine)",
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)

    r = probe()
    if not r["ok"]:
        print(
            f"skipped: the sandbox is not available here (missing {r['missing']}, "
            f"degraded {r['degraded']}; needs root and bubblewrap)"
        )
        return 0
    load = os.getloadavg()
    print(f"host: {os.cpu_count()} CPUs, load average {load[0]:.1f} (a shared machine is noisy)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    out: dict = {"load_avg_1m": load[0]}
    try:
        # Warm the page cache and the seccomp filter build once, outside the measurements.
        sandboxed(TRIVIAL, tmp / "warm")
        plain(TRIVIAL)

        sb, pl = [], []
        for i in range(args.launches):
            sb.append(sandboxed(TRIVIAL, tmp / f"l{i}")[0])
            pl.append(plain(TRIVIAL)[0])
        out["launch_sandboxed_s"] = summary(sb)
        out["launch_plain_s"] = summary(pl)
        print(f"launch -> first event, trivial job ({args.launches} launches):")
        print(
            f"  sandboxed  p50 {out['launch_sandboxed_s']['p50'] * 1000:7.1f} ms   "
            f"p95 {out['launch_sandboxed_s']['p95'] * 1000:7.1f} ms   (goal p50 < 1500 ms)"
        )
        print(
            f"  plain      p50 {out['launch_plain_s']['p50'] * 1000:7.1f} ms   "
            f"p95 {out['launch_plain_s']['p95'] * 1000:7.1f} ms"
        )

        if args.torch_launches:
            st, pt = [], []
            for i in range(args.torch_launches):
                st.append(sandboxed(TORCH_FIRST, tmp / f"t{i}", memory_bytes=4 << 30, cpus=2.0)[0])
                pt.append(plain(TORCH_FIRST)[0])
            out["launch_torch_sandboxed_s"] = summary(st)
            out["launch_torch_plain_s"] = summary(pt)
            print(f"launch -> first event, job importing torch ({args.torch_launches}):")
            print(
                f"  sandboxed  p50 {statistics.median(st) * 1000:7.1f} ms   "
                f"plain p50 {statistics.median(pt) * 1000:7.1f} ms"
            )

        code = LOOP.format(seconds=args.seconds, threads=args.threads)
        s_rates, p_rates, s_cpu, p_cpu = [], [], [], []
        for i in range(args.pairs):
            for which in ("s", "p") if i % 2 == 0 else ("p", "s"):
                if which == "s":
                    _, ev = sandboxed(
                        code,
                        tmp / f"loop{i}",
                        memory_bytes=4 << 30,
                        cpus=2.0,
                        pids=256,
                        wall_time_s=600,
                    )
                    s_rates.append(json.loads(ev)["it_per_s"])
                    s_cpu.append(json.loads(ev)["it_per_cpu_s"])
                else:
                    _, ev = plain(code)
                    p_rates.append(json.loads(ev)["it_per_s"])
                    p_cpu.append(json.loads(ev)["it_per_cpu_s"])
        ratio = statistics.median(s_rates) / statistics.median(p_rates)
        cpu_ratio = statistics.median(s_cpu) / statistics.median(p_cpu)
        out["loop_it_per_s"] = {"sandboxed": s_rates, "plain": p_rates, "ratio": ratio}
        out["loop_it_per_cpu_s"] = {"sandboxed": s_cpu, "plain": p_cpu, "ratio": cpu_ratio}
        print(
            f"torch matmul loop, {args.threads} thread(s), {args.seconds:g} s x {args.pairs} pairs:"
        )
        for label, s_, p_ in (
            ("iterations/s", s_rates, p_rates),
            ("iterations/CPU-s", s_cpu, p_cpu),
        ):
            print(
                f"  {label:17s} sandboxed {', '.join(f'{x:.0f}' for x in s_)}"
                f"   plain {', '.join(f'{x:.0f}' for x in p_)}"
            )
        print(
            f"  ratio of medians sandboxed/plain: {ratio:.3f} per wall second, "
            f"{cpu_ratio:.3f} per CPU second   (goal >= 0.95)"
        )
    finally:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
