"""A privacy audit of DP training by canary exposure (Carlini et al. 2019, "The Secret Sharer").

Random secrets in a fixed format (``CANARY_PREFIX`` + k random digits + newline) are inserted
into the training text a known number of times; after training, each canary's exposure is

    exposure = log2 |R| − log2 rank(canary)

where R is every k-digit string (|R| = 10^k) and the rank orders R by the model's
log-perplexity of the digits after the prefix (rank 1 = the most likely string). A model that
learnt nothing of the canary ranks it uniformly at random: exposure ≈ 1 bit on average
(E[log2 |R| − log2 U] ≈ log2 e ≈ 1.44 for U uniform); a model that memorised it puts it first:
exposure = log2 |R|. The whole space is scored exactly (no extrapolation): 10^(k−1) forward
passes of prefix + k−1 digits give every digit's distribution, the last one 10 candidates at a
time.

Used by tests/moe/test_dp.py (small) and tests/bench/bench_dp_audit.py (the figures).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tests.moe.helpers import STDLIB
from workers.moe.config import validate_config
from workers.moe.data import ByteTokenizer, TokenData, load_corpus
from workers.moe.events import EventWriter
from workers.moe.model import MoETransformer

CANARY_PREFIX = "the secret number is "


@dataclass
class AuditCorpus:
    paths: list[str]
    canaries: list[str]  # the secret digit strings
    repeats: int


def write_corpus(
    root: Path, *, base_bytes: int, n_canaries: int, repeats: int, digits: int, seed: int
) -> AuditCorpus:
    """``root/train.txt``: base_bytes of standard-library source with each canary line inserted
    ``repeats`` times at random line boundaries; ``root/held_out.txt``: other source, small
    enough to become the validation split (so every canary copy is in the training split)."""
    rng = random.Random(seed)
    files = sorted((STDLIB / "email").rglob("*.py")) + sorted((STDLIB / "json").rglob("*.py"))
    text = "\n".join(f.read_text(encoding="utf-8") for f in files)
    held = "\n".join(
        f.read_text(encoding="utf-8") for f in sorted((STDLIB / "logging").glob("*.py"))
    )
    base = text[:base_bytes]
    canaries = ["".join(rng.choice("0123456789") for _ in range(digits)) for _ in range(n_canaries)]
    lines = base.split("\n")
    inserts = [c for c in canaries for _ in range(repeats)]
    positions = sorted(rng.randrange(len(lines)) for _ in inserts)
    rng.shuffle(inserts)
    out: list[str] = []
    j = 0
    for i, line in enumerate(lines):
        while j < len(positions) and positions[j] == i:
            out.append(CANARY_PREFIX + inserts[j])
            j += 1
        out.append(line)
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text("\n".join(out), encoding="utf-8")
    (root / "held_out.txt").write_text(held[: max(2000, base_bytes // 20)], encoding="utf-8")
    return AuditCorpus([str(root / "train.txt"), str(root / "held_out.txt")], canaries, repeats)


def train(
    corpus: AuditCorpus,
    out: Path,
    *,
    model: dict[str, Any],
    train_cfg: dict[str, Any],
    seed: int = 0,
) -> tuple[MoETransformer, dict[str, Any]]:
    """Train through the workload's own loop (train.run's steps, in process); returns the model
    and the summary (val_bpb, dp)."""
    from workers.moe.train import run

    raw = {
        "seed": seed,
        "model": model,
        "data": {
            "paths": corpus.paths,
            "max_bytes": None,
            "val_fraction": 0.1,
            "cache_dir": str(out / "data"),
        },
        "train": train_cfg,
    }
    cfg, errors = validate_config("train", raw)
    assert cfg is not None, errors
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "events.jsonl", "w") as f:
        events = EventWriter(f.fileno())
        summary = run(cfg, out, events, None)
    from workers.moe.checkpoint import load_weights

    m, _ = load_weights(out, {})
    return m, summary


def check_canaries_in_training_split(corpus: AuditCorpus, out: Path, block_size: int) -> None:
    """Every canary is in the train split, none in validation (the audit's premise)."""
    raw = {
        "paths": corpus.paths,
        "max_bytes": None,
        "val_fraction": 0.1,
        "cache_dir": str(out / "data"),
        "extensions": None,
    }
    cfg, errors = validate_config("train", {"data": raw})
    assert cfg is not None, errors
    data: TokenData = load_corpus(cfg.data, out, block_size)
    tok = ByteTokenizer()
    train = tok.decode(data.train[:].tolist())
    val = tok.decode(data.val[:].tolist())
    for c in corpus.canaries:
        assert train.count(CANARY_PREFIX + c) == corpus.repeats, c
        assert CANARY_PREFIX + c not in val


@torch.no_grad()
def log_perplexities(model: MoETransformer, digits: int, batch: int = 1000) -> torch.Tensor:
    """(10^digits,) −Σ log p(digit_i | prefix, digits_<i) for every digit string, indexed by
    its integer value."""
    model.eval()
    tok = ByteTokenizer()
    prefix = tok.encode("\n" + CANARY_PREFIX)
    zero = ord("0")
    n_ctx = 10 ** (digits - 1)
    out = torch.empty(n_ctx, 10, dtype=torch.float64)
    for start in range(0, n_ctx, batch):
        ids = torch.arange(start, min(start + batch, n_ctx))
        # the first digits−1 digits of each context, most significant first
        ds = (
            torch.stack([(ids // 10 ** (digits - 2 - i)) % 10 for i in range(digits - 1)], dim=1)
            if digits > 1
            else torch.zeros(len(ids), 0, dtype=torch.long)
        )
        x = torch.cat([torch.tensor(prefix).expand(len(ids), -1), ds + zero], dim=1)  # (n, P+k−1)
        logits, _ = model(x)
        logp = F.log_softmax(logits.double(), dim=-1)  # (n, L, V)
        P = len(prefix)
        lp = torch.zeros(len(ids), dtype=torch.float64)
        for i in range(digits - 1):  # digit i is predicted at position P−1+i
            lp += logp[:, P - 1 + i].gather(1, (ds[:, i] + zero).unsqueeze(1)).squeeze(1)
        last = logp[:, P - 2 + digits, zero : zero + 10]  # (n, 10) the last digit
        out[start : start + len(ids)] = -(lp.unsqueeze(1) + last)
    return out.reshape(-1)


def exposures(model: MoETransformer, canaries: list[str]) -> list[float]:
    """Exposure of each canary over the whole space of strings of its length."""
    digits = len(canaries[0])
    perp = log_perplexities(model, digits)
    space = perp.numel()
    res = []
    for c in canaries:
        own = perp[int(c)]
        rank = int((perp < own).sum()) + 1
        res.append(math.log2(space) - math.log2(rank))
    return res


#: The audit's model: small enough to train in seconds, big enough to memorise a canary.
AUDIT_MODEL: dict[str, Any] = {
    "block_size": 64,
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 64,
    "n_dense_layers": 1,
    "dense_hidden": 128,
    "n_experts": 4,
    "expert_hidden": 64,
    "shared_hidden": 64,
    "top_k": 2,
}
AUDIT_TRAIN: dict[str, Any] = {
    "steps": 120,
    "batch_size": 16,
    "lr": 3e-3,
    "eval_every": 0,
    "eval_tokens": 16384,
    "log_every": 50,
    "checkpoint_every": 500,
}
