/** A labelled matrix heatmap on a <canvas> (rows × columns, row-major values, NaN = empty):
 * the generic sibling of Heatmap.tsx (which is the expert-load one). The caller picks the
 * colour (see logColor / divergingColor / weightColor); hover or arrow keys read a cell. */
import { useEffect, useRef, useState } from "react";

export type Rgb = [number, number, number];

function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * Math.max(0, Math.min(1, t)))) as Rgb;
}

/** Attention weight in [0, 1]: white → deep blue. */
export function weightColor(v: number): Rgb {
  return mix([252, 252, 250], [8, 48, 107], Math.sqrt(v));
}

/** Signed change, ±scale at the ends: blue (down) – near-white – red (up). */
export function divergingColor(v: number, scale: number): Rgb {
  const t = scale > 0 ? Math.max(-1, Math.min(1, v / scale)) : 0;
  return t < 0 ? mix([240, 240, 236], [33, 102, 172], -t) : mix([240, 240, 236], [178, 24, 43], t);
}

/** Log-scale colour between lo and hi (both > 0): dark purple (small) → yellow (large); zero
 * (a starved expert) is black. */
export function logColor(v: number, lo: number, hi: number): Rgb {
  if (!(v > 0)) return [0, 0, 0];
  const a = Math.log10(lo), b = Math.log10(hi);
  const t = b > a ? (Math.log10(v) - a) / (b - a) : 0.5;
  return t < 0.5 ? mix([48, 18, 59], [33, 145, 140], t * 2) : mix([33, 145, 140], [253, 231, 37], (t - 0.5) * 2);
}

export interface Matrix {
  rows: string[];
  cols: string[];
  values: ArrayLike<number>;
}

export function MatrixHeatmap({
  m, label, color, describe, cell = 14, rowLabelWidth = 72, testId,
}: {
  m: Matrix; label: string; color: (v: number) => Rgb; describe: (r: number, c: number, v: number) => string;
  cell?: number; rowLabelWidth?: number; testId?: string;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [at, setAt] = useState<{ r: number; c: number } | null>(null);
  const R = m.rows.length, C = m.cols.length;
  useEffect(() => {
    const cv = canvas.current;
    if (!cv || !R || !C) return;
    cv.width = C;
    cv.height = R;
    const ctx = cv.getContext("2d");
    if (!ctx) return;
    const img = ctx.createImageData(C, R);
    for (let i = 0; i < R * C; i++) {
      const v = m.values[i];
      if (Number.isNaN(v)) continue;
      const [r, g, b] = color(v);
      img.data.set([r, g, b, 255], i * 4);
    }
    ctx.putImageData(img, 0, 0);
  }, [m, R, C, color]);
  const pick = (e: React.MouseEvent) => {
    const rect = (e.target as HTMLCanvasElement).getBoundingClientRect();
    const c = Math.min(C - 1, Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * C)));
    const r = Math.min(R - 1, Math.max(0, Math.floor(((e.clientY - rect.top) / rect.height) * R)));
    setAt({ r, c });
  };
  const onKey = (e: React.KeyboardEvent) => {
    const mv: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const d = mv[e.key];
    if (!d) return;
    e.preventDefault();
    const cur = at ?? { r: 0, c: 0 };
    setAt({ r: Math.min(R - 1, Math.max(0, cur.r + d[0])), c: Math.min(C - 1, Math.max(0, cur.c + d[1])) });
  };
  const text = at ? describe(at.r, at.c, m.values[at.r * C + at.c]) : "";
  const colEvery = Math.max(1, Math.ceil(12 / cell));
  return (
    <div className="matrix-heatmap" data-testid={testId}>
      <div style={{ display: "grid", gridTemplateColumns: `${rowLabelWidth}px max-content`, gap: 4 }}>
        <div aria-hidden="true">
          {m.rows.map((r, i) => (
            <div key={i} className="mono small muted" style={{ height: cell, lineHeight: `${cell}px`, fontSize: Math.min(11, cell), textAlign: "right", whiteSpace: "nowrap", overflow: "hidden" }}>{r}</div>
          ))}
        </div>
        <div style={{ position: "relative" }}>
          <canvas
            ref={canvas}
            role="img"
            tabIndex={0}
            aria-label={`${label}: ${R} rows × ${C} columns. Arrow keys read cells.`}
            style={{ width: C * cell, height: R * cell, imageRendering: "pixelated", display: "block", border: "1px solid var(--border, #ccc)" }}
            onMouseMove={pick}
            onMouseLeave={() => setAt(null)}
            onKeyDown={onKey}
            onBlur={() => setAt(null)}
          />
          <div aria-hidden="true" style={{ display: "flex", width: C * cell }}>
            {m.cols.map((c, i) => (
              <div key={i} className="mono small muted" style={{ width: cell, fontSize: Math.min(11, cell), textAlign: "center", overflow: "visible", whiteSpace: "nowrap" }}>
                {i % colEvery === 0 ? c : ""}
              </div>
            ))}
          </div>
          {at && (
            <div className="heatmap-tip" style={{ left: Math.min((at.c + 1) * cell + 4, C * cell), top: (at.r + 1) * cell + 4 }}>{text}</div>
          )}
        </div>
      </div>
      <div className="sr-only" aria-live="polite">{text}</div>
    </div>
  );
}
