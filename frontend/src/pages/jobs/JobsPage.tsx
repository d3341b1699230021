/** Jobs: every job the user can see, filtered by project, status and kind (all in the URL),
 * with progress and duration; polls while any job on the page is queued or running. The
 * Profiles section is the same list, fixed to profile jobs, linking to the profile pages. */
import { Link, useSearchParams } from "react-router";
import { useJobs, useProjects, type JobListArgs } from "../../api/hooks";
import { JOB_KINDS, JOB_STATUSES, type Job } from "../../api/types";
import { Empty, ErrorMessage, Loading, StatusBadge } from "../../components/States";
import { fmtAgo, fmtDate, shortSha } from "../../lib/format";
import { useTitle } from "../../lib/useTitle";
import { fmtSeconds, modelLink } from "./format";
import "./jobs.css";

const PAGE_SIZES = [25, 50, 100];

export function parseJobsState(p: URLSearchParams, fixedKind?: string): JobListArgs {
  const size = Number(p.get("size"));
  return {
    project: p.get("project") ?? "",
    status: (p.get("status") ?? "").split(",").filter((s) => (JOB_STATUSES as string[]).includes(s)),
    kind: fixedKind ?? p.get("kind") ?? "",
    page: Math.max(1, Number(p.get("page")) || 1),
    size: PAGE_SIZES.includes(size) ? size : 25,
  };
}

export function JobProgress({ job, big = false }: { job: Job; big?: boolean }) {
  const p = job.progress ?? {};
  if (!p.total) return <span className="muted">—</span>;
  const step = p.step ?? 0;
  const frac = Math.min(1, Math.max(0, step / p.total));
  return (
    <div className="progress-line" title={`step ${step} of ${p.total}`}>
      <div className={`bar${big ? " big" : ""}`} role="progressbar" aria-label={`Progress of job ${job.id}`} aria-valuemin={0} aria-valuemax={p.total} aria-valuenow={step}>
        <span style={{ width: `${frac * 100}%` }} />
      </div>
      <span className="small num">
        {step.toLocaleString()}/{p.total.toLocaleString()}
        {big && job.status === "running" && p.eta_s !== null && p.eta_s !== undefined && <> · ETA {fmtSeconds(p.eta_s)}</>}
      </span>
    </div>
  );
}

export function JobStatus({ job }: { job: Job }) {
  return (
    <span className="row" style={{ gap: 4, display: "inline-flex" }}>
      <StatusBadge status={job.status} />
      {job.cancel_requested && (job.status === "queued" || job.status === "running") && <span className="badge" title="Cancel requested">cancelling</span>}
    </span>
  );
}

export default function JobsPage({ fixedKind }: { fixedKind?: "profile" }) {
  const [params, setParams] = useSearchParams();
  const state = parseJobsState(params, fixedKind);
  const jobs = useJobs(state);
  const projects = useProjects();
  const title = fixedKind === "profile" ? "Profiles" : "Jobs";
  useTitle(title);

  const update = (patch: Partial<Record<"project" | "status" | "kind" | "page" | "size", string | null>>) => {
    const next = new URLSearchParams(params);
    if (!("page" in patch)) next.delete("page");
    for (const [k, v] of Object.entries(patch)) {
      if (v === null || v === "" || (k === "page" && v === "1")) next.delete(k);
      else next.set(k, v);
    }
    setParams(next, { replace: true });
  };
  const toggleStatus = (s: string) => {
    const on = state.status.includes(s);
    update({ status: (on ? state.status.filter((x) => x !== s) : [...state.status, s]).join(",") });
  };
  const data = jobs.data;
  const pages = data ? Math.max(1, Math.ceil(data.count / state.size)) : 1;
  const launchHref = `/jobs/new${state.project || fixedKind ? `?${new URLSearchParams({ ...(state.project ? { project: state.project } : {}), ...(fixedKind ? { kind: fixedKind } : {}) })}` : ""}`;

  return (
    <>
      <div className="page-head">
        <div className="grow">
          <h1>{title}</h1>
          <p className="muted small" style={{ margin: 0 }}>
            {fixedKind === "profile"
              ? "Profile jobs: operator tables, module time share, memory timelines and flame graphs of a model commit."
              : "Training, evaluation, profiling and fine-tuning jobs, run by sandboxed workers."}
          </p>
        </div>
        <Link className="button primary" to={launchHref}>{fixedKind === "profile" ? "New profile…" : "Launch a job…"}</Link>
      </div>
      <div className="toolbar" role="group" aria-label="Filters">
        <div className="row">
          <label htmlFor="jobs-project">Project</label>
          <select id="jobs-project" value={state.project} onChange={(e) => update({ project: e.target.value })}>
            <option value="">all projects</option>
            {state.project && !projects.data?.results.some((p) => `${p.namespace}/${p.name}` === state.project) && <option value={state.project}>{state.project}</option>}
            {projects.data?.results.map((p) => {
              const full = `${p.namespace}/${p.name}`;
              return <option key={full} value={full}>{full}</option>;
            })}
          </select>
        </div>
        {!fixedKind && (
          <div className="row">
            <label htmlFor="jobs-kind">Kind</label>
            <select id="jobs-kind" value={state.kind} onChange={(e) => update({ kind: e.target.value })}>
              <option value="">all kinds</option>
              {JOB_KINDS.map((k) => <option key={k} value={k}>{k}</option>)}
            </select>
          </div>
        )}
        <fieldset className="row" style={{ border: "none", padding: 0, margin: 0 }}>
          <legend className="sr-only">Status</legend>
          <span className="muted">Status</span>
          <span className="status-filter">
            {JOB_STATUSES.map((s) => (
              <label key={s}>
                <input type="checkbox" checked={state.status.includes(s)} onChange={() => toggleStatus(s)} />
                {s}
              </label>
            ))}
          </span>
          {state.status.length > 0 && <button type="button" className="small link" onClick={() => update({ status: null })}>clear</button>}
        </fieldset>
        <span className="muted small" aria-live="polite">{data ? `${data.count.toLocaleString()} job${data.count === 1 ? "" : "s"}` : ""}</span>
      </div>
      <section className="panel flush">
        {jobs.error && !data ? (
          <ErrorMessage error={jobs.error} retry={() => void jobs.refetch()} />
        ) : !data ? (
          <Loading label="Loading jobs…" />
        ) : data.results.length === 0 ? (
          <Empty>
            {state.status.length || state.project || (state.kind && !fixedKind) ? "No job matches these filters." : "No jobs yet."}{" "}
            <Link to={launchHref}>Launch one</Link>, or from a terminal: <code>hub jobs launch</code>.
          </Empty>
        ) : (
          <>
            {jobs.error && <ErrorMessage error={jobs.error} title="Could not refresh the jobs" />}
            <div className="table-wrap">
              <table className="data" aria-label={title} aria-busy={jobs.isFetching}>
                <thead>
                  <tr>
                    <th scope="col">Job</th>
                    <th scope="col">Kind</th>
                    <th scope="col">Status</th>
                    <th scope="col">Project</th>
                    <th scope="col">Model</th>
                    <th scope="col" style={{ minWidth: 150 }}>Progress</th>
                    <th scope="col" className="num">Duration</th>
                    <th scope="col">Created</th>
                    <th scope="col">By</th>
                    <th scope="col">Run</th>
                  </tr>
                </thead>
                <tbody>
                  {data.results.map((j) => (
                    <tr key={j.id}>
                      <td>
                        <Link to={`/jobs/${j.id}`} className="mono">{j.id}</Link>
                        {j.kind === "profile" && j.status === "succeeded" && (
                          <> · <Link to={`/profiles/${j.id}`} className="small" aria-label={`Profile of job ${j.id}`}>profile</Link></>
                        )}
                      </td>
                      <td>{j.kind}</td>
                      <td title={j.reason}><JobStatus job={j} /></td>
                      <td>{j.project}</td>
                      <td className="small">
                        {j.base && <Link to={modelLink(j.base.repo, j.base.ref, j.base.commit)} className="mono" title={`base ${j.base.repo}@${j.base.ref}`}>{j.base.repo}@{j.base.ref.length > 16 ? shortSha(j.base.ref) : j.base.ref}</Link>}
                        {j.base && j.target && " → "}
                        {j.target && (j.result ? (
                          <Link to={modelLink(j.target.repo, null, j.result.commit)} className="mono" title={`result ${j.result.commit}`}>{j.target.repo}@{j.result.branch || j.target.branch}</Link>
                        ) : (
                          <span className="mono">{j.target.repo}@{j.target.branch}</span>
                        ))}
                        {!j.base && !j.target && <span className="muted">—</span>}
                      </td>
                      <td><JobProgress job={j} /></td>
                      <td className="num">{fmtSeconds(j.duration_s)}</td>
                      <td title={fmtDate(j.created_at)}>{fmtAgo(j.created_at)}</td>
                      <td>{j.created_by ?? "—"}</td>
                      <td>{j.run_id ? <Link to={`/runs/${j.run_id}`} className="mono small">{j.run_id}</Link> : <span className="muted">—</span>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <div className="pager">
              <button type="button" disabled={state.page <= 1} onClick={() => update({ page: String(state.page - 1) })}>← Previous</button>
              <span className="small">Page {state.page} of {pages}</span>
              <button type="button" disabled={!data.next} onClick={() => update({ page: String(state.page + 1) })}>Next →</button>
              <div style={{ flex: 1 }} />
              <label htmlFor="jobs-size" className="small">Rows per page</label>
              <select id="jobs-size" value={state.size} onChange={(e) => update({ size: e.target.value })}>
                {PAGE_SIZES.map((n) => <option key={n} value={n}>{n}</option>)}
              </select>
            </div>
          </>
        )}
      </section>
    </>
  );
}
