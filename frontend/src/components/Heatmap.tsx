/** Expert-load heatmap on a <canvas>: one row per expert, one column per step bucket; the
 * colour is the load relative to uniform (load × n_experts). Hover or arrow keys read a cell. */
import { useEffect, useMemo, useRef, useState } from "react";
import { loadColor, type LoadMatrix } from "../lib/moe";
import { fmtNum } from "../lib/format";

export function Heatmap({ m, label, rowHeight }: { m: LoadMatrix; label: string; rowHeight?: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const rows = m.experts.length;
  const rowPx = rowHeight ?? Math.max(6, Math.min(22, Math.floor(360 / Math.max(rows, 1))));
  const [cell, setCell] = useState<{ r: number; c: number } | null>(null);

  useEffect(() => {
    const cv = canvas.current;
    if (!cv || !m.cols) return;
    cv.width = m.cols;
    cv.height = rows;
    const ctx = cv.getContext("2d");
    if (!ctx) return;
    const img = ctx.createImageData(m.cols, rows);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < m.cols; c++) {
        const v = m.values[r * m.cols + c];
        const o = (r * m.cols + c) * 4;
        if (Number.isNaN(v)) {
          img.data[o + 3] = 0;
          continue;
        }
        const [R, G, B] = loadColor(v * rows);
        img.data[o] = R;
        img.data[o + 1] = G;
        img.data[o + 2] = B;
        img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    performance.mark(`heatmap-drawn:${label}`);
  }, [m, rows, label]);

  const ticks = useMemo(() => {
    const n = 5;
    return Array.from({ length: n + 1 }, (_, i) => ({ pct: (i / n) * 100, step: m.x0 + (m.cols * m.dx * i) / n }));
  }, [m]);

  const at = (e: React.MouseEvent) => {
    const rect = (e.target as HTMLCanvasElement).getBoundingClientRect();
    const c = Math.min(m.cols - 1, Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * m.cols)));
    const r = Math.min(rows - 1, Math.max(0, Math.floor(((e.clientY - rect.top) / rect.height) * rows)));
    setCell({ r, c });
  };
  const onKey = (e: React.KeyboardEvent) => {
    const cur = cell ?? { r: 0, c: 0 };
    const step = e.shiftKey ? Math.max(1, Math.floor(m.cols / 10)) : 1;
    const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -step], ArrowRight: [0, step] };
    const mv = moves[e.key];
    if (!mv) return;
    e.preventDefault();
    setCell({ r: Math.min(rows - 1, Math.max(0, cur.r + mv[0])), c: Math.min(m.cols - 1, Math.max(0, cur.c + mv[1])) });
  };
  const v = cell ? m.values[cell.r * m.cols + cell.c] : NaN;
  const text = cell
    ? `Expert ${m.experts[cell.r]}, steps ${fmtNum(Math.round(m.x0 + cell.c * m.dx))}–${fmtNum(Math.round(m.x0 + (cell.c + 1) * m.dx))}: ` +
      (Number.isNaN(v) ? "no data" : `load ${(v * 100).toFixed(2)}% (${fmtNum(v * rows, 3)}× uniform)`)
    : "";

  if (!m.cols) return <div className="state">No expert-load points yet.</div>;
  const labelEvery = Math.ceil(12 / rowPx);
  return (
    <div>
      <div style={{ display: "grid", gridTemplateColumns: "64px minmax(0,1fr)", gap: 6 }}>
        <div aria-hidden="true" style={{ position: "relative", height: rows * rowPx }}>
          {m.experts.map((e, r) =>
            r % labelEvery === 0 ? (
              <div key={e} className="muted small mono" style={{ position: "absolute", right: 0, top: r * rowPx, lineHeight: `${Math.max(rowPx, 12)}px`, fontSize: 10 }}>
                expert {e}
              </div>
            ) : null,
          )}
        </div>
        <div className="heatmap-wrap">
          <canvas
            ref={canvas}
            style={{ height: rows * rowPx }}
            tabIndex={0}
            role="img"
            aria-label={`${label}: ${rows} experts × ${m.cols} step buckets. Arrow keys read cells.`}
            onMouseMove={at}
            onMouseLeave={() => setCell(null)}
            onKeyDown={onKey}
            onBlur={() => setCell(null)}
          />
          {cell && (
            <div
              className="heatmap-tip"
              style={{ left: `min(${((cell.c + 0.5) / m.cols) * 100}%, calc(100% - 260px))`, top: (cell.r + 1) * rowPx + 4 }}
            >
              {text}
            </div>
          )}
        </div>
        <div />
        <div aria-hidden="true" style={{ position: "relative", height: 16 }}>
          {ticks.map((t, i) => (
            <span key={i} className="muted small" style={{ position: "absolute", left: `${t.pct}%`, transform: i === 0 ? "none" : i === ticks.length - 1 ? "translateX(-100%)" : "translateX(-50%)" }}>
              {fmtNum(Math.round(t.step))}
            </span>
          ))}
        </div>
      </div>
      <div className="sr-only" aria-live="polite">{text}</div>
    </div>
  );
}

export function LoadLegend() {
  const stops = [0.25, 0.5, 1, 2, 4];
  const grad = stops.map((s) => `rgb(${loadColor(s).join(",")})`).join(",");
  return (
    <div className="row small muted" aria-label="Colour legend: load relative to uniform">
      <span>under-used</span>
      <div className="legend-bar" style={{ background: `linear-gradient(to right, ${grad})` }} />
      <span>over-used</span>
      <span>(¼× · 1× = uniform · 4×)</span>
    </div>
  );
}
