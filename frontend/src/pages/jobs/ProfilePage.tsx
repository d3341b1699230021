/** A profile job: the operator table (sortable), time share by module, the memory timeline,
 * a flame graph of the folded stacks, the Chrome trace download, and a comparison with
 * another profile (op by op, self-time ratio). Sort and comparison live in the URL. */
import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { jobArtifactUrl, useJob, useJobArtifact, useJobs, useProfileCompare, useProfileOps } from "../../api/hooks";
import type { JobDetail, ProfileCompare, ProfileOp } from "../../api/types";
import { SortHeader } from "../../components/SortHeader";
import { Empty, ErrorMessage, Loading, QueryView, StatusBadge } from "../../components/States";
import { fmtAxis, fmtBytes, fmtNum, shortSha } from "../../lib/format";
import { useTitle } from "../../lib/useTitle";
import { FlameGraph } from "./FlameGraph";
import { MemoryLifetimes } from "./MemoryLifetimes";
import { fmtFlops, fmtMicros, fmtRatio, modelLink, speedscopeUrl } from "./format";
import "./jobs.css";

type OpKey = "op" | "calls" | "self_us" | "total_us" | "flops" | "self_memory_bytes";
const OP_COLS: { key: OpKey; label: string; fmt: (o: ProfileOp) => string }[] = [
  { key: "op", label: "Operator", fmt: (o) => o.op },
  { key: "calls", label: "Calls", fmt: (o) => fmtNum(o.calls) },
  { key: "self_us", label: "Self time", fmt: (o) => fmtMicros(o.self_us) },
  { key: "total_us", label: "Total time", fmt: (o) => fmtMicros(o.total_us) },
  { key: "flops", label: "FLOPs", fmt: (o) => fmtFlops(o.flops) },
  { key: "self_memory_bytes", label: "Self memory", fmt: (o) => fmtBytes(o.self_memory_bytes) },
];

export interface MemoryTimeline {
  unit?: string;
  time_unit?: string;
  columns: string[];
  points: number[][];
  peak_cpu_bytes?: number;
  peak_device_bytes?: number;
}

/** modules.json → [category, share]: {cpu_share: {...}} (or device_share), or a flat map. */
export function moduleShares(m: unknown): { device: boolean; rows: [string, number][] } {
  const o = (m ?? {}) as Record<string, unknown>;
  const pick = (v: unknown) => (v && typeof v === "object" ? Object.entries(v as Record<string, unknown>).filter((e): e is [string, number] => typeof e[1] === "number") : []);
  const device = pick(o.device_share);
  const useDevice = device.some(([, v]) => v > 0);
  let rows = useDevice ? device : pick(o.cpu_share);
  if (!rows.length) rows = pick(o);
  return { device: useDevice, rows: rows.sort((a, b) => b[1] - a[1]) };
}

export function sortOps<T>(rows: T[], get: (r: T) => number | string | null | undefined, dir: "asc" | "desc"): T[] {
  const s = dir === "asc" ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = get(a);
    const y = get(b);
    if (x === y) return 0;
    if (x === null || x === undefined) return 1; // missing values last either way
    if (y === null || y === undefined) return -1;
    return (typeof x === "string" ? x.localeCompare(String(y)) : x - (y as number)) * s;
  });
}

function useSort(prefix: string, def: string): [string, "asc" | "desc", (k: string) => void] {
  const [params, setParams] = useSearchParams();
  const key = params.get(`${prefix}sort`) ?? def;
  const dir = params.get(`${prefix}dir`) === "asc" ? "asc" : "desc";
  const set = (k: string) => {
    const next = new URLSearchParams(params);
    const nd = k === key ? (dir === "desc" ? "asc" : "desc") : k === "op" ? "asc" : "desc";
    next.set(`${prefix}sort`, k);
    next.set(`${prefix}dir`, nd);
    setParams(next, { replace: true });
  };
  return [key, dir, set];
}

const aria = (on: boolean, dir: "asc" | "desc") => (on ? (dir === "asc" ? "ascending" : "descending") : "none");

function OpTable({ ops }: { ops: ProfileOp[] }) {
  const [key, dir, setSort] = useSort("", "self_us");
  const [filter, setFilter] = useState("");
  const total = ops.reduce((a, o) => a + o.self_us, 0);
  const rows = sortOps(ops.filter((o) => o.op.toLowerCase().includes(filter.toLowerCase())), (o) => o[key as OpKey], dir);
  return (
    <>
      <div className="row" style={{ padding: "8px 10px" }}>
        <h2 style={{ margin: 0, flex: 1 }}>Operators ({ops.length})</h2>
        <label htmlFor="op-filter" className="sr-only">Filter operators</label>
        <input id="op-filter" type="search" placeholder="filter…" value={filter} onChange={(e) => setFilter(e.target.value)} />
      </div>
      {rows.length === 0 ? (
        <Empty>{ops.length ? "No operator matches." : "No operators recorded."}</Empty>
      ) : (
        <div className="table-wrap" style={{ maxHeight: 460 }}>
          <table className="data" aria-label="Operators" data-testid="op-table">
            <thead>
              <tr>
                {OP_COLS.map((c) => (
                  <SortHeader key={c.key} label={c.label} className={c.key === "op" ? undefined : "num"} direction={aria(key === c.key, dir)} onSort={() => setSort(c.key)} />
                ))}
                <th scope="col" className="num">% self</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((o) => (
                <tr key={o.op}>
                  {OP_COLS.map((c) => <td key={c.key} className={c.key === "op" ? "mono" : "num"}>{c.fmt(o)}</td>)}
                  <td className="num nowrap">
                    <span className="self-bar" style={{ width: total ? Math.max(1, (o.self_us / total) * 60) : 0 }} aria-hidden="true" />
                    {total ? `${((o.self_us / total) * 100).toFixed(1)}%` : "—"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}

function ModuleShare({ job }: { job: JobDetail }) {
  const has = job.artifacts.some((a) => a.path === "profile/modules.json");
  const mods = useJobArtifact<unknown>(job.id, "profile/modules.json", "json", has);
  const fallback = (job.summary.module_share ?? null) as Record<string, number> | null;
  const shares = useMemo(() => moduleShares(mods.data ?? fallback), [mods.data, fallback]);
  if (!has && !fallback) return <Empty>This profile has no module breakdown.</Empty>;
  if (mods.error && !fallback) return <ErrorMessage error={mods.error} title="Could not read profile/modules.json" />;
  if (has && mods.isPending) return <Loading />;
  const max = Math.max(...shares.rows.map(([, v]) => v), 1e-9);
  return (
    <>
      <div className="share-bars" data-testid="module-share" role="list" aria-label="Time share by module">
        {shares.rows.map(([k, v]) => (
          <div key={k} role="listitem" style={{ display: "contents" }}>
            <span className="mono">{k}</span>
            <div className="bar" aria-hidden="true"><span style={{ width: `${(v / max) * 100}%` }} /></div>
            <span className="num small">{(v * 100).toFixed(1)}%</span>
          </div>
        ))}
      </div>
      <p className="small muted">Share of {shares.device ? "device" : "CPU"} time by module category.</p>
    </>
  );
}

function MemoryChart({ data }: { data: MemoryTimeline }) {
  const el = useRef<HTMLDivElement>(null);
  const cols = data.columns ?? [];
  const series = useMemo(() => {
    const t = data.points.map((p) => p[0]);
    const ys = cols.slice(1).map((name, i) => ({ name, y: data.points.map((p) => p[i + 1]) }));
    // Leave out an all-zero column (device memory on a CPU-only run).
    return { t, ys: ys.filter((s) => s.y.some((v) => v !== 0)) };
  }, [data, cols]);
  useEffect(() => {
    const node = el.current;
    if (!node || !series.t.length || !series.ys.length) return;
    const css = getComputedStyle(document.documentElement);
    const muted = css.getPropertyValue("--muted").trim() || "#666";
    const grid = css.getPropertyValue("--grid").trim() || "rgba(0,0,0,.08)";
    const colors = ["#2f5fc4", "#c4452f"];
    const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font: "11px system-ui" };
    const u = new uPlot(
      {
        width: Math.max(200, node.clientWidth),
        height: 220,
        legend: { show: true },
        scales: { x: { time: false } },
        axes: [
          { ...axis, values: (_u, v) => v.map((x) => `${fmtAxis(x)} ${data.time_unit ?? "ms"}`) },
          { ...axis, size: 76, values: (_u, v) => v.map((x) => fmtBytes(x)) },
        ],
        series: [
          { label: `t (${data.time_unit ?? "ms"})` },
          ...series.ys.map((s, i) => ({ label: s.name, stroke: colors[i % colors.length], width: 1.5, points: { show: false }, value: (_u: uPlot, v: number | null) => (v === null ? "—" : fmtBytes(v)) })),
        ],
      },
      [series.t, ...series.ys.map((s) => s.y)] as uPlot.AlignedData,
      node,
    );
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, node.clientWidth), height: 220 }));
    ro.observe(node);
    return () => {
      ro.disconnect();
      u.destroy();
    };
  }, [series, data.time_unit]);
  if (!series.ys.length) return <Empty>No memory was recorded.</Empty>;
  return <div ref={el} data-testid="memory-chart" role="img" aria-label={`Memory over time: ${series.ys.map((s) => s.name).join(", ")}; peak ${fmtBytes(data.peak_cpu_bytes ?? null)}`} />;
}

function Memory({ job }: { job: JobDetail }) {
  const has = job.artifacts.some((a) => a.path === "profile/memory.json");
  const mem = useJobArtifact<MemoryTimeline>(job.id, "profile/memory.json", "json", has);
  if (!has) return <Empty>This profile has no memory timeline.</Empty>;
  if (mem.error) return <ErrorMessage error={mem.error} title="Could not read profile/memory.json" />;
  if (!mem.data) return <Loading label="Loading the memory timeline…" />;
  return (
    <>
      <MemoryChart data={mem.data} />
      <p className="small muted">
        Allocated memory relative to the start of profiling{mem.data.peak_cpu_bytes !== undefined && <> · CPU peak {fmtBytes(mem.data.peak_cpu_bytes)}</>}
        {!!mem.data.peak_device_bytes && <> · device peak {fmtBytes(mem.data.peak_device_bytes)}</>}
      </p>
    </>
  );
}

function Flame({ job }: { job: JobDetail }) {
  const has = job.artifacts.some((a) => a.path === "profile/stacks.folded");
  const stacks = useJobArtifact<string>(job.id, "profile/stacks.folded", "text", has);
  if (!has) return <Empty>This profile has no stacks.</Empty>;
  if (stacks.error) return <ErrorMessage error={stacks.error} title="Could not read profile/stacks.folded" />;
  if (stacks.data === undefined) return <Loading label="Loading the stacks…" />;
  return <FlameGraph folded={stacks.data} />;
}

function CompareTable({ cmp }: { cmp: ProfileCompare }) {
  const [key, dir, setSort] = useSort("c", "max");
  const get = (r: ProfileCompare["ops"][number]): number | string | null => {
    if (key === "op") return r.op;
    if (key === "a") return r.a?.self_us ?? null;
    if (key === "b") return r.b?.self_us ?? null;
    if (key === "ratio") return r.self_us_ratio;
    if (key === "delta") return (r.b?.self_us ?? 0) - (r.a?.self_us ?? 0);
    return Math.max(r.a?.self_us ?? 0, r.b?.self_us ?? 0);
  };
  const rows = sortOps(cmp.ops, get, dir);
  const cols: [string, string][] = [["op", "Operator"], ["a", `Self time A`], ["b", `Self time B`], ["delta", "Δ (B − A)"], ["ratio", "B ÷ A"]];
  return (
    <div className="table-wrap" style={{ maxHeight: 460 }}>
      <table className="data" aria-label="Profile comparison" data-testid="compare-table">
        <thead>
          <tr>
            {cols.map(([k, label]) => <SortHeader key={k} label={label} className={k === "op" ? undefined : "num"} direction={aria(key === k, dir)} onSort={() => setSort(k)} />)}
            <th scope="col" className="num">Calls A / B</th>
          </tr>
        </thead>
        <tbody>
          <tr>
            <td><strong>all operators</strong></td>
            <td className="num"><strong>{fmtMicros(cmp.a.total_self_us)}</strong></td>
            <td className="num"><strong>{fmtMicros(cmp.b.total_self_us)}</strong></td>
            <td className="num">{fmtMicros(cmp.b.total_self_us - cmp.a.total_self_us)}</td>
            <td className="num"><strong>{fmtRatio(cmp.a.total_self_us ? cmp.b.total_self_us / cmp.a.total_self_us : null)}</strong></td>
            <td />
          </tr>
          {rows.map((r) => {
            const ratio = r.self_us_ratio;
            const cls = ratio === null ? undefined : ratio > 1.1 ? "num ratio-up" : ratio < 0.9 ? "num ratio-down" : "num";
            return (
              <tr key={r.op}>
                <td className="mono">{r.op}</td>
                <td className="num">{r.a ? fmtMicros(r.a.self_us) : <span className="muted">absent</span>}</td>
                <td className="num">{r.b ? fmtMicros(r.b.self_us) : <span className="muted">absent</span>}</td>
                <td className="num">{fmtMicros((r.b?.self_us ?? 0) - (r.a?.self_us ?? 0))}</td>
                <td className={cls ?? "num"} data-testid="ratio">{fmtRatio(ratio)}</td>
                <td className="num">{r.a?.calls ?? "—"} / {r.b?.calls ?? "—"}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Compare({ job }: { job: JobDetail }) {
  const [params, setParams] = useSearchParams();
  const other = params.get("compare");
  const candidates = useJobs({ project: "", status: ["succeeded"], kind: "profile", page: 1, size: 100 });
  const cmp = useProfileCompare(job.id, other);
  const pick = (v: string) => {
    const next = new URLSearchParams(params);
    if (v) next.set("compare", v);
    else next.delete("compare");
    next.delete("csort");
    next.delete("cdir");
    setParams(next, { replace: true });
  };
  const list = candidates.data?.results ?? [];
  return (
    <section className="panel flush" aria-labelledby="cmp-h" style={{ marginTop: 12 }}>
      <div className="row" style={{ padding: "8px 10px" }}>
        <h2 id="cmp-h" style={{ margin: 0, flex: 1 }}>Compare with…</h2>
        <label htmlFor="cmp-pick">Profile B</label>
        <select id="cmp-pick" value={other ?? ""} onChange={(e) => pick(e.target.value)}>
          <option value="">choose a profile job…</option>
          {other && !list.some((j) => j.id === other) && <option value={other}>{other}</option>}
          {list.map((j) => (
            <option key={j.id} value={j.id}>
              {j.id}{j.id === job.id ? " (this one)" : ""} · {j.base ? `${j.base.repo}@${j.base.ref.length > 16 ? shortSha(j.base.ref) : j.base.ref}` : j.project}
            </option>
          ))}
        </select>
      </div>
      {candidates.error && <ErrorMessage error={candidates.error} title="Could not list profile jobs" />}
      {!other ? (
        <Empty>Pick a profile (of another commit, say) to compare operator by operator: A is this profile, B the other; the ratio is B's self time ÷ A's.</Empty>
      ) : cmp.error ? (
        <ErrorMessage error={cmp.error} title="Could not compare the profiles" />
      ) : !cmp.data ? (
        <Loading label="Comparing…" />
      ) : (
        <>
          <p className="small" style={{ padding: "0 10px" }}>
            A = <span className="mono">{cmp.data.a.job}</span> (commit <span className="mono">{shortSha(cmp.data.a.commit)}</span>) ·
            B = <Link to={`/profiles/${cmp.data.b.job}`} className="mono">{cmp.data.b.job}</Link> (commit <span className="mono">{shortSha(cmp.data.b.commit)}</span>)
          </p>
          <p className="small" style={{ padding: "0 10px" }}>
            <Link to={`/profiles/diff?a=${encodeURIComponent(cmp.data.a.job)}&b=${encodeURIComponent(cmp.data.b.job)}`} data-testid="diff-link">
              Differential flame graph and memory ratios →
            </Link>
          </p>
          <CompareTable cmp={cmp.data} />
        </>
      )}
    </section>
  );
}

function ProfileBody({ job }: { job: JobDetail }) {
  const ops = useProfileOps(job.id);
  const trace = job.artifacts.find((a) => a.path === "profile/trace.json");
  const stacks = job.artifacts.find((a) => a.path === "profile/stacks.folded");
  const s = job.summary as Record<string, unknown>;
  const title = `profile ${job.id}${job.base ? ` · ${job.base.repo}@${shortSha(job.base.commit)}` : ""}`;
  return (
    <>
      <div className="page-head">
        <div className="grow">
          <div className="crumbs"><Link to="/profiles">Profiles</Link> / <Link to={`/jobs/${job.id}`} className="mono">job {job.id}</Link> /</div>
          <h1 className="row">
            <span>Profile of {job.base ? <Link to={modelLink(job.base.repo, null, job.base.commit)} className="mono">{job.base.repo}@{shortSha(job.base.commit)}</Link> : job.id}</span>
            <StatusBadge status={job.status} />
          </h1>
          <div className="row small muted">
            {job.base && <span>ref {job.base.ref}</span>}
            {typeof s.mode === "string" && <span>· {s.mode} mode</span>}
            {typeof s.steps === "number" && <span>· {s.steps} profiled steps</span>}
            {typeof s.step_ms_unprofiled === "number" && <span>· {fmtNum(s.step_ms_unprofiled, 3)} ms/step unprofiled</span>}
            {typeof s.flops_per_step === "number" && <span>· {fmtFlops(s.flops_per_step)}/step</span>}
          </div>
        </div>
        {stacks && (
          <a className="button" href={speedscopeUrl(job.id, stacks.path, title)} target="_blank" rel="noopener"
            title="The folded stacks in speedscope (served by this hub): time-ordered, left-heavy and sandwich views">
            Open in speedscope
          </a>
        )}
        {trace && (
          <a className="button" href={jobArtifactUrl(job.id, trace.path)} download title="Open it in Perfetto (ui.perfetto.dev) or chrome://tracing">
            Download Chrome trace ({fmtBytes(trace.size)})
          </a>
        )}
      </div>
      <div className="grid-2" style={{ marginBottom: 12 }}>
        <section className="panel">
          <h2>Time by module</h2>
          <ModuleShare job={job} />
        </section>
        <section className="panel">
          <h2>Memory timeline</h2>
          <Memory job={job} />
        </section>
      </div>
      <section className="panel" style={{ marginBottom: 12 }} aria-labelledby="mem-h">
        <h2 id="mem-h">Memory and tensor lifetimes</h2>
        <MemoryLifetimes jobId={job.id} enabled={job.artifacts.some((a) => a.path === "profile/lifetimes.json")} />
      </section>
      <section className="panel" style={{ marginBottom: 12 }}>
        <h2>Flame graph</h2>
        <Flame job={job} />
      </section>
      <section className="panel flush">
        {ops.error ? <ErrorMessage error={ops.error} title="Could not load the operator table" /> : !ops.data ? <Loading label="Loading operators…" /> : <OpTable ops={ops.data.ops} />}
      </section>
      <Compare job={job} />
    </>
  );
}

export default function ProfilePage() {
  const { id = "" } = useParams();
  const job = useJob(id);
  useTitle(`profile ${id}`);
  return (
    <QueryView query={job} label="Loading profile…">
      {(j) =>
        j.kind !== "profile" ? (
          <ErrorMessage error={new Error(`Job ${j.id} is a ${j.kind} job, not a profile.`)} title="Not a profile" />
        ) : j.status !== "succeeded" ? (
          <div className="notice">
            <p>
              Profile job <Link to={`/jobs/${j.id}`} className="mono">{j.id}</Link> is <StatusBadge status={j.status} />
              {j.status === "queued" || j.status === "running" ? ": its results appear here when it succeeds." : `: ${j.reason || "it produced no profile."}`}
            </p>
          </div>
        ) : (
          <ProfileBody job={j} />
        )
      }
    </QueryView>
  );
}
