"""Comparison reports for 2..N runs (pure Python: no Django, no stores).

Input: runs as ``{"id", "name", "params": {dotted: value}, "summary": {key: {...}}}``.
Output: the params that differ, each metric's final and best value per run with the best
highlighted and deltas against a baseline, a short plain-language summary, and — with five
runs or more — each numeric param's Spearman rank correlation with the target metric.

A report claims no difference that is not there:

- **Params.** ``params`` lists only keys every compared run recorded, with different values;
  a key some runs did not record is no difference: it is listed in ``partial_params`` with the
  runs that recorded it ("recorded only in ...").
- **Direction.** Each metric's direction is ``"min"``, ``"max"`` or ``"none"``:
  :func:`direction` applies the project's ``metric_directions`` overrides first (``{glob:
  "min"|"max"|"none"}``; an exact key before globs, globs in their order), then
  :data:`DIRECTION_RULES` (first match wins). A metric with no direction (a learning rate, a
  step counter, a clock, a diagnostic with no better side) gets no ★ and ranks nobody.
- **Shared metrics.** ``best_run`` (★: the best value at any step) and ``best_final_run`` are
  set only for a metric that every compared run logged; the summary ranks runs on the target
  metric only when every run logged it and it has a direction, and otherwise says why not.
  Summary sentences speak of final values only, worded from the sign of the difference.
"""

from __future__ import annotations

import html
import math
from fnmatch import fnmatchcase
from typing import Any

DIRECTIONS = ("min", "max", "none")

#: The built-in direction of a metric, by glob over its lower-cased key: first match wins; a key
#: no rule matches has no direction. Order matters: the "none" rules come first so that
#: ``loss_scale`` is not a loss and ``step_ms`` is a time while ``step`` is a counter.
DIRECTION_RULES: tuple[tuple[str, str], ...] = (
    # No direction: settings and schedules, counters and clocks, diagnostics with no better side.
    ("*loss_scale", "none"),  # fp16 GradScaler scale
    ("lr", "none"),
    ("*/lr", "none"),
    ("*_lr", "none"),
    ("*learning_rate*", "none"),
    ("*step", "none"),
    ("*steps", "none"),
    ("*epoch*", "none"),
    ("time", "none"),
    ("*/time", "none"),
    ("*wall_time*", "none"),
    ("*timestamp*", "none"),
    ("*tokens_seen*", "none"),
    ("*samples_seen*", "none"),
    ("*entropy_gap*", "min"),
    ("*entropy*", "none"),  # router entropy: uniform is not "better"
    ("*aux_balance*", "none"),  # 1 = balanced, either side is worse
    ("*/share/*", "none"),  # profile: where the time went
    ("*grad_norm*", "none"),
    ("*flops_per_step*", "none"),
    ("*flops_per_token*", "none"),
    ("*temperature*", "none"),
    ("*/bias/*", "none"),
    # Higher is better: quality scores and throughput.
    ("*per_s", "max"),  # tokens_per_s, model_flops_per_s, samples_per_s
    ("*per_s/*", "max"),
    ("*per_sec*", "max"),
    ("*throughput*", "max"),
    ("*mfu*", "max"),
    ("*accuracy*", "max"),
    ("acc", "max"),
    ("*/acc", "max"),
    ("*_acc", "max"),
    ("acc_*", "max"),
    ("*/acc_*", "max"),
    ("*f1*", "max"),
    ("*bleu*", "max"),
    ("*rouge*", "max"),
    ("*auc*", "max"),
    ("*precision*", "max"),
    ("*recall*", "max"),
    ("*reward*", "max"),
    # Lower is better: losses, error rates, time per unit of work, imbalance, lost tokens.
    ("*loss*", "min"),
    ("*perplexity*", "min"),
    ("*ppl*", "min"),
    ("*bpb*", "min"),
    ("*bits_per*", "min"),
    ("*error*", "min"),
    ("err", "min"),
    ("*_err", "min"),
    ("*latency*", "min"),
    ("*_ms", "min"),
    ("*_seconds", "min"),
    ("*_time", "min"),
    ("*_time_s", "min"),
    ("*duration*", "min"),
    ("*load_cv*", "min"),  # expert load imbalance (0 = balanced)
    ("*dropped*", "min"),  # tokens dropped by expert capacity
    ("*memory*", "min"),
    ("*_bytes", "min"),
)


def direction(key: str, goal: str | None = None, overrides: dict[str, str] | None = None) -> str:
    """``"min"``, ``"max"`` or ``"none"`` for a metric: ``goal`` if given, else the project's
    ``overrides`` (exact key, then globs in order), else :data:`DIRECTION_RULES`."""
    if goal in DIRECTIONS:
        return goal
    for pattern, d in (overrides or {}).items():
        if pattern == key:
            return d
    for pattern, d in (overrides or {}).items():
        if fnmatchcase(key, pattern):
            return d
    k = key.lower()
    return next((d for pattern, d in DIRECTION_RULES if fnmatchcase(k, pattern)), "none")


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
    directions: dict[str, str] | None = None,
) -> dict:
    """The report of ``runs`` (see the module docstring); ``directions`` are the project's
    ``metric_directions`` overrides, ``goal`` the direction of the target metric."""
    if len(runs) < 2:
        raise ValueError("a comparison needs at least two runs")
    ids = [r["id"] for r in runs]
    base = next((r for r in runs if r["id"] == baseline), runs[0])
    all_params = sorted({k for r in runs for k in r["params"]})
    shared_params = [k for k in all_params if all(k in r["params"] for r in runs)]
    differing = [k for k in shared_params if len({repr(r["params"][k]) for r in runs}) > 1]
    partial = [k for k in all_params if k not in set(shared_params)]
    # Per-expert series (moe/layerL/load/expertE...) belong in the MoE view, not in a table.
    keys = metrics or sorted(
        {
            k
            for r in runs
            for k in r["summary"]
            if not k.startswith("system/") and "/expert" not in k
        }
    )

    def shared(key: str) -> bool:
        return all(r["summary"].get(key) for r in runs)

    def ranked(key: str) -> bool:
        return shared(key) and direction(key, None, directions) != "none"

    # The default target: a validation loss, else a loss, that every run logged; else one
    # that some run logged (the summary then says why it ranks nobody).
    target = target or next(
        (
            k
            for pick in (ranked, lambda k: True)
            for want in (lambda k: "val" in k and "loss" in k, lambda k: "loss" in k)
            for k in keys
            if want(k) and pick(k)
        ),
        keys[0] if keys else None,
    )
    metric_rows = []
    for key in keys:
        d = direction(key, goal if key == target else None, directions)
        per_run = {}
        for r in runs:
            s = r["summary"].get(key)
            if s:
                # Without a direction "best" is meaningless: the final value stands in for it.
                best = s.get(d, s["last"]) if d != "none" else s["last"]
                per_run[r["id"]] = {
                    "final": s["last"],
                    "final_step": s.get("last_step"),
                    "best": best,
                    "best_step": s.get(f"{d}_step") if d != "none" else s.get("last_step"),
                }
        present = [i for i in ids if i in per_run]
        everyone = len(present) == len(ids)
        best_run = best_final_run = None
        if everyone and d != "none":
            pick = min if d == "min" else max
            best_run = pick(present, key=lambda i: per_run[i]["best"])
            best_final_run = pick(present, key=lambda i: per_run[i]["final"])
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
                "shared": everyone,
                "missing": [i for i in ids if i not in per_run],
                "best_run": best_run,
                "best_final_run": best_final_run,
                "runs": per_run,
            }
        )
    target_row = next((m for m in metric_rows if m["key"] == target), None)
    correlations = []
    if target_row and target_row["best_final_run"] and len(runs) >= 5:
        for k in differing:
            pts = [
                (r["params"][k], r["summary"][target]["last"])
                for r in runs
                if isinstance(r["params"][k], int | float) and not isinstance(r["params"][k], bool)
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
            {"key": k, "values": {r["id"]: r["params"][k] for r in runs}} for k in differing
        ],
        "same_params": len(shared_params) - len(differing),
        "partial_params": [
            {
                "key": k,
                "values": {r["id"]: r["params"][k] for r in runs if k in r["params"]},
                "recorded_in": [r["id"] for r in runs if k in r["params"]],
            }
            for k in partial
        ],
        "metrics": metric_rows,
        "correlations": correlations,
        "summary": _summary(runs, base, target_row, differing, partial, correlations),
    }


#: Final values closer than this (relative) are not worded as one run beating another: a single
#: run per configuration cannot tell a 0.1 % difference from seed noise, and a summary must not
#: claim a difference that is not there. The table still shows both values.
NEGLIGIBLE_REL = 0.01


def _negligible(value: float, base: float) -> bool:
    return value == base or (base != 0 and abs(value - base) / abs(base) < NEGLIGIBLE_REL)


def _pct_text(value: float, base: float) -> str:
    """How ``value`` compares with ``base``, worded from the sign of the difference."""
    if value == base:
        return "the same"
    word = "lower" if value < base else "higher"
    if base == 0:
        return word
    return f"{abs(value - base) / abs(base) * 100:.1f}% {word}"


def _summary(runs, base, row, differing, partial, correlations) -> list[str]:
    """Sentences about final values only (the value a run ended with): the run with the best
    final value against the baseline, worded lower/higher from the sign of the difference.
    When another run touched a better value at some step, that is said separately. Runs are
    ranked on the target only when every run logged it and it has a direction."""
    lines: list[str] = []
    names = {r["id"]: r["name"] for r in runs}
    by_id = {r["id"]: r for r in runs}
    if row and row["missing"]:
        lines.append(
            f"{row['key']} was not logged by {', '.join(names[i] for i in row['missing'])}: "
            "no run is ranked on it."
        )
    elif row and row["direction"] == "none":
        lines.append(
            f"{row['key']} has no better direction: no run is ranked on it (name a goal, or set "
            "the project's metric_directions)."
        )
    elif row and row["best_final_run"]:
        target = row["key"]
        per_run, best = row["runs"], row["best_final_run"]
        w = per_run[best]
        b = per_run[base["id"]]
        if b["final"] == w["final"]:
            best = base["id"]  # a tie with the baseline: the baseline is (one of) the best
        if best != base["id"] and _negligible(w["final"], b["final"]):
            diffs = _param_diff_text(base, by_id[best], differing)
            lines.append(
                f"{names[best]} and {names[base['id']]} end within {NEGLIGIBLE_REL:.0%} of each "
                f"other on final {target} ({_fmt(w['final'])} vs {_fmt(b['final'])}): no run is "
                "ranked on it" + (f"; they differ in {diffs}." if diffs else ".")
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
        c, target = correlations[0], row["key"]
        trend = "higher" if c["spearman"] > 0 else "lower"
        lines.append(
            f"Across {c['n']} runs, {c['param']} has the strongest rank correlation with final {target} "
            f"(Spearman ρ = {c['spearman']:+.2f}: larger {c['param']}, {trend} {target})."
        )
    if partial:
        lines.append(
            f"{len(partial)} param(s) were recorded by only some of the runs and are not "
            f"compared: {_names_text(partial)}."
        )
    if not differing:
        lines.append(
            "The runs share every param they all recorded: differences come from seeds or data order."
            if partial
            else "The runs share every param: differences come from seeds or data order."
        )
    return lines


def _names_text(keys: list[str], limit: int = 4) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _param_diff_text(a: dict, b: dict, differing: list[str], limit: int = 4) -> str:
    """The params (recorded by every run) in which ``a`` and ``b`` differ."""
    parts = [
        f"{k} {_fmt(a['params'][k])}→{_fmt(b['params'][k])}"
        for k in differing
        if a["params"][k] != b["params"][k]
    ]
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def routing_lines(report: dict) -> list[str]:
    """The "Routing" lines of a report: per run whose commit has a stored routing diff against
    the baseline's commit (``hub.inference.routing_cache``), its headline figures; else the
    command that computes it."""
    names = {r["id"]: r["name"] for r in report["runs"]}
    lines = []
    for p in report.get("routing") or []:
        who = f"{names.get(p['a_run'], p['a_run'])} → {names.get(p['b_run'], p['b_run'])}"
        d = p.get("diff")
        if d:
            lines.append(
                f"{who}: {d['same_top1'] * 100:.1f}% of the probe tokens keep their top-1 "
                f"expert, {d['swaps']} expert(s) swapped roles, largest load change "
                f"{d['max_abs_load_delta'] * 100:.1f} points (probe set v{d['probe_version']})"
            )
        else:
            lines.append(f"{who}: no routing diff yet (`hub inspect routing {p['a']} {p['b']}`)")
    return lines


def to_markdown(report: dict) -> str:
    runs = report["runs"]
    head = "| | " + " | ".join(r["name"] for r in runs) + " |\n|---|" + "---|" * len(runs) + "\n"
    out = [
        f"# Run comparison\n\nBaseline: **{next(r['name'] for r in runs if r['id'] == report['baseline'])}**"
        f" · target metric: **{report['target']}**"
        + (f" · compared {report['kind']} runs" if report.get("kind") else "")
        + "\n"
    ]
    out += ["## Summary\n"] + [f"- {line}" for line in report["summary"]] + [""]
    if routing_lines(report):
        out += ["## Routing (probe set)\n"] + [f"- {x}" for x in routing_lines(report)] + [""]
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
    if report.get("partial_params"):
        out.append(
            f"\n## Params recorded only in some runs ({len(report['partial_params'])}; "
            "not compared)\n"
        )
        out.append(
            head
            + "".join(
                f"| `{p['key']}` | "
                + " | ".join(
                    _fmt(p["values"][r["id"]]) if r["id"] in p["values"] else "not recorded"
                    for r in runs
                )
                + " |\n"
                for p in report["partial_params"]
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
        f"<b>{e(str(report['target']))}</b>"
        + (f" · compared {e(report['kind'])} runs" if report.get("kind") else "")
        + "</p><h2>Summary</h2><ul>",
        *[f"<li>{e(line)}</li>" for line in report["summary"]],
        *(
            ["</ul><h2>Routing (probe set)</h2><ul>"]
            + [f"<li>{e(line)}</li>" for line in routing_lines(report)]
            if routing_lines(report)
            else []
        ),
        f"</ul><h2>Params that differ ({len(report['params'])}; {report['same_params']} identical)</h2>"
        f"<table><tr><th></th>{th}</tr>",
    ]
    for p in report["params"]:
        parts.append(
            f"<tr><td><code>{e(p['key'])}</code></td>"
            + "".join(f"<td>{e(_fmt(p['values'].get(r['id'])))}</td>" for r in runs)
            + "</tr>"
        )
    if report.get("partial_params"):
        parts.append(
            f"</table><h2>Params recorded only in some runs ({len(report['partial_params'])}; "
            f"not compared)</h2><table><tr><th></th>{th}</tr>"
        )
        for p in report["partial_params"]:
            parts.append(
                f"<tr><td><code>{e(p['key'])}</code></td>"
                + "".join(
                    f"<td>{e(_fmt(p['values'][r['id']]))}</td>"
                    if r["id"] in p["values"]
                    else "<td>not recorded</td>"
                    for r in runs
                )
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
