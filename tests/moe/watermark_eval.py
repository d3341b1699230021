"""The measurements behind the watermark's figures, shared by tests/moe/test_watermark.py
(which asserts the rates) and tests/bench/bench_watermark.py (which prints them).

A tiny MoE model is trained in-process on the workers' stdlib corpus (the repo's own data
path, ``workers.moe.data``) for a few hundred steps and cached in a folder, so samples are
realistic byte-level text with the entropy of a small model. Generation here is batched
(B rows at once) on the playground's KV cache (``workers.moe.generate.next_logits``, dropless
MoE), a prompt plus its sample fitting in ``block_size``, and draws bytes only (the specials'
logits are masked), so every sample is exactly N bytes; the processor is the one the
playground uses (``workers.moe.watermark.WatermarkProcessor``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hub.shared import watermark as wm
from tests.moe.helpers import SMALL_CORPUS, TINY_MODEL
from workers.moe.config import DataConfig, ModelConfig
from workers.moe.data import TokenData, load_corpus
from workers.moe.model import MoETransformer
from workers.moe.watermark import WatermarkProcessor

BLOCK = 256
TRAIN_STEPS = 400
PROMPT = 32


def model_config() -> ModelConfig:
    return ModelConfig(**{**TINY_MODEL, "block_size": BLOCK})


def corpus(cache: Path) -> TokenData:
    return load_corpus(
        DataConfig(paths=SMALL_CORPUS, max_bytes=400_000, cache_dir=str(cache / "data")),
        cache,
        BLOCK,
    )


def trained_model(cache: Path, steps: int = TRAIN_STEPS) -> tuple[MoETransformer, TokenData]:
    """The tiny model after ``steps`` AdamW steps (batch 8 × 256 bytes), cached."""
    torch.manual_seed(0)
    model = MoETransformer(model_config())
    data = corpus(cache)
    weights = cache / f"wm-model-{steps}.pt"
    if weights.exists():
        model.load_state_dict(torch.load(weights))
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        model.train()
        for step in range(steps):
            x, y = data.train_batch(8, 0, step)
            loss = model(x, y)[1]["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        tmp = weights.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, weights)
    model.eval()
    return model, data


def prompts(data: TokenData, n: int, seed: int) -> torch.Tensor:
    """(n, PROMPT) windows of the validation split."""
    val = np.asarray(data.val)
    starts = np.random.default_rng(seed).integers(0, len(val) - PROMPT, n)
    return torch.from_numpy(np.stack([val[s : s + PROMPT] for s in starts]).astype(np.int64))


@torch.no_grad()
def generate(
    model: MoETransformer,
    prompt: torch.Tensor,
    n_new: int,
    proc: WatermarkProcessor | None,
    seed: int,
    temperature: float = 1.0,
) -> np.ndarray:
    """(B, n_new) sampled bytes (multinomial sampling, as in the paper's main results)."""
    from workers.moe.generate import KVCache, _dropless, next_logits

    assert prompt.shape[1] + n_new <= BLOCK
    g = torch.Generator().manual_seed(seed)
    ids = prompt.clone()
    cache = KVCache(model.cfg.n_layer, BLOCK)
    new = ids.shape[1]
    undo = _dropless(model)
    try:
        for _ in range(n_new):
            logits = next_logits(model, ids, cache, new)  # (B, V)
            new = 1
            logits[:, wm.BYTE_VOCAB :] = -float("inf")
            if proc is not None:
                logits = proc(ids, logits)
            probs = (logits / temperature).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=g)  # (B, 1)
            ids = torch.cat([ids, nxt], dim=1)
    finally:
        undo()
    return ids[:, prompt.shape[1] :].numpy()


@torch.no_grad()
def bits_per_byte(model: MoETransformer, prompt: torch.Tensor, samples: np.ndarray) -> float:
    """Mean -log2 p(sample byte | prompt + earlier sample bytes) under the unwatermarked model
    (one forward pass: prompt + sample fit in ``block_size``)."""
    from workers.moe.generate import _dropless

    ids = torch.cat([prompt, torch.from_numpy(samples.astype(np.int64))], dim=1)
    undo = _dropless(model)
    try:
        logits = model(ids[:, :-1])[0].float()  # (B, L-1, V)
    finally:
        undo()
    logp = logits.log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]  # (B, L-1)
    return float(-logp[:, prompt.shape[1] - 1 :].mean()) / np.log(2)


def corpus_windows(data: TokenData, n: int, length: int, seed: int) -> list[np.ndarray]:
    """n windows of ``length`` bytes from the validation split (human-written code), bytes only."""
    val = np.asarray(data.val)
    starts = np.random.default_rng(seed).integers(0, len(val) - length, n)
    return [val[s : s + length].astype(np.int64) for s in starts]


def replace_share(samples: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Each row with ``share`` of its positions (chosen at random) replaced by a random
    printable ASCII byte or newline: light edits."""
    rng = np.random.default_rng(seed)
    out = samples.copy()
    k = round(share * samples.shape[1])
    alphabet = np.array([10, *range(32, 127)])
    for row in out:
        pos = rng.choice(len(row), size=k, replace=False)
        row[pos] = rng.choice(alphabet, size=k)
    return out


def new_key(seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(wm.KEY_BYTES)


@dataclass
class Figures:
    detected: float  # watermarked samples with p < 1e-4
    median_z: float
    mean_scored: float
    detected_after_edits: float
    detected_50: float  # the same samples cut to their first 50 bytes
    detected_100: float  # ... and 100 bytes
    fpr_corpus: float  # corpus windows with p < 1e-4 (any key tested)
    fpr_plain: float  # unwatermarked generations with p < 1e-4
    corpus_pairs: int
    plain_pairs: int
    bpb_marked: float
    bpb_plain: float
    fpr_corpus_every: float  # corpus windows flagged when every position counts (no dedup)


def measure(
    model: MoETransformer,
    data: TokenData,
    *,
    n_samples: int = 120,
    n_tokens: int = 200,
    n_windows: int = 1000,
    plain_keys: int = 10,
    strength: float = wm.DEFAULT_STRENGTH,
    gamma: float = wm.DEFAULT_GAMMA,
    context_width: int = 1,
    temperature: float = 1.0,
    seed: int = 0,
    alpha: float = 1e-4,
) -> Figures:
    key = new_key(seed)
    params = wm.WatermarkParams(
        key=key, gamma=gamma, delta=wm.strength_to_delta(strength), context_width=context_width
    )
    prompt = prompts(data, n_samples, seed)
    marked = generate(model, prompt, n_tokens, WatermarkProcessor(params), seed, temperature)
    plain = generate(model, prompt, n_tokens, None, seed + 1, temperature)

    def scores(texts, k):
        if context_width == 1:
            return wm.detect_batch(list(texts), key=k, gamma=gamma)
        return [wm.detect(t, key=k, gamma=gamma, context_width=context_width) for t in texts]

    det = scores(marked, key)
    short = {n: scores(marked[:, :n], key) for n in (50, 100)}
    edited = scores(replace_share(marked, 0.10, seed), key)
    windows = corpus_windows(data, n_windows, n_tokens, seed)
    fp_corpus = [d.p_value < alpha for d in scores(windows, key)]
    fp_every = [
        wm.detect(w, key=key, gamma=gamma, context_width=context_width, ignore_repeated=False)
        for w in windows
    ]
    # unwatermarked generations do not depend on any key: each (sample, key) pair is one trial
    fp_plain = [
        d.p_value < alpha
        for j in range(plain_keys)
        for d in scores(plain, new_key(seed + 1000 + j))
    ]
    return Figures(
        detected=float(np.mean([d.p_value < alpha for d in det])),
        median_z=float(np.median([d.z for d in det])),
        mean_scored=float(np.mean([d.tokens_scored for d in det])),
        detected_after_edits=float(np.mean([d.p_value < alpha for d in edited])),
        detected_50=float(np.mean([d.p_value < alpha for d in short[50]])),
        detected_100=float(np.mean([d.p_value < alpha for d in short[100]])),
        fpr_corpus=float(np.mean(fp_corpus)),
        fpr_plain=float(np.mean(fp_plain)),
        corpus_pairs=len(fp_corpus),
        plain_pairs=len(fp_plain),
        bpb_marked=bits_per_byte(model, prompt, marked),
        bpb_plain=bits_per_byte(model, prompt, plain),
        fpr_corpus_every=float(np.mean([d.p_value < alpha for d in fp_every])),
    )
