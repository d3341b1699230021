"""Comparison reports for 2..N runs (pure Python: no Django, no stores).

Input: runs as ``{"id", "name", "params": {dotted: value}, "summary": {key: {...}}}``.
Output: the params that differ, each metric's final and best value per run with the best
highlighted and deltas against a baseline, a short plain-language summary, and — with five
runs or more — each numeric param's Spearman rank correlation with the target metric.

"Best" means lowest for metrics whose name says loss, error, perplexity, bits or bpb (and
``goal="min"``), highest otherwise (or ``goal="max"``). Per metric, ``best_run`` holds the
best value reached at any step (★ in the tables) and ``best_final_run`` the best final value;
the summary sentences speak of final values only, worded from the sign of the difference.
"""

from __future__ import annotations

import html
import math
from typing import Any

LOWER_IS_BETTER = (
    "loss",
    "error",
    "err",
    "perplexity",
    "ppl",
    "bpb",
    "bits",
    "cv",
    "latency",
    "time",
    "grad_norm",
    "dropped",
    "drop",
    "entropy_gap",
)


def direction(key: str, goal: str | None = None) -> str:
    if goal in ("min", "max"):
        return goal
    k = key.lower()
    return "min" if any(w in k for w in LOWER_IS_BETTER) else "max"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    vy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return None if vx == 0 or vy == 0 else cov / (vx * vy)


def compare(
    runs: list[dict],
    *,
    target: str | None = None,
    baseline: str | None = None,
    goal: str | None = None,
    metrics: list[str] | None = None,
) -> dict:
    if len(runs) < 2:
        raise ValueError("a comparison needs at least two runs")
    ids = [r["id"] for r in runs]
    base = next((r for r in runs if r["id"] == baseline), runs[0])
    all_params = sorted({k for r in runs for k in r["params"]})
    differing = [k for k in all_params if len({repr(r["params"].get(k)) for r in runs}) > 1]
    # Per-expert series (moe/layerL/load/expertE...) belong in the MoE view, not in a table.
    keys = metrics or sorted(
        {
            k
            for r in runs
            for k in r["summary"]
            if not k.startswith("system/") and "/expert" not in k
        }
    )
    target = (
        target
        or next((k for k in keys if "val" in k and "loss" in k), None)
        or next((k for k in keys if "loss" in k), keys[0] if keys else None)
    )
    metric_rows = []
    for key in keys:
        d = direction(key, goal if key == target else None)
        per_run = {}
        for r in runs:
            s = r["summary"].get(key)
            if s:
                per_run[r["id"]] = {
                    "final": s["last"],
                    "final_step": s.get("last_step"),
                    "best": s[d],
                    "best_step": s.get(f"{d}_step"),
                }
        present = [i for i in ids if i in per_run]
        pick = min if d == "min" else max
        best_run = pick(present, key=lambda i: per_run[i]["best"]) if present else None
        best_final_run = pick(present, key=lambda i: per_run[i]["final"]) if present else None
        b = per_run.get(base["id"])
        for i in present:
            if b and i != base["id"]:
                delta = per_run[i]["final"] - b["final"]
                per_run[i]["delta_final"] = delta
                per_run[i]["delta_final_pct"] = (
                    (delta / abs(b["final"]) * 100) if b["final"] else None
                )
        metric_rows.append(
            {
                "key": key,
                "direction": d,
                "best_run": best_run,
                "best_final_run": best_final_run,
                "runs": per_run,
            }
        )
    correlations = []
    if target and len(runs) >= 5:
        for k in differing:
            pts = [
                (r["params"][k], r["summary"][target]["last"])
                for r in runs
                if isinstance(r["params"].get(k), int | float)
                and not isinstance(r["params"].get(k), bool)
                and target in r["summary"]
            ]
            if len(pts) >= 5:
                rho = spearman([float(x) for x, _ in pts], [float(y) for _, y in pts])
                if rho is not None:
                    correlations.append({"param": k, "spearman": rho, "n": len(pts)})
        correlations.sort(key=lambda c: -abs(c["spearman"]))
    return {
        "runs": [{"id": r["id"], "name": r["name"], "status": r.get("status")} for r in runs],
        "baseline": base["id"],
        "target": target,
        "params": [
            {"key": k, "values": {r["id"]: r["params"].get(k) for r in runs}} for k in differing
        ],
        "same_params": len(all_params) - len(differing),
        "metrics": metric_rows,
        "correlations": correlations,
        "summary": _summary(runs, base, target, metric_rows, differing, correlations),
    }


def _pct_text(value: float, base: float) -> str:
    """How ``value`` compares with ``base``, worded from the sign of the difference."""
    if value == base:
        return "the same"
    word = "lower" if value < base else "higher"
    if base == 0:
        return word
    return f"{abs(value - base) / abs(base) * 100:.1f}% {word}"


def _summary(runs, base, target, metric_rows, differing, correlations) -> list[str]:
    """Sentences about final values only (the value a run ended with): the run with the best
    final value against the baseline, worded lower/higher from the sign of the difference.
    When another run touched a better value at some step, that is said separately."""
    lines: list[str] = []
    names = {r["id"]: r["name"] for r in runs}
    by_id = {r["id"]: r for r in runs}
    row = next((m for m in metric_rows if m["key"] == target), None)
    if row and row["best_final_run"]:
        per_run, best = row["runs"], row["best_final_run"]
        w = per_run[best]
        b = per_run.get(base["id"])
        if b is not None and b["final"] == w["final"]:
            best = base["id"]  # a tie with the baseline: the baseline is (one of) the best
        if b is None:
            lines.append(
                f"{names[best]} has the best final {target} ({_fmt(w['final'])} at step {w['final_step']}); "
                f"the baseline {names[base['id']]} did not log it."
            )
        elif best != base["id"]:
            diffs = _param_diff_text(base, by_id[best], differing)
            lines.append(
                f"{names[best]} reaches {_pct_text(w['final'], b['final'])} final {target} than "
                f"{names[base['id']]} ({_fmt(w['final'])} vs {_fmt(b['final'])})"
                + (f"; they differ in {diffs}." if diffs else ".")
            )
        else:
            others = [i for i in per_run if i != base["id"]]
            line = (
                f"The baseline {names[base['id']]} has the best final {target} ({_fmt(b['final'])})"
            )
            if others:
                sign = 1 if row["direction"] == "min" else -1
                nxt = min(others, key=lambda i: sign * per_run[i]["final"])
                line += (
                    f"; the next best, {names[nxt]}, ends {_pct_text(per_run[nxt]['final'], b['final'])} "
                    f"({_fmt(per_run[nxt]['final'])})"
                )
            lines.append(line + ".")
        peak = row["best_run"]
        if peak and peak != best and per_run[peak]["best"] != per_run[best]["best"]:
            p = per_run[peak]
            lines.append(
                f"{names[peak]} reached the best {target} at any step ({_fmt(p['best'])} at step "
                f"{p['best_step']}) but ended at {_fmt(p['final'])}."
            )
    if correlations:
        c = correlations[0]
        trend = "higher" if c["spearman"] > 0 else "lower"
        lines.append(
            f"Across {c['n']} runs, {c['param']} has the strongest rank correlation with final {target} "
            f"(Spearman ρ = {c['spearman']:+.2f}: larger {c['param']}, {trend} {target})."
        )
    if not differing:
        lines.append("The runs share every param: differences come from seeds or data order.")
    return lines


def _param_diff_text(a: dict, b: dict, differing: list[str], limit: int = 4) -> str:
    parts = [
        f"{k} {_fmt(a['params'].get(k))}→{_fmt(b['params'].get(k))}"
        for k in differing
        if a["params"].get(k) != b["params"].get(k)
    ]
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def to_markdown(report: dict) -> str:
    runs = report["runs"]
    head = "| | " + " | ".join(r["name"] for r in runs) + " |\n|---|" + "---|" * len(runs) + "\n"
    out = [
        f"# Run comparison\n\nBaseline: **{next(r['name'] for r in runs if r['id'] == report['baseline'])}**"
        f" · target metric: **{report['target']}**\n"
    ]
    out += ["## Summary\n"] + [f"- {line}" for line in report["summary"]] + [""]
    out.append(
        f"## Params that differ ({len(report['params'])}; {report['same_params']} identical)\n"
    )
    out.append(
        head
        + "".join(
            f"| `{p['key']}` | " + " | ".join(_fmt(p["values"].get(r["id"])) for r in runs) + " |\n"
            for p in report["params"]
        )
    )
    out.append("\n## Metrics (final / best; ★ = best)\n")
    rows = []
    for m in report["metrics"]:
        cells = []
        for r in runs:
            v = m["runs"].get(r["id"])
            if not v:
                cells.append("—")
                continue
            star = " ★" if m["best_run"] == r["id"] else ""
            delta = (
                f" ({v['delta_final_pct']:+.1f}%)" if v.get("delta_final_pct") is not None else ""
            )
            cells.append(f"{_fmt(v['final'])}{delta} / {_fmt(v['best'])}{star}")
        rows.append(f"| `{m['key']}` ({m['direction']}) | " + " | ".join(cells) + " |\n")
    out.append(head + "".join(rows))
    if report["correlations"]:
        out.append(
            "\n## Rank correlation with "
            + str(report["target"])
            + "\n\n| param | Spearman ρ | runs |\n|---|---|---|\n"
        )
        out += [
            f"| `{c['param']}` | {c['spearman']:+.3f} | {c['n']} |\n"
            for c in report["correlations"]
        ]
    return "".join(x if x.endswith("\n") else x + "\n" for x in out)


def to_html(report: dict) -> str:
    """The same content as :func:`to_markdown`: summary, differing params, metrics with deltas
    against the baseline and the best highlighted, rank correlations."""
    e = html.escape
    runs = report["runs"]
    base_name = next(r["name"] for r in runs if r["id"] == report["baseline"])
    th = "".join(
        f"<th>{e(r['name'])}{' (baseline)' if r['id'] == report['baseline'] else ''}</th>"
        for r in runs
    )
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Run comparison</title>",
        "<style>body{font:14px system-ui;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px}td.best{font-weight:bold;background:#e6f4ea}.delta{color:#555}</style>",
        f"<h1>Run comparison</h1><p>Baseline: <b>{e(base_name)}</b> · target metric: "
        f"<b>{e(str(report['target']))}</b></p><h2>Summary</h2><ul>",
        *[f"<li>{e(line)}</li>" for line in report["summary"]],
        f"</ul><h2>Params that differ ({len(report['params'])}; {report['same_params']} identical)</h2>"
        f"<table><tr><th></th>{th}</tr>",
    ]
    for p in report["params"]:
        parts.append(
            f"<tr><td><code>{e(p['key'])}</code></td>"
            + "".join(f"<td>{e(_fmt(p['values'].get(r['id'])))}</td>" for r in runs)
            + "</tr>"
        )
    parts.append(
        "</table><h2>Metrics (final (Δ vs baseline) / best; ★ = best)</h2>"
        f"<table><tr><th></th>{th}</tr>"
    )
    for m in report["metrics"]:
        cells = []
        for r in runs:
            v = m["runs"].get(r["id"])
            if not v:
                cells.append("<td>—</td>")
                continue
            best = m["best_run"] == r["id"]
            pct = v.get("delta_final_pct")
            delta = f" <span class='delta'>({pct:+.1f}%)</span>" if pct is not None else ""
            cls, star = (" class='best'", " ★") if best else ("", "")
            cells.append(f"<td{cls}>{e(_fmt(v['final']))}{delta} / {e(_fmt(v['best']))}{star}</td>")
        parts.append(
            f"<tr><td><code>{e(m['key'])}</code> ({e(m['direction'])})</td>{''.join(cells)}</tr>"
        )
    parts.append("</table>")
    if report["correlations"]:
        parts.append(
            f"<h2>Rank correlation with {e(str(report['target']))}</h2>"
            "<table><tr><th>param</th><th>Spearman ρ</th><th>runs</th></tr>"
        )
        parts += [
            f"<tr><td><code>{e(c['param'])}</code></td><td>{c['spearman']:+.3f}</td><td>{c['n']}</td></tr>"
            for c in report["correlations"]
        ]
        parts.append("</table>")
    return "".join(parts)
