"""The green-list watermark on real generations of a briefly trained byte-level MoE model:
detection power, false positives, robustness to light edits, the z-test's validity on a
byte vocabulary, and agreement between the generation and detection sides.

Figures (the asserted thresholds are the issue's; measured values are in the README):
watermarked 200-byte samples detected at p < 1e-4 in >= 95% of 120; false positives <= 1% on
1,000 corpus windows and on 1,200 (unwatermarked generation, key) pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hub.shared import watermark as wm
from tests.moe import watermark_eval as ev
from workers.moe.watermark import WatermarkProcessor

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Trained once per session, kept in the session's temporary folder.
    One thread: this tiny model gains little from two, and loses much to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield ev.trained_model(tmp_path_factory.mktemp("moe-watermark-model"))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def figures(trained):
    model, data = trained
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return ev.measure(model, data)
    finally:
        torch.set_num_threads(threads)


def test_watermarked_samples_of_200_bytes_are_detected_at_p_below_1e_4(figures):
    assert figures.detected >= 0.95, figures


def test_corpus_windows_are_rarely_flagged(figures):
    assert figures.corpus_pairs >= 1000
    assert figures.fpr_corpus <= 0.01, figures


def test_unwatermarked_generations_of_the_same_model_are_rarely_flagged(figures):
    assert figures.plain_pairs >= 1000
    assert figures.fpr_plain <= 0.01, figures


def test_detection_survives_replacing_ten_percent_of_bytes_in_most_samples(figures):
    # the measured share is reported in the README; the floor here catches a broken scorer
    assert figures.detected_after_edits >= 0.8, figures


def test_the_watermark_costs_some_bits_per_byte_under_the_unwatermarked_model(figures):
    # the watermark moves mass to green bytes the model found less likely: a cost, bounded
    assert figures.bpb_plain < figures.bpb_marked < figures.bpb_plain + 1.5, figures


def test_z_scores_of_human_text_follow_the_null_when_repeated_pairs_count_once(trained):
    """Each of 1,000 corpus windows against its own fresh key (independent trials: windows
    share common pairs, so under ONE key their z-scores are correlated): z has mean ~0 and
    sd <= ~1, the test is valid and slightly conservative. Counting every position instead
    (repeated pairs counted again) spreads z far wider on code, where indentation repeats the
    same pair dozens of times, and flags human text."""
    _, data = trained
    windows = ev.corpus_windows(data, 1000, 200, seed=7)
    once, every = [], []
    for j, w in enumerate(windows):
        key = ev.new_key(10_000 + j)
        once.append(wm.detect(w, key=key, gamma=0.25, context_width=1).z)
        every.append(wm.detect(w, key=key, gamma=0.25, context_width=1, ignore_repeated=False).z)
    once, every = np.array(once), np.array(every)
    assert abs(once.mean()) < 0.15 and 0.8 < once.std() < 1.1, (once.mean(), once.std())
    assert every.std() > 1.3 * once.std(), (every.std(), once.std())
    assert (every >= 4).mean() > (once >= 4).mean() and (once >= 4).mean() <= 0.002


def test_the_processor_biases_exactly_the_green_list_the_detector_scores():
    key = ev.new_key(3)
    for h in (1, 2):
        p = wm.WatermarkParams(key=key, gamma=0.25, delta=3.0, context_width=h)
        proc = WatermarkProcessor(p)
        ids = torch.tensor([[257, 65, 66, 67], [10, 32, 32, 32]])  # (2, 4)
        out = proc(ids, torch.zeros(2, 259))
        for row, ctx in enumerate(ids[:, -h:].tolist()):
            green = wm.green_mask(key, [tuple(ctx)], 0.25)[0]
            assert green.sum() == 64
            assert torch.equal(out[row, :256], torch.from_numpy(green * 3.0).float())
            assert torch.equal(out[row, 256:], torch.zeros(3))  # specials untouched
        # a row shorter than the context width is left alone
        assert torch.equal(proc(ids[:, : h - 1], torch.ones(2, 259)), torch.ones(2, 259))


def test_green_lists_depend_on_the_key_and_the_context():
    a, b = ev.new_key(1), ev.new_key(2)
    ta, tb = wm.green_table(a, 0.25), wm.green_table(b, 0.25)
    assert (ta.sum(axis=1) == 64).all()
    assert (ta != tb).any(axis=1).all()  # every context splits differently under another key
    assert len({row.tobytes() for row in ta}) == ta.shape[0]  # and differently per context


def test_detection_of_a_text_does_not_depend_on_the_order_keys_are_tried():
    key = ev.new_key(4)
    text = b"def f(x):\n    return x + 1\n" * 4
    d1 = wm.detect_text(text.decode(), key=key, gamma=0.25, context_width=1)
    d2 = wm.detect_batch([list(text)], key=key, gamma=0.25)[0]
    assert d1 == d2 and d1.tokens_scored == len(set(zip(text[:-1], text[1:], strict=True)))


def test_bonferroni_multiplies_by_the_number_of_keys_tested():
    assert wm.bonferroni(1e-6, 100) == pytest.approx(1e-4)
    assert wm.bonferroni(0.5, 10) == 1.0
    assert wm.p_value(4.0) == pytest.approx(3.167e-5, rel=1e-3)


def test_an_evaluate_job_watermarks_its_samples_with_the_file_the_supervisor_wrote(tmp_path):
    """The supervisor writes the attempt's watermark parameters beside config.json; evaluate
    samples through the processor, records only the key id and strength, and removes the file."""
    import json

    from tests.moe.helpers import by_type, run_entry, tiny_config
    from workers.moe import evaluate, train

    cache = tmp_path / "cache"
    code, events = run_entry(
        "train",
        train.run,
        tmp_path,
        tiny_config(cache, train={"steps": 4, "warmup_steps": 1}),
        tmp_path / "base",
    )
    assert code == 0, by_type(events, "error")
    key = ev.new_key(77)
    params = wm.WatermarkParams(key=key, delta=6.0).to_dict()
    job = tmp_path / "job"
    job.mkdir()
    (job / "watermark.json").write_text(
        json.dumps({"key_id": "wmk_test", "strength": 0.6, "params": params})
    )
    cfg = {
        "seed": 0,
        "data": tiny_config(cache)["data"],
        "eval": {
            "max_tokens": 2048,
            "batch_size": 8,
            "max_new_tokens": 200,
            "temperature": 1.0,
            "top_p": 1.0,
            "prompts": ["def ", "import os\n"],
        },
    }
    extra = ["--weights", str(tmp_path / "base")]
    code, events = run_entry("evaluate", evaluate.run, tmp_path, cfg, job / "out", extra)
    assert code == 0, by_type(events, "error")
    assert not (job / "watermark.json").exists()
    text = (job / "out" / "samples.json").read_text()
    assert params["key_hex"] not in text
    report = json.loads(text)
    assert report["watermark"] == {"key_id": "wmk_test", "strength": 0.6}
    for s in report["samples"]:
        d = wm.detect_text(s["completion"], key=key, gamma=0.25, context_width=1)
        assert d.tokens_scored >= 50 and d.z >= 4, d
    # the same job without the file: unwatermarked samples
    code, events = run_entry("evaluate", evaluate.run, tmp_path, cfg, job / "out2", extra)
    report = json.loads((job / "out2" / "samples.json").read_text())
    assert code == 0 and report["watermark"] is None
    for s in report["samples"]:
        assert wm.detect_text(s["completion"], key=key, gamma=0.25, context_width=1).z < 4
