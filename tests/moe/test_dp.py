"""Differential-privacy training (train.dp, workers/moe/dp.py): per-example gradients, the
accountant, Poisson sampling, clipping, noise, the budget stop, and a canary audit."""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pytest
import torch

from tests.moe import dp_audit
from tests.moe.helpers import by_type, run_entry, tiny_config
from workers.moe import dp, dp_accountant
from workers.moe.config import DPConfig, ModelConfig, TrainConfig, validate_config
from workers.moe.data import load_corpus
from workers.moe.model import MoETransformer
from workers.moe.train import run as train_run

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SMALL = dict(
    block_size=24,
    n_layer=2,
    n_head=2,
    n_embd=32,
    n_dense_layers=1,
    dense_hidden=64,
    n_experts=4,
    expert_hidden=32,
    shared_hidden=32,
    top_k=2,
)


def _model(seed: int = 0, **over) -> MoETransformer:
    torch.manual_seed(seed)
    m = MoETransformer(ModelConfig(**{**SMALL, **over})).double()
    with torch.no_grad():  # a non-zero balance bias: selection differs from the plain top-k
        for moe in m.moe_layers().values():
            moe.router.balance_bias.normal_(0.0, 0.02)
    return m


# ---------------------------------------------------------------------------------------------
# Config


def test_dp_config_defaults_and_rules():
    cfg, errors = validate_config("train", {"train": {"dp": {}}})
    assert errors == [] and cfg is not None and cfg.train is not None
    assert cfg.train.dp == DPConfig(
        epsilon=8.0, delta=None, max_grad_norm=1.0, noise_multiplier=None
    )
    assert cfg.to_dict()["train"]["dp"]["epsilon"] == 8.0
    assert validate_config("train", {})[0].train.dp is None  # off by default
    _, errors = validate_config(
        "train", {"train": {"dp": {"epsilon": 0, "delta": 0.5, "sigma": 1, "max_grad_norm": -1}}}
    )
    paths = {e["path"]: e["message"] for e in errors}
    assert set(paths) == {
        "train.dp.epsilon",
        "train.dp.delta",
        "train.dp.sigma",
        "train.dp.max_grad_norm",
    }
    for bad, needle in (
        ({"model": {"capacity_factor": 1.25}}, "dropless"),
        ({"train": {"activation_checkpointing": "blocks"}}, "activation_checkpointing"),
        ({"runtime": {"dtype": "fp16", "device": "cuda"}}, "fp32"),
        ({"runtime": {"dtype": "bf16"}}, "fp32"),
    ):
        raw = {**bad, "train": {**bad.get("train", {}), "dp": {}}}
        _, errors = validate_config("train", raw)
        assert [e["path"] for e in errors] == ["train.dp"] and needle in errors[0]["message"]
    _, errors = validate_config("finetune", {"train": {"dp": {}}})
    assert errors == [
        {
            "path": "train.dp",
            "message": "differential privacy is for train jobs only (not finetune)",
        }
    ]
    _, errors = validate_config("train", {"train": {"dp": 8}})
    assert errors == [{"path": "train.dp", "message": "must be an object"}]


# ---------------------------------------------------------------------------------------------
# Per-example gradients


@pytest.mark.parametrize(
    "over",
    [
        {},
        {
            "router_score": "sigmoid",
            "expert_hidden": [16, 32, 24, 16],
            "aux_loss_scope": "sequence",
            "z_loss_coef": 0.01,
            "top_k": 3,
            "route_scale": 2.5,
            "n_shared_experts": 0,
        },
    ],
    ids=["softmax-homogeneous", "sigmoid-heterogeneous-seq-zloss-top3"],
)
def test_per_sample_grads_equal_single_example_backward_passes(over):
    """vmap(grad) over the dense-masked MoE path == one ordinary backward pass per example
    through the normal model (sorted dispatch, grouped kernel), in float64: every parameter,
    every example, to rounding; the losses and routing counts too."""
    m = _model(**over)
    B = 5
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (B, SMALL["block_size"]), generator=g)
    y = torch.randint(0, 256, (B, SMALL["block_size"]), generator=g)
    grads, loss, lm, router, stats = dp.per_sample_grads(m, x, y)
    params = dp.trainable(m)
    assert set(grads) == set(params) and "lm_head.weight" not in grads  # tied: once
    m.pop_moe_stats()
    for i in range(B):
        m.zero_grad(set_to_none=True)
        _, losses = m(x[i : i + 1], y[i : i + 1])
        losses["loss"].backward()
        assert float(loss[i]) == pytest.approx(float(losses["loss"]), rel=1e-6)
        assert float(router[i]) == pytest.approx(float(losses["router"]), rel=1e-6)
        for name, p in params.items():
            assert grads[name].shape == (B, *p.shape)
            torch.testing.assert_close(grads[name][i], p.grad, rtol=1e-10, atol=1e-13, msg=name)
        counts = m.pop_moe_stats()[1]["load"]
        E = m.cfg.n_experts
        assert (stats[i, 0, :E] / stats[i, 0, :E].sum()).tolist() == pytest.approx(counts)


def test_per_sample_grads_match_opacus_grad_sample_module():
    """On the workload's dense config (every block a SwiGLU: a model Opacus's hooks support,
    tied embedding included) our per-example gradients equal GradSampleModule's."""
    from opacus import GradSampleModule

    m = _model(n_dense_layers=2)
    assert not m.moe_layers()
    B, T = 4, SMALL["block_size"]
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (B, T), generator=g)
    y = torch.randint(0, 256, (B, T), generator=g)
    ours, *_ = dp.per_sample_grads(m, x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gsm = GradSampleModule(m, batch_first=True, loss_reduction="sum")
        logits = gsm(x)[0]
        ce = torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), y.flatten(), reduction="none"
        )
        ce.view(B, T).mean(1).sum().backward()  # Σ_i (example i's mean loss)
    for name, p in dp.trainable(m).items():
        torch.testing.assert_close(ours[name], p.grad_sample, rtol=1e-6, atol=1e-9, msg=name)
    gsm._close()


def test_dense_moe_path_is_restored_and_records_nothing():
    m = _model()
    x = torch.randint(0, 256, (2, SMALL["block_size"]))
    dp.per_sample_grads(m, x, x)
    assert all(type(moe) is dp.MoE for moe in m.moe_layers().values())
    assert all(moe.step_counts.sum() == 0 for moe in m.moe_layers().values())


# ---------------------------------------------------------------------------------------------
# Accountant


@pytest.mark.parametrize(
    "q,sigma,steps,delta",
    [
        (0.01, 1.0, 1000, 1e-5),
        (0.0054, 0.6, 150, 1e-5),
        (0.001, 0.5, 10_000, 1e-6),
        (0.2, 3.0, 50, 1e-5),
        (1e-4, 0.8, 100_000, 1e-7),
        (0.05, 20.0, 10, 1e-5),
        (0.026, 0.75, 1, 1e-5),
    ],
)
def test_epsilon_equals_opacus_rdp_accountant(q, sigma, steps, delta):
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if steps <= 200:  # the accountant stepped as a training loop would
            for _ in range(steps):
                acc.step(noise_multiplier=sigma, sample_rate=q)
        else:
            acc.history = [(sigma, q, steps)]
        theirs = acc.get_epsilon(delta)
    ours = dp_accountant.epsilon(q, sigma, steps, delta)
    assert ours == pytest.approx(theirs, rel=1e-9)


@pytest.mark.parametrize("eps,q,steps", [(8.0, 0.01, 1000), (1.0, 0.026, 120), (3.0, 0.001, 5000)])
def test_noise_multiplier_equals_opacus(eps, q, steps):
    from opacus.accountants.utils import get_noise_multiplier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = get_noise_multiplier(
            target_epsilon=eps, target_delta=1e-5, sample_rate=q, steps=steps
        )
    ours = dp_accountant.noise_multiplier_for(eps, 1e-5, q, steps)
    assert ours == pytest.approx(theirs, rel=1e-12)
    assert dp_accountant.epsilon(q, ours, steps, 1e-5) <= eps


def test_plan_sigma_from_budget_and_budget_cut():
    t = TrainConfig(steps=300, batch_size=16)
    plan = dp.plan_dp(DPConfig(epsilon=2.0), t, n_examples=5000)
    assert plan.sample_rate == 16 / 5000 and plan.delta == 1e-5 and plan.steps == 300
    assert 2.0 - 0.01 <= plan.epsilon_after(300) <= 2.0
    small = dp.plan_dp(DPConfig(epsilon=2.0), t, n_examples=100)
    assert small.delta == pytest.approx(0.1 / 100 if 0.1 / 100 < 1e-5 else 1e-5)
    big = dp.plan_dp(DPConfig(epsilon=2.0), t, n_examples=100_000)
    assert big.delta == 1e-6  # min(1e-5, 0.1 / N)
    cut = dp.plan_dp(DPConfig(epsilon=1.0, noise_multiplier=1.0), t, n_examples=3000)
    assert 0 < cut.steps < 300 and not cut.sigma_from_budget
    assert cut.epsilon_after(cut.steps) <= 1.0 < cut.epsilon_after(cut.steps + 1)
    with pytest.raises(dp.InputError, match="one step already spends"):
        dp.plan_dp(DPConfig(epsilon=0.5, noise_multiplier=0.5), t, n_examples=3000)
    with pytest.raises(dp.InputError, match="below the number of training examples"):
        dp.plan_dp(DPConfig(), t, n_examples=16)


# ---------------------------------------------------------------------------------------------
# Sampling, clipping, noise


def test_poisson_sampling_includes_each_example_with_probability_q():
    rng = np.random.default_rng(0)
    n, q, steps = 500, 0.03, 4000
    sizes = []
    hits = np.zeros(n)
    for _ in range(steps):
        idx = dp.poisson_sample(rng, n, q)
        assert len(np.unique(idx)) == len(idx)
        sizes.append(len(idx))
        hits[idx] += 1
    # batch size ~ Binomial(n, q): mean nq, variance nq(1 − q) — it varies, it is not fixed
    mean, var = statistics.mean(sizes), statistics.pvariance(sizes)
    assert abs(mean - n * q) < 4 * math.sqrt(n * q * (1 - q) / steps)
    assert var == pytest.approx(n * q * (1 - q), rel=0.1)
    assert min(sizes) < n * q < max(sizes)
    # every example at rate q: counts ~ Binomial(steps, q), none starved or favoured
    sd = math.sqrt(steps * q * (1 - q))
    assert np.abs(hits - steps * q).max() < 5 * sd
    assert hits.std() == pytest.approx(sd, rel=0.15)


def test_clipping_bounds_each_example_and_keeps_small_ones():
    g = torch.Generator().manual_seed(3)
    grads = {
        "a": torch.randn(6, 10, 4, generator=g)
        * torch.tensor([10, 0.01, 3, 0.2, 50, 1]).view(6, 1, 1),
        "b": torch.randn(6, 7, generator=g),
    }
    C = 1.5
    norms = torch.sqrt(sum(v.flatten(1).pow(2).sum(1) for v in grads.values()))
    summed, got_norms = dp.clip_and_sum(grads, C)
    torch.testing.assert_close(got_norms, norms)
    for i in range(6):  # each example alone: its clipped gradient's norm is ≤ C
        one, _ = dp.clip_and_sum({k: v[i : i + 1] for k, v in grads.items()}, C)
        n = math.sqrt(sum(float(v.pow(2).sum()) for v in one.values()))
        assert n <= C + 1e-6
        if norms[i] < C:  # below the bound: untouched
            for k in grads:
                torch.testing.assert_close(one[k], grads[k][i])
        else:
            assert n == pytest.approx(C, rel=1e-5)
    total = math.sqrt(sum(float(v.pow(2).sum()) for v in summed.values()))
    assert total <= 6 * C


class _Data:
    """Just what DPSGD reads of TokenData: a train array and block_size."""

    def __init__(self, n: int, T: int) -> None:
        self.block_size = T
        self.train = np.random.default_rng(4).integers(0, 256, n * (T + 1)).astype(np.uint16)

    def _windows(self, arr, starts):
        buf = np.stack([arr[s : s + self.block_size + 1] for s in starts]).astype(np.int64)
        t = torch.from_numpy(buf)
        return t[:, :-1], t[:, 1:]


def test_dpsgd_gradient_is_clipped_sum_plus_calibrated_noise():
    """p.grad = (Σ clipped g_i + N(0, σ²C²)) / B: recompute the clipped sum for the same
    sampled batch; the residual is Gaussian with std σ·C/B in every coordinate."""
    m = _model().float()
    T = SMALL["block_size"]
    data = _Data(200, T)
    t = TrainConfig(steps=10, batch_size=8)
    plan = dp.plan_dp(DPConfig(epsilon=8.0, noise_multiplier=2.0, max_grad_norm=0.5), t, 200)
    step = dp.DPSGD(
        m,
        plan,
        data,
        chunk=3,
        device=torch.device("cpu"),
        rng=np.random.default_rng(7),
        generator=torch.Generator().manual_seed(8),
    )
    out = step.step()
    idx = dp.poisson_sample(np.random.default_rng(7), 200, plan.sample_rate)
    assert out["batch"] == len(idx) > 0
    x, y = dp.examples(data, idx)
    grads, loss, *_ = dp.per_sample_grads(m, x, y)
    clipped, norms = dp.clip_and_sum(grads, plan.max_grad_norm)
    assert out["loss"] == pytest.approx(float(loss.mean()), rel=1e-5)
    assert out["clipped_frac"] == pytest.approx(float((norms > 0.5).float().mean()))
    resid = torch.cat(
        [(p.grad * plan.expected_batch - clipped[n]).flatten() for n, p in dp.trainable(m).items()]
    )
    std = plan.noise_multiplier * plan.max_grad_norm
    assert resid.numel() > 30_000  # the std of the sample std is ~0.4%: 2% is > 5 of them
    assert float(resid.mean()) == pytest.approx(0.0, abs=5 * std / math.sqrt(resid.numel()))
    assert float(resid.std()) == pytest.approx(std, rel=0.02)


def test_examples_are_disjoint_windows():
    data = _Data(10, 8)
    x, y = dp.examples(data, np.array([0, 3]))
    assert (
        x[1].tolist() == data.train[27:35].tolist() and y[1].tolist() == data.train[28:36].tolist()
    )
    assert dp.n_examples(data) == 10


# ---------------------------------------------------------------------------------------------
# The train entry point


def test_train_stops_at_its_budget_and_records_it(tmp_path):
    """σ given, ε budget smaller than train.steps would spend: the run stops before the step
    that would cross it, says so, logs dp/epsilon (= the accountant) at each log step, keeps
    the balance bias frozen, and writes (ε, δ, σ, q, steps, C) into the weights' config."""
    cfg = tiny_config(tmp_path / "cache")
    cfg["data"]["max_bytes"] = 60_000
    cfg["model"].update(block_size=32, n_experts=4)
    cfg["train"].update(steps=12, batch_size=8, log_every=2, checkpoint_every=100)
    # N is the corpus's: build it first, then set the budget between ε(5) and ε(6)
    built, _ = validate_config("train", cfg)
    assert built is not None
    n = dp.n_examples(load_corpus(built.data, tmp_path / "out", 32))
    q, delta = 8 / n, min(1e-5, 0.1 / n)
    budget = (dp_accountant.epsilon(q, 1.1, 5, delta) + dp_accountant.epsilon(q, 1.1, 6, delta)) / 2
    cfg["train"]["dp"] = {"epsilon": budget, "noise_multiplier": 1.1, "max_grad_norm": 0.7}
    code, events = run_entry("train", train_run, tmp_path, cfg, tmp_path / "out")
    assert code == 0, by_type(events, "error")
    summary = by_type(events, "done")[-1]["summary"]
    meta = summary["dp"]
    n, q = meta["n_examples"], meta["sample_rate"]
    assert q == 8 / n and meta["delta"] == min(1e-5, 0.1 / n)
    assert meta["noise_multiplier"] == 1.1 and meta["max_grad_norm"] == 0.7
    steps = meta["steps"]
    assert steps == 5 and summary["steps"] == 5 and meta["epsilon_budget"] == budget
    assert meta["epsilon"] == dp_accountant.epsilon(q, 1.1, steps, meta["delta"])
    assert meta["epsilon"] <= budget < dp_accountant.epsilon(q, 1.1, steps + 1, meta["delta"])
    assert summary["stop_reason"].startswith("privacy budget reached")
    eps = {
        e["step"]: e["values"]["dp/epsilon"]
        for e in by_type(events, "metric")
        if "dp/epsilon" in e["values"]
    }
    assert sorted(eps) == [2, 4, 5]  # every log_every steps, and the last step
    for s, v in eps.items():
        assert v == pytest.approx(dp_accountant.epsilon(q, 1.1, s, meta["delta"]), rel=1e-12)
    progress = by_type(events, "progress")[-1]
    assert progress["step"] == progress["total"] == steps
    import json

    from safetensors.torch import load_file

    written = json.loads((tmp_path / "out" / "config.json").read_text())
    assert written["dp"]["epsilon"] == meta["epsilon"] and written["step"] == steps
    w = load_file(str(tmp_path / "out" / "model.safetensors"))
    biases = [v for k, v in w.items() if k.endswith("balance_bias")]
    assert biases and all(float(b.abs().max()) == 0.0 for b in biases)


# ---------------------------------------------------------------------------------------------
# Privacy audit (small): canary exposure falls under DP


def test_canary_exposure_falls_under_dp(tmp_path, monkeypatch):
    """Carlini et al.'s exposure of canaries inserted into the training text, for a plain and
    a DP run (ε = 1) of equal steps and hyper-parameters (tests/bench/bench_dp_audit.py prints
    the full figures). The DP run's sampling and noise are seeded here (in a job they come from
    the OS's entropy) so that the test is deterministic."""
    torch.set_num_threads(2)
    monkeypatch.setattr(dp, "secret_rng", lambda: np.random.default_rng(11))
    monkeypatch.setattr(dp, "secret_generator", lambda device: torch.Generator().manual_seed(12))
    # the bench's setting (tests/bench/bench_dp_audit.py): 6 canaries × 25 copies in 40 kB
    corpus = dp_audit.write_corpus(
        tmp_path / "corpus", base_bytes=40_000, n_canaries=6, repeats=25, digits=4, seed=1
    )
    model = dp_audit.AUDIT_MODEL
    dp_audit.check_canaries_in_training_split(corpus, tmp_path / "check", model["block_size"])
    train = dict(dp_audit.AUDIT_TRAIN, steps=120)
    plain, s_plain = dp_audit.train(corpus, tmp_path / "plain", model=model, train_cfg=train)
    private, s_dp = dp_audit.train(
        corpus, tmp_path / "dp", model=model, train_cfg={**train, "dp": {"epsilon": 1.0}}
    )
    assert 0.99 <= s_dp["dp"]["epsilon"] <= 1.0 and s_dp["dp"]["steps"] == 120
    e_plain = dp_audit.exposures(plain, corpus.canaries)
    e_dp = dp_audit.exposures(private, corpus.canaries)
    # the plain run memorised its canaries well above chance (≈1.44 bits); DP-SGD far less
    assert statistics.mean(e_plain) > 5.0, e_plain
    assert statistics.mean(e_dp) < statistics.mean(e_plain) - 3.0, (e_dp, e_plain)
    assert max(e_dp) < max(e_plain), (e_dp, e_plain)
    assert s_dp["val_bpb"] > s_plain["val_bpb"]  # and pays for it in quality


def test_a_resumed_dp_run_continues_the_accounting(tmp_path):
    """Killed after its step-2 checkpoint and started again: the run resumes at step 2 and its
    record is ε after all 4 steps (σ and q are fixed, so ε depends on the step count only)."""
    cfg = tiny_config(tmp_path / "cache")
    cfg["data"]["max_bytes"] = 60_000
    cfg["model"].update(block_size=32, n_experts=4)
    cfg["train"].update(steps=4, batch_size=8, log_every=1, checkpoint_every=2)
    cfg["train"]["dp"] = {"epsilon": 50.0, "noise_multiplier": 1.0}
    out = tmp_path / "out"
    code, events = run_entry("train", train_run, tmp_path, cfg, out)
    assert code == 0, by_type(events, "error")
    first = by_type(events, "done")[-1]["summary"]["dp"]
    (out / "checkpoints" / "step-00000004.pt").unlink()  # as if killed before step 4's
    code, events = run_entry("train", train_run, tmp_path, cfg, out)
    assert code == 0, by_type(events, "error")
    summary = by_type(events, "done")[-1]["summary"]
    assert summary["resumed_from"] == 2 and summary["dp"]["steps"] == 4
    q, delta = first["sample_rate"], first["delta"]
    assert summary["dp"]["epsilon"] == first["epsilon"] == dp_accountant.epsilon(q, 1.0, 4, delta)
    eps = {
        e["step"]: e["values"]["dp/epsilon"]
        for e in by_type(events, "metric")
        if "dp/epsilon" in e["values"]
    }
    assert sorted(eps) == [3, 4] and eps[3] == dp_accountant.epsilon(q, 1.0, 3, delta)
