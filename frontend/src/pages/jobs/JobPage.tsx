/** A job: status and its transitions (with reasons), progress, resources, lineage (base
 * commit, target branch, result commit, run), artifacts with downloads, the config and
 * summary, and the live log tail; cancel, relaunch, or launch an edited copy. */
import { Link, useNavigate, useParams } from "react-router";
import { useQueryClient } from "@tanstack/react-query";
import { jobArtifactUrl, useCancelJob, useJob, useRelaunchJob } from "../../api/hooks";
import { JOB_TERMINAL, type JobDetail } from "../../api/types";
import { RunAlertsBanner } from "../../components/RunAlerts";
import { Empty, ErrorMessage, QueryView } from "../../components/States";
import { fmtAgo, fmtBytes, fmtDate, shortSha } from "../../lib/format";
import { useTitle } from "../../lib/useTitle";
import { fmtSeconds, modelLink, summaryRows } from "./format";
import { JobProgress, JobStatus } from "./JobsPage";
import { LogTail } from "./LogTail";
import "./jobs.css";

function Timeline({ job }: { job: JobDetail }) {
  if (!job.transitions.length) return <p className="muted">No transitions recorded.</p>;
  const t0 = new Date(job.transitions[0].at).getTime();
  return (
    <ol className="timeline" aria-label="Status transitions">
      {job.transitions.map((t, i) => (
        <li key={i}>
          <div className="row">
            {t.from && <><span className={`badge ${t.from}`}>{t.from}</span><span aria-label="to">→</span></>}
            <span className={`badge ${t.to}`}>{t.to}</span>
            <span className="small muted" title={t.at}>{fmtDate(t.at)}{i > 0 && ` · +${fmtSeconds((new Date(t.at).getTime() - t0) / 1000)}`}</span>
          </div>
          {t.reason && <div className="reason small">{t.reason}</div>}
        </li>
      ))}
    </ol>
  );
}

function Lineage({ job }: { job: JobDetail }) {
  return (
    <dl className="kv">
      <dt>Base</dt>
      <dd>
        {job.base ? (
          <>
            <Link to={modelLink(job.base.repo, job.base.ref)} className="mono">{job.base.repo}@{job.base.ref}</Link>
            {job.base.commit && <> · commit <Link to={modelLink(job.base.repo, null, job.base.commit)} className="mono">{shortSha(job.base.commit)}</Link></>}
          </>
        ) : <span className="muted">none (trained from scratch)</span>}
      </dd>
      <dt>Target</dt>
      <dd>{job.target ? <Link to={modelLink(job.target.repo, job.target.branch)} className="mono">{job.target.repo}@{job.target.branch}</Link> : <span className="muted">none</span>}</dd>
      <dt>Result</dt>
      <dd>
        {job.result ? (
          <>
            <Link to={modelLink(job.target?.repo ?? job.base?.repo ?? "", null, job.result.commit)} className="mono" data-testid="result-commit">{shortSha(job.result.commit)}</Link>
            {job.result.branch && <> on <span className="mono">{job.result.branch}</span></>}
            {job.target && job.result.branch && job.result.branch !== job.target.branch && <span className="muted small"> (the target moved while the job ran)</span>}
          </>
        ) : <span className="muted">—</span>}
      </dd>
      <dt>Run</dt>
      <dd>{job.run_id ? <Link to={`/runs/${job.run_id}`} className="mono">{job.run_id}</Link> : <span className="muted">—</span>}</dd>
      {job.relaunched_from && (
        <>
          <dt>Relaunch of</dt>
          <dd><Link to={`/jobs/${job.relaunched_from}`} className="mono">{job.relaunched_from}</Link></dd>
        </>
      )}
    </dl>
  );
}

function Resources({ job }: { job: JobDetail }) {
  const r = job.resources;
  return (
    <dl className="kv">
      <dt>Queue</dt><dd>{job.queue}</dd>
      <dt>GPUs</dt><dd>{r.gpus ?? 0}{job.gpus.length > 0 && <span className="muted"> (devices {job.gpus.join(", ")})</span>}</dd>
      <dt>CPUs</dt><dd>{r.cpus ?? "—"}</dd>
      <dt>Memory</dt><dd>{r.memory_mb !== undefined ? fmtBytes(r.memory_mb * 1024 * 1024) : "—"}</dd>
      <dt>Time limit</dt><dd>{fmtSeconds(r.time_limit_s)}</dd>
      <dt>Worker</dt><dd>{job.worker || <span className="muted">—</span>}</dd>
      <dt>Attempt</dt><dd>{job.attempt}</dd>
      <dt>Heartbeat</dt><dd title={job.heartbeat_at ?? ""}>{job.heartbeat_at ? fmtAgo(job.heartbeat_at) : "—"}</dd>
      <dt>Events</dt><dd>{job.events.received.toLocaleString()} received{job.events.rejected > 0 && <span style={{ color: "var(--bad)" }}>, {job.events.rejected.toLocaleString()} rejected</span>}</dd>
    </dl>
  );
}

function Artifacts({ job }: { job: JobDetail }) {
  if (!job.artifacts.length) return <Empty>{JOB_TERMINAL.has(job.status) ? "This job stored no artifacts." : "Artifacts appear when the job stores them."}</Empty>;
  return (
    <table className="data" aria-label="Artifacts">
      <thead><tr><th scope="col">Path</th><th scope="col">Kind</th><th scope="col" className="num">Size</th><th scope="col"><span className="sr-only">Download</span></th></tr></thead>
      <tbody>
        {job.artifacts.map((a) => (
          <tr key={a.path}>
            <td className="mono">{a.path}</td>
            <td>{a.kind}</td>
            <td className="num">{fmtBytes(a.size)}</td>
            <td><a href={jobArtifactUrl(job.id, a.path)} download aria-label={`Download ${a.path}`}>Download</a></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Summary({ summary }: { summary: Record<string, unknown> }) {
  const rows = summaryRows(summary);
  if (!rows.length) return <Empty>No summary yet: the job reports one when it ends.</Empty>;
  return (
    <div className="table-wrap">
      <table className="data" aria-label="Summary" data-testid="job-summary">
        <thead><tr><th scope="col">Key</th><th scope="col" className="num">Value</th></tr></thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.key}>
              <th scope="row" className="mono" style={{ fontWeight: 400 }}>{r.key}</th>
              <td className={r.numeric ? "num" : "wrap mono"}>{r.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Header({ job }: { job: JobDetail }) {
  const cancel = useCancelJob();
  const relaunch = useRelaunchJob();
  const navigate = useNavigate();
  const active = job.status === "queued" || job.status === "running";
  const [ns, pname] = job.project.split("/");
  return (
    <>
      <div className="page-head">
        <div className="grow">
          <div className="crumbs">
            <Link to="/jobs">Jobs</Link> / <Link to={`/jobs?project=${encodeURIComponent(job.project)}`}>{job.project}</Link> /
          </div>
          <h1 className="row">
            <span>{job.kind} job <span className="mono">{job.id}</span></span>
            <span data-testid="job-status"><JobStatus job={job} /></span>
          </h1>
          <div className="row small muted">
            <span>created {fmtAgo(job.created_at)}{job.created_by && ` by ${job.created_by}`}</span>
            {job.started_at && <span>· {job.ended_at ? "ran" : "running for"} {fmtSeconds(job.duration_s)}</span>}
            <span>· project <Link to={`/projects/${encodeURIComponent(ns)}/${encodeURIComponent(pname ?? "")}`}>{job.project}</Link></span>
          </div>
          {job.reason && <p className="small" title="Reason of the last transition">{job.reason}</p>}
        </div>
        {job.kind === "profile" && job.status === "succeeded" && <Link className="button primary" to={`/profiles/${job.id}`}>Open profile</Link>}
        {job.kind === "inspect" && job.status === "succeeded" && job.base?.commit && <Link className="button primary" to={`${modelLink(job.base.repo, null, job.base.commit)}/inspect?job=${job.id}`}>Open in Inspector</Link>}
        {active && (
          <button
            type="button"
            className="danger"
            disabled={cancel.isPending || job.cancel_requested}
            onClick={() => {
              if (confirm(`Cancel job ${job.id}? A running job's sandbox is killed.`)) cancel.mutate(job.id);
            }}
          >
            {job.cancel_requested ? "Cancelling…" : "Cancel job"}
          </button>
        )}
        {!active && (
          <button type="button" disabled={relaunch.isPending} onClick={() => relaunch.mutate(job.id, { onSuccess: (j) => navigate(`/jobs/${j.id}`) })}>
            {relaunch.isPending ? "Relaunching…" : "Relaunch"}
          </button>
        )}
        <Link className="button" to={`/jobs/new?from=${job.id}`}>Edit &amp; launch…</Link>
      </div>
      {cancel.error && <ErrorMessage error={cancel.error} title="Could not cancel the job" />}
      {relaunch.error && <ErrorMessage error={relaunch.error} title="Could not relaunch the job" />}
    </>
  );
}

export default function JobPage() {
  const { id = "" } = useParams();
  const job = useJob(id);
  const qc = useQueryClient();
  useTitle(job.data ? `${job.data.kind} job ${job.data.id}` : `job ${id}`);
  return (
    <QueryView query={job} label="Loading job…">
      {(j) => (
        <>
          <Header job={j} />
          {job.error && <ErrorMessage error={job.error} title="Could not refresh the job" />}
          <RunAlertsBanner runId={j.run_id} live={!JOB_TERMINAL.has(j.status)} />
          <section className="panel" style={{ marginBottom: 12 }} aria-label="Progress">
            {j.progress?.total ? <JobProgress job={j} big /> : <span className="muted small">{j.status === "queued" ? "Waiting for a worker…" : "No progress reported."}</span>}
          </section>
          <div className="grid-2" style={{ marginBottom: 12 }}>
            <section className="panel">
              <h2>Lineage</h2>
              <Lineage job={j} />
              <h2>Transitions</h2>
              <Timeline job={j} />
            </section>
            <section className="panel">
              <h2>Resources</h2>
              <Resources job={j} />
            </section>
          </div>
          <LogTail jobId={j.id} status={j.status} onEnd={() => void qc.invalidateQueries({ queryKey: ["job", j.id] })} />
          <div className="grid-2" style={{ marginTop: 12 }}>
            <section className="panel flush">
              <h2 style={{ padding: "8px 10px", margin: 0 }}>Artifacts ({j.artifacts.length})</h2>
              <Artifacts job={j} />
            </section>
            <section className="panel flush">
              <h2 style={{ padding: "8px 10px", margin: 0 }}>Summary</h2>
              <Summary summary={j.summary} />
            </section>
          </div>
          <details className="panel" style={{ marginTop: 12 }}>
            <summary><strong>Config</strong> <span className="muted small">(as validated; keys left out took their defaults)</span></summary>
            <pre className="json" style={{ marginTop: 8 }}>{JSON.stringify(j.config, null, 2)}</pre>
          </details>
        </>
      )}
    </QueryView>
  );
}
