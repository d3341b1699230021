"""The grouped expert kernel behind the MoE layer's sort-based dispatch.

``model.py`` states what the dispatch computes, y[t] = Σ_{e ∈ K(t)} g[t, e] · expert_e(x[t]),
and plans it (``plan_dispatch`` groups the N·k token→expert assignments by expert;
``dispatch_sorted`` hands the plan here). This module computes it fast, without changing the
math (tests/moe/test_routing.py checks it against the obviously-correct mask loop):

    grouped_swiglu   the entry point: chooses the CPU padding below, runs GroupedSwiGLU
    GroupedSwiGLU    forward and backward written out over contiguous per-expert slices,
                     one matmul (or one batched matmul for all experts) per projection
    pad_slices       rounds slices up: a row granule for oneDNN's low-precision kernels, or
                     one common length so homogeneous experts run as a single bmm
"""

from __future__ import annotations

from typing import Any

import torch

from workers.moe.scopes import scope


def grouped_swiglu(
    x: torch.Tensor,
    gates: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    tokens: torch.Tensor,
    counts: list[int],
    sizes: list[int],
) -> torch.Tensor:
    """y (N, C) = Σ over the grouped rows of g · expert_e(x[token]) for x (N, C), with
    ``tokens``/``gates`` (M,) grouped by expert (``counts`` rows each, expert widths ``sizes``)
    and the packed expert weights ``w13`` (Σ 2h, C), ``w2`` (Σ h, C) in x's dtype.

    On CPU, slices are padded (with zero-gate rows, which add exact zeros) when that makes the
    matmuls faster: see ``CPU_LOWP_ROW_GRANULE`` and ``CPU_BATCHED_MAX_PADDING``."""
    if x.device.type == "cpu":
        lowp = x.dtype in (torch.bfloat16, torch.float16)
        granule = CPU_LOWP_ROW_GRANULE if lowp else 1
        longest = -(-max(counts) // granule) * granule
        uniform = (
            len(set(sizes)) == 1
            and len(counts) > 1
            and longest * len(counts) <= CPU_BATCHED_MAX_PADDING * sum(counts)
        )
        if lowp or uniform:
            tokens, gates, counts = pad_slices(tokens, gates, counts, granule, uniform)
    return GroupedSwiGLU.apply(x, gates, w13, w2, tokens, counts, sizes)


def _batched(counts: list[int], sizes: list[int]) -> bool:
    """Whether every expert has the same width and the same (non-zero) slice length, so each
    projection is one batched matmul over (E, n, ·) views of the grouped buffers."""
    return len(counts) > 1 and len(set(counts)) == 1 and counts[0] > 0 and len(set(sizes)) == 1


def _runs(sizes: list[int], counts: list[int]) -> list[tuple[int, int, int, int, int]]:
    """Maximal runs of consecutive experts with equal hidden size, as
    (row start, row end, flat offset into the (M·2h) buffer, h, first expert).
    Elementwise work is done once per run: one run when the experts are homogeneous."""
    runs: list[tuple[int, int, int, int, int]] = []
    row = off = 0
    for e, (h, n) in enumerate(zip(sizes, counts, strict=True)):
        if runs and runs[-1][3] == h:
            r0, _, o, _, e0 = runs[-1]
            runs[-1] = (r0, row + n, o, h, e0)
        else:
            runs.append((row, row + n, off, h, e))
        row += n
        off += n * 2 * h
    return runs


class GroupedSwiGLU(torch.autograd.Function):
    """The sort-based dispatch, forward and backward written out over contiguous slices.

    Inputs are already grouped by expert (see ``plan_dispatch``): ``tokens`` (M,) gives the
    source token of each row, ``gates`` (M,) its gate, ``counts`` the rows of each expert.

        xs    = x[tokens]                                  gather                    (M, C)
        H_e   = xs_e · [W1_e; W3_e]ᵀ = [a_e | b_e]          one matmul per expert     (n_e, 2h_e)
        z     = g ⊙ act,  act = s ⊙ b,  s = silu(a)          gate folded in (rows)     (n_e, h_e)
        Y_e   = z_e · w2_e                                  one matmul per expert     (n_e, C)
        y     = Σ_rows→token Y  (index_add over tokens)      scatter-add               (N, C)

    Backward, with dY = dy[tokens] (s, act and z are kept from the forward pass):

        dz_e = dY_e · w2_eᵀ        dw2_e = z_eᵀ · dY_e
        dg   = Σ_j dz ⊙ act        dact = g ⊙ dz
        da   = dact ⊙ b ⊙ silu'(a) db = dact ⊙ s
        dxs_e = dH_e · w13_e       dw13_e = dH_eᵀ · xs_e        dx = index_add(tokens, dxs)

    Writing every matmul into one preallocated buffer (``out=``) instead of building an
    autograd graph per expert removes the per-expert graph nodes, the cat of the outputs and
    the per-expert weight-gradient tensors, which is what separates a loop over 64 small
    experts from one large matmul. Elementwise work runs once per run of equal-sized experts
    (``_runs``), i.e. once for all experts when they are homogeneous; xs, H, s, act and z are
    kept for backward (no recomputation: memory is cheap at this scale, passes are not).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        gates: torch.Tensor,
        w13: torch.Tensor,
        w2: torch.Tensor,
        tokens: torch.Tensor,
        counts: list[int],
        sizes: list[int],
    ) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return GroupedSwiGLU._forward(ctx, x, gates, w13, w2, tokens, counts, sizes)

    @staticmethod
    def _forward(
        ctx: Any,
        x: torch.Tensor,
        gates: torch.Tensor,
        w13: torch.Tensor,
        w2: torch.Tensor,
        tokens: torch.Tensor,
        counts: list[int],
        sizes: list[int],
    ) -> torch.Tensor:
        N, C = x.shape
        M = tokens.numel()
        g = gates.to(x.dtype)
        with scope("dispatch"):
            xs = x.index_select(0, tokens)  # (M, C)
        H = x.new_empty(sum(n * 2 * h for n, h in zip(counts, sizes, strict=True)))
        Y = x.new_empty(M, C)
        w13s, w2s = w13.split([2 * h for h in sizes]), w2.split(sizes)
        batched = _batched(counts, sizes)
        with scope("experts"):
            if batched:  # every slice n rows, every expert h wide: one bmm per projection
                E, n, h = len(counts), counts[0], sizes[0]
                torch.bmm(
                    xs.view(E, n, C), w13.view(E, 2 * h, C).transpose(1, 2), out=H.view(E, n, 2 * h)
                )
            row = off = 0
            for e, (n, h) in enumerate(zip(counts, sizes, strict=True)):
                if n and not batched:
                    Hv = H[off : off + n * 2 * h].view(n, 2 * h)
                    torch.mm(xs[row : row + n], w13s[e].t(), out=Hv)
                row += n
                off += n * 2 * h
            S, A, Z = (x.new_empty(H.numel() // 2) for _ in range(3))  # silu(a), act, z
            for r0, r1, o, h, e0 in _runs(sizes, counts):
                Hr = H[o : o + (r1 - r0) * 2 * h].view(r1 - r0, 2 * h)  # (n_run, 2h)
                s, act, z = (
                    t[o // 2 : (o + (r1 - r0) * 2 * h) // 2].view(r1 - r0, h) for t in (S, A, Z)
                )  # (n_run, h) each
                torch.ops.aten.silu.out(Hr[:, :h], out=s)
                torch.mul(s, Hr[:, h:], out=act)
                torch.mul(act, g[r0:r1, None], out=z)
                if batched:
                    E, n = len(counts), counts[0]
                    torch.bmm(z.view(E, n, h), w2.view(E, h, C), out=Y.view(E, n, C))
                    continue
                row, e = r0, e0
                while row < r1:  # the experts of this run, in order
                    n = counts[e]
                    if n:
                        torch.mm(z[row - r0 : row - r0 + n], w2s[e], out=Y[row : row + n])
                    row += n
                    e += 1
        with scope("dispatch"):
            y = x.new_zeros(N, C).index_add_(0, tokens, Y)  # (N, C)
        ctx.save_for_backward(xs, gates, w13, w2, tokens, H, S, A, Z)
        ctx.n_tokens = N
        ctx.counts, ctx.sizes = counts, sizes
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        xs, gates, w13, w2, tokens, H, S, A, Z = ctx.saved_tensors
        counts, sizes = ctx.counts, ctx.sizes
        batched = _batched(counts, sizes)
        M, C = xs.shape
        dy = dy.to(xs.dtype)
        g = gates.to(xs.dtype)
        with scope("dispatch"):
            dY = dy.index_select(0, tokens)  # (M, C)
        w13s, w2s = w13.split([2 * h for h in sizes]), w2.split(sizes)
        dw13, dw2 = torch.empty_like(w13), torch.empty_like(w2)
        dw13s, dw2s = dw13.split([2 * h for h in sizes]), dw2.split(sizes)
        for e, n in enumerate(counts):
            if not n:  # an idle expert gets an exact zero gradient
                dw13s[e].zero_()
                dw2s[e].zero_()
        dH = torch.empty_like(H)
        dg = torch.empty(M, dtype=xs.dtype, device=xs.device)
        dxs = torch.empty(M, C, dtype=xs.dtype, device=xs.device)
        with scope("experts"):
            for r0, r1, o, h, e0 in _runs(sizes, counts):
                Hr = H[o : o + (r1 - r0) * 2 * h].view(r1 - r0, 2 * h)  # (n_run, 2h)
                dHr = dH[o : o + (r1 - r0) * 2 * h].view(r1 - r0, 2 * h)
                s, act, z = (
                    t[o // 2 : (o + (r1 - r0) * 2 * h) // 2].view(r1 - r0, h) for t in (S, A, Z)
                )  # (n_run, h) each
                dz = torch.empty_like(act)  # (n_run, h)
                row, e = r0, e0
                if batched:
                    E, n = len(counts), counts[0]
                    dYb = dY.view(E, n, C)
                    torch.bmm(dYb, w2.view(E, h, C).transpose(1, 2), out=dz.view(E, n, h))
                    torch.bmm(z.view(E, n, h).transpose(1, 2), dYb, out=dw2.view(E, h, C))
                    row = r1  # done: skip the per-expert loop
                while row < r1:
                    n = counts[e]
                    if n:
                        torch.mm(dY[row : row + n], w2s[e].t(), out=dz[row - r0 : row - r0 + n])
                        torch.mm(z[row - r0 : row - r0 + n].t(), dY[row : row + n], out=dw2s[e])
                    row += n
                    e += 1
                torch.sum(dz * act, dim=1, out=dg[r0:r1])
                dact = dz.mul_(g[r0:r1, None])  # (n_run, h); dz is not needed any more
                torch.mul(dact, s, out=dHr[:, h:])  # db
                torch.ops.aten.silu_backward.grad_input(
                    dact.mul_(Hr[:, h:]), Hr[:, :h], grad_input=dHr[:, :h]
                )  # da
            if batched:
                E, n, h = len(counts), counts[0], sizes[0]
                dHb = dH.view(E, n, 2 * h)
                torch.bmm(dHb, w13.view(E, 2 * h, C), out=dxs.view(E, n, C))
                torch.bmm(dHb.transpose(1, 2), xs.view(E, n, C), out=dw13.view(E, 2 * h, C))
            row = off = 0
            for e, (n, h) in enumerate(zip(counts, sizes, strict=True)):
                if n and not batched:
                    dHe = dH[off : off + n * 2 * h].view(n, 2 * h)
                    torch.mm(dHe, w13s[e], out=dxs[row : row + n])
                    torch.mm(dHe.t(), xs[row : row + n], out=dw13s[e])
                row += n
                off += n * 2 * h
        with scope("dispatch"):
            dx = dxs.new_zeros(ctx.n_tokens, C).index_add_(0, tokens, dxs)  # (N, C)
        return dx, dg.to(gates.dtype), dw13, dw2, None, None, None


# oneDNN (torch's CPU bf16/fp16 matmul) JIT-compiles a kernel for every new shape; expert
# slices change length every step, so unpadded slices recompile all the time (measured: 6x
# slower). Rounding each slice up to a multiple of this keeps the set of shapes small.
CPU_LOWP_ROW_GRANULE = 32
# Homogeneous experts on CPU: when padding every slice to the longest one costs at most this
# factor in rows, the experts run as one batched matmul per projection instead of E small
# ones. A batched GEMM keeps both cores busy across experts where a 128-row slice alone
# cannot (fine-grained experts: 64 x 256 ran ~2x faster batched, fp32 and bf16), and the
# padding rows are exact zeros (see ``pad_slices``).
CPU_BATCHED_MAX_PADDING = 1.5


def pad_slices(
    tokens: torch.Tensor,
    gates: torch.Tensor,
    counts: list[int],
    granule: int,
    uniform: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Round every expert slice up to a multiple of ``granule`` rows (``uniform``: all of them
    up to the longest one, rounded). Padding rows read token 0 with gate 0, so they contribute
    exactly nothing forward or backward (z = g ⊙ act is 0, hence Y, dW2, dact, dH, dW13 and dx
    rows are 0 there too)."""
    padded = [-(-n // granule) * granule for n in counts]
    if uniform:
        padded = [max(padded)] * len(padded)
    if padded == counts:
        return tokens, gates, counts
    dev = tokens.device
    n = torch.tensor(counts, device=dev)
    shift = torch.tensor(padded, device=dev).cumsum(0) - torch.tensor(padded, device=dev)
    shift -= n.cumsum(0) - n  # padded start − unpadded start, per expert
    dest = torch.arange(tokens.numel(), device=dev) + torch.repeat_interleave(shift, n)
    total = sum(padded)
    tok = torch.zeros(total, dtype=tokens.dtype, device=dev).index_copy_(0, dest, tokens)
    gat = gates.new_zeros(total).index_copy(0, dest, gates)
    return tok, gat, padded
