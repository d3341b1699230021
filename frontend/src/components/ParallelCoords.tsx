/** Parallel coordinates of compared runs: one axis per differing param and per chosen
 * metric; numeric axes are linear, others categorical. An SVG: a few dozen runs at most. */
import { useEffect, useMemo, useRef, useState } from "react";
import { fmtAxis, fmtValue } from "../lib/format";

export interface PcAxis {
  key: string;
  label: string;
  values: Record<string, unknown>;
}

export interface PcRun {
  id: string;
  label: string;
  color: string;
}

/** About `n` round tick values (steps of 1, 2 or 5 × 10^k) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, n - 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  const first = Math.floor(lo / step + 1e-9) * step;
  for (let v = first; v <= hi + step * 1e-9 + step; v += step) {
    out.push(+v.toPrecision(12));
    if (v >= hi - step * 1e-9) break;
  }
  return out;
}

export function axisScale(values: unknown[]): { kind: "num" | "cat"; pos: (v: unknown) => number | null; ticks: { v: string; p: number }[] } {
  const present = values.filter((v) => v !== undefined && v !== null);
  const nums = present.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  if (present.length && nums.length === present.length) {
    let lo = Math.min(...nums);
    let hi = Math.max(...nums);
    if (lo === hi) {
      const pad = Math.abs(lo) * 0.1 || 1;
      lo -= pad;
      hi += pad;
    }
    // The axis spans round numbers around the data, with ticks at each.
    const ticks = niceTicks(lo, hi);
    lo = Math.min(lo, ticks[0]);
    hi = Math.max(hi, ticks[ticks.length - 1]);
    return {
      kind: "num",
      pos: (v) => (typeof v === "number" && Number.isFinite(v) ? (v - lo) / (hi - lo) : null),
      ticks: ticks.map((t) => ({ v: fmtAxis(t), p: (t - lo) / (hi - lo) })),
    };
  }
  const cats = [...new Set(present.map((v) => fmtValue(v)))].sort();
  const p = (i: number) => (cats.length === 1 ? 0.5 : i / (cats.length - 1));
  return {
    kind: "cat",
    pos: (v) => (v === undefined || v === null ? null : p(cats.indexOf(fmtValue(v)))),
    ticks: cats.map((c, i) => ({ v: c, p: p(i) })),
  };
}

function useWidth() {
  const ref = useRef<HTMLDivElement>(null);
  const [w, setW] = useState(800);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setW(el.clientWidth));
    ro.observe(el);
    setW(el.clientWidth);
    return () => ro.disconnect();
  }, []);
  return [ref, w] as const;
}

export function ParallelCoords({ axes, runs, height = 260 }: { axes: PcAxis[]; runs: PcRun[]; height?: number }) {
  const [ref, width] = useWidth();
  const W = Math.max(width, axes.length * 140, 320);
  const top = 34;
  const bottom = 18;
  const h = height - top - bottom;
  const scales = useMemo(() => axes.map((a) => axisScale(runs.map((r) => a.values[r.id]))), [axes, runs]);
  if (axes.length < 2) return <p className="muted" ref={ref}>Parallel coordinates need at least two axes (differing params or metrics).</p>;
  const x = (i: number) => 96 + (i * (W - 170)) / (axes.length - 1);
  const y = (p: number) => top + (1 - p) * h;
  // axis titles no wider than the space between axes (about 6.5px a character at 11px)
  const maxChars = Math.max(6, Math.min(24, Math.floor((W - 170) / (axes.length - 1) / 6.8)));
  return (
    <div className="table-wrap" ref={ref}>
      <svg className="pc-svg" width={W} height={height} role="img" aria-label={`Parallel coordinates of ${runs.length} runs over ${axes.map((a) => a.label).join(", ")}`}>
        {axes.map((a, i) => (
          <g key={a.key} className="axis">
            <line x1={x(i)} x2={x(i)} y1={top} y2={top + h} strokeWidth={1} />
            <text x={i === axes.length - 1 ? x(i) + 8 : x(i)} y={14} textAnchor={i === axes.length - 1 ? "end" : "middle"} fontWeight={600}>
              <title>{a.label}</title>
              {a.label.length > maxChars ? `${a.label.slice(0, maxChars - 1)}…` : a.label}
            </text>
            {scales[i].ticks.slice(0, 12).map((t) => (
              <g key={t.v} className="tick">
                <line x1={x(i) - 4} x2={x(i)} y1={y(t.p)} y2={y(t.p)} strokeWidth={1} />
                <text x={x(i) - 7} y={y(t.p) + 4} textAnchor="end" className="pc-tick">
                  {t.v.length > 14 ? `${t.v.slice(0, 13)}…` : t.v}
                </text>
              </g>
            ))}
          </g>
        ))}
        {runs.map((r) => {
          const pts = axes.map((a, i) => {
            const p = scales[i].pos(a.values[r.id]);
            return p === null ? null : `${x(i)},${y(p)}`;
          });
          const segs: string[] = [];
          let cur: string[] = [];
          for (const p of pts) {
            if (p === null) {
              if (cur.length > 1) segs.push(cur.join(" "));
              cur = [];
            } else cur.push(p);
          }
          if (cur.length > 1) segs.push(cur.join(" "));
          return (
            <g key={r.id}>
              <title>{r.label}</title>
              {segs.map((s, k) => (
                <polyline key={k} points={s} fill="none" stroke={r.color} strokeWidth={2} strokeOpacity={0.85} />
              ))}
            </g>
          );
        })}
      </svg>
    </div>
  );
}
