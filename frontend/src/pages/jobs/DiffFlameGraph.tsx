/** A differential flame graph (icicle, root on top) of two profiles merged frame by frame:
 * width ∝ max(A, B) time per step, colour by change B/A (red slower, blue faster, intensity by
 * ratio; dark red: only in B, dark blue: only in A). Hover shows both times and the ratio;
 * click zooms into a frame, click the root (or Reset) to zoom out. */
import { useMemo, useState } from "react";
import { diffColor, layoutDiff, type DiffFrame } from "./profileApi";
import { fmtMicros, fmtRatio } from "./format";

const ROW = 18;
const W = 1000;

function frameTitle(f: DiffFrame): string {
  const side = f.only === "b" ? " · only in B" : f.only === "a" ? " · only in A" : "";
  return `${f.name}\nA ${fmtMicros(f.a_us)} · B ${fmtMicros(f.b_us)} per step · B/A ${fmtRatio(f.ratio)}${side}`;
}

export function DiffFlameGraph({ root }: { root: DiffFrame }) {
  const [zoom, setZoom] = useState<DiffFrame | null>(null);
  const [hover, setHover] = useState<DiffFrame | null>(null);
  const focus = zoom ?? root;
  const rects = useMemo(() => layoutDiff(focus).filter((r) => r.w * W >= 0.5), [focus]);
  const depth = Math.min(60, rects.reduce((d, r) => Math.max(d, r.depth + 1), 1));
  return (
    <div data-testid="diff-flame">
      <div className="row small" style={{ gap: 12, marginBottom: 4, flexWrap: "wrap" }}>
        <span><span aria-hidden="true" style={{ display: "inline-block", width: 10, height: 10, background: diffColor({ ratio: 2, only: null }) }} /> slower in B</span>
        <span><span aria-hidden="true" style={{ display: "inline-block", width: 10, height: 10, background: diffColor({ ratio: 0.5, only: null }) }} /> faster in B</span>
        <span><span aria-hidden="true" style={{ display: "inline-block", width: 10, height: 10, background: diffColor({ ratio: null, only: "b" }) }} /> only in B</span>
        <span><span aria-hidden="true" style={{ display: "inline-block", width: 10, height: 10, background: diffColor({ ratio: null, only: "a" }) }} /> only in A</span>
        <span className="muted">width: max(A, B) per step · intensity: |log₂ B/A|, full at 4×</span>
        {zoom && <button type="button" onClick={() => setZoom(null)}>Reset zoom</button>}
      </div>
      <div className="small mono" style={{ minHeight: 18 }} aria-live="polite">{hover ? frameTitle(hover).replace("\n", " — ") : "hover a frame"}</div>
      <svg viewBox={`0 0 ${W} ${depth * ROW}`} width="100%" role="img" aria-label="Differential flame graph">
        {rects.filter((r) => r.depth < depth).map((r, i) => (
          <g key={i} onMouseEnter={() => setHover(r.frame)} onClick={() => setZoom(r.frame === focus ? null : r.frame)} style={{ cursor: "pointer" }}>
            <title>{frameTitle(r.frame)}</title>
            <rect x={r.x * W} y={r.depth * ROW} width={Math.max(0.5, r.w * W - 0.5)} height={ROW - 1} fill={diffColor(r.frame)}
              stroke={r.frame.only ? "#000" : "none"} strokeDasharray={r.frame.only ? "2 2" : undefined} strokeWidth={r.frame.only ? 0.8 : 0} />
            {r.w * W > 40 && (
              <text x={r.x * W + 3} y={r.depth * ROW + 12} fontSize="10" fill={r.frame.only ? "#fff" : "#111"} style={{ pointerEvents: "none" }}>
                {r.frame.name.slice(0, Math.floor((r.w * W - 6) / 6))}
              </text>
            )}
          </g>
        ))}
      </svg>
    </div>
  );
}
