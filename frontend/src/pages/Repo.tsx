/** A model repo: branches and tags, the commit graph with merges, the files of a ref. */
import { useMemo, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import { get, qs, repoPath } from "../api/client";
import { fileDownloadUrl, useGraphCommits, useRepo, useRepoStats } from "../api/hooks";
import type { RepoDetail, TreeFile } from "../api/types";
import { CommitGraph } from "../components/CommitGraph";
import { MergeDialog } from "../components/MergeDialog";
import { ModelCard } from "../components/ModelCard";
import { WatermarkSwitch } from "../components/WatermarkSwitch";
import { Empty, ErrorMessage, Loading, QueryView } from "../components/States";
import { repoStatsParts } from "../lib/dedupe";
import { fmtAgo, fmtBytes, shortSha } from "../lib/format";
import { useTitle } from "../lib/useTitle";

type TreePage = { commit: string; files: TreeFile[]; next: string | null };

/** Every file of a ref: the first page resolves the ref, later pages are asked for by that
 * commit id, so a branch that moves meanwhile cannot mix two commits in one listing. */
export async function allTreeFiles(path: string, ref: string, signal?: AbortSignal): Promise<{ commit: string; files: TreeFile[] }> {
  let page = await get<TreePage>(`${path}${qs({ ref })}`, signal);
  const commit = page.commit;
  const files = [...page.files];
  for (let n = 2; page.next; n++) {
    page = await get<TreePage>(`${path}${qs({ ref: commit, page: String(n) })}`, signal);
    files.push(...page.files);
  }
  return { commit, files };
}

function Files({ ns, name, refName }: { ns: string; name: string; refName: string }) {
  const tree = useQuery({
    queryKey: ["tree", ns, name, refName],
    queryFn: ({ signal }) => allTreeFiles(`${repoPath(ns, name)}/tree`, refName, signal),
  });
  const base = `/models/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  return (
    <QueryView query={tree} label="Loading files…">
      {(t) =>
        t.files.length === 0 ? (
          <Empty>No files at {refName}.</Empty>
        ) : (
          <table className="data">
            <caption className="sr-only">Files at {refName}</caption>
            <thead>
              <tr><th scope="col">Path</th><th scope="col">Kind</th><th scope="col" className="num">Size</th><th scope="col"><span className="sr-only">Actions</span></th></tr>
            </thead>
            <tbody>
              {t.files.map((f) => (
                <tr key={f.path}>
                  <td className="mono">
                    <Link to={`${base}/commit/${t.commit}?file=${encodeURIComponent(f.path)}`}>{f.path}</Link>
                  </td>
                  <td>{f.kind}</td>
                  <td className="num">{fmtBytes(f.size)}</td>
                  <td>
                    <a href={fileDownloadUrl(ns, name, f.path, t.commit)} download aria-label={`Download ${f.path}`}>Download</a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      }
    </QueryView>
  );
}

function Refs({ repo, onMerge, current, setRef }: { repo: RepoDetail; onMerge: (source: string) => void; current: string; setRef: (r: string) => void }) {
  const base = `/models/${encodeURIComponent(repo.namespace)}/${encodeURIComponent(repo.name)}`;
  const branches = repo.refs.filter((r) => r.kind === "branch");
  const tags = repo.refs.filter((r) => r.kind === "tag");
  return (
    <>
      <table className="data">
        <caption style={{ textAlign: "left", padding: "8px 10px", fontWeight: 600 }}>Branches ({branches.length})</caption>
        <thead>
          <tr><th scope="col">Branch</th><th scope="col">Head</th><th scope="col">Updated</th><th scope="col"><span className="sr-only">Actions</span></th></tr>
        </thead>
        <tbody>
          {branches.map((b) => (
            <tr key={b.name} className={b.name === current ? "selected" : undefined}>
              <td>
                <button type="button" className="link" onClick={() => setRef(b.name)} aria-pressed={b.name === current} title="Show this branch's files">
                  {b.name}
                </button>
                {b.name === repo.default_branch && <span className="badge" style={{ marginLeft: 4 }}>default</span>}
                {b.protected && <span className="badge" style={{ marginLeft: 4 }} title="Only admins can move it">protected</span>}
              </td>
              <td><Link to={`${base}/commit/${b.commit}`} className="mono">{shortSha(b.commit, 8)}</Link></td>
              <td className="muted small">{fmtAgo(b.updated_at)}</td>
              <td className="nowrap">
                {b.name !== repo.default_branch && (
                  <>
                    <Link to={`${base}/diff?a=${encodeURIComponent(repo.default_branch)}&b=${encodeURIComponent(b.name)}`} className="small">Diff</Link>{" · "}
                    <button type="button" className="link small" onClick={() => onMerge(b.name)} aria-label={`Merge ${b.name}…`}>Merge…</button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <table className="data">
        <caption style={{ textAlign: "left", padding: "8px 10px", fontWeight: 600 }}>Tags ({tags.length})</caption>
        <thead><tr><th scope="col">Tag</th><th scope="col">Commit</th><th scope="col">Message</th></tr></thead>
        <tbody>
          {tags.length === 0 && <tr><td colSpan={3} className="muted">No tags.</td></tr>}
          {tags.map((t) => (
            <tr key={t.name} className={t.name === current ? "selected" : undefined}>
              <td><button type="button" className="link" onClick={() => setRef(t.name)} aria-pressed={t.name === current}>{t.name}</button></td>
              <td><Link to={`${base}/commit/${t.commit}`} className="mono">{shortSha(t.commit, 8)}</Link></td>
              <td className="wrap small">{t.message || <span className="muted">—</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** The repo's size: head, all versions, what the store holds for them. */
export function RepoSize({ ns, name }: { ns: string; name: string }) {
  const stats = useRepoStats(ns, name);
  if (stats.error) return <ErrorMessage error={stats.error} title="Could not read the repo's size" />;
  if (!stats.data) return <p className="muted small">Measuring…</p>;
  const s = stats.data;
  const [lead, saved] = repoStatsParts(s);
  return (
    <p className="small" aria-label="Size" data-testid="repo-size"
      title="Logical: every version of every file, counted once. Stored: the distinct chunks those files reference (one copy of each).">
      {lead}{saved && <> — <strong>{saved}</strong></>} · head {fmtBytes(s.head_bytes)}
    </p>
  );
}

function Graph({ repo }: { repo: RepoDetail }) {
  const names = useMemo(() => repo.refs.map((r) => r.name).sort(), [repo.refs]);
  const graph = useGraphCommits(repo.namespace, repo.name, names);
  const base = `/models/${encodeURIComponent(repo.namespace)}/${encodeURIComponent(repo.name)}`;
  if (graph.error) return <ErrorMessage error={graph.error} title="Could not load the history" />;
  if (!graph.data) return <Loading label="Loading history…" />;
  if (!graph.data.commits.length) return <Empty>No commits yet.</Empty>;
  return <CommitGraph commits={graph.data.commits} refs={repo.refs} base={base} truncated={graph.data.truncated} />;
}

export default function RepoPage() {
  const { ns = "", name = "" } = useParams();
  const repo = useRepo(ns, name);
  useTitle(`${ns}/${name}`);
  const [params, setParams] = useSearchParams();
  const [mergeSource, setMergeSource] = useState<string | null>(null);
  return (
    <QueryView query={repo} label="Loading repo…">
      {(r) => {
        const current = params.get("ref") || r.default_branch;
        const setRef = (ref: string) => setParams(ref === r.default_branch ? {} : { ref }, { replace: true });
        const otherBranch = r.refs.find((x) => x.kind === "branch" && x.name !== r.default_branch)?.name ?? r.default_branch;
        const base = `/models/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
        const branchRef = r.refs.find((x) => x.kind === "branch" && x.name === current);
        return (
          <>
            <div className="page-head">
              <div className="grow">
                <div className="crumbs"><Link to="/models">Models</Link> /</div>
                <h1>{r.id}</h1>
                <p className="muted">{r.description || "No description."} · {r.private ? "private" : "public"} · updated {fmtAgo(r.updated_at)}</p>
                <RepoSize ns={ns} name={name} />
                <WatermarkSwitch ns={ns} name={name} />
              </div>
              <Link className="button" to={`${base}/playground${qs({ ref: current })}`}>Playground</Link>
              <Link className="button" to={`${base}/diff?a=${encodeURIComponent(r.default_branch)}&b=${encodeURIComponent(otherBranch)}`}>Compare refs</Link>
              <button type="button" onClick={() => setMergeSource(otherBranch)} disabled={r.refs.filter((x) => x.kind === "branch").length < 2}>Merge…</button>
              <a className="button" href={`/api/v1${repoPath(ns, name)}/archive${qs({ ref: current })}`} download>Download {current} (.tar)</a>
            </div>
            <div style={{ marginBottom: 12 }}>
              <ModelCard ns={ns} name={name} refName={current} branch={branchRef?.name} head={branchRef?.commit} />
            </div>
            <div className="side-layout" style={{ gridTemplateColumns: "minmax(0, 470px) minmax(0, 1fr)" }}>
              <div className="stack">
                <section className="panel flush" aria-label="Branches and tags">
                  <Refs repo={r} current={current} setRef={setRef} onMerge={setMergeSource} />
                </section>
                <section className="panel flush" aria-labelledby="files-h">
                  <h2 id="files-h" style={{ padding: "8px 10px", margin: 0 }}>Files at <span className="mono">{current}</span></h2>
                  <Files ns={ns} name={name} refName={current} />
                </section>
              </div>
              <section className="panel flush" aria-labelledby="history-h">
                <h2 id="history-h" style={{ padding: "8px 10px", margin: 0 }}>History (all branches)</h2>
                <Graph repo={r} />
              </section>
            </div>
            <MergeDialog
              ns={ns}
              name={name}
              refs={r.refs}
              open={mergeSource !== null}
              onClose={() => setMergeSource(null)}
              initialSource={mergeSource ?? otherBranch}
              initialTarget={r.default_branch}
            />
          </>
        );
      }}
    </QueryView>
  );
}
