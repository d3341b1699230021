"""``hub profile``: profile memory and profile diff from the command line.

hub profile memory JOB            memory by category at the peak, the largest live tensors
hub profile diff A B              A, B: profile job ids or ns/repo@ref (commit, branch, tag);
                                  for refs the hub reuses a finished profile of that commit
                                  with the same settings or launches one (--project), waits
                                  (progress on stderr), then prints per-op self time and
                                  memory ratios B/A, sorted by impact
"""

from __future__ import annotations

import json
import sys
import time

TERMINAL = ("succeeded", "failed", "cancelled", "lost")


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.2f} MiB"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _wait(client, prep: dict, timeout: float) -> dict:
    """Poll both jobs until they end, one progress line per change on stderr."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        states = {}
        for side in ("a", "b"):
            j = client._json("GET", f"/jobs/{prep[side]['job']}")
            p = j.get("progress") or {}
            step = f" {p.get('step')}/{p.get('total')}" if p.get("total") else ""
            states[side] = (j["status"], step, j.get("reason", ""))
        line = "  ".join(
            f"{s.upper()} {prep[s]['job']}: {states[s][0]}{states[s][1]}" for s in states
        )
        if line != last:
            print(line, file=sys.stderr, flush=True)
            last = line
        if all(st[0] in TERMINAL for st in states.values()):
            return states
        if time.monotonic() > deadline:
            raise TimeoutError(f"profiles still running after {timeout:.0f}s: {line}")
        time.sleep(1.0)


def cmd_profile(args, client) -> int:
    if args.action == "memory":
        m = client.profile_memory(args.job)
        if args.json:
            print(json.dumps(m, indent=2))
            return 0
        peak = m["peak"]
        print(
            f"profile {m['job']} ({m['device']}): {m['tensor_count']} tensors, peak "
            f"{_mib(peak['bytes'])} at {peak['t_ms']:.1f} ms"
        )
        for cat, b in peak["by_category"].items():
            if b:
                print(f"  {cat:<16} {_mib(b):>12}")
        by_id = {t["id"]: t for t in m["tensors"]}
        print(f"largest of the {peak['live_count']} tensors live at the peak:")
        for i in peak["live"][: args.limit]:
            t = by_id[i]
            print(
                f"  {_mib(t['bytes']):>12}  {t['category']:<16} {t['op'] or '?'}  {t['module'] or ''}"
            )
        return 0

    config = json.loads(open(args.config).read()) if args.config else None
    prep = client.profile_diff_prepare(args.a, args.b, config=config, project=args.project or "")
    for side in ("a", "b"):
        s = prep[side]
        how = "launched" if s["launched"] else "reusing"
        print(
            f"{side.upper()}: {s['spec']} → {s['repo']}@{s['commit'][:12]}: {how} profile job "
            f"{s['job']} ({s['status']})",
            file=sys.stderr,
        )
    if not prep["ready"]:
        states = _wait(client, prep, args.timeout)
        bad = {s: st for s, st in states.items() if st[0] != "succeeded"}
        if bad:
            for s, st in bad.items():
                print(f"error: profile job {prep[s]['job']} {st[0]}: {st[2]}", file=sys.stderr)
            return 1
    d = client.profile_diff(prep["a"]["job"], prep["b"]["job"])
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    s = d["summary"]
    print(
        f"profile diff A {d['a']['job']} ({d['a']['commit'][:12]}) → B {d['b']['job']} "
        f"({d['b']['commit'][:12]}): self time per step {s['a_total_us'] / 1000:.2f} ms → "
        f"{s['b_total_us'] / 1000:.2f} ms ({_ratio(s['total_ratio'])})"
    )
    print(f"{'op':<40} {'A self/step':>12} {'B self/step':>12} {'B/A':>8} {'mem B/A':>8}")
    for r in d["ops"][: args.limit]:
        a = "-" if r["a_self_us"] is None else f"{r['a_self_us'] / 1000:.3f} ms"
        b = "-" if r["b_self_us"] is None else f"{r['b_self_us'] / 1000:.3f} ms"
        tag = {"a": " (only A)", "b": " (only B)"}.get(r["only"] or "", "")
        print(
            f"{r['op'][:40]:<40} {a:>12} {b:>12} {_ratio(r['self_ratio']):>8} "
            f"{_ratio(r['memory_ratio']):>8}{tag}"
        )
    return 0


def add_parser(sub, common) -> None:
    s = sub.add_parser("profile", parents=[common], help="profile memory; diff two profiles")
    ps = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = ps.add_parser("memory", parents=[common], help="a profile's peak memory and tensors")
    x.add_argument("job", help="the profile job id")
    x.add_argument("-n", "--limit", type=int, default=15, help="tensors to list (15)")
    x = ps.add_parser(
        "diff", parents=[common], help="per-op self time and memory ratios B/A of two profiles"
    )
    x.add_argument("a", help="profile job id or ns/repo@ref (the baseline)")
    x.add_argument("b", help="profile job id or ns/repo@ref")
    x.add_argument("--project", help="namespace/project to launch missing profiles in")
    x.add_argument("--config", help="JSON profile config for both (default: a side's)")
    x.add_argument("-n", "--limit", type=int, default=25, help="ops to list (25)")
    x.add_argument("--timeout", type=float, default=1800, help="seconds to wait for profiles")
