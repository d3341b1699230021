/** A run: status, tags, notes, params, lineage; every metric key as a chart; system
 * metrics; the MoE view; logs. */
import { lazy, Suspense, useMemo, useState, type FormEvent } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { useJob, usePatchRun, useRun } from "../api/hooks";
import type { Run } from "../api/types";
import { ChartControls, chartBuckets, useChartSettings, type ChartSettings } from "../components/ChartControls";
import { MetricChart, type ChartLine } from "../components/MetricChart";
import { RunAlertsBanner } from "../components/RunAlerts";
import { Empty, ErrorMessage, Loading, QueryView, StatusBadge } from "../components/States";
import { Tabs } from "../components/Tabs";
import { fmtAgo, fmtDate, fmtDuration, fmtNum, fmtValue, shortSha } from "../lib/format";
import { asDp, dpGuarantee, dpMechanism } from "../lib/dp";
import { discoverMoe, isMoeKey } from "../lib/moe";
import { layoutSections, parsePins, togglePin, yRange, type ChartItem } from "../lib/metricLayout";
import { color } from "../lib/series";
import { useTitle } from "../lib/useTitle";

const MoePanel = lazy(() => import("../components/MoePanel"));
const GradNormPanel = lazy(() => import("../components/GradNormPanel"));
const LogTail = lazy(() => import("./jobs/LogTail").then((m) => ({ default: m.LogTail })));

/** The log of the job that produced the run: the same live tail as the job's page (it follows
 * while the job runs; the job's status comes from its polled detail). */
function RunLogs({ jobId }: { jobId: string }) {
  const job = useJob(jobId);
  return (
    <>
      <p className="small muted">
        From job <Link to={`/jobs/${jobId}`} className="mono">{jobId}</Link>
        {job.data && <> ({job.data.status})</>}: its page has the transitions, artifacts and cancel.
      </p>
      {job.isError ? (
        <ErrorMessage error={job.error} title={`Could not read job ${jobId}`} />
      ) : !job.data ? (
        <Loading />
      ) : (
        <Suspense fallback={<Loading />}>
          <LogTail jobId={jobId} status={job.data.status} />
        </Suspense>
      )}
    </>
  );
}

type Tab = "metrics" | "overview" | "system" | "moe" | "gradients" | "logs";
const EAGER = 12;

function Header({ run }: { run: Run }) {
  const patch = usePatchRun(run.id);
  const [ns, pname] = run.project.split("/");
  const [newTag, setNewTag] = useState("");
  const addTag = (e: FormEvent) => {
    e.preventDefault();
    const t = newTag.trim();
    if (t) patch.mutate({ add_tags: [t] }, { onSuccess: () => setNewTag("") });
  };
  return (
    <div className="page-head">
      <div className="grow">
        <div className="crumbs">
          <Link to="/projects">Projects</Link> / <Link to={`/projects/${encodeURIComponent(ns)}/${encodeURIComponent(pname)}`}>{run.project}</Link> /
        </div>
        <h1 className="row">
          <span>{run.name}</span>
          <StatusBadge status={run.status} />
        </h1>
        <div className="row small muted">
          <span className="mono" title="Run id">{run.id}</span>
          <span>· started {fmtAgo(run.started_at)}</span>
          <span>· {run.ended_at ? "ran" : "running for"} {fmtDuration(run.started_at, run.ended_at)}</span>
          {run.user && <span>· by {run.user}</span>}
          {run.group && <span>· group {run.group}</span>}
          {run.commit && (
            <span>
              · model{" "}
              <Link to={`/models/${run.commit.repo}/commit/${run.commit.sha}`} className="mono">
                {run.commit.repo}@{shortSha(run.commit.sha)}
              </Link>
            </span>
          )}
          {run.job_id && <span>· job <Link className="mono" to={`/jobs/${run.job_id}`}>{run.job_id}</Link></span>}
        </div>
        <div className="row" style={{ marginTop: 6 }}>
          <span className="muted small">Tags</span>
          {run.tags.length === 0 && <span className="muted small">none</span>}
          {run.tags.map((t) => (
            <span key={t} className="tag-chip">
              {t}
              <button type="button" aria-label={`Remove tag ${t}`} onClick={() => patch.mutate({ remove_tags: [t] })}>×</button>
            </span>
          ))}
          <form onSubmit={addTag} className="row">
            <label htmlFor="add-tag" className="sr-only">Add a tag</label>
            <input id="add-tag" type="text" placeholder="add tag" value={newTag} maxLength={100} onChange={(e) => setNewTag(e.target.value)} style={{ width: 110, padding: "2px 6px" }} />
            <button type="submit" className="small" disabled={!newTag.trim() || patch.isPending}>Add</button>
          </form>
        </div>
        {patch.error && <ErrorMessage error={patch.error} title="Could not update the run" />}
      </div>
      <div className="field">
        <label htmlFor="run-status">Status</label>
        <select id="run-status" value={run.status} disabled={patch.isPending} onChange={(e) => patch.mutate({ status: e.target.value })}>
          {["running", "finished", "failed", "killed"].map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
      </div>
      <a className="button" href={`/api/v1/runs/${run.id}/metrics/export`} download>Export CSV</a>
      <a className="button" href={`/api/v1/runs/${run.id}/metrics/export?as=parquet`} download>Export Parquet</a>
    </div>
  );
}

function Notes({ run }: { run: Run }) {
  const patch = usePatchRun(run.id);
  const [text, setText] = useState(run.notes);
  const dirty = text !== run.notes;
  return (
    <section className="panel">
      <h2><label htmlFor="run-notes">Notes</label></h2>
      <textarea id="run-notes" rows={4} value={text} onChange={(e) => setText(e.target.value)} placeholder="What was this run about? What did you learn?" />
      <div className="row" style={{ marginTop: 6 }}>
        <button type="button" className="primary small" disabled={!dirty || patch.isPending} onClick={() => patch.mutate({ notes: text })}>
          Save notes
        </button>
        {dirty && <button type="button" className="small" onClick={() => setText(run.notes)}>Discard</button>}
        <span aria-live="polite" className="small muted">{patch.isSuccess && !dirty ? "Saved." : ""}</span>
      </div>
      {patch.error && <ErrorMessage error={patch.error} title="Could not save the notes" />}
    </section>
  );
}

/** A DP-SGD run (train.dp): ε spent so far (the dp/epsilon metric) against its budget, and
 * once its job has ended, the guarantee the job recorded and why it stopped. */
function Privacy({ run }: { run: Run }) {
  const spent = run.summary["dp/epsilon"];
  const budget = run.params["train.dp.epsilon"];
  const job = useJob(run.job_id ?? "", !!run.job_id && (!!spent || budget !== undefined));
  if (!spent && budget === undefined) return null;
  const dp = asDp(job.data?.summary?.dp);
  return (
    <section className="panel" aria-labelledby="privacy-h" data-testid="run-dp">
      <h2 id="privacy-h">Differential privacy</h2>
      <dl className="kv">
        <dt>ε spent</dt>
        <dd>{spent ? <>{fmtNum(spent.last, 4)} at step {fmtNum(spent.last_step)}</> : "—"} of a budget of {fmtNum(budget)}</dd>
        {dp && (
          <>
            <dt>Guarantee</dt><dd><strong>{dpGuarantee(dp)}</strong></dd>
            <dt>Mechanism</dt><dd className="small">{dpMechanism(dp)}</dd>
          </>
        )}
        {job.data && job.data.status === "succeeded" && <><dt>Ended</dt><dd>{job.data.reason}</dd></>}
      </dl>
    </section>
  );
}

function Overview({ run }: { run: Run }) {
  const [filter, setFilter] = useState("");
  const params = Object.entries(run.params).filter(([k]) => k.toLowerCase().includes(filter.toLowerCase())).sort(([a], [b]) => a.localeCompare(b));
  const summary = Object.entries(run.summary).filter(([k]) => !isMoeKey(k)).sort(([a], [b]) => a.localeCompare(b));
  return (
    <div className="grid-2">
      <section className="panel flush">
        <div className="row" style={{ padding: "8px 10px" }}>
          <h2 style={{ margin: 0, flex: 1 }}>Params ({Object.keys(run.params).length})</h2>
          <label htmlFor="param-filter" className="sr-only">Filter params</label>
          <input id="param-filter" type="search" placeholder="filter…" value={filter} onChange={(e) => setFilter(e.target.value)} />
        </div>
        {params.length === 0 ? (
          <Empty>{filter ? "No param matches." : "No params logged."}</Empty>
        ) : (
          <div className="table-wrap" style={{ maxHeight: 480 }}>
            <table className="data">
              <thead><tr><th scope="col">Param</th><th scope="col">Value</th></tr></thead>
              <tbody>
                {params.map(([k, v]) => (
                  <tr key={k}><td className="mono">{k}</td><td className="wrap mono">{fmtValue(v)}</td></tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <div className="stack">
        <Privacy run={run} />
        <Notes run={run} />
        <section className="panel flush">
          <h2 style={{ padding: "8px 10px", margin: 0 }}>Summary metrics</h2>
          {summary.length === 0 ? (
            <Empty>No metrics logged yet.</Empty>
          ) : (
            <div className="table-wrap" style={{ maxHeight: 360 }}>
              <table className="data">
                <thead>
                  <tr><th scope="col">Metric</th><th scope="col" className="num">Last</th><th scope="col" className="num">Min</th><th scope="col" className="num">Max</th><th scope="col" className="num">Last step</th><th scope="col" className="num">Points</th></tr>
                </thead>
                <tbody>
                  {summary.map(([k, s]) => (
                    <tr key={k}>
                      <td className="mono">{k}</td>
                      <td className="num">{fmtNum(s.last)}</td>
                      <td className="num">{fmtNum(s.min)}</td>
                      <td className="num">{fmtNum(s.max)}</td>
                      <td className="num">{fmtNum(s.last_step)}</td>
                      <td className="num">{fmtNum(s.count)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
        <section className="panel">
          <h2>Lineage</h2>
          <dl className="kv">
            <dt>Started</dt><dd>{fmtDate(run.started_at)}</dd>
            <dt>Ended</dt><dd>{fmtDate(run.ended_at)}</dd>
            <dt>Model commit</dt>
            <dd>{run.commit ? <Link to={`/models/${run.commit.repo}/commit/${run.commit.sha}`} className="mono">{run.commit.repo}@{shortSha(run.commit.sha)}</Link> : "—"}</dd>
            <dt>Job</dt><dd className="mono">{run.job_id ? <Link to={`/jobs/${run.job_id}`}>{run.job_id}</Link> : "—"}</dd>
          </dl>
        </section>
      </div>
    </div>
  );
}

function ChartGrid({ run, keys }: { run: Run; keys: string[] }) {
  const [settings, set] = useChartSettings();
  const [params, setParams] = useSearchParams();
  const buckets = useMemo(chartBuckets, []);
  const f = settings.filter.toLowerCase();
  const shown = keys.filter((k) => k.toLowerCase().includes(f));
  const pins = parsePins(params);
  const sections = useMemo(() => layoutSections(shown, pins), [shown.join("\n"), pins.join("\n")]); // eslint-disable-line react-hooks/exhaustive-deps
  const pin = (id: string) => setParams(togglePin(params, id), { replace: true });
  const charts = sections.reduce((a, s) => a + s.items.length, 0);
  let n = 0;
  return (
    <>
      <ChartControls settings={settings} set={set}>
        <span className="muted small">
          {shown.length} of {keys.length} keys in {charts} charts{pins.length ? ` · ${pins.length} pinned` : ""} · drag to zoom, double-click to reset
        </span>
      </ChartControls>
      {shown.length === 0 && <Empty>{keys.length ? "No metric key matches the filter." : "This run has logged no metrics yet."}</Empty>}
      {sections.map((s) => {
        const collapsed = s.collapsed && !f;
        return (
          <ChartGroup key={s.id} id={s.id} title={s.title} count={s.items.length} collapsed={collapsed}>
            <div className="charts">
              {s.items.map((item) => (
                <ItemChart key={item.id} run={run} item={item} settings={settings} buckets={buckets} eager={!collapsed && n++ < EAGER} pinned={pins.includes(item.id)} onPin={() => pin(item.id)} />
              ))}
            </div>
          </ChartGroup>
        );
      })}
    </>
  );
}

/** One chart of the grid: a key, or a per-expert family as one chart with a line per expert. */
function ItemChart({ run, item, settings, buckets, eager, pinned, onPin }: {
  run: Run; item: ChartItem; settings: ChartSettings; buckets: number; eager: boolean; pinned: boolean; onPin: () => void;
}) {
  const lines: ChartLine[] = useMemo(
    () => item.keys.map((k, i) => ({ run: run.id, key: k, label: item.keys.length > 1 ? item.labels[i] : run.name, color: color(i), points: run.summary[k]?.count })),
    [run.id, run.name, run.summary, item],
  );
  const pinButton = (
    <button type="button" className="small pin" aria-pressed={pinned} aria-label={`${pinned ? "Unpin" : "Pin"} ${item.id}`} title={pinned ? "Unpin (kept in the link)" : "Pin to the top (kept in the link)"} onClick={onPin}>
      {pinned ? "★" : "☆"}
    </button>
  );
  return (
    <MetricChart title={item.id} lines={lines} x={settings.x} smoothing={settings.smoothing} log={settings.log} buckets={buckets} eager={eager}
      bands={item.keys.length === 1} yRange={yRange(item.fraction, settings.log)} actions={pinButton} />
  );
}

function ChartGroup({ id, title, count, collapsed, children }: { id: string; title: string; count: number; collapsed: boolean; children: React.ReactNode }) {
  const [open, setOpen] = useState(!collapsed);
  return (
    <details className="chart-group" data-section={id} open={open} onToggle={(e) => setOpen((e.target as HTMLDetailsElement).open)}>
      <summary>{title} <span className="muted small">({count} chart{count === 1 ? "" : "s"})</span></summary>
      {open && children}
    </details>
  );
}

export default function RunPage() {
  const { id = "" } = useParams();
  const run = useRun(id);
  useTitle(run.data?.name ?? id);
  const [params, setParams] = useSearchParams();
  // Every key the run logged is in its summary (kept on ingest): the charts start from it
  // without waiting for the metrics store's key statistics.
  const keys = useMemo(() => Object.keys(run.data?.summary ?? {}).sort(), [run.data]);
  const moe = useMemo(() => discoverMoe(keys), [keys]);
  const systemKeys = keys.filter((k) => k.startsWith("system/"));
  const gradKeys = keys.filter((k) => k.startsWith("grad_norm/layer"));
  const mainKeys = keys.filter((k) => !k.startsWith("system/"));
  const tab = (params.get("tab") as Tab) || "metrics";
  const setTab = (t: Tab) => {
    const next = new URLSearchParams(params);
    if (t === "metrics") next.delete("tab");
    else next.set("tab", t);
    setParams(next, { replace: true });
  };

  return (
    <QueryView query={run} label="Loading run…">
      {(r) => (
        <>
          <Header run={r} />
          <RunAlertsBanner runId={r.id} live={r.status === "running"} />
          <Tabs
            id="run"
            label="Run sections"
            value={tab}
            onChange={setTab}
            tabs={[
              { value: "metrics", label: `Metrics (${mainKeys.length})` },
              { value: "overview", label: `Params & notes` },
              { value: "system", label: `System${systemKeys.length ? ` (${systemKeys.length})` : ""}` },
              { value: "moe", label: moe.length ? `MoE (${moe.length} layer${moe.length > 1 ? "s" : ""})` : "MoE" },
              { value: "gradients", label: "Gradients" },
              { value: "logs", label: "Logs" },
            ]}
          />
          <div id="run-panel" role="tabpanel" aria-labelledby={`run-tab-${tab}`}>
            {tab === "overview" && <Overview run={r} />}
            {tab === "metrics" && <ChartGrid run={r} keys={mainKeys} />}
            {tab === "system" &&
              (systemKeys.length ? (
                <ChartGrid run={r} keys={systemKeys} />
              ) : (
                <Empty>No system metrics. The SDK and job supervisors log them under <code>system/…</code> (GPU utilisation, memory, throughput).</Empty>
              ))}
            {tab === "moe" &&
              (moe.length ? (
                <Suspense fallback={<Loading />}>
                  <MoePanel run={r} layers={moe} />
                </Suspense>
              ) : (
                <Empty>
                  No MoE routing metrics in this run. Training logs them as <code>moe/layer{"{L}"}/load/expert{"{E}"}</code>,{" "}
                  <code>moe/layer{"{L}"}/entropy</code>, <code>…/dropped_frac</code>, <code>…/bias/expert{"{E}"}</code> and <code>…/aux_loss</code>.
                </Empty>
              ))}
            {tab === "gradients" &&
              (gradKeys.length ? (
                <Suspense fallback={<Loading />}>
                  <GradNormPanel run={r} keys={gradKeys} />
                </Suspense>
              ) : (
                <Empty>
                  No gradient norms in this run. Training logs <code>grad_norm/layer{"{L}"}/attn</code>, <code>…/router</code>,{" "}
                  <code>…/experts</code> and <code>…/expert{"{E}"}</code> every <code>train.grad_norm_interval</code> steps.
                </Empty>
              ))}
            {tab === "logs" &&
              (r.job_id ? (
                <RunLogs jobId={r.job_id} />
              ) : (
                <div className="notice">
                  <p>
                    <strong>Logs</strong> belong to the job that produced a run. This run was logged from outside a job (no job id), so
                    the hub has no log for it.
                  </p>
                </div>
              ))}
          </div>
        </>
      )}
    </QueryView>
  );
}
