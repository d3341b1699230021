"""The green-list watermark's generation side: a logits processor for ``workers.moe.generate``.

The scheme (keyed hash of the previous ``context_width`` tokens → green list of γ·256 bytes,
``+δ`` on their logits) lives in ``hub.shared.watermark``, which the hub's verify API uses too;
this module only applies it to a batch of logits. Built from the dict the hub hands the
sandbox for one request (``hub.provenance.services.generation_watermark()["params"]``)::

    proc = WatermarkProcessor.from_dict({"key_hex": ..., "gamma": 0.25, "delta": 3.0,
                                         "context_width": 1})
    logits = proc(input_ids, logits)   # (B, T) int, (B, V) float → (B, V)

Only the 256 byte columns are biased (the specials ``<|endoftext|>`` and co. never are), and a
row with fewer than ``context_width`` tokens is left alone (detection does not score those
positions either). Green lists are computed on the CPU with ``hashlib`` and cached: for width
1 all 259 contexts at once (a (259, 256) table on the logits' device), for wider contexts per
context in a bounded LRU.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from hub.shared import watermark as wm

#: Green lists kept per processor for context widths > 1 (each 256 bools).
CACHE_CONTEXTS = 65_536


class WatermarkProcessor:
    def __init__(self, params: wm.WatermarkParams) -> None:
        self.params = params
        self._table: torch.Tensor | None = None  # (259, 256) float 0/1, width 1
        self._lru: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()

    @classmethod
    def from_dict(cls, d: dict) -> WatermarkProcessor:
        return cls(wm.WatermarkParams.from_dict(d))

    def __repr__(self) -> str:  # never the key
        p = self.params
        return f"WatermarkProcessor(gamma={p.gamma}, delta={p.delta}, h={p.context_width})"

    def green(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, 256) float 0/1: the green list after each row's last ``context_width`` ids
        (all zeros for a row too short to have a context)."""
        p = self.params
        h = p.context_width
        b, t = input_ids.shape
        if t < h:
            return torch.zeros(b, wm.BYTE_VOCAB, device=input_ids.device)
        if h == 1:
            if self._table is None or self._table.device != input_ids.device:
                n = max(259, int(input_ids.max()) + 1)
                table = wm.green_table(p.key, p.gamma, n_ids=n)
                self._table = torch.from_numpy(table).to(input_ids.device, torch.float32)
            last = input_ids[:, -1]
            if int(last.max()) >= self._table.shape[0]:
                self._table = None
                return self.green(input_ids)
            return self._table[last]
        rows = []
        for ctx in input_ids[:, -h:].tolist():
            key = tuple(ctx)
            mask = self._lru.get(key)
            if mask is None:
                mask = wm.green_mask(p.key, [key], p.gamma)[0]
                self._lru[key] = mask
                if len(self._lru) > CACHE_CONTEXTS:
                    self._lru.popitem(last=False)
            else:
                self._lru.move_to_end(key)
            rows.append(mask)
        return torch.from_numpy(np.stack(rows)).to(input_ids.device, torch.float32)

    def __call__(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.params.delta == 0:
            return logits
        bias = self.green(input_ids).to(logits.dtype) * self.params.delta  # (B, 256)
        out = logits.clone()
        out[:, : wm.BYTE_VOCAB] += bias
        return out


def processor_from_dict(d: dict | None) -> WatermarkProcessor | None:
    """The processor for a request's watermark params, or None when there are none."""
    return WatermarkProcessor.from_dict(d) if d else None
