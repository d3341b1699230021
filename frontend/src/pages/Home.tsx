/** The home page: where things stand. Recent runs (from the projects the user works in),
 * running and queued jobs, and the recently updated models, each linking to its page; every empty list
 * says how to fill it. Built from the list APIs the other pages use. */
import { useQueries } from "@tanstack/react-query";
import { Link } from "react-router";
import { runSearchQuery, useJobs, useProjects, useRecentRepos, useWhoAmI } from "../api/hooks";
import type { Project, RunHit, RunSearch, WhoAmI } from "../api/types";
import { Empty, ErrorMessage, Loading, StatusBadge } from "../components/States";
import { fmtAgo } from "../lib/format";
import { writableProjects } from "../lib/projects";
import { useTitle } from "../lib/useTitle";
import { JobProgress, JobStatus } from "./jobs/JobsPage";

/** The hub has no cross-project run list: the newest runs of these projects stand in for it. */
export const HOME_PROJECTS = 6;
const HOME_ROWS = 8;

/** Projects whose runs the home page reads: the user's own and their namespaces' first, then
 * other visible ones, at most `n`. */
export function homeProjects(projects: Project[], me: WhoAmI | undefined, n = HOME_PROJECTS): Project[] {
  const first = me ? writableProjects(projects, me) : [];
  const ids = new Set(first.map((p) => p.id));
  return [...first, ...projects.filter((p) => !ids.has(p.id))].slice(0, n);
}

/** The newest `n` runs of several projects' pages (each sorted newest first). */
export function newestRuns(pages: RunHit[][], n = HOME_ROWS): RunHit[] {
  return pages.flat().sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, n);
}

function RecentRuns() {
  const me = useWhoAmI();
  const projects = useProjects();
  const picked = homeProjects(projects.data?.results ?? [], me.data);
  const pages = useQueries({
    queries: picked.map((p) => ({ ...runSearchQuery({ ns: p.namespace, name: p.name, q: "", sort: "-created_at", offset: 0, size: HOME_ROWS }), staleTime: 10_000 })),
  });
  if (projects.error) return <ErrorMessage error={projects.error} title="Could not list projects" />;
  if (!projects.data || pages.some((q) => q.isPending)) return <Loading label="Loading recent runs…" />;
  const error = pages.find((q) => q.error)?.error;
  const runs = newestRuns(pages.map((q) => (q.data as RunSearch | undefined)?.results ?? []));
  return (
    <>
      {error && <ErrorMessage error={error} title="Could not search some projects" />}
      {runs.length === 0 ? (
        <Empty>
          No runs yet. Log one from Python: <code>Client().init_run("{me.data?.username ?? "you"}/my-project", name="first")</code>, then{" "}
          <code>run.log({"{"}"loss": 2.1{"}"}, step=1)</code> — or <Link to="/jobs/new">launch a training job</Link>.
        </Empty>
      ) : (
        <ul className="plain" aria-label="Recent runs">
          {runs.map((r) => (
            <li key={r.id}>
              <StatusBadge status={r.status} />
              <Link to={`/runs/${r.id}`} className="grow" title={r.name}>{r.name}</Link>
              <span className="muted small nowrap">{r.project} · {fmtAgo(r.created_at)}</span>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

function ActiveJobs() {
  const jobs = useJobs({ project: "", status: ["running", "queued"], kind: "", page: 1, size: HOME_ROWS });
  if (jobs.error) return <ErrorMessage error={jobs.error} title="Could not list jobs" />;
  if (!jobs.data) return <Loading label="Loading jobs…" />;
  if (!jobs.data.results.length)
    return (
      <Empty>
        No job is running or queued. <Link to="/jobs/new">Launch one</Link> (train, evaluate or profile), or see <Link to="/jobs">past jobs</Link>.
      </Empty>
    );
  return (
    <ul className="plain" aria-label="Running jobs">
      {jobs.data.results.map((j) => (
        <li key={j.id}>
          <JobStatus job={j} />
          <Link to={`/jobs/${j.id}`} className="grow mono">{j.kind} {j.id}</Link>
          <span className="muted small nowrap">{j.project}</span>
          {j.progress?.total ? <JobProgress job={j} /> : null}
        </li>
      ))}
      {jobs.data.count > jobs.data.results.length && (
        <li><Link to="/jobs?status=running,queued">All {jobs.data.count} active jobs →</Link></li>
      )}
    </ul>
  );
}

function RecentModels() {
  const repos = useRecentRepos(HOME_ROWS);
  if (repos.error) return <ErrorMessage error={repos.error} title="Could not list models" />;
  if (!repos.data) return <Loading label="Loading models…" />;
  const rows = repos.data.results;
  if (!rows.length)
    return (
      <Empty>
        No models yet. Push a checkpoint with <code>hub push out/ --repo you/my-model -m "first weights"</code>, or let a training job commit to one.
      </Empty>
    );
  return (
    <ul className="plain" aria-label="Recent models">
      {rows.map((r) => (
        <li key={r.id}>
          <Link to={`/models/${r.namespace}/${r.name}`} className="grow" title={r.description || r.id}>{r.id}</Link>
          <span className="muted small nowrap">updated {fmtAgo(r.updated_at)}</span>
        </li>
      ))}
    </ul>
  );
}

export default function HomePage() {
  useTitle("Home");
  return (
    <>
      <div className="page-head"><h1 className="grow">Home</h1></div>
      <div className="home-grid">
        <section className="panel flush" aria-labelledby="home-runs">
          <h2 id="home-runs" className="row" style={{ padding: "8px 10px", margin: 0 }}>
            <span style={{ flex: 1 }}>Recent runs</span> <Link to="/projects" className="small">All projects →</Link>
          </h2>
          <RecentRuns />
        </section>
        <section className="panel flush" aria-labelledby="home-jobs">
          <h2 id="home-jobs" className="row" style={{ padding: "8px 10px", margin: 0 }}>
            <span style={{ flex: 1 }}>Running jobs</span> <Link to="/jobs" className="small">All jobs →</Link>
          </h2>
          <ActiveJobs />
        </section>
        <section className="panel flush" aria-labelledby="home-models">
          <h2 id="home-models" className="row" style={{ padding: "8px 10px", margin: 0 }}>
            <span style={{ flex: 1 }}>Recent models</span> <Link to="/models" className="small">All models →</Link>
          </h2>
          <RecentModels />
        </section>
      </div>
    </>
  );
}
