"""Profile diff: two profiles (A, B) of the same settings, operator by operator and frame by
frame. Django-free: the hub serves it, the CLI prints it, the tests check it directly.

Per operator: self time and self memory of A and B, the ratio B/A, and the *impact*
``|B - A|`` of self time, the sort key (a 3x slower op that takes 10 µs matters less than a
1.2x slower one that takes 10 ms). An op only one side has gets ratio ``None`` and ``only``
set to ``"a"`` or ``"b"``.

Differential flame graph: the collapsed stacks of both (``frame;frame;op self_us`` lines, as
``workers/moe/profile.py`` writes them) merged into one tree. Each frame holds A's and B's
total (inclusive) time; the dashboard draws B's width and colours by the ratio. A frame only
one side has is marked with ``only``. Both sides are divided by their profiled steps so the
widths are per step.
"""

from __future__ import annotations

from typing import Any


def parse_folded(text: str) -> dict[tuple[str, ...], float]:
    """``frame;frame;leaf 123`` lines → {(frame, frame, leaf): 123}; bad lines are skipped."""
    out: dict[tuple[str, ...], float] = {}
    for line in text.splitlines():
        stack, _, weight = line.strip().rpartition(" ")
        if not stack:
            continue
        try:
            w = float(weight)
        except ValueError:
            continue
        key = tuple(stack.split(";"))
        out[key] = out.get(key, 0.0) + w
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    """B/A, or None where either side is missing or A is zero."""
    if a is None or b is None or a <= 0:
        return None
    return b / a


def op_ratios(
    ops_a: list[dict[str, Any]],
    ops_b: list[dict[str, Any]],
    *,
    steps_a: int = 1,
    steps_b: int = 1,
) -> list[dict[str, Any]]:
    """Rows {op, a_self_us, b_self_us, self_ratio, a_memory_bytes, b_memory_bytes,
    memory_ratio, delta_us, only}, per step, sorted by impact (|delta_us|) then name.

    ``ops_*`` rows have ``op``, ``self_us`` and ``self_memory_bytes`` (the hub's operator
    table); several rows of one op are summed."""

    def table(rows: list[dict[str, Any]], steps: int) -> dict[str, tuple[float, float]]:
        t: dict[str, tuple[float, float]] = {}
        for r in rows:
            us, mem = t.get(r["op"], (0.0, 0.0))
            t[r["op"]] = (
                us + float(r.get("self_us") or 0) / max(steps, 1),
                mem + float(r.get("self_memory_bytes") or 0) / max(steps, 1),
            )
        return t

    ta, tb = table(ops_a, steps_a), table(ops_b, steps_b)
    rows = []
    for op in set(ta) | set(tb):
        a, b = ta.get(op), tb.get(op)
        rows.append(
            {
                "op": op,
                "a_self_us": a[0] if a else None,
                "b_self_us": b[0] if b else None,
                "self_ratio": ratio(a and a[0], b and b[0]),
                "a_memory_bytes": a[1] if a else None,
                "b_memory_bytes": b[1] if b else None,
                "memory_ratio": ratio(a[1], b[1]) if a and b else None,
                "delta_us": (b[0] if b else 0.0) - (a[0] if a else 0.0),
                "only": None if a and b else ("a" if a else "b"),
            }
        )
    rows.sort(key=lambda r: (-abs(r["delta_us"]), r["op"]))
    return rows


def diff_tree(
    folded_a: dict[tuple[str, ...], float],
    folded_b: dict[tuple[str, ...], float],
    *,
    steps_a: int = 1,
    steps_b: int = 1,
    max_frames: int = 5000,
) -> dict[str, Any]:
    """The merged frame tree: {"root": node, "frames": n, "truncated": bool}; a node is
    {name, a_us, b_us, ratio, only, children}. Over ``max_frames`` frames, the smallest
    (by max(a_us, b_us)) are left out, largest first kept, so every kept frame's parent is
    kept too (a parent is never smaller than its child)."""
    root: dict[str, Any] = {"name": "all", "a_us": 0.0, "b_us": 0.0, "children": {}}
    for side, folded, steps in (("a_us", folded_a, steps_a), ("b_us", folded_b, steps_b)):
        for stack, w in folded.items():
            w = w / max(steps, 1)
            node = root
            node[side] += w
            for name in stack:
                node = node["children"].setdefault(
                    name, {"name": name, "a_us": 0.0, "b_us": 0.0, "children": {}}
                )
                node[side] += w
    # Keep the largest frames: rank every node by size, keep the top max_frames.
    sizes: list[tuple[float, int]] = []
    index: dict[int, dict[str, Any]] = {}

    def walk(node: dict[str, Any]) -> None:
        index[id(node)] = node
        sizes.append((max(node["a_us"], node["b_us"]), id(node)))
        for child in node["children"].values():
            walk(child)

    walk(root)
    sizes.sort(key=lambda s: -s[0])
    keep = {i for _, i in sizes[:max_frames]}
    keep.add(id(root))

    def out(node: dict[str, Any]) -> dict[str, Any]:
        a, b = node["a_us"], node["b_us"]
        kids = [out(c) for c in node["children"].values() if id(c) in keep]
        kids.sort(key=lambda c: -max(c["a_us"], c["b_us"]))
        return {
            "name": node["name"],
            "a_us": a,
            "b_us": b,
            "ratio": ratio(a, b),
            "only": None if (a > 0) == (b > 0) else ("a" if a > 0 else "b"),
            "children": kids,
        }

    return {"root": out(root), "frames": len(keep), "truncated": len(sizes) > len(keep)}


def summary(rows: list[dict[str, Any]], tree: dict[str, Any]) -> dict[str, Any]:
    """Totals per step: A's and B's self time and its ratio."""
    a = tree["root"]["a_us"]
    b = tree["root"]["b_us"]
    return {
        "a_total_us": a,
        "b_total_us": b,
        "total_ratio": ratio(a, b),
        "ops_only_in_a": sum(r["only"] == "a" for r in rows),
        "ops_only_in_b": sum(r["only"] == "b" for r in rows),
    }
