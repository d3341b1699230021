/** A profile's memory: the stacked timeline by category (parameters, gradients, optimizer state,
 * activations, temporaries…), the peak with the tensors live at it, and the longest-living /
 * largest tensors as lifetime bars over the same time axis (operator, module, size on hover). */
import { useMemo, useState } from "react";
import { Empty, ErrorMessage, Loading } from "../../components/States";
import { fmtBytes } from "../../lib/format";
import { CATEGORY_COLORS, stackBands, useProfileMemory, type ProfileMemory, type TensorLifetime } from "./profileApi";
import { jobArtifactUrl } from "../../api/hooks";

const W = 900;
const H = 220;
const PAD = { l: 70, r: 10, t: 8, b: 22 };

function Timeline({ m }: { m: ProfileMemory }) {
  const pts = m.points;
  const bands = useMemo(() => stackBands(pts, m.categories), [pts, m.categories]);
  const tMax = Math.max(m.duration_ms, pts.length ? pts[pts.length - 1][0] : 0, 1e-6);
  const yMax = Math.max(m.peak.bytes, 1);
  const x = (t: number) => PAD.l + (t / tMax) * (W - PAD.l - PAD.r);
  const y = (b: number) => H - PAD.b - (b / yMax) * (H - PAD.t - PAD.b);
  const path = (lo: number[], hi: number[]) => {
    // step-after area: memory holds its value until the next event
    let d = "";
    pts.forEach((p, i) => {
      const nx = i + 1 < pts.length ? pts[i + 1][0] : tMax;
      d += `${i ? "L" : "M"}${x(p[0])},${y(hi[i])}L${x(nx)},${y(hi[i])}`;
    });
    for (let i = pts.length - 1; i >= 0; i--) {
      const nx = i + 1 < pts.length ? pts[i + 1][0] : tMax;
      d += `L${x(nx)},${y(lo[i])}L${x(pts[i][0])},${y(lo[i])}`;
    }
    return d + "Z";
  };
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return (
    <figure style={{ margin: 0 }}>
      <svg viewBox={`0 0 ${W} ${H}`} width="100%" role="img" data-testid="memory-stack"
        aria-label={`Memory by category over ${tMax.toFixed(1)} ms; peak ${fmtBytes(m.peak.bytes)} at ${m.peak.t_ms.toFixed(1)} ms`}>
        {ticks.map((f) => (
          <g key={f}>
            <line x1={PAD.l} x2={W - PAD.r} y1={y(f * yMax)} y2={y(f * yMax)} stroke="var(--grid, #eee)" />
            <text x={PAD.l - 4} y={y(f * yMax) + 4} fontSize="10" textAnchor="end" fill="currentColor">{fmtBytes(f * yMax)}</text>
            <text x={x(f * tMax)} y={H - 6} fontSize="10" textAnchor={f === 1 ? "end" : f === 0 ? "start" : "middle"} fill="currentColor">{(f * tMax).toFixed(0)} ms</text>
          </g>
        ))}
        {bands.map((b) => (
          <path key={b.cat} d={path(b.lo, b.hi)} fill={CATEGORY_COLORS[b.cat] ?? "#999"} fillOpacity={0.8}>
            <title>{b.cat}</title>
          </path>
        ))}
        <line x1={x(m.peak.t_ms)} x2={x(m.peak.t_ms)} y1={PAD.t} y2={H - PAD.b} stroke="#000" strokeDasharray="3 3" />
        <text x={x(m.peak.t_ms) + 4} y={PAD.t + 10} fontSize="11" fill="currentColor">peak {fmtBytes(m.peak.bytes)}</text>
      </svg>
      <figcaption className="row small" style={{ flexWrap: "wrap", gap: 12 }}>
        {bands.map((b) => (
          <span key={b.cat}>
            <span aria-hidden="true" style={{ display: "inline-block", width: 10, height: 10, background: CATEGORY_COLORS[b.cat], marginRight: 4 }} />
            {b.cat.replace("_", " ")} {fmtBytes(m.peak.by_category[b.cat] ?? 0)} at the peak
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

function tensorTitle(t: TensorLifetime): string {
  const life = `${t.alloc_ms === null ? "before profiling" : `${t.alloc_ms.toFixed(2)} ms`} → ${t.free_ms === null ? "end" : `${t.free_ms.toFixed(2)} ms`}`;
  return `${fmtBytes(t.bytes)} · ${t.category} · ${t.op ?? "?"}${t.module ? ` · ${t.module}` : ""} · ${life}`;
}

function Lifetimes({ m }: { m: ProfileMemory }) {
  const [which, setWhich] = useState<"longest" | "largest">("largest");
  const [n, setN] = useState(40);
  const byId = useMemo(() => new Map(m.tensors.map((t) => [t.id, t])), [m.tensors]);
  const rows = (which === "longest" ? m.longest : m.largest).slice(0, n).map((i) => byId.get(i)).filter((t): t is TensorLifetime => !!t);
  const tMax = Math.max(m.duration_ms, 1e-6);
  const maxBytes = Math.max(...rows.map((t) => t.bytes), 1);
  const RH = 12;
  const L = 230;
  const x = (t: number | null, end: boolean) => L + ((t === null ? (end ? tMax : 0) : t) / tMax) * (W - L - 10);
  return (
    <>
      <div className="row small" style={{ gap: 10, margin: "6px 0" }}>
        <label>
          Show{" "}
          <select value={which} onChange={(e) => setWhich(e.target.value as "longest" | "largest")} aria-label="Which tensors">
            <option value="largest">largest tensors</option>
            <option value="longest">longest-living tensors</option>
          </select>
        </label>
        <label>
          top{" "}
          <select value={n} onChange={(e) => setN(Number(e.target.value))} aria-label="How many tensors">
            {[20, 40, 100, 300].map((k) => <option key={k} value={k}>{k}</option>)}
          </select>
        </label>
        <span className="muted">of {m.tensor_count} tensors · bar height ∝ size · hover for operator, module, size</span>
      </div>
      <svg viewBox={`0 0 ${W} ${rows.length * RH + 4}`} width="100%" data-testid="lifetime-bars" role="list" aria-label={`Lifetimes of the ${which} tensors`}>
        {rows.map((t, i) => (
          <g key={t.id} role="listitem">
            <title>{tensorTitle(t)}</title>
            <text x={L - 4} y={i * RH + 10} fontSize="9" textAnchor="end" fill="currentColor">
              {`${fmtBytes(t.bytes)} ${(t.module ?? t.op ?? "").slice(-30)}`}
            </text>
            <rect x={x(t.alloc_ms, false)} y={i * RH + 2 + (1 - Math.max(0.25, t.bytes / maxBytes)) * (RH - 3) / 2}
              width={Math.max(1.5, x(t.free_ms, true) - x(t.alloc_ms, false))} height={Math.max(0.25, t.bytes / maxBytes) * (RH - 3)}
              fill={CATEGORY_COLORS[t.category] ?? "#999"} />
          </g>
        ))}
        <line x1={x(m.peak.t_ms, false)} x2={x(m.peak.t_ms, false)} y1={0} y2={rows.length * RH + 4} stroke="#000" strokeDasharray="3 3" />
      </svg>
    </>
  );
}

function PeakList({ m }: { m: ProfileMemory }) {
  const byId = useMemo(() => new Map(m.tensors.map((t) => [t.id, t])), [m.tensors]);
  const live = m.peak.live.map((i) => byId.get(i)).filter((t): t is TensorLifetime => !!t);
  return (
    <div className="table-wrap" style={{ maxHeight: 300 }}>
      <table className="data" aria-label="Tensors live at the peak" data-testid="peak-table">
        <thead>
          <tr>
            <th scope="col" className="num">Size</th>
            <th scope="col">Category</th>
            <th scope="col">Operator</th>
            <th scope="col">Module</th>
            <th scope="col" className="num">Allocated</th>
            <th scope="col" className="num">Freed</th>
          </tr>
        </thead>
        <tbody>
          {live.slice(0, 50).map((t) => (
            <tr key={t.id}>
              <td className="num">{fmtBytes(t.bytes)}</td>
              <td>{t.category.replace("_", " ")}</td>
              <td className="mono">{t.op ?? "—"}</td>
              <td className="mono">{t.module ?? "—"}</td>
              <td className="num">{t.alloc_ms === null ? "before" : `${t.alloc_ms.toFixed(2)} ms`}</td>
              <td className="num">{t.free_ms === null ? "after" : `${t.free_ms.toFixed(2)} ms`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function MemoryLifetimes({ jobId, enabled = true }: { jobId: string; enabled?: boolean }) {
  const q = useProfileMemory(jobId, enabled);
  if (!enabled) return <Empty>This profile has no tensor lifetimes (profiled before they were recorded, or with profile.lifetimes off).</Empty>;
  if (q.error) return <ErrorMessage error={q.error} title="Could not load the memory profile" />;
  if (!q.data) return <Loading label="Loading tensor lifetimes…" />;
  const m = q.data;
  return (
    <div data-testid="memory-lifetimes">
      <h3 style={{ margin: "4px 0" }}>Memory by category ({m.device})</h3>
      <Timeline m={m} />
      <h3 style={{ margin: "12px 0 4px" }}>
        At the peak: {fmtBytes(m.peak.bytes)} at {m.peak.t_ms.toFixed(2)} ms, {m.peak.live_count} tensors live
      </h3>
      <PeakList m={m} />
      <h3 style={{ margin: "12px 0 4px" }}>Tensor lifetimes</h3>
      <Lifetimes m={m} />
      {m.snapshot && (
        <p className="small">
          <a href={jobArtifactUrl(m.job, "profile/memory_snapshot.pickle")} download>Download the CUDA allocator snapshot</a> (open it at{" "}
          <a href="https://pytorch.org/memory_viz" target="_blank" rel="noopener">pytorch.org/memory_viz</a>)
        </p>
      )}
    </div>
  );
}
