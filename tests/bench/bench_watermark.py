"""Text watermark (Kirchenbauer et al. 2023 green list, hub/shared/watermark.py) on a trained
byte-level MoE model: detection power, false positives, robustness to edits, quality cost.

The tiny model of tests/moe/watermark_eval.py is trained in-process (cached under --cache),
then for each setting and each of --reps seeds (a fresh key and fresh prompts per seed):

* detected: share of watermarked 200-byte samples (--samples of them, 32-byte corpus prompts,
  multinomial sampling) with p < 1e-4, beside its reference, the same share for the model's
  unwatermarked samples tested against 10 unrelated keys, and for 1,000 corpus windows;
* after edits: the share still detected once 10% of each sample's bytes are replaced at random;
* bits per byte of the samples under the unwatermarked model, watermarked vs unwatermarked
  (the ratio is the quality cost);
* median z and the mean number of distinct (context, byte) pairs scored per 200 bytes.

Settings: the default (strength 0.3 → delta 3, gamma 0.25, context width 1), a weaker strength
(0.2), context width 2, and sampling at temperature 0.7 (lower entropy: less room to steer).
Medians over --reps; the 1-minute load average is printed (the machine is shared).

Run: .venv/bin/python tests/bench/bench_watermark.py [--reps 3] [--samples 120] [--steps 400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--samples", type=int, default=120)
    ap.add_argument("--cache", default="/tmp/bench-watermark")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=400, help="training steps of the tiny model")
    args = ap.parse_args()

    import torch

    from tests.moe import watermark_eval as ev

    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    model, data = ev.trained_model(cache, args.steps)
    plain_bpb_val = ev.bits_per_byte(model, *_val_batch(data))
    print(
        f"model: tiny MoE, {args.steps} steps, block {ev.BLOCK}; validation-window bpb "
        f"{plain_bpb_val:.3f}; trained/loaded in {time.monotonic() - t0:.0f} s; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    settings = [
        ("default s=0.3 (delta 3), gamma 0.25, h=1", {}),
        ("strength 0.2 (delta 2), h=1", {"strength": 0.2}),
        ("strength 0.3, context width h=2", {"context_width": 2}),
        ("strength 0.3, temperature 0.7", {"temperature": 0.7}),
    ]
    for label, kw in settings:
        runs = []
        for rep in range(args.reps):
            t = time.monotonic()
            runs.append(ev.measure(model, data, n_samples=args.samples, seed=rep, **kw))
            took = time.monotonic() - t
        med = {k: statistics.median(getattr(r, k) for r in runs) for k in vars(runs[0])}
        print(
            f"\n== {label}  (median of {args.reps}; last rep {took:.0f} s, load {os.getloadavg()[0]:.1f})"
        )
        print(
            f"  detected at p<1e-4      {med['detected']:.3f}   vs unwatermarked generations "
            f"{med['fpr_plain']:.4f} ({runs[0].plain_pairs} sample-key pairs), corpus windows "
            f"{med['fpr_corpus']:.4f} ({runs[0].corpus_pairs})"
        )
        print(
            f"  shorter texts: detected at 50 bytes {med['detected_50']:.3f}, 100 bytes "
            f"{med['detected_100']:.3f}, 200 bytes {med['detected']:.3f}"
        )
        print(
            f"  corpus windows flagged if repeated pairs counted again {med['fpr_corpus_every']:.4f}"
            f"   vs once {med['fpr_corpus']:.4f}"
        )
        print(
            f"  after 10% bytes replaced {med['detected_after_edits']:.3f}   "
            f"ratio to unedited {med['detected_after_edits'] / max(med['detected'], 1e-9):.3f}"
        )
        print(
            f"  bits/byte watermarked   {med['bpb_marked']:.3f}   unwatermarked "
            f"{med['bpb_plain']:.3f}   ratio {med['bpb_marked'] / med['bpb_plain']:.3f}"
        )
        print(
            f"  median z {med['median_z']:.2f}; distinct pairs scored per 200 bytes "
            f"{med['mean_scored']:.0f} (ratio to 199 positions {med['mean_scored'] / 199:.2f})"
        )
        print("  per rep detected:", [round(r.detected, 3) for r in runs], flush=True)


def _val_batch(data):
    import numpy as np
    import torch

    from tests.moe import watermark_eval as ev

    windows = ev.corpus_windows(data, 64, ev.PROMPT + 200, seed=99)
    arr = np.stack(windows)
    return torch.from_numpy(arr[:, : ev.PROMPT]), arr[:, ev.PROMPT :]


if __name__ == "__main__":
    main()
