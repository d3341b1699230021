"""Inspect a model:  python -m workers.moe.inspect --config FILE --out DIR [--weights DIR]

``inspect.what`` selects the view. ``graph`` writes into ``DIR/inspect/``:

    graph.json   the computation graph of a forward pass on a (batch, seq_len)      inspect_graph
                 token batch, from ``torch.export``: nodes (op, target, module path,
                 input / output shapes and dtypes, parameter count, FLOPs estimate)
                 and edges (producer → consumer), plus the model's parameter total
    model.onnx   the same program exported to ONNX (opset 18, ``torch.onnx.export``  inspect_onnx
                 with ``dynamo=True``), openable in Netron

Export-friendly dispatch. The model's MoE layer sorts token→expert assignments and slices
them per expert with sizes read back from the tensor (``plan_dispatch``: ``.tolist()``); a
graph capture cannot trace that data-dependent control flow. For the export every MoE layer
runs *dense-masked dispatch* instead, which computes the same function for a dropless layer:

    W = scatter(zeros(N, E), experts, gates)        combine weights, (N, E), row t holds g[t, e]
                                                    for e ∈ K(t) and 0 elsewhere
    y = Σ_e W[:, e] · expert_e(x)                   every expert runs on every token

so the graph shows router → top-k → dispatch (the scatter) → experts (one module per expert,
``…ffn.expert.<e>``) → combine. With ``model.capacity_factor`` set the real layer also drops
assignments over capacity; the dense path does not (the graph says so in ``notes``). The FLOPs
of the expert nodes are those of this dense path (every expert on every token); ``flops_active``
in each MoE node's details gives the routed share (top_k / n_experts of it).

FLOPs are shape-based: ``torch.utils.flop_counter``'s per-op formulas (mm, bmm, addmm,
convolution, attention kernels), plus ``linear`` (2·numel(out)·in_features), ``matmul``
(2·numel(out)·K) and ``scaled_dot_product_attention`` (4·B·H·T·S·D, causal or not) which the
export keeps as single ops.

Like the profile module, this one is named like a standard library module; ``python -m
workers.moe.inspect`` runs it as a package module, so nothing imports the stdlib one by mistake.
"""

from __future__ import annotations

import json
import math
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workers.moe.checkpoint import atomic_write_text
from workers.moe.cli import main_for
from workers.moe.config import Config, InputError
from workers.moe.events import EventWriter
from workers.moe.model import MoE, MoETransformer, Router, Routing
from workers.moe.train import build_model

GRAPH_FORMAT = 1
# Checks torch.export inserts that compute nothing: left out of the graph.
_HIDDEN_TARGETS = {"aten._assert_tensor_metadata.default"}
ONNX_OPSET = 18


class Dispatch(nn.Module):
    """Dense-masked dispatch: the (N, E) combine weights from the router's choice."""

    def __init__(self, n_experts: int) -> None:
        super().__init__()
        self.n_experts = n_experts

    def forward(self, experts: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        w = torch.zeros(experts.shape[0], self.n_experts, dtype=gates.dtype, device=gates.device)
        return w.scatter(1, experts, gates)  # (N, E)


class ExpertView(nn.Module):
    """Expert e of an ExpertBank as its own module (its weights stay the bank's slices)."""

    def __init__(self, bank: nn.Module, e: int) -> None:
        super().__init__()
        object.__setattr__(self, "_bank", bank)  # not a submodule: parameters keep their names
        self.e = e

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """expert_e(x) = (silu(x W1_eᵀ) ⊙ x W3_eᵀ) @ w2_e, as ``ExpertBank.forward``."""
        bank, e = self._bank, self.e
        h, start = bank.sizes[e], sum(bank.sizes[:e])
        w13 = bank.w13[2 * start : 2 * (start + h)]  # (2·h_e, C): rows [W1_e; W3_e]
        w2 = bank.w2[start : start + h]  # (h_e, C)
        a, b = F.linear(x, w13).chunk(2, dim=-1)  # (n, h_e) each
        return (F.silu(a) * b) @ w2  # (n, C)


def _router_forward(self: Router, x: torch.Tensor) -> Routing:
    """Router.forward without its autocast-off region (the export runs in fp32 with no
    autocast, so that region changes nothing, but torch.export would hide its ops inside a
    wrap_with_autocast sub-graph)."""
    logits = F.linear(x.float(), self.weight.float())  # (N, E)
    scores = logits.softmax(dim=-1) if self.score_fn == "softmax" else logits.sigmoid()
    select = scores.detach() + self.balance_bias  # (N, E)
    if self.force_expert is not None:
        select[:, self.force_expert] = float("inf")
    _, experts = torch.topk(select, self.top_k, dim=-1)  # (N, k)
    chosen = scores.gather(1, experts)  # (N, k)
    gates = chosen / chosen.sum(dim=-1, keepdim=True) * self.route_scale  # (N, k)
    return Routing(experts=experts, gates=gates, scores=scores, logits=logits)


def _dense_moe_forward(self: MoE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MoE.forward with dense-masked dispatch (see the module docstring); inference only."""
    B, T, C = x.shape
    h = x.reshape(B * T, C)  # (N, C)
    routing = self.router(h)
    w = self.dispatch(routing.experts, routing.gates).to(h.dtype)  # (N, E)
    y = torch.zeros_like(h)
    for e, expert in enumerate(self.expert):
        y = y + w[:, e : e + 1] * expert(h)
    if self.shared is not None:
        y = y + self.shared(h)
    return y.view(B, T, C).to(x.dtype), torch.zeros((), device=x.device)


def export_friendly(model: MoETransformer) -> MoETransformer:
    """Switch every MoE layer of ``model`` (in place) to dense-masked dispatch."""
    for moe in model.moe_layers().values():
        moe.add_module("dispatch", Dispatch(moe.n_experts))
        moe.add_module(
            "expert", nn.ModuleList(ExpertView(moe.experts, e) for e in range(moe.n_experts))
        )
        moe.forward = types.MethodType(_dense_moe_forward, moe)
        moe.router.forward = types.MethodType(_router_forward, moe.router)
    return model


class Logits(nn.Module):
    """model(idx) → logits only (the graph's single output)."""

    def __init__(self, model: MoETransformer) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)[0]


# ---------------------------------------------------------------------------------------------
# The graph


def _meta(v: Any) -> list[dict[str, Any]]:
    """[{shape, dtype}] of a node's value (a tensor, a tuple of them, or a scalar)."""
    if isinstance(v, torch.Tensor):
        return [{"shape": [int(d) for d in v.shape], "dtype": str(v.dtype).removeprefix("torch.")}]
    if isinstance(v, (list, tuple)):
        return [m for x in v for m in _meta(x)]
    if isinstance(v, (int, float, bool)):
        return [{"shape": [], "dtype": type(v).__name__}]
    return []


def _module_path(node: torch.fx.Node) -> tuple[str, str]:
    """(innermost module path, its class name) from nn_module_stack, "" for the root."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, cls = list(stack.values())[-1]
    name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
    return _clean_path(path), name.rpartition(".")[2]


def _clean_path(path: str) -> str:
    """ "L['self'].model.blocks[0].ffn" or "model.blocks.0.ffn" → "blocks.0.ffn"."""
    p = path.replace("L['self']", "").replace("L__self__", "")
    for a, b in (("['", "."), ("']", ""), ("[", "."), ("]", "")):
        p = p.replace(a, b)
    p = ".".join(x for x in p.split(".") if x)
    return p.removeprefix("model.").removeprefix("model") if p.startswith("model") else p


def _shape(v: Any) -> list[int] | None:
    return [int(d) for d in v.shape] if isinstance(v, torch.Tensor) else None


def node_flops(target: Any, args: tuple, out: Any) -> int:
    """Shape-based FLOPs of one aten op (0 when no formula applies)."""
    from torch.utils.flop_counter import flop_registry

    name = str(target)
    try:
        if name.startswith("aten.linear"):
            w = _shape(args[1])
            return 2 * math.prod(_shape(out) or [0]) * (w[1] if w else 0)
        if name.startswith("aten.matmul"):
            a = _shape(args[0])
            return 2 * math.prod(_shape(out) or [0]) * (a[-1] if a else 0)
        if name.startswith("aten.scaled_dot_product_attention"):
            q, k = _shape(args[0]), _shape(args[1])
            if q and k:
                return 4 * math.prod(q[:-2]) * q[-2] * k[-2] * q[-1]
            return 0
        packet = getattr(target, "_overloadpacket", None)
        fn = flop_registry.get(packet) if packet is not None else None
        if fn is None:
            return 0
        return int(fn(*args, out_val=out))
    except Exception:  # noqa: BLE001 - an estimate: a formula that does not fit counts 0
        return 0


def graph_json(ep: torch.export.ExportedProgram, model: nn.Module) -> dict[str, Any]:
    """Nodes and edges of an exported program (see the module docstring)."""
    sig = ep.graph_signature
    params = dict(sig.inputs_to_parameters)
    buffers = dict(sig.inputs_to_buffers)
    named = dict(model.named_parameters(remove_duplicate=False))
    named_buf = dict(model.named_buffers())
    seen: dict[int, str] = {}
    nodes: list[dict[str, Any]] = []
    edges: list[list[str]] = []
    hidden = {n.name for n in ep.graph.nodes if str(n.target) in _HIDDEN_TARGETS}
    for n in ep.graph.nodes:
        if n.name in hidden:
            continue
        val = n.meta.get("val")
        module, module_type = _module_path(n)
        item: dict[str, Any] = {"id": n.name, "op": n.op, "target": "", "module": module}
        if module_type:
            item["module_type"] = module_type
        if n.op == "placeholder":
            if n.name in params:
                fqn = _clean_path(params[n.name])
                p = named.get(params[n.name])
                item.update(kind="parameter", target=fqn, module=fqn.rpartition(".")[0])
                numel = int(p.numel()) if p is not None else math.prod(_shape(val) or [0])
                if p is not None and id(p) in seen:  # a tied weight: counted once
                    item["params"], item["tied_to"] = 0, seen[id(p)]
                else:
                    item["params"] = numel
                    if p is not None:
                        seen[id(p)] = fqn
            elif n.name in buffers:
                fqn = _clean_path(buffers[n.name])
                item.update(kind="buffer", target=fqn, module=fqn.rpartition(".")[0])
                item["buffer_numel"] = (
                    int(named_buf[buffers[n.name]].numel()) if buffers[n.name] in named_buf else 0
                )
            else:
                item.update(kind="input", target=n.target)
        elif n.op == "call_function":
            item["kind"] = "op"
            item["target"] = str(n.target)
            in_vals = tuple(
                a.meta.get("val") if isinstance(a, torch.fx.Node) else a for a in n.args
            )
            item["inputs"] = [m for v in in_vals for m in _meta(v)]
            flops = node_flops(n.target, in_vals, val)
            if flops:
                item["flops"] = flops
            scalars = {
                f"arg{i}": a
                for i, a in enumerate(n.args)
                if isinstance(a, (int, float, bool, str))
                or (isinstance(a, list) and all(isinstance(x, int) for x in a))
            }
            if scalars:
                item["args"] = scalars
        elif n.op == "output":
            item.update(kind="output", target="output")
        else:
            item.update(kind=n.op, target=str(n.target))
        item["outputs"] = _meta(val)
        nodes.append(item)
        for src in n.all_input_nodes:
            if src.name not in hidden:
                edges.append([src.name, n.name])
    return {"nodes": nodes, "edges": edges}


def module_tree(model: nn.Module) -> list[dict[str, Any]]:
    """Every module: path, class and its own (direct) parameter count, so folded groups can
    show totals without the graph repeating them."""
    out = []
    seen: set[int] = set()  # a tied weight (lm_head = wte) counts once, at its first module
    for path, m in model.named_modules():
        mine = [p for p in m.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in mine)
        own = sum(p.numel() for p in mine)
        item = {"path": _clean_path(path), "type": type(m).__name__, "params": int(own)}
        if isinstance(m, ExpertView):  # its slice of the bank (counted in the bank, not here)
            item["view_params"] = 3 * m._bank.sizes[m.e] * m._bank.w13.shape[1]
        out.append(item)
    return out


def graph_document(
    model: MoETransformer, *, batch: int, seq_len: int, seed: int = 0
) -> tuple[dict[str, Any], torch.export.ExportedProgram]:
    """Export ``model`` (switched to dense-masked dispatch, in place) on a (batch, seq_len)
    token batch: (the graph.json document, the exported program)."""
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    export_friendly(model)
    wrapped = Logits(model).eval()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, model.cfg.vocab_size, (batch, seq_len), generator=gen)
    with torch.no_grad():
        expect = wrapped(idx)
    ep = torch.export.export(wrapped, (idx,), strict=False)
    with torch.no_grad():
        got = ep.module()(idx)
    graph = graph_json(ep, wrapped)
    mcfg = model.cfg
    notes = [
        "MoE layers are exported with dense-masked dispatch (every expert runs on every token, "
        "outputs weighted by the router's combine weights): the same function as the model's "
        "sorted dispatch when no token is dropped; expert FLOPs are those of this dense path."
    ]
    if mcfg.capacity_factor is not None:
        notes.append(
            f"model.capacity_factor={mcfg.capacity_factor}: the real layer drops assignments over "
            "capacity; the exported graph does not."
        )
    doc = {
        "format": GRAPH_FORMAT,
        "torch": torch.__version__,
        "input": {"batch": batch, "seq_len": seq_len},
        "model": {
            "n_layer": mcfg.n_layer,
            "n_embd": mcfg.n_embd,
            "n_head": mcfg.n_head,
            "n_experts": mcfg.n_experts,
            "top_k": mcfg.top_k,
            "vocab_size": mcfg.vocab_size,
        },
        "params_total": int(n_params),
        "flops_total": sum(n.get("flops", 0) for n in graph["nodes"]),
        "dispatch": "dense_masked",
        "notes": notes,
        # |exported(x) - model(x)|max on the example batch: 0 when the export is faithful.
        "export_check_max_abs_diff": float((got - expect).abs().max()),
        "modules": module_tree(model),
        **graph,
    }
    return doc, ep


def run(cfg: Config, out: Path, events: EventWriter, weights: Path | None) -> dict[str, Any]:
    assert cfg.inspect is not None
    ins = cfg.inspect
    if ins.what != "graph":
        raise InputError(f"inspect.what={ins.what!r} is not handled by this worker")
    model = build_model(cfg, weights, events)
    if ins.seq_len > model.cfg.block_size:
        raise InputError(
            f"inspect.seq_len ({ins.seq_len}) is longer than the model's block_size "
            f"({model.cfg.block_size})"
        )
    events.log("exporting the graph (torch.export, strict=False, dense-masked MoE dispatch)")
    doc, ep = graph_document(model, batch=ins.batch, seq_len=ins.seq_len, seed=cfg.seed)
    dest = out / "inspect"
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest / "graph.json", json.dumps(doc, separators=(",", ":")))
    events.artifact("inspect/graph.json", "inspect_graph")
    ops = sum(1 for n in doc["nodes"] if n["kind"] == "op")
    events.log(f"graph: {len(doc['nodes'])} nodes ({ops} ops), {len(doc['edges'])} edges")
    onnx_ok = _export_onnx(ep, dest / "model.onnx", events)
    if onnx_ok:
        events.artifact("inspect/model.onnx", "inspect_onnx")
    return {
        "inspect": {
            "what": "graph",
            "nodes": len(doc["nodes"]),
            "ops": ops,
            "edges": len(doc["edges"]),
            "params_total": doc["params_total"],
            "flops": doc["flops_total"],
            "onnx": onnx_ok,
        }
    }


def _export_onnx(ep: torch.export.ExportedProgram, path: Path, events: EventWriter) -> bool:
    """ONNX from the exported program; a failure is logged, the graph still stands."""
    try:
        onnx_program = torch.onnx.export(ep, dynamo=True, opset_version=ONNX_OPSET, verbose=False)
        onnx_program.save(str(path))
        return True
    except Exception as exc:  # noqa: BLE001 - the ONNX file is an extra, not the job
        events.log(f"ONNX export failed: {type(exc).__name__}: {str(exc)[:2000]}", level="warning")
        return False


if __name__ == "__main__":
    main_for("inspect", run)
