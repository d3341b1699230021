/** Profiles by commit from the dashboard: "Profile this commit" (a profile job of the default
 * profile config, launched as the launch page does) and "Compare with commit" (POST
 * /jobs/profile-diff with two refs, which reuses or launches their profiles; both are polled
 * until they end, then the diff page opens). */
import { useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate } from "react-router";
import { useJob, useLaunchJob, useProjects, useWhoAmI } from "../../api/hooks";
import type { JobDetail } from "../../api/types";
import { ErrorMessage } from "../../components/States";
import { defaultProject, writableProjects } from "../../lib/projects";
import { JOB_ENDED, PROFILE_RESOURCES, prepareProfileDiff, refSpec, sideProgress, type ProfileDiffPrepared } from "./profileApi";

/** The project jobs launch in: the launch page's default (lib/projects.ts), editable.
 * `canLaunch` is false for visitors and read-only tokens. */
export function useLaunchProject() {
  const me = useWhoAmI();
  const projects = useProjects();
  const [project, setProject] = useState("");
  useEffect(() => {
    if (!project && me.data && (projects.data || projects.isError)) setProject(defaultProject(projects.data?.results ?? [], me.data));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [me.data, projects.data, projects.isError]);
  const options = me.data ? writableProjects(projects.data?.results ?? [], me.data).map((p) => `${p.namespace}/${p.name}`) : [];
  return { project, setProject, options, canLaunch: !!me.data && me.data.token_scope !== "read" };
}

function ProjectField({ id, lp }: { id: string; lp: ReturnType<typeof useLaunchProject> }) {
  return (
    <label className="small">
      in project{" "}
      <input id={id} list={`${id}-list`} value={lp.project} onChange={(e) => lp.setProject(e.target.value)} placeholder="namespace/project" size={18} />
      <datalist id={`${id}-list`}>{lp.options.map((p) => <option key={p} value={p} />)}</datalist>
    </label>
  );
}

function progressText(j: JobDetail | undefined): string {
  if (!j) return "launching…";
  const p = j.progress;
  return `${j.status}${p && p.total ? ` ${p.step ?? 0}/${p.total}` : ""}`;
}

/** Launches a profile of `spec` (ns/repo@commit) with the default config; shows its progress,
 * then hands the finished job to `onDone`. */
export function ProfileThisCommit({ spec, onDone }: { spec: string; onDone: (jobId: string) => void }) {
  const lp = useLaunchProject();
  const launch = useLaunchJob();
  const id = launch.data?.id ?? "";
  const job = useJob(id, !!id);
  const status = job.data?.status;
  useEffect(() => {
    if (status === "succeeded") onDone(id);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [status, id]);
  if (!lp.canLaunch) return null;
  const go = (e: FormEvent) => {
    e.preventDefault();
    launch.mutate({ project: lp.project.trim(), kind: "profile", config: {}, base: spec, resources: PROFILE_RESOURCES });
  };
  return (
    <div data-testid="profile-this-commit">
      <form className="row" style={{ gap: 8 }} onSubmit={go}>
        <button type="submit" className="primary" disabled={!lp.project.trim() || launch.isPending || (!!id && !JOB_ENDED.has(status ?? ""))}>
          Profile this commit
        </button>
        <ProjectField id="profile-project" lp={lp} />
        <span className="small muted">the default profile config</span>
      </form>
      {id && (
        <p className="small" role="status">
          Profile job <Link className="mono" to={`/jobs/${id}`}>{id}</Link>: {progressText(job.data)}
          {job.data?.reason && JOB_ENDED.has(job.data.status) && job.data.status !== "succeeded" && <> — {job.data.reason}</>}
        </p>
      )}
      {launch.error && <ErrorMessage error={launch.error} title="Could not launch the profile" />}
      {job.error && <ErrorMessage error={job.error} title="Could not follow the profile job" />}
    </div>
  );
}

/** "Compare with commit": `a` fixed (the Memory tab's commit) or typed (the diff page); refs
 * without `ns/repo` are taken in `repo`. */
export function CompareByRef({ a: fixedA, repo }: { a?: string; repo: string }) {
  const nav = useNavigate();
  const lp = useLaunchProject();
  const [a, setA] = useState("");
  const [b, setB] = useState("");
  const [prep, setPrep] = useState<ProfileDiffPrepared | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const ja = useJob(prep?.a.job ?? "", !!prep && !prep.ready);
  const jb = useJob(prep?.b.job ?? "", !!prep && !prep.ready);
  const sa = ja.data?.status ?? prep?.a.status;
  const sb = jb.data?.status ?? prep?.b.status;
  useEffect(() => {
    if (prep && sa === "succeeded" && sb === "succeeded") nav(`/profiles/diff?a=${encodeURIComponent(prep.a.job)}&b=${encodeURIComponent(prep.b.job)}`);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [prep, sa, sb]);
  const specA = fixedA ?? refSpec(a, repo);
  const specB = refSpec(b, repo);
  const running = !!prep && !(JOB_ENDED.has(sa ?? "") && JOB_ENDED.has(sb ?? ""));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setPrep(null);
    setBusy(true);
    prepareProfileDiff(specA, specB, lp.project.trim()).then(setPrep, setError).finally(() => setBusy(false));
  };
  return (
    <div data-testid="compare-by-ref" style={{ margin: "8px 0" }}>
      <form className="row" style={{ gap: 8, flexWrap: "wrap" }} onSubmit={submit} aria-label="Compare profiles by commit">
        {fixedA === undefined && (
          <label>Commit A <input className="mono" value={a} onChange={(e) => setA(e.target.value)} placeholder={repo ? `${repo}@ref or ref` : "ns/repo@ref"} aria-label="Commit A" /></label>
        )}
        <label>{fixedA === undefined ? "Commit B" : "Compare with commit"} <input className="mono" value={b} onChange={(e) => setB(e.target.value)} placeholder={repo ? `${repo}@ref or ref` : "ns/repo@ref"} aria-label="Commit B" /></label>
        {lp.canLaunch && <ProjectField id={fixedA === undefined ? "diff-project" : "compare-project"} lp={lp} />}
        <button type="submit" disabled={!specA || !specB || busy || running}>{busy ? "Finding profiles…" : "Compare by commit"}</button>
      </form>
      <p className="small muted" style={{ margin: "2px 0" }}>Reuses each commit's profile of the same settings, or profiles it (as <code>hub profile diff {specA || "A"} {specB || "B"}</code>).</p>
      {prep && (
        <ul className="small" role="status" data-testid="compare-progress" style={{ margin: "4px 0", paddingLeft: 18 }}>
          <li>{sideProgress("A", prep.a, ja.data)}</li>
          <li>{sideProgress("B", prep.b, jb.data)}</li>
        </ul>
      )}
      {!!error && <ErrorMessage error={error} title="Could not compare the commits" />}
    </div>
  );
}
