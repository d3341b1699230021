"""Diff of two computation graphs (the ``graph.json`` an inspect job writes,
``workers/moe/inspect.py``). Django-free: the hub's API and the SDK use it alike.

Nodes are matched by (module path, op target, occurrence): the n-th ``aten.topk`` of
``blocks.1.ffn.router`` in A is matched with the n-th in B, whatever the node names (``topk``,
``topk_1``, ...) the export gave them. A matched pair is *changed* when its output shapes or
dtypes, input shapes, constant arguments (top-k's k) or parameter count differ. Unmatched
nodes are *added* (only in B) or *removed* (only in A). Modules are compared by path the
same way: 8 → 16 experts adds ``blocks.N.ffn.expert.8`` … ``expert.15`` and changes the
router's linear (its output (N, 8) → (N, 16)), top-k and dispatch nodes.

Nodes that only unpack a tuple (``getitem``) are matched like any other; inputs, outputs and
buffers too (a buffer's shape changes with the experts' count).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

COMPARED = ("outputs", "inputs", "args", "params")


def node_key(node: dict[str, Any], seen: Counter) -> str:
    """``module|target#i``: i counts earlier nodes with the same module and target."""
    base = f"{node.get('module', '')}|{node.get('target', '')}"
    i = seen[base]
    seen[base] += 1
    return f"{base}#{i}"


def keyed(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    seen: Counter = Counter()
    return {node_key(n, seen): n for n in nodes}


def _brief(key: str, n: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": key,
        "id": n.get("id", ""),
        "module": n.get("module", ""),
        "target": n.get("target", ""),
        "kind": n.get("kind", ""),
        "outputs": n.get("outputs", []),
    }


def diff_graphs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """{summary, added, removed, changed, modules_added, modules_removed}; see the module
    docstring for the matching rule."""
    ka, kb = keyed(a.get("nodes", [])), keyed(b.get("nodes", []))
    added = [_brief(k, n) for k, n in kb.items() if k not in ka]
    removed = [_brief(k, n) for k, n in ka.items() if k not in kb]
    changed = []
    unchanged = 0
    for k, na in ka.items():
        nb = kb.get(k)
        if nb is None:
            continue
        fields = [
            {"field": f, "a": na.get(f), "b": nb.get(f)}
            for f in COMPARED
            if (na.get(f) or None) != (nb.get(f) or None)
        ]
        if fields:
            changed.append(
                {
                    **_brief(k, nb),
                    "a_id": na.get("id", ""),
                    "b_id": nb.get("id", ""),
                    "changes": fields,
                }
            )
        else:
            unchanged += 1
    ma = {m["path"] for m in a.get("modules", [])} | {
        n.get("module", "") for n in a.get("nodes", [])
    }
    mb = {m["path"] for m in b.get("modules", [])} | {
        n.get("module", "") for n in b.get("nodes", [])
    }
    return {
        "summary": {
            "added": len(added),
            "removed": len(removed),
            "changed": len(changed),
            "unchanged": unchanged,
            "params_a": a.get("params_total"),
            "params_b": b.get("params_total"),
        },
        "added": added,
        "removed": removed,
        "changed": changed,
        "modules_added": sorted(mb - ma),
        "modules_removed": sorted(ma - mb),
    }
