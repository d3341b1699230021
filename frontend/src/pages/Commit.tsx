/** A commit: message, author, parents, refs, lineage (run, job, merge), metadata, and its
 * files with downloads and each safetensors file's tensor table. */
import { Link, useParams, useSearchParams } from "react-router";
import { fileDownloadUrl, useCommit, useFileInfo, useJob, useRepo } from "../api/hooks";
import { ModelCard } from "../components/ModelCard";
import type { TreeFile } from "../api/types";
import { Empty, ErrorMessage, Loading, QueryView } from "../components/States";
import { asDp, dpGuarantee, dpMechanism, type DpRecord } from "../lib/dp";
import { TensorTable } from "../components/TensorTable";
import { commitStatsLine } from "../lib/dedupe";
import { fmtBytes, fmtDate, fmtValue, shortSha } from "../lib/format";
import { useTitle } from "../lib/useTitle";

function FileDetail({ ns, name, sha, file }: { ns: string; name: string; sha: string; file: TreeFile }) {
  const info = useFileInfo(ns, name, file.path, sha, file.kind === "safetensors");
  if (file.kind !== "safetensors") return <p className="muted small" style={{ padding: "0 10px" }}>Not a tensor file.</p>;
  if (info.error) return <ErrorMessage error={info.error} />;
  if (!info.data) return <Loading label="Reading the tensor index…" />;
  return (
    <>
      {info.data.metadata && Object.keys(info.data.metadata).length > 0 && (
        <p className="small" style={{ padding: "0 10px" }}>
          <span className="muted">Header metadata:</span>{" "}
          {Object.entries(info.data.metadata).map(([k, v]) => <code key={k} style={{ marginRight: 8 }}>{k}={v}</code>)}
        </p>
      )}
      {info.data.tensors ? <TensorTable tensors={info.data.tensors} label={file.path} /> : <Empty>No tensors.</Empty>}
    </>
  );
}

function Meta({ data }: { data: Record<string, unknown> }) {
  const entries = Object.entries(data);
  if (!entries.length) return <span className="muted">none</span>;
  return (
    <dl className="kv">
      {entries.map(([k, v]) => (
        <div key={k} style={{ display: "contents" }}>
          <dt className="mono">{k}</dt>
          <dd className="mono small">{typeof v === "object" && v !== null ? <pre style={{ margin: 0, whiteSpace: "pre-wrap" }}>{JSON.stringify(v, null, 2)}</pre> : fmtValue(v)}</dd>
        </div>
      ))}
    </dl>
  );
}

/** The DP-SGD guarantee in a commit's metadata. Anyone who can push can write metadata (and
 * a job id), so the row says whether the job's own record confirms it: the job named on the
 * commit produced this very commit and its summary holds the same (ε, δ). */
function DpRow({ dp, sha, jobId }: { dp: DpRecord; sha: string; jobId: string }) {
  const job = useJob(jobId, !!jobId);
  const rec = asDp(job.data?.summary?.dp);
  const confirmed = !!rec && job.data?.result?.commit === sha && rec.epsilon === dp.epsilon && rec.delta === dp.delta;
  return (
    <>
      <dt>Privacy</dt>
      <dd data-testid="commit-dp">
        trained with DP-SGD: <strong>{dpGuarantee(dp)}</strong>
        <span className="muted small"> ({dpMechanism(dp)}; unit: one training window)</span>{" "}
        {confirmed ? (
          <span className="badge" data-testid="commit-dp-confirmed">confirmed by job {jobId}</span>
        ) : (
          <span className="muted small" data-testid="commit-dp-unconfirmed">
            {jobId && job.isPending ? "checking the job's record…" : "as the commit's metadata states: no job record confirms it"}
          </span>
        )}
      </dd>
    </>
  );
}

export default function CommitPage() {
  const { ns = "", name = "", sha = "" } = useParams();
  const commit = useCommit(ns, name, sha);
  const repo = useRepo(ns, name);
  const [params, setParams] = useSearchParams();
  const open = params.get("file");
  const base = `/models/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  useTitle(`${shortSha(sha)} · ${ns}/${name}`);
  return (
    <QueryView query={commit} label="Loading commit…">
      {(c) => {
        const [title, ...rest] = c.message.split("\n");
        const refs = repo.data?.refs.filter((r) => r.commit === c.sha) ?? [];
        const merge = (c.metadata?.merge ?? null) as Record<string, unknown> | null;
        const dp = asDp(c.metadata?.dp);
        const otherMeta = Object.fromEntries(Object.entries(c.metadata ?? {}).filter(([k]) => k !== "merge"));
        const toggle = open ? open : c.files.length === 1 ? c.files[0].path : null;
        return (
          <>
            <div className="page-head">
              <div className="grow">
                <div className="crumbs">
                  <Link to="/models">Models</Link> / <Link to={base}>{ns}/{name}</Link> /
                </div>
                <h1>{title || "(no message)"}</h1>
                {rest.join("\n").trim() && <pre className="small" style={{ whiteSpace: "pre-wrap" }}>{rest.join("\n").trim()}</pre>}
                <div className="row small muted">
                  <span className="mono">{c.sha}</span>
                  {refs.map((r) => <span key={r.name} className={`badge ${r.kind}`}>{r.name}</span>)}
                </div>
              </div>
              {c.parents[0] && (
                <Link className="button" to={`${base}/diff?a=${c.parents[0]}&b=${c.sha}`}>Diff with parent</Link>
              )}
              <Link className="button" to={`${base}/playground?ref=${c.sha}`}>Playground</Link>
              <Link className="button" to={`${base}/commit/${c.sha}/inspect`}>Inspect</Link>
              <Link className="button" to={`${base}/commit/${c.sha}/inspect?tab=memory`} title="This commit's profile: memory and tensor lifetimes; compare it with another profile">Profile &amp; memory</Link>
              <a className="button" href={`/api/v1/repos/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/archive?ref=${c.sha}`} download>Download (.tar)</a>
            </div>
            <div className="grid-2" style={{ marginBottom: 12 }}>
              <section className="panel">
                <h2>Commit</h2>
                <dl className="kv">
                  <dt>Author</dt><dd>{c.author}</dd>
                  <dt>Date</dt><dd>{fmtDate(c.created_at)}</dd>
                  <dt>Parents</dt>
                  <dd>
                    {c.parents.length === 0 ? "none (root commit)" : c.parents.map((p, i) => (
                      <span key={p}>{i > 0 && ", "}<Link to={`${base}/commit/${p}`} className="mono">{shortSha(p)}</Link></span>
                    ))}
                    {c.parents.length > 1 && <span className="muted"> (merge)</span>}
                  </dd>
                  <dt>Tree</dt><dd className="mono small">{shortSha(c.tree, 16)}</dd>
                  {c.stats && (
                    <>
                      <dt>Size</dt>
                      <dd>{fmtBytes(c.stats.bytes)} in {c.stats.files} file{c.stats.files === 1 ? "" : "s"}</dd>
                      <dt>Stored</dt>
                      <dd data-testid="commit-stats"
                        title={c.parents.length > 1 ? "New: chunks no parent has. Reused: chunks one of the parents already has." : "New: chunks the parent does not have. Reused: chunks the parent already has."}>
                        {commitStatsLine(c.stats)}
                      </dd>
                    </>
                  )}
                </dl>
              </section>
              <section className="panel" aria-labelledby="lineage-h">
                <h2 id="lineage-h">Lineage</h2>
                <dl className="kv">
                  <dt>Run</dt><dd>{c.run_id ? <Link to={`/runs/${c.run_id}`} className="mono">{c.run_id}</Link> : <span className="muted">—</span>}</dd>
                  <dt>Job</dt><dd>{c.job_id ? <Link to={`/jobs/${c.job_id}`} className="mono">{c.job_id}</Link> : <span className="muted">—</span>}</dd>
                  {dp && <DpRow dp={dp} sha={c.sha} jobId={c.job_id ?? ""} />}
                  {merge && (
                    <>
                      <dt>Merged</dt>
                      <dd>
                        {String(merge.source ?? "")} with strategy <code>{String(merge.strategy ?? "none")}</code>
                        {merge.weight !== null && merge.weight !== undefined && <> (w = {String(merge.weight)})</>}
                        {typeof merge.base === "string" && <> from base <Link to={`${base}/commit/${merge.base}`} className="mono">{shortSha(merge.base)}</Link></>}
                      </dd>
                    </>
                  )}
                </dl>
                <h3>Metadata</h3>
                <Meta data={otherMeta} />
              </section>
            </div>
            <div style={{ marginBottom: 12 }}>
              <ModelCard ns={ns} name={name} refName={c.sha} />
            </div>
            <section className="panel flush" aria-labelledby="files-h">
              <h2 id="files-h" style={{ padding: "8px 10px", margin: 0 }}>Files ({c.files.length})</h2>
              {c.files.length === 0 ? (
                <Empty>This commit has no files.</Empty>
              ) : (
                <table className="data">
                  <thead>
                    <tr><th scope="col">Path</th><th scope="col">Kind</th><th scope="col" className="num">Size</th><th scope="col"><span className="sr-only">Actions</span></th></tr>
                  </thead>
                  <tbody>
                    {c.files.map((f) => (
                      <tr key={f.path} className={toggle === f.path ? "selected" : undefined}>
                        <td className="mono">
                          {f.kind === "safetensors" ? (
                            <button type="button" className="link mono" aria-expanded={toggle === f.path}
                              onClick={() => setParams(toggle === f.path ? {} : { file: f.path }, { replace: true })}>
                              {f.path}
                            </button>
                          ) : f.path}
                        </td>
                        <td>{f.kind}</td>
                        <td className="num">{fmtBytes(f.size)}</td>
                        <td><a href={fileDownloadUrl(ns, name, f.path, c.sha)} download aria-label={`Download ${f.path}`}>Download</a></td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </section>
            {toggle && c.files.find((f) => f.path === toggle) && (
              <section className="panel flush" style={{ marginTop: 12 }} aria-labelledby="tensors-h">
                <h2 id="tensors-h" style={{ padding: "8px 10px", margin: 0 }}>Tensors of <span className="mono">{toggle}</span></h2>
                <FileDetail ns={ns} name={name} sha={c.sha} file={c.files.find((f) => f.path === toggle)!} />
              </section>
            )}
          </>
        );
      }}
    </QueryView>
  );
}
