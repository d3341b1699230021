"""The routing diff of two commits on the probe set (Django-free, no torch: SDK and server).

Input: two ``routing_probe`` results (``workers.moe.introspect.routing_probe``), the same
probe set routed by model A and model B: per MoE layer each token's top-1 expert, the expert
load (share of top-k assignments, sums to 1) and the mean per-token routing entropy.

Per layer it reports:

``same_top1``     share of tokens whose top-1 expert id is the same in A and B
``load_delta``    per expert e: load_B[e] - load_A[e]
``entropy_a/b``   mean routing entropy of each (nats)
``matching``      expert roles matched by routing overlap: O[i, j] = #tokens with top-1 i in A
                  and j in B; the assignment maximising Σ O[i, π(i)] (Hungarian method,
                  ``scipy.optimize.linear_sum_assignment``, when scipy is installed; else a
                  greedy matching: repeatedly the largest remaining overlap). ``method`` says
                  which ran.
``swaps``         the experts whose role moved: matched to another id π(i) that received
                  more of i's tokens than i itself did in B: [{"a": i, "b": π(i), "overlap":
                  share of i's tokens that went to π(i)}]. A pairing the matching needed only
                  to complete the permutation (no more overlap than staying) is no swap.
``matched_same_top1``  the same share after renaming B's experts by the matching: what stays
                  once swapped roles are discounted.
"""

from __future__ import annotations

from typing import Any


class RoutingDiffError(ValueError):
    pass


def overlap_matrix(top1_a: list[int], top1_b: list[int], n: int) -> list[list[int]]:
    m = [[0] * n for _ in range(n)]
    for a, b in zip(top1_a, top1_b, strict=True):
        m[a][b] += 1
    return m


def match_experts(overlap: list[list[int]]) -> tuple[list[int], str]:
    """π with π[i] = B's expert matched to A's expert i (maximum total overlap); method."""
    n = len(overlap)
    try:
        import numpy as np
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        return _greedy(overlap), "greedy"
    rows, cols = linear_sum_assignment(np.asarray(overlap, dtype=float), maximize=True)
    perm = [0] * n
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        perm[r] = c
    # Ties among zero-overlap experts: keep an expert on itself where the optimum allows it.
    return _prefer_identity(overlap, perm), "hungarian"


def _greedy(overlap: list[list[int]]) -> list[int]:
    n = len(overlap)
    cells = sorted(
        ((overlap[i][j], i == j, i, j) for i in range(n) for j in range(n)),
        key=lambda c: (-c[0], not c[1], c[2], c[3]),
    )
    perm, used_a, used_b = [-1] * n, set(), set()
    for _, _, i, j in cells:
        if i in used_a or j in used_b:
            continue
        perm[i] = j
        used_a.add(i)
        used_b.add(j)
    return _prefer_identity(overlap, perm)


def _prefer_identity(overlap: list[list[int]], perm: list[int]) -> list[int]:
    """Swap pairs i↔j back to identity when that loses no overlap (ties are not swaps)."""
    n = len(perm)
    changed = True
    while changed:
        changed = False
        for i in range(n):
            if perm[i] == i:
                continue
            k = perm.index(i)  # the A expert now matched to B's i
            cur = overlap[i][perm[i]] + overlap[k][i]
            alt = overlap[i][i] + overlap[k][perm[i]]
            if alt >= cur:
                perm[i], perm[k] = i, perm[i]
                changed = True
    return perm


def _layer_diff(a: dict, b: dict, n: int) -> dict[str, Any]:
    ta, tb = list(a["top1"]), list(b["top1"])
    if len(ta) != len(tb):
        raise RoutingDiffError(f"layer {a['layer']}: {len(ta)} vs {len(tb)} probe tokens")
    if any(not 0 <= e < n for e in ta + tb):
        raise RoutingDiffError(f"layer {a['layer']}: an expert id outside 0..{n - 1}")
    tokens = len(ta)
    same = sum(x == y for x, y in zip(ta, tb, strict=True))
    overlap = overlap_matrix(ta, tb, n)
    perm, method = match_experts(overlap)
    rows = [sum(r) for r in overlap]
    swaps = [
        {"a": i, "b": perm[i], "overlap": round(overlap[i][perm[i]] / rows[i], 4)}
        for i in range(n)
        # a role moved: more of i's tokens went to its partner than stayed on i
        if perm[i] != i and overlap[i][perm[i]] > overlap[i][i]
    ]
    matched = sum(overlap[i][perm[i]] for i in range(n))
    la, lb = list(a["load"]), list(b["load"])
    return {
        "layer": a["layer"],
        "tokens": tokens,
        "same_top1": round(same / tokens, 6) if tokens else 1.0,
        "matched_same_top1": round(matched / tokens, 6) if tokens else 1.0,
        "load_a": [round(x, 6) for x in la],
        "load_b": [round(x, 6) for x in lb],
        "load_delta": [round(y - x, 6) for x, y in zip(la, lb, strict=True)],
        "entropy_a": round(float(a["entropy"]), 6),
        "entropy_b": round(float(b["entropy"]), 6),
        "matching": perm,
        "method": method,
        "swaps": swaps,
    }


def routing_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Compare two probe results (see the module docs). Both must route the same number of
    experts over the same probe tokens in the same MoE layers."""
    n = int(a.get("n_experts", 0))
    if n != int(b.get("n_experts", -1)) or n <= 0:
        raise RoutingDiffError(
            f"the models route over {a.get('n_experts')} and {b.get('n_experts')} experts: "
            "a routing diff needs the same expert count"
        )
    la = {int(x["layer"]): x for x in a.get("layers", [])}
    lb = {int(x["layer"]): x for x in b.get("layers", [])}
    if sorted(la) != sorted(lb):
        raise RoutingDiffError(f"MoE layers differ: {sorted(la)} vs {sorted(lb)}")
    layers = [_layer_diff(la[i], lb[i], n) for i in sorted(la)]
    return {
        "n_experts": n,
        "top_k_a": a.get("top_k"),
        "top_k_b": b.get("top_k"),
        "tokens": int(a.get("n_tokens", 0)),
        "layers": layers,
        "summary": {
            "same_top1": round(sum(x["same_top1"] for x in layers) / len(layers), 6)
            if layers
            else 1.0,
            "swaps": sum(len(x["swaps"]) for x in layers),
            "max_abs_load_delta": max(
                (abs(d) for x in layers for d in x["load_delta"]), default=0.0
            ),
        },
    }
