/** Run → Gradients: the per-layer and per-expert gradient norms training logs every
 * train.grad_norm_interval steps (grad_norm/layer{i}/{attn,router,experts,expert{j}}), as one
 * heatmap: a row per layer part or expert, a column per logged step, log-scale colour. A
 * vanishing layer is a dark row, an exploding one a row turning yellow, a starved expert
 * (no tokens, so no gradient) a black row. */
import { useMemo } from "react";
import { useQueries } from "@tanstack/react-query";
import { seriesLoader } from "../api/seriesLoader";
import type { Run, Series } from "../api/types";
import { fmtNum } from "../lib/format";
import { logColor, MatrixHeatmap } from "./MatrixHeatmap";
import { ErrorMessage, Loading } from "./States";

const RE = /^grad_norm\/layer(\d+)\/(attn|router|experts|expert(\d+))$/;
const PART = { attn: 0, router: 1, experts: 2 } as Record<string, number>;

export function gradNormKeys(keys: string[]): string[] {
  return keys
    .filter((k) => RE.test(k))
    .sort((a, b) => {
      const ma = RE.exec(a)!, mb = RE.exec(b)!;
      const rank = (m: RegExpExecArray) => [Number(m[1]), m[3] !== undefined ? 3 + Number(m[3]) : PART[m[2]]];
      const [la, pa] = rank(ma), [lb, pb] = rank(mb);
      return la - lb || pa - pb;
    });
}

export default function GradNormPanel({ run, keys }: { run: Run; keys: string[] }) {
  const rows = useMemo(() => gradNormKeys(keys), [keys]);
  const cols = 200;
  const qs = useQueries({
    queries: rows.map((k) => ({
      queryKey: ["series", run.id, k, "step", cols, null, null],
      queryFn: () => seriesLoader.load({ run: run.id, key: k, x: "step", buckets: cols, points: run.summary[k]?.count }),
      staleTime: 15_000,
    })),
  });
  const error = qs.find((q) => q.error)?.error;
  const ready = qs.length > 0 && qs.every((q) => q.data);
  const m = useMemo(() => {
    if (!ready) return null;
    const series = qs.map((q) => q.data as Series);
    const steps = Array.from(new Set(series.flatMap((s) => s.step))).sort((a, b) => a - b);
    const at = new Map(steps.map((s, i) => [s, i]));
    const values = new Float64Array(rows.length * steps.length).fill(NaN);
    let lo = Infinity, hi = 0;
    series.forEach((s, r) =>
      s.step.forEach((st, i) => {
        const v = s.value[i];
        values[r * steps.length + at.get(st)!] = v;
        if (v > 0 && Number.isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }),
    );
    const labels = rows.map((k) => {
      const x = RE.exec(k)!;
      return x[3] !== undefined ? `L${x[1]} expert ${x[3]}` : `L${x[1]} ${x[2]}`;
    });
    return { rows: labels, cols: steps.map(String), values, lo: Number.isFinite(lo) ? lo : 1e-6, hi: hi || 1 };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ready, rows.join("\n"), ...qs.map((q) => q.dataUpdatedAt)]);
  if (error) return <ErrorMessage error={error} />;
  if (!m) return <Loading />;
  const cell = Math.max(4, Math.min(16, Math.floor(900 / Math.max(m.cols.length, 1))));
  return (
    <section className="panel" data-testid="grad-norm-panel">
      <h2>Gradient norms <span className="muted small">({rows.length} rows × {m.cols.length} logged steps, log-scale colour)</span></h2>
      <MatrixHeatmap
        testId="grad-norm-heatmap"
        m={m}
        cell={cell}
        rowLabelWidth={110}
        label="Gradient norm per layer part and expert over steps"
        color={(v) => logColor(v, m.lo, m.hi)}
        describe={(r, c, v) => `${rows[r]} at step ${m.cols[c]}: ${Number.isNaN(v) ? "not logged" : fmtNum(v, 4)}`}
      />
      <p className="small muted">
        Dark purple: {fmtNum(m.lo, 3)} · yellow: {fmtNum(m.hi, 3)} · black: zero (an expert no token reached). Logged every{" "}
        <code>train.grad_norm_interval</code> steps.
      </p>
    </section>
  );
}
