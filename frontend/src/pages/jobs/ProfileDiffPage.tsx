/** /profiles/diff?a=JOB&b=JOB: two profiles of identical settings compared — a differential
 * flame graph and the per-operator table of self time and memory ratios (B/A) sorted by impact.
 * Two commits (ns/repo@ref) can be picked instead of jobs: their profiles are found or launched
 * (ProfileByRef.tsx) and the page opens on their jobs. */
import { useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { ErrorMessage, Loading } from "../../components/States";
import { fmtBytes, shortSha } from "../../lib/format";
import { useTitle } from "../../lib/useTitle";
import { DiffFlameGraph } from "./DiffFlameGraph";
import { CompareByRef } from "./ProfileByRef";
import { fmtMicros, fmtRatio } from "./format";
import { useProfileDiff, type DiffFrame, type ProfileDiff } from "./profileApi";
import "./jobs.css";

function RatioTable({ d }: { d: ProfileDiff }) {
  const [filter, setFilter] = useState("");
  const rows = d.ops.filter((o) => o.op.toLowerCase().includes(filter.toLowerCase()));
  const cls = (r: number | null) => (r === null ? "num" : r > 1.1 ? "num ratio-up" : r < 0.9 ? "num ratio-down" : "num");
  return (
    <>
      <div className="row" style={{ padding: "8px 10px" }}>
        <h2 style={{ margin: 0, flex: 1 }}>Operators by impact ({d.ops.length})</h2>
        <input type="search" aria-label="Filter operators" placeholder="filter…" value={filter} onChange={(e) => setFilter(e.target.value)} />
      </div>
      <div className="table-wrap" style={{ maxHeight: 480 }}>
        <table className="data" aria-label="Profile diff" data-testid="diff-table">
          <thead>
            <tr>
              <th scope="col">Operator</th>
              <th scope="col" className="num">Self A / step</th>
              <th scope="col" className="num">Self B / step</th>
              <th scope="col" className="num">Δ (B − A)</th>
              <th scope="col" className="num">Time B ÷ A</th>
              <th scope="col" className="num">Memory A</th>
              <th scope="col" className="num">Memory B</th>
              <th scope="col" className="num">Memory B ÷ A</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((o) => (
              <tr key={o.op}>
                <td className="mono">{o.op}{o.only && <span className="muted"> (only {o.only.toUpperCase()})</span>}</td>
                <td className="num">{o.a_self_us === null ? "—" : fmtMicros(o.a_self_us)}</td>
                <td className="num">{o.b_self_us === null ? "—" : fmtMicros(o.b_self_us)}</td>
                <td className="num">{fmtMicros(o.delta_us)}</td>
                <td className={cls(o.self_ratio)} data-testid="diff-ratio">{fmtRatio(o.self_ratio)}</td>
                <td className="num">{o.a_memory_bytes === null ? "—" : fmtBytes(o.a_memory_bytes)}</td>
                <td className="num">{o.b_memory_bytes === null ? "—" : fmtBytes(o.b_memory_bytes)}</td>
                <td className={cls(o.memory_ratio)}>{fmtRatio(o.memory_ratio)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function Pick() {
  const nav = useNavigate();
  const [params] = useSearchParams();
  const [a, setA] = useState(params.get("a") ?? "");
  const [b, setB] = useState(params.get("b") ?? "");
  return (
    <form className="row" style={{ gap: 8 }} onSubmit={(e) => { e.preventDefault(); nav(`/profiles/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`); }}>
      <label>A <input value={a} onChange={(e) => setA(e.target.value)} placeholder="profile job id" /></label>
      <label>B <input value={b} onChange={(e) => setB(e.target.value)} placeholder="profile job id" /></label>
      <button type="submit">Compare</button>
    </form>
  );
}

export default function ProfileDiffPage() {
  const [params] = useSearchParams();
  const a = params.get("a") ?? "";
  const b = params.get("b") ?? "";
  useTitle(`profile diff ${a} → ${b}`);
  const q = useProfileDiff(a, b);
  return (
    <>
      <div className="page-head">
        <div className="grow">
          <div className="crumbs"><Link to="/profiles">Profiles</Link> / diff /</div>
          <h1>Profile diff</h1>
          {q.data && (
            <div className="row small muted">
              <span>A <Link className="mono" to={`/profiles/${q.data.a.job}`}>{q.data.a.job}</Link> ({q.data.a.repo}@{shortSha(q.data.a.commit)})</span>
              <span>→ B <Link className="mono" to={`/profiles/${q.data.b.job}`}>{q.data.b.job}</Link> ({q.data.b.repo}@{shortSha(q.data.b.commit)})</span>
              <span>· self time per step {fmtMicros(q.data.summary.a_total_us)} → {fmtMicros(q.data.summary.b_total_us)} ({fmtRatio(q.data.summary.total_ratio)})</span>
              {!q.data.same_settings && <strong className="bad"> · the two were profiled with different settings</strong>}
            </div>
          )}
        </div>
      </div>
      <Pick />
      <CompareByRef repo={q.data?.a.repo ?? ""} />
      {!a || !b ? null : q.error ? (
        <ErrorMessage error={q.error} title="Could not diff the profiles" />
      ) : !q.data ? (
        <Loading label="Diffing…" />
      ) : (
        <>
          <section className="panel" style={{ margin: "12px 0" }}>
            <h2>Differential flame graph</h2>
            <DiffFlameGraph root={q.data.flame.root as unknown as DiffFrame} />
            {q.data.flame.truncated && <p className="small muted">Only the {q.data.flame.frames} largest frames are shown.</p>}
          </section>
          <section className="panel flush">
            <RatioTable d={q.data} />
          </section>
        </>
      )}
    </>
  );
}
