"""Text generation with a key/value cache, sampling controls and per-token MoE routing.

``MoETransformer.generate`` (model.py) recomputes the whole prefix for every new token: step t
costs a forward pass over t tokens. Here each block keeps the keys and values it computed
(``LayerCache``), so after the prompt's one forward pass ("prefill") every step runs the model
on the single new token ("decode"):

    prefill   x = prompt (1, P)   → K, V of positions 0..P-1 cached per layer; logits of P-1
    decode    x = last token (1, 1) at position p → q, k, v of p; k, v appended; attention
              of q over positions 0..p (no mask needed: every cached key is in the past)

Rotary angles are taken at the absolute positions (``cos[p : p+T]``), and attention stays on
``F.scaled_dot_product_attention``: causal for a prefill from position 0, unmasked for one new
token, an explicit causal mask shifted by the cached length for a chunk appended to a
non-empty cache. The logits equal the uncached path's (``tests/moe/test_generate.py``) while
prompt + generated tokens fit in ``block_size``; past it, the cache is rebuilt from the last
``block_size // 2`` tokens (a sliding window: the uncached path crops to the last
``block_size`` tokens at every step instead, so the two then differ).

MoE layers are dropless here (``capacity_factor`` is ignored): with a capacity the dropped set
would depend on how many tokens share a forward pass, so one token at a time and the whole
prefix would route differently.

Sampling, per step, on the last position's fp32 logits ℓ:

    ℓ ← processor(ids, ℓ) for each logits processor   (e.g. the watermark's green-list bias)
    temperature 0 → argmax; else ℓ / T, then keep the top_k largest, then the smallest set
    whose probability reaches top_p (nucleus), renormalise and draw with ``torch.Generator``
    seeded by ``seed`` (same weights + prompt + params + seed → same tokens)

Stops: ``max_new_tokens``, the end-of-text token, a stop string (the text up to it is kept,
the stop string itself is not emitted), a wall-clock deadline, or a cancel callback. Text is
streamed per token through an incremental UTF-8 decoder; text that could still be the start
of a stop string is held back until it cannot.

Each token event carries the routing of every MoE layer for that token: the chosen expert ids
and their gate weights (``Router`` output, captured by a forward hook).
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from workers.moe.data import ByteTokenizer
from workers.moe.model import MoETransformer, Routing, apply_rotary

LogitsProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Bounds on one request's parameters (the hub enforces its own, lower, limits first).
MAX_TOP_K = 1 << 20
MAX_STOP_STRINGS = 8
MAX_STOP_CHARS = 64


class KVCacheFull(Exception):
    """The cache holds block_size positions: no room for another token."""


class LayerCache:
    """One attention layer's keys and values, (B, H, capacity, hd), filled up to ``length``."""

    def __init__(self, owner: KVCache) -> None:
        self.owner = owner
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        """q, k, v (B, H, T, hd) of the T new positions → attention output (B, H, T, hd)."""
        B, H, T, hd = q.shape
        pos = self.owner.length
        end = pos + T
        if end > self.owner.capacity:
            raise KVCacheFull(f"{end} positions > the cache's {self.owner.capacity}")
        c, s = cos[pos:end], sin[pos:end]
        q, k = apply_rotary(q, c, s), apply_rotary(k, c, s)
        if self.k is None:
            shape = (B, H, self.owner.capacity, hd)
            self.k = k.new_zeros(shape)
            self.v = v.new_zeros(shape)
        assert self.v is not None
        self.k[:, :, pos:end] = k
        self.v[:, :, pos:end] = v
        keys, values = self.k[:, :, :end], self.v[:, :, :end]  # (B, H, end, hd)
        if pos == 0:
            return F.scaled_dot_product_attention(q, keys, values, is_causal=True)
        if T == 1:
            return F.scaled_dot_product_attention(q, keys, values)
        # A chunk after cached positions: query i (absolute pos+i) sees keys 0..pos+i.
        allowed = torch.ones(T, end, dtype=torch.bool, device=q.device).tril(diagonal=pos)
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed)


class KVCache:
    """Per-layer key/value caches for one sequence batch; ``length`` positions are filled."""

    def __init__(self, n_layer: int, capacity: int) -> None:
        self.capacity = capacity
        self.length = 0
        self.layers = [LayerCache(self) for _ in range(n_layer)]

    def advance(self, n: int) -> None:
        self.length += n

    def nbytes(self) -> int:
        return sum(
            t.numel() * t.element_size()
            for layer in self.layers
            for t in (layer.k, layer.v)
            if t is not None
        )


@dataclass
class SamplingParams:
    """What one generation request may set (validated by ``check``)."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0  # 1: off
    seed: int | None = None
    stop: list[str] = field(default_factory=list)

    def check(self) -> list[str]:
        """Problems with the values, as sentences (empty: usable)."""
        errs = []
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            errs.append("max_new_tokens must be a whole number >= 1")
        if not (isinstance(self.temperature, (int, float)) and 0 <= self.temperature <= 100):
            errs.append("temperature must be between 0 and 100 (0: greedy)")
        if not (isinstance(self.top_k, int) and 0 <= self.top_k <= MAX_TOP_K):
            errs.append("top_k must be a whole number >= 0 (0: off)")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            errs.append("top_p must be in (0, 1] (1: off)")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            errs.append("seed must be a whole number in [0, 2^63)")
        if not isinstance(self.stop, list) or len(self.stop) > MAX_STOP_STRINGS:
            errs.append(f"stop must be a list of at most {MAX_STOP_STRINGS} strings")
        elif any(not isinstance(s, str) or not 0 < len(s) <= MAX_STOP_CHARS for s in self.stop):
            errs.append(f"each stop string must have 1 to {MAX_STOP_CHARS} characters")
        return errs

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SamplingParams:
        known = {"max_new_tokens", "temperature", "top_k", "top_p", "seed", "stop"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown generation parameters: {', '.join(unknown)}")
        p = cls(**raw)
        errs = p.check()
        if errs:
            raise ValueError("; ".join(errs))
        return p


def filter_logits(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float
) -> torch.Tensor:
    """(B, V) fp32 logits → temperature-scaled logits with -inf outside top-k and top-p."""
    logits = logits / temperature
    V = logits.shape[-1]
    if 0 < top_k < V:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_l, sorted_i = logits.sort(dim=-1, descending=True)
        p = sorted_l.softmax(-1)
        outside = p.cumsum(-1) - p >= top_p  # mass before this token already reaches top_p
        outside[..., 0] = False
        drop = outside.scatter(-1, sorted_i, outside)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None
) -> torch.Tensor:
    """(B, V) fp32 logits → (B, 1) next token ids."""
    if params.temperature <= 0:
        return logits.argmax(-1, keepdim=True)
    probs = filter_logits(logits, params.temperature, params.top_k, params.top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)


class RoutingRecorder:
    """Collects every MoE router's decision during a forward pass (forward hooks on the
    routers): ``take()`` → {layer: (experts (N, k), gates (N, k))} of the last pass."""

    def __init__(self, model: MoETransformer) -> None:
        self.seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.handles = []
        for i, moe in model.moe_layers().items():
            self.handles.append(moe.router.register_forward_hook(self._hook(i)))

    def _hook(self, layer: int) -> Callable[..., None]:
        def hook(_mod: Any, _inp: Any, out: Routing) -> None:
            self.seen[layer] = (out.experts.detach(), out.gates.detach())

        return hook

    def take(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        seen, self.seen = self.seen, {}
        return seen

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def _dropless(model: MoETransformer) -> Callable[[], None]:
    """Make every MoE layer dropless for inference; returns the undo."""
    layers = list(model.moe_layers().values())
    for moe in layers:
        moe.capacity = lambda n: None  # type: ignore[method-assign]

    def undo() -> None:
        for moe in layers:
            moe.__dict__.pop("capacity", None)

    return undo


@torch.no_grad()
def next_logits(
    model: MoETransformer, ids: torch.Tensor, cache: KVCache | None, new: int
) -> torch.Tensor:
    """The last position's fp32 logits (B, V). With a cache, only the ``new`` last tokens of
    ids run; without, the whole (cropped) context does."""
    if cache is None:
        ctx = ids[:, -model.cfg.block_size :]
        logits, _ = model(ctx)
    else:
        logits, _ = model(ids[:, -new:], cache=cache)
    return logits[:, -1, :].float()


class _StopMatcher:
    """Streams text while holding back what may still become a stop string."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.emitted = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add decoded text; returns (text safe to show now, whether a stop string matched)."""
        self.pending += text
        hits = [(self.pending.find(s), s) for s in self.stops if s in self.pending]
        if hits:
            cut = min(h[0] for h in hits)
            out, self.pending = self.pending[:cut], ""
            self.emitted += out
            return out, True
        hold = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(out) :]
        self.emitted += out
        return out, False

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        self.emitted += out
        return out


@torch.no_grad()
def stream(
    model: MoETransformer,
    prompt: str | list[int],
    params: SamplingParams,
    *,
    logits_processors: Sequence[LogitsProcessor] = (),
    use_cache: bool = True,
    deadline: float | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    tokenizer: ByteTokenizer | None = None,
    keep_logits: bool = False,
) -> Iterator[dict[str, Any]]:
    """Generate, one event per token, then a ``done`` event.

    token: {"type": "token", "index": i, "id": int, "text": str (may be "": a partial UTF-8
            character or text held back for a stop string), "routing": [{"layer": l,
            "experts": [k ids], "weights": [k gates]}, ...]} (+ "logits" with keep_logits)
    done:  {"type": "done", "finish_reason": "length" | "stop" | "eos" | "time" | "cancelled",
            "text": the generated text, "prompt_tokens", "tokens", "time_to_first_token_s",
            "tokens_per_s" (decode steps after the first token per second), "elapsed_s",
            "kv_cache": bool}
    ``deadline`` is a ``time.monotonic()`` value."""
    tok = tokenizer or ByteTokenizer()
    ids_list = tok.encode(prompt) if isinstance(prompt, str) else list(prompt)
    if not ids_list:
        ids_list = [tok.BOS]
    device = next(model.parameters()).device
    block = model.cfg.block_size
    ids = torch.tensor([ids_list[-block:]], dtype=torch.long, device=device)  # (1, P)
    generator = None
    if params.seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(params.seed)
    was_training = model.training
    model.eval()
    undo = _dropless(model)
    recorder = RoutingRecorder(model)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    stops = _StopMatcher(params.stop)
    t0 = time.monotonic()
    t_first: float | None = None
    n = 0
    reason = "length"
    cache = KVCache(model.cfg.n_layer, block) if use_cache else None
    new = ids.shape[1]
    try:
        while n < params.max_new_tokens:
            if cancelled():
                reason = "cancelled"
                break
            if deadline is not None and time.monotonic() >= deadline:
                reason = "time"
                break
            if cache is not None and cache.length + new > block:
                # Full: rebuild from the last block/2 tokens (a sliding window).
                keep = max(block // 2, 1)
                cache = KVCache(model.cfg.n_layer, block)
                new = min(keep, ids.shape[1])
            logits = next_logits(model, ids, cache, new)  # (1, V)
            routing = recorder.take()
            for proc in logits_processors:
                logits = proc(ids, logits)
            nxt = sample_next(logits, params, generator)  # (1, 1)
            token = int(nxt.item())
            ids = torch.cat([ids, nxt], dim=1)
            new = 1
            n += 1
            if t_first is None:
                t_first = time.monotonic()
            ev: dict[str, Any] = {
                "type": "token",
                "index": n - 1,
                "id": token,
                "routing": [
                    {
                        "layer": layer,
                        "experts": experts[-1].tolist(),
                        "weights": [round(float(g), 5) for g in gates[-1].tolist()],
                    }
                    for layer, (experts, gates) in sorted(routing.items())
                ],
            }
            if keep_logits:
                ev["logits"] = logits[0].cpu()
            if token == tok.EOT:
                ev["text"] = stops.feed(decoder.decode(b"", final=True))[0] + stops.flush()
                yield ev
                reason = "eos"
                break
            piece = decoder.decode(bytes([token])) if token < 256 else ""
            text, hit = stops.feed(piece)
            ev["text"] = text
            yield ev
            if hit:
                reason = "stop"
                break
        if reason not in ("stop", "eos"):
            tail = stops.feed(decoder.decode(b"", final=True))[0] + stops.flush()
            if tail:
                yield {"type": "text", "text": tail}
    finally:
        recorder.close()
        undo()
        model.train(was_training)
    end = time.monotonic()
    decode_s = end - (t_first or end)
    yield {
        "type": "done",
        "finish_reason": reason,
        "text": stops.emitted,
        "prompt_tokens": len(ids_list),
        "tokens": n,
        "time_to_first_token_s": round((t_first - t0), 6) if t_first is not None else None,
        "tokens_per_s": round((n - 1) / decode_s, 3) if n > 1 and decode_s > 0 else None,
        "elapsed_s": round(end - t0, 6),
        "kv_cache": use_cache,
    }


def generate_ids(
    model: MoETransformer,
    prompt: str | list[int],
    params: SamplingParams,
    **kw: Any,
) -> tuple[list[int], list[torch.Tensor], dict[str, Any]]:
    """All at once: (token ids, per-step logits, the done event). Tests and benchmarks."""
    ids, logits, done = [], [], {}
    for ev in stream(model, prompt, params, keep_logits=True, **kw):
        if ev["type"] == "token":
            ids.append(ev["id"])
            logits.append(ev["logits"])
        elif ev["type"] == "done":
            done = ev
    return ids, logits, done
