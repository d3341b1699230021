"""``hub inspect graph`` and ``hub inspect diff``: a commit's computation graph (an inspect job
in the sandbox, ``workers/moe/inspect.py``) and the diff of two commits' graphs.

hub inspect graph ns/repo@ref                     the commit's newest graph: a summary
hub inspect graph ns/repo@ref --project ns/proj   launch an inspect job for it (--wait: until
                                                  it ends, then the summary)
hub inspect diff ns/repo@A ns/repo@B              added / removed / changed nodes, B against A
"""

from __future__ import annotations

import json
import sys
import time
from urllib.parse import quote

TERMINAL = ("succeeded", "failed", "cancelled", "lost")


def add_arguments(xs, common) -> None:
    x = xs.add_parser(
        "graph",
        parents=[common],
        help="a commit's computation graph (with --project: launch the inspect job)",
    )
    x.add_argument("spec", help="ns/name@ref (a ref without '/', or a commit id)")
    x.add_argument("--project", help="ns/project to launch an inspect job in")
    x.add_argument("--seq-len", type=int, default=32, help="tokens per example sequence")
    x.add_argument("--batch", type=int, default=2, help="sequences in the example input")
    x.add_argument("--wait", action="store_true", help="wait for the launched job to end")
    x.add_argument("--out", help="write the graph JSON to this file")
    x.add_argument("--onnx", help="download the ONNX export to this file")
    x = xs.add_parser("diff", parents=[common], help="diff two commits' computation graphs")
    x.add_argument("a", help="ns/name@ref (A)")
    x.add_argument("b", help="ns/name@ref (B)")


def _split(spec: str) -> tuple[str, str]:
    repo, _, ref = spec.partition("@")
    return repo, ref or "main"


def _summary(res: dict) -> str:
    g = res["graph"]
    ops = sum(1 for n in g["nodes"] if n.get("kind") == "op")
    m = g.get("model", {})
    return (
        f"{res['repo']}@{res['commit'][:12]} (job {res['job']}): {len(g['nodes'])} nodes "
        f"({ops} ops), {len(g['edges'])} edges, {g['params_total']:,} parameters, "
        f"{g.get('flops_total', 0):,} FLOPs per forward; {m.get('n_layer')} layers, "
        f"{m.get('n_experts')} experts, top-{m.get('top_k')}"
        + (f"\nONNX: {res['onnx_url']}" if res.get("onnx_url") else "")
    )


def cmd_graph(args, client) -> int:
    if args.action == "diff":
        d = client._json("GET", "/graphs/diff", params={"a": args.a, "b": args.b})
        if args.json:
            print(json.dumps(d, indent=2))
            return 0
        s = d["diff"]["summary"]
        print(
            f"{d['a']['repo']}@{d['a']['commit'][:12]} → {d['b']['repo']}@{d['b']['commit'][:12]}: "
            f"{s['added']} added, {s['removed']} removed, {s['changed']} changed, "
            f"{s['unchanged']} unchanged; parameters {s['params_a']:,} → {s['params_b']:,}"
        )
        for c in d["diff"]["changed"]:
            fields = "; ".join(
                f"{f['field']} {json.dumps(f['a'])} → {json.dumps(f['b'])}" for f in c["changes"]
            )
            print(f"  ~ {c['module'] or '(model)'} {c['target']}: {fields}")
        for mod in d["diff"]["modules_added"]:
            print(f"  + module {mod}")
        for mod in d["diff"]["modules_removed"]:
            print(f"  - module {mod}")
        return 0
    repo, ref = _split(args.spec)
    if args.project:
        config = {"inspect": {"what": "graph", "seq_len": args.seq_len, "batch": args.batch}}
        job = client._json(
            "POST",
            "/jobs",
            json={"project": args.project, "kind": "inspect", "config": config, "base": args.spec},
        )
        print(f"Launched inspect job {job['id']} ({job['status']})", file=sys.stderr)
        if not args.wait:
            if args.json:
                print(json.dumps(job, indent=2))
            return 0
        while job["status"] not in TERMINAL:
            time.sleep(1)
            job = client._json("GET", f"/jobs/{job['id']}")
        if job["status"] != "succeeded":
            print(f"error: job {job['id']} {job['status']}: {job['reason']}", file=sys.stderr)
            return 1
        res = client._json("GET", f"/jobs/{job['id']}/graph")
    else:
        res = client._json("GET", f"/repos/{repo}/commits/{quote(ref, safe='')}/graph")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(res["graph"], f)
    if args.onnx and res.get("onnx_url"):
        resp = client.request("GET", res["onnx_url"].removeprefix("/api/v1"))
        with open(args.onnx, "wb") as f:
            f.write(resp.content)
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if k != "graph"}, indent=2, default=str))
    else:
        print(_summary(res))
    return 0
