/** Projects → runs table: the tracker's query language with inline errors, facets,
 * server-side sort and pagination, chosen columns, multi-select to compare. All of it in the
 * URL. */
import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams, useSearchParams } from "react-router";
import { ApiError } from "../api/client";
import { useRunFacets, useRunSearch } from "../api/hooks";
import type { RunHit, RunSearch } from "../api/types";
import { ColumnPicker } from "../components/ColumnPicker";
import { SortHeader } from "../components/SortHeader";
import { AlertBadge, type AlertCounts } from "../components/RunAlerts";
import { Empty, ErrorMessage, Loading, StatusBadge } from "../components/States";
import { availableColumns, cellValue, columnKind, columnLabel, defaultColumns, sortable } from "../lib/columns";
import { fmtAgo, fmtValue } from "../lib/format";
import {
  errorMarker,
  facetClause,
  hasClause,
  nextSort,
  PAGE_SIZES,
  parseRunsState,
  runsStateToParams,
  sortDirection,
  toggleClause,
  type RunsState,
} from "../lib/runsQuery";
import { useMirror } from "../lib/useMirror";
import { useTitle } from "../lib/useTitle";

const FIXED_FACETS = ["status", "tags", "user"];

function QueryHelp() {
  return (
    <details className="small muted" style={{ marginTop: 4 }}>
      <summary>Query syntax</summary>
      <ul style={{ margin: "4px 0", paddingLeft: 18 }}>
        <li><code>params.moe.top_k:4 AND summary.val_loss:&lt;2.1</code> — a param equals, a metric's last value below</li>
        <li><code>tags:baseline OR tags:sweep</code>, <code>NOT status:failed</code>, parentheses</li>
        <li><code>params.lr:[1e-4 TO 1e-3]</code> ranges, <code>name:moe-*</code> wildcards, <code>summary.val_loss.min:&lt;2</code></li>
        <li>bare words search names and notes (fuzzy)</li>
      </ul>
    </details>
  );
}

function Facets({ data, q, onToggle }: { data: RunSearch | undefined; q: string; onToggle: (clause: string) => void }) {
  if (!data) return null;
  const entries = Object.entries(data.facets ?? {}).filter(([, vals]) => vals.length > 0);
  if (!entries.length) return <p className="muted small">No facets for these runs.</p>;
  return (
    <nav className="facets" aria-label="Facets">
      {entries.map(([field, vals]) => (
        <section key={field}>
          <h3>{field.startsWith("params.") ? field.slice(7) : field}</h3>
          <ul>
            {vals.slice(0, 12).map((v) => {
              const clause = facetClause(field, v.value);
              const on = hasClause(q, clause);
              return (
                <li key={v.value}>
                  <button type="button" aria-pressed={on} onClick={() => onToggle(clause)} title={clause}>
                    <span className="cell-trunc" style={{ maxWidth: 150 }}>{v.value}</span>
                    <span className="count">{v.count.toLocaleString()}</span>
                  </button>
                </li>
              );
            })}
          </ul>
        </section>
      ))}
    </nav>
  );
}

function Cell({ run, col }: { run: RunHit; col: string }) {
  const v = cellValue(run, col);
  if (col === "status") return <StatusBadge status={run.status} />;
  if (col === "created_at") return <span title={run.created_at}>{fmtAgo(run.created_at)}</span>;
  if (col === "tags")
    return (
      <>
        {run.tags.slice(0, 4).map((t) => (
          <span key={t} className="tag-chip">{t}</span>
        ))}
        {run.tags.length > 4 && <span className="muted small">+{run.tags.length - 4}</span>}
      </>
    );
  if (v === undefined || v === null) return <span className="muted">—</span>;
  return <span className="cell-trunc">{fmtValue(v)}</span>;
}

export default function RunsPage() {
  const { ns = "", name = "" } = useParams();
  const project = `${ns}/${name}`;
  useTitle(project);
  const [params, setParams] = useSearchParams();
  const state = parseRunsState(params);
  const navigate = useNavigate();
  const update = (patch: Partial<RunsState>, replace = false) =>
    setParams(runsStateToParams({ ...state, ...patch }), { replace });

  // Columns: from the URL, else chosen once from the first page of results.
  const autoCols = useRef<string[] | null>(null);
  const [draft, setDraft] = useState(state.q);
  useEffect(() => setDraft(state.q), [state.q]);

  const [facetsDone, setFacetsDone] = useState(false);
  const search = useRunSearch({ ns, name, q: state.q, sort: state.sort, offset: state.offset, size: state.size }, facetsDone);
  if (search.data && autoCols.current === null && !search.isPlaceholderData) autoCols.current = defaultColumns(search.data.results);
  const paramFacetCols = (state.cols ?? autoCols.current ?? []).filter((c) => c.startsWith("params.")).slice(0, 4);
  // Facets after the rows (the engine answers the page first), then the next page's prefetch.
  const facets = useRunFacets({ ns, name, q: state.q }, [...FIXED_FACETS, ...paramFacetCols], !!search.data || !!search.error);
  useEffect(() => setFacetsDone(!facets.isFetching && (!!facets.data || !!facets.error)), [facets.isFetching, facets.data, facets.error]);
  // A query error keeps the last good results on screen (dimmed), as the error is inline.
  const lastGood = useRef<RunSearch | undefined>(undefined);
  if (search.data) lastGood.current = search.data;
  const stale = !search.data && !!search.error;
  const data = search.data ?? (stale ? lastGood.current : undefined);
  // Benchmarks and the e2e tests time the table with this mark (see tests/bench/bench_dashboard.py).
  useEffect(() => {
    if (search.data && !search.isPlaceholderData) performance.mark("runs-table-rendered");
  }, [search.data, search.isPlaceholderData]);
  const cols = state.cols ?? autoCols.current ?? [];
  const available = useMemo(() => availableColumns(data?.results ?? []), [data]);

  const queryError = search.error instanceof ApiError && search.error.code === "invalid_query" ? search.error : null;
  const marker = queryError ? errorMarker(state.q, (queryError.details as { position?: number } | null)?.position) : null;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    update({ q: draft.trim(), offset: 0 });
  };
  const [selList, setSelList] = useMirror(state.sel);
  const sel = new Set(selList);
  const setSel = (ids: string[]) => {
    setSelList(ids);
    update({ sel: ids }, true);
  };
  const toggleSel = (id: string) => {
    const next = new Set(sel);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSel([...next]);
  };
  const pageIds = data?.results.map((r) => r.id) ?? [];
  const allOnPage = pageIds.length > 0 && pageIds.every((id) => sel.has(id));
  const compareHref = `/projects/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/compare?runs=${selList.join(",")}`;

  const fixed = ["status", "created_at", "user", "tags"];
  return (
    <>
      <div className="page-head">
        <div className="grow">
          <div className="crumbs"><Link to="/projects">Projects</Link> /</div>
          <h1>{project}</h1>
        </div>
      </div>

      <form className="search-box" onSubmit={submit} role="search">
        <div className="field">
          <label htmlFor="run-query">Search runs</label>
          <input
            id="run-query"
            type="search"
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            placeholder="params.model.top_k:4 AND summary.val/loss:<3 AND tags:train"
            aria-invalid={queryError ? true : undefined}
            aria-describedby="run-query-error"
            spellCheck={false}
            autoComplete="off"
          />
          <div id="run-query-error" aria-live="polite">
            {queryError && (
              <div role="alert" data-testid="query-error">
                <div className="query-error">{queryError.message}</div>
                {marker && (
                  <div className="query-error" aria-hidden="true">
                    {marker.before}
                    <mark>{marker.at}</mark>
                    {marker.after}
                  </div>
                )}
              </div>
            )}
          </div>
          <QueryHelp />
        </div>
        <button type="submit" className="primary" style={{ marginTop: 19 }}>Search</button>
        {state.q && (
          <button type="button" style={{ marginTop: 19 }} onClick={() => { setDraft(""); update({ q: "", offset: 0 }); }}>
            Clear
          </button>
        )}
      </form>

      <div className="side-layout" style={{ marginTop: 12 }}>
        <aside className="panel">
          {facets.isPending && !facets.data ? (
            <p className="muted small"><span className="spinner" aria-hidden="true" />Counting facets…</p>
          ) : (
            <Facets data={facets.data} q={state.q} onToggle={(c) => update({ q: toggleClause(state.q, c), offset: 0 })} />
          )}
        </aside>
        <section className="panel flush" aria-label="Runs">
          <div className="row" style={{ padding: "8px 10px", borderBottom: "1px solid var(--border)" }}>
            <strong aria-live="polite">
              {data ? `${data.total.toLocaleString()} run${data.total === 1 ? "" : "s"}` : "…"}
            </strong>
            {data && <span className="muted small">search {Math.round(data.engine_elapsed_ms)} ms</span>}
            {search.isFetching && <span className="spinner" role="status" aria-label="Loading runs" />}
            <div style={{ flex: 1 }} />
            {selList.length > 0 && (
              <>
                <span className="small">{selList.length} selected</span>
                <button type="button" className="small" onClick={() => setSel([])}>Clear selection</button>
              </>
            )}
            <button type="button" className="primary" disabled={selList.length < 2} onClick={() => navigate(compareHref)}
              title={selList.length < 2 ? "Select two runs or more" : undefined}>
              Compare{selList.length ? ` (${selList.length})` : ""}
            </button>
            <ColumnPicker available={available} chosen={cols} onChange={(c) => update({ cols: c }, true)} onReset={() => { autoCols.current = data ? defaultColumns(data.results) : null; update({ cols: null }, true); }} />
          </div>
          {search.error && !queryError && <ErrorMessage error={search.error} retry={() => void search.refetch()} />}
          {stale && data && <div className="notice small" style={{ margin: 8 }}>Showing the results of the last valid query.</div>}
          {!data && search.isPending ? (
            <Loading label="Searching runs…" />
          ) : data && data.results.length === 0 ? (
            <Empty>
              {state.q ? <>No run matches this query.</> : <>No runs in this project yet. Log one with the SDK: <code>{`client.init_run("${project}")`}</code></>}
            </Empty>
          ) : data ? (
            <>
              <div className="table-wrap freeze-2" style={{ maxHeight: "calc(100vh - 250px)" }}>
                <table className="data" aria-label={`Runs of ${project}`} aria-busy={search.isFetching} style={stale ? { opacity: 0.55 } : undefined}>
                  <thead>
                    <tr>
                      <th scope="col">
                        <input
                          type="checkbox"
                          aria-label="Select all runs on this page"
                          checked={allOnPage}
                          onChange={() => setSel(allOnPage ? selList.filter((id) => !pageIds.includes(id)) : [...new Set([...selList, ...pageIds])])}
                        />
                      </th>
                      <SortHeader label="Name" direction={sortDirection(state.sort, "name")} onSort={() => update({ sort: nextSort(state.sort, "name"), offset: 0 })} />
                      <th scope="col" title="MoE health alerts">Alerts</th>
                      {fixed.map((c) => (
                        <SortHeader key={c} label={columnLabel(c)} sortable={sortable(c)} direction={sortDirection(state.sort, c)} onSort={() => update({ sort: nextSort(state.sort, c), offset: 0 })} />
                      ))}
                      {cols.map((c) => (
                        <SortHeader
                          key={c}
                          label={columnLabel(c)}
                          sub={columnKind(c)}
                          className={columnKind(c)}
                          title={c}
                          direction={sortDirection(state.sort, c)}
                          onSort={() => update({ sort: nextSort(state.sort, c), offset: 0 })}
                        />
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {data.results.map((r) => (
                      <tr key={r.id} className={sel.has(r.id) ? "selected" : undefined}>
                        <td>
                          <input type="checkbox" aria-label={`Select run ${r.name}`} checked={sel.has(r.id)} onChange={() => toggleSel(r.id)} />
                        </td>
                        <td>
                          <Link to={`/runs/${r.id}`} className="cell-trunc" title={r.name}>{r.name}</Link>
                        </td>
                        <td><AlertBadge alerts={(r as typeof r & { alerts?: AlertCounts }).alerts} /></td>
                        {fixed.map((c) => (
                          <td key={c}><Cell run={r} col={c} /></td>
                        ))}
                        {cols.map((c) => (
                          <td key={c} className={columnKind(c) === "fixed" ? undefined : "num"}><Cell run={r} col={c} /></td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <div className="pager">
                <button type="button" disabled={state.offset === 0} onClick={() => update({ offset: Math.max(0, state.offset - state.size) })}>
                  ← Previous
                </button>
                <span className="small">
                  {(state.offset + 1).toLocaleString()}–{Math.min(state.offset + state.size, data.total).toLocaleString()} of {data.total.toLocaleString()}
                </span>
                <button type="button" disabled={state.offset + state.size >= data.total} onClick={() => update({ offset: state.offset + state.size })}>
                  Next →
                </button>
                <div style={{ flex: 1 }} />
                <label htmlFor="page-size" className="small">Rows per page</label>
                <select id="page-size" value={state.size} onChange={(e) => update({ size: Number(e.target.value), offset: 0 })}>
                  {PAGE_SIZES.map((n) => <option key={n} value={n}>{n}</option>)}
                </select>
              </div>
            </>
          ) : null}
        </section>
      </div>
    </>
  );
}
