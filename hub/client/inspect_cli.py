"""``hub inspect``: the Inspector's model views from the command line.

hub inspect routing ns/repo@A ns/repo@B      routing diff on the probe set (a table per layer)
hub inspect attention ns/repo@ref "prompt"   attention maps (--json: the whole answer;
                                             otherwise each layer's check and routing)
hub inspect graph ns/repo@ref [--project P]  computation graph (hub/client/graph_cli.py)
hub inspect diff ns/repo@A ns/repo@B         graph diff
"""

from __future__ import annotations

import json
import sys


def cmd_inspect(args, client) -> int:
    if args.action in ("graph", "diff"):
        from hub.client.graph_cli import cmd_graph

        return cmd_graph(args, client)
    if args.action == "routing":
        d = client.routing_diff(args.a, args.b)
        if args.json:
            print(json.dumps(d, indent=2))
            return 0
        a, b = d["a"], d["b"]
        print(
            f"routing diff {a['repo']}@{a['commit'][:12]} → {b['repo']}@{b['commit'][:12]} "
            f"(probe set v{d['probe_version']}, {d['tokens']} tokens, top-k "
            f"{d['top_k_a']} → {d['top_k_b']})"
        )
        print(f"{'layer':>5}  {'same top-1':>10}  {'matched':>8}  {'entropy A→B':>14}  swaps")
        for L in d["layers"]:
            swaps = ", ".join(f"{s['a']}→{s['b']}" for s in L["swaps"]) or "-"
            print(
                f"{L['layer']:>5}  {L['same_top1'] * 100:>9.1f}%  "
                f"{L['matched_same_top1'] * 100:>7.1f}%  "
                f"{L['entropy_a']:>6.3f}→{L['entropy_b']:<6.3f}  {swaps}"
            )
            deltas = " ".join(f"{x * 100:+.1f}" for x in L["load_delta"])
            print(f"{'':>5}  load change (points) per expert: {deltas}")
        return 0
    res = client.attention(args.spec, args.prompt)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"{res['repo']}@{res['commit'][:12]}: {len(res['tokens'])} tokens, "
        f"{res['n_layer']} layers × {res['n_head']} heads"
    )
    print("tokens: " + " ".join(res["tokens"]))
    for L in res["layers"]:
        line = f"layer {L['layer']}: |explicit - SDPA| = {L['max_abs_diff']:.2e}"
        if L.get("routing"):
            line += "; top-1 experts: " + " ".join(str(e[0]) for e in L["routing"]["experts"])
        print(line)
    sys.stdout.flush()
    return 0


def add_parser(sub, common) -> None:
    s = sub.add_parser(
        "inspect",
        parents=[common],
        help="look inside models: attention maps, routing diff, computation graph",
    )
    xs = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = xs.add_parser(
        "routing", parents=[common], help="compare two commits' expert routing on the probe set"
    )
    x.add_argument("a", help="ns/name@ref (A)")
    x.add_argument("b", help="ns/name@ref (B)")
    x = xs.add_parser("attention", parents=[common], help="attention maps of a prompt")
    x.add_argument("spec", help="ns/name[@ref]")
    x.add_argument("prompt", help="the text (bytes are tokens)")
    from hub.client.graph_cli import add_arguments

    add_arguments(xs, common)
