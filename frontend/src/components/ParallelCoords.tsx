/** Parallel coordinates of compared runs: one axis per differing param and per chosen
 * metric; numeric axes are linear, others categorical. An SVG: a few dozen runs at most. */
import { useEffect, useMemo, useRef, useState } from "react";
import { fmtNum, fmtValue } from "../lib/format";

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

export function axisScale(values: unknown[]): { kind: "num" | "cat"; pos: (v: unknown) => number | null; ticks: { v: string; p: number }[] } {
  const present = values.filter((v) => v !== undefined && v !== null);
  const nums = present.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  if (present.length && nums.length === present.length) {
    let lo = Math.min(...nums);
    let hi = Math.max(...nums);
    if (lo === hi) {
      lo -= 1;
      hi += 1;
    }
    return {
      kind: "num",
      pos: (v) => (typeof v === "number" && Number.isFinite(v) ? (v - lo) / (hi - lo) : null),
      ticks: [
        { v: fmtNum(lo, 3), p: 0 },
        { v: fmtNum(hi, 3), p: 1 },
      ],
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
  const W = Math.max(width, axes.length * 130, 320);
  const top = 34;
  const bottom = 18;
  const h = height - top - bottom;
  const scales = useMemo(() => axes.map((a) => axisScale(runs.map((r) => a.values[r.id]))), [axes, runs]);
  if (axes.length < 2) return <p className="muted" ref={ref}>Parallel coordinates need at least two axes (differing params or metrics).</p>;
  const x = (i: number) => 70 + (i * (W - 160)) / (axes.length - 1);
  const y = (p: number) => top + (1 - p) * h;
  return (
    <div className="table-wrap" ref={ref}>
      <svg className="pc-svg" width={W} height={height} role="img" aria-label={`Parallel coordinates of ${runs.length} runs over ${axes.map((a) => a.label).join(", ")}`}>
        {axes.map((a, i) => (
          <g key={a.key} className="axis">
            <line x1={x(i)} x2={x(i)} y1={top} y2={top + h} strokeWidth={1} />
            <text x={x(i)} y={14} textAnchor="middle" fontWeight={600}>
              {a.label.length > 22 ? `${a.label.slice(0, 21)}…` : a.label}
            </text>
            {scales[i].ticks.slice(0, 8).map((t) => (
              <text key={t.v} x={x(i) + 5} y={y(t.p) + 4} className="muted" style={{ fontSize: 10, opacity: 0.8 }}>
                {t.v}
              </text>
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
