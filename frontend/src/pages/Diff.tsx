/** Diff two refs at tensor level: changed/added/removed, ‖Δ‖₂, relative change, cosine,
 * max |Δ|; filter by name (substring or glob) and status, sort on any column; merge from
 * here. State in the URL: ?a=main&b=finetune/x&filter=layers.1.*&status=changed&sort=-l2 */
import { useEffect, useMemo, useState, type FormEvent } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { useDiff, useRepo } from "../api/hooks";
import type { DiffStatus, Ref } from "../api/types";
import { MergeDialog } from "../components/MergeDialog";
import { SortHeader } from "../components/SortHeader";
import { Empty, ErrorMessage, Loading } from "../components/States";
import { countByStatus, diffRows, filterRows, sortRows, type DiffRow, type DiffSortKey } from "../lib/diff";
import { fmtBytes, fmtNum, fmtShape, shortSha } from "../lib/format";
import { useMirror } from "../lib/useMirror";
import { useTitle } from "../lib/useTitle";

const STATUSES: DiffStatus[] = ["changed", "added", "removed"];
const LIMIT = 1000;

function RefInput({ id, label, value, refs, onChange }: { id: string; label: string; value: string; refs: Ref[]; onChange: (v: string) => void }) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  const commit = () => {
    if (draft.trim() && draft.trim() !== value) onChange(draft.trim());
  };
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type="text"
        list="diff-refs"
        value={draft}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => { if (e.key === "Enter") { e.preventDefault(); commit(); } }}
        placeholder="branch, tag or commit"
        style={{ width: 220 }}
        className="mono"
      />
      <datalist id="diff-refs">
        {refs.map((r) => <option key={`${r.kind}:${r.name}`} value={r.name}>{r.kind}</option>)}
      </datalist>
    </div>
  );
}

function Shape({ r }: { r: DiffRow }) {
  if (!r.tensor) return <span className="muted">file</span>;
  const a = r.a ? fmtShape(r.a.shape) : null;
  const b = r.b ? fmtShape(r.b.shape) : null;
  if (a && b && a !== b) return <span className="mono" style={{ color: "var(--changed)" }}>{a} → {b}</span>;
  return <span className="mono">{b ?? a}</span>;
}

function Dtype({ r }: { r: DiffRow }) {
  if (!r.tensor) return <span className="muted">—</span>;
  const a = r.a?.dtype;
  const b = r.b?.dtype;
  if (a && b && a !== b) return <span className="mono" style={{ color: "var(--changed)" }}>{a} → {b}</span>;
  return <span className="mono">{b ?? a}</span>;
}

export default function DiffPage() {
  const { ns = "", name = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const repo = useRepo(ns, name);
  const a = params.get("a") ?? repo.data?.default_branch ?? "";
  const b = params.get("b") ?? "";
  const filter = params.get("filter") ?? "";
  const [statusList, setStatusList] = useMirror((params.get("status") ?? STATUSES.join(",")).split(",").filter(Boolean) as DiffStatus[]);
  const statuses = new Set(statusList);
  const sortParam = params.get("sort") ?? "-l2";
  const sortKey = sortParam.replace(/^-/, "") as DiffSortKey;
  const desc = sortParam.startsWith("-");
  const diff = useDiff(ns, name, a, b);
  const [filterDraft, setFilterDraft] = useState(filter);
  const [showAll, setShowAll] = useState(false);
  const [merging, setMerging] = useState(false);
  useTitle(`Diff ${a}…${b}`);
  useEffect(() => setFilterDraft(filter), [filter]);

  const set = (patch: Record<string, string | null>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(patch)) {
      if (v === null || v === "") next.delete(k);
      else next.set(k, v);
    }
    setParams(next, { replace: true });
  };
  // Filter as you type, debounced into the URL.
  useEffect(() => {
    if (filterDraft === filter) return;
    const t = setTimeout(() => set({ filter: filterDraft }), 200);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [filterDraft]);

  const rows = useMemo(() => (diff.data ? diffRows(diff.data) : []), [diff.data]);
  const counts = countByStatus(rows);
  const visible = useMemo(() => sortRows(filterRows(rows, filter, statuses), sortKey, desc), [rows, filter, statusList.join(","), sortKey, desc]); // eslint-disable-line react-hooks/exhaustive-deps
  const unchanged = diff.data?.files.reduce((n, f) => n + (f.unchanged_tensors ?? 0), 0) ?? 0;
  const multiFile = new Set(rows.map((r) => r.file)).size > 1;
  const dir = (k: DiffSortKey) => (sortKey === k ? (desc ? "descending" : "ascending") : "none") as "ascending" | "descending" | "none";
  const sortBy = (k: DiffSortKey) => () => set({ sort: sortKey === k ? (desc ? k : `-${k}`) : k === "name" || k === "status" ? k : `-${k}` });
  const refs = repo.data?.refs ?? [];
  const aIsBranch = refs.some((r) => r.kind === "branch" && r.name === a);
  const base = `/models/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  const submitFilter = (e: FormEvent) => {
    e.preventDefault();
    set({ filter: filterDraft });
  };

  return (
    <>
      <div className="page-head">
        <div className="grow">
          <div className="crumbs"><Link to="/models">Models</Link> / <Link to={base}>{ns}/{name}</Link> /</div>
          <h1>Diff</h1>
          <p className="muted">Tensor-level differences from <strong>a</strong> to <strong>b</strong>: ‖Δ‖₂ is the L2 norm of b − a; relative change is ‖Δ‖₂ / ‖a‖₂.</p>
        </div>
      </div>
      <div className="toolbar" style={{ position: "static" }}>
        <RefInput id="ref-a" label="a (base)" value={a} refs={refs} onChange={(v) => set({ a: v })} />
        <button type="button" style={{ marginTop: 18 }} onClick={() => set({ a: b, b: a })} aria-label="Swap a and b" title="Swap a and b">⇄</button>
        <RefInput id="ref-b" label="b (compare)" value={b} refs={refs} onChange={(v) => set({ b: v })} />
        <div style={{ flex: 1 }} />
        <button type="button" className="primary" style={{ marginTop: 18 }} disabled={!aIsBranch || !b || a === b || !repo.data} onClick={() => setMerging(true)}
          title={aIsBranch ? `Merge ${b} into ${a}` : "a must be a branch to merge into it"}>
          Merge b into a…
        </button>
      </div>
      {!b ? (
        <Empty>Choose a ref to compare with {a || "a"}.</Empty>
      ) : diff.error ? (
        <ErrorMessage error={diff.error} title="Cannot diff these refs" />
      ) : diff.isPending ? (
        <Loading label="Computing the diff…" />
      ) : diff.data ? (
        <>
          <p className="small">
            <span className="mono">{diff.data.a.ref}</span> <span className="muted">({shortSha(diff.data.a.commit)})</span> →{" "}
            <span className="mono">{diff.data.b.ref}</span> <span className="muted">({shortSha(diff.data.b.commit)})</span> ·{" "}
            {diff.data.files.length} file{diff.data.files.length === 1 ? " differs" : "s differ"} ·{" "}
            <span className="badge changed">{counts.changed} changed</span> <span className="badge added">{counts.added} added</span>{" "}
            <span className="badge removed">{counts.removed} removed</span> · {unchanged.toLocaleString()} tensors unchanged
          </p>
          {rows.length === 0 ? (
            <Empty>No differences: both refs hold the same files.</Empty>
          ) : (
            <section className="panel flush">
              <form className="row" style={{ padding: "8px 10px" }} onSubmit={submitFilter} role="search">
                <label htmlFor="tensor-filter">Filter by name</label>
                <input id="tensor-filter" type="search" className="mono" value={filterDraft} onChange={(e) => setFilterDraft(e.target.value)} placeholder="experts.3  or  layers.1.*.experts.*" style={{ width: 300 }} />
                <fieldset className="row" style={{ border: "none", padding: 0, margin: 0 }}>
                  <legend className="sr-only">Statuses</legend>
                  {STATUSES.map((s) => (
                    <label key={s} className="inline">
                      <input
                        type="checkbox"
                        checked={statuses.has(s)}
                        onChange={() => {
                          const next = new Set(statuses);
                          if (next.has(s)) next.delete(s);
                          else next.add(s);
                          setStatusList([...next]);
                          set({ status: next.size === STATUSES.length ? null : [...next].join(",") || "none" });
                        }}
                      />
                      {s} ({counts[s]})
                    </label>
                  ))}
                </fieldset>
                <span className="muted small" aria-live="polite">{visible.length.toLocaleString()} shown</span>
              </form>
              <div className="table-wrap" style={{ maxHeight: "calc(100vh - 300px)" }}>
                <table className="data" aria-label="Tensor differences" data-testid="diff-table">
                  <thead>
                    <tr>
                      <SortHeader label="Status" direction={dir("status")} onSort={sortBy("status")} />
                      <SortHeader label="Tensor" direction={dir("name")} onSort={sortBy("name")} />
                      <th scope="col">Shape</th>
                      <th scope="col">Dtype</th>
                      <SortHeader label="Size" direction={dir("size")} onSort={sortBy("size")} className="num" />
                      <SortHeader label="‖Δ‖₂" direction={dir("l2")} onSort={sortBy("l2")} className="num" title="L2 norm of b − a" />
                      <SortHeader label="Rel. change" direction={dir("rel")} onSort={sortBy("rel")} className="num" title="‖b − a‖ / ‖a‖" />
                      <SortHeader label="Cosine" direction={dir("cosine")} onSort={sortBy("cosine")} className="num" title="cosine similarity of a and b" />
                      <SortHeader label="max |Δ|" direction={dir("maxAbs")} onSort={sortBy("maxAbs")} className="num" />
                    </tr>
                  </thead>
                  <tbody>
                    {(showAll ? visible : visible.slice(0, LIMIT)).map((r) => (
                      <tr key={r.id}>
                        <td><span className={`badge ${r.status}`}>{r.status}</span></td>
                        <td className="mono">{multiFile && r.tensor ? <span className="muted">{r.file}:</span> : null}{r.name}</td>
                        <td><Shape r={r} /></td>
                        <td><Dtype r={r} /></td>
                        <td className="num">{r.sizeA !== null && r.sizeB !== null && r.sizeA !== r.sizeB ? `${fmtBytes(r.sizeA)} → ${fmtBytes(r.sizeB)}` : fmtBytes(r.sizeB ?? r.sizeA)}</td>
                        <td className="num">{fmtNum(r.l2, 4)}</td>
                        <td className="num">{r.rel === null ? "—" : `${(r.rel * 100).toPrecision(3)}%`}</td>
                        <td className="num">{fmtNum(r.cosine, 5)}</td>
                        <td className="num">{fmtNum(r.maxAbs, 4)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                {visible.length === 0 && <Empty>No tensor matches the filter.</Empty>}
              </div>
              {!showAll && visible.length > LIMIT && (
                <button type="button" className="small" style={{ margin: 8 }} onClick={() => setShowAll(true)}>Show all {visible.length.toLocaleString()} rows</button>
              )}
            </section>
          )}
        </>
      ) : null}
      {repo.data && (
        <MergeDialog ns={ns} name={name} refs={refs} open={merging} onClose={() => setMerging(false)} initialSource={b} initialTarget={a} />
      )}
    </>
  );
}
