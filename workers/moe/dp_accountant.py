"""Rényi-DP accountant for the Sampled Gaussian Mechanism (DP-SGD with Poisson sampling).

Pure Python (``math`` only: no torch, numpy or scipy), so the hub and the config layer can
use it too. It is an independent implementation of what Opacus's ``RDPAccountant`` computes
(itself from TF Privacy), checked against it in tests/moe/test_dp.py:

* one step of DP-SGD — each example included with probability q, the clipped sum plus
  N(0, σ²C²) — is the Sampled Gaussian Mechanism; its RDP at order α is
  ``log(A_α) / (α − 1)`` (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the
  Sampled Gaussian Mechanism", §3.3), with A_α a finite sum for integer α and two
  erfc-weighted series for fractional α;
* RDP composes additively over steps;
* (ε, δ) from RDP by the conversion of Balle et al. 2020 (Theorem 21):
  ``ε = min_α  rdp(α) + log((α−1)/α) − (log δ + log α) / (α − 1)``,
  over Opacus's default orders (1.1 … 10.9, 12 … 63).

``noise_multiplier_for`` is the binary search of ``opacus.accountants.utils
.get_noise_multiplier``: the smallest σ (to a tolerance on ε) whose ε after ``steps`` steps is
at most the target.
"""

from __future__ import annotations

import functools
import math

#: Opacus's RDPAccountant.DEFAULT_ALPHAS.
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
)
#: σ above this means the budget cannot be met (opacus.accountants.utils.MAX_SIGMA).
MAX_SIGMA = 1e6


def _log_add(a: float, b: float) -> float:
    lo, hi = min(a, b), max(a, b)
    if lo == -math.inf:
        return hi
    return math.log1p(math.exp(lo - hi)) + hi


def _log_sub(a: float, b: float) -> float:
    """log(exp(a) − exp(b)) for a ≥ b."""
    if a < b:
        raise ValueError("log-space subtraction would be negative")
    if b == -math.inf:
        return a
    if a == b:
        return -math.inf
    try:
        return math.log(math.expm1(a - b)) + b
    except OverflowError:
        return a


def _log_erfc(x: float) -> float:
    """log(erfc(x)), accurate where erfc underflows (x ≳ 26): asymptotic series there."""
    if x < 25.0:
        return math.log(math.erfc(x))
    x2 = x * x
    series = 1.0 - 1.0 / (2 * x2) + 3.0 / (4 * x2 * x2) - 15.0 / (8 * x2**3) + 105.0 / (16 * x2**4)
    return -x2 - math.log(x) - 0.5 * math.log(math.pi) + math.log(series)


def _binom(alpha: float, i: int) -> float:
    """The generalised binomial coefficient C(α, i) (negative for some i when α is fractional)."""
    c = 1.0
    for j in range(i):
        c *= (alpha - j) / (j + 1)
    return c


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    log_a = -math.inf
    for i in range(alpha + 1):
        log_coef = math.log(math.comb(alpha, i)) + i * math.log(q) + (alpha - i) * math.log(1 - q)
        log_a = _log_add(log_a, log_coef + (i * i - i) / (2 * sigma**2))
    return log_a


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    log_a0, log_a1 = -math.inf, -math.inf
    z0 = sigma**2 * math.log(1 / q - 1) + 0.5
    i = 0
    coef = 1.0
    while True:
        j = alpha - i
        log_coef = math.log(abs(coef))
        log_t0 = log_coef + i * math.log(q) + j * math.log(1 - q)
        log_t1 = log_coef + j * math.log(q) + i * math.log(1 - q)
        log_e0 = math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2) * sigma))
        log_e1 = math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2) * sigma))
        log_s0 = log_t0 + (i * i - i) / (2 * sigma**2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * sigma**2) + log_e1
        if coef > 0:
            log_a0, log_a1 = _log_add(log_a0, log_s0), _log_add(log_a1, log_s1)
        else:
            log_a0, log_a1 = _log_sub(log_a0, log_s0), _log_sub(log_a1, log_s1)
        if max(log_s0, log_s1) < -30:
            break
        coef *= (alpha - i) / (i + 1)
        i += 1
    return _log_add(log_a0, log_a1)


def rdp_sgm(q: float, sigma: float, alpha: float) -> float:
    """RDP at order α of one step of the Sampled Gaussian Mechanism (sampling rate q,
    noise multiplier σ, sensitivity 1)."""
    if q == 0:
        return 0.0
    if sigma == 0:
        return math.inf
    if q == 1.0:
        return alpha / (2 * sigma**2)
    if math.isinf(alpha):
        return math.inf
    if float(alpha).is_integer():
        log_a = _log_a_int(q, sigma, int(alpha))
    else:
        log_a = _log_a_frac(q, sigma, alpha)
    return log_a / (alpha - 1)


@functools.lru_cache(maxsize=64)
def _rdp_per_step(q: float, sigma: float, orders: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(rdp_sgm(q, sigma, a) for a in orders)


def epsilon(
    q: float, sigma: float, steps: int, delta: float, orders: tuple[float, ...] = DEFAULT_ORDERS
) -> float:
    """ε spent after ``steps`` steps of DP-SGD at sampling rate q and noise multiplier σ, for δ."""
    if steps <= 0 or q == 0:
        return 0.0
    best = math.inf
    for a, rdp1 in zip(orders, _rdp_per_step(q, sigma, orders), strict=True):
        rdp = rdp1 * steps
        eps = rdp - (math.log(delta) + math.log(a)) / (a - 1) + math.log((a - 1) / a)
        if not math.isnan(eps):
            best = min(best, eps)
    return best


def noise_multiplier_for(
    target_epsilon: float, delta: float, q: float, steps: int, tolerance: float = 0.01
) -> float:
    """The smallest σ (within ``tolerance`` of ε) whose ε after ``steps`` is ≤ target_epsilon
    (Opacus's get_noise_multiplier); ValueError when even σ = MAX_SIGMA spends more."""
    lo, hi = 0.0, 10.0
    eps_hi = math.inf
    while eps_hi > target_epsilon:
        hi *= 2
        eps_hi = epsilon(q, hi, steps, delta)
        if hi > MAX_SIGMA:
            raise ValueError("the privacy budget is too small for these steps and sampling rate")
    while target_epsilon - eps_hi > tolerance:
        mid = (lo + hi) / 2
        eps = epsilon(q, mid, steps, delta)
        if eps < target_epsilon:
            hi, eps_hi = mid, eps
        else:
            lo = mid
    return hi


def steps_within(q: float, sigma: float, delta: float, budget: float, max_steps: int) -> int:
    """The most steps (≤ max_steps) whose ε stays ≤ budget (ε grows with the steps)."""
    if epsilon(q, sigma, max_steps, delta) <= budget:
        return max_steps
    lo, hi = 0, max_steps  # ε(lo) ≤ budget < ε(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if epsilon(q, sigma, mid, delta) <= budget:
            lo = mid
        else:
            hi = mid
    return lo
