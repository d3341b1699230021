/** Models: search by name, card fields, card text and producing runs' metrics, with facet
 * filters (tag, license, base model). The query and filters live in the URL, so a search
 * is a link; a hub whose search engine is away still lists its repos. */
import { useEffect, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { useModelSearch, type FacetCount, type ModelFilters, type ModelHit } from "../api/cards";
import { useRepos } from "../api/hooks";
import { Empty, ErrorMessage, Loading, QueryView } from "../components/States";
import { fmtAgo, fmtDate } from "../lib/format";
import { useTitle } from "../lib/useTitle";

const FACETS: { key: "tag" | "license" | "base_model"; facet: "tags" | "license" | "base_model"; label: string }[] = [
  { key: "tag", facet: "tags", label: "Tags" },
  { key: "license", facet: "license", label: "License" },
  { key: "base_model", facet: "base_model", label: "Base model" },
];

function repoLink(ns: string, name: string): string {
  return `/models/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
}

function Facet({ label, counts, selected, toggle }: { label: string; counts: FacetCount[]; selected: string[]; toggle: (v: string) => void }) {
  const shown = [...counts];
  for (const v of selected) if (!shown.some((c) => c.value === v)) shown.push({ value: v, count: 0 });
  return (
    <fieldset>
      <legend className="small muted">{label}</legend>
      {shown.length === 0 && <span className="small muted">none</span>}
      {shown.map((c) => (
        <label key={c.value}>
          <input type="checkbox" checked={selected.includes(c.value)} onChange={() => toggle(c.value)} />
          <span className="grow">{c.value}</span>
          <span className="muted small">{c.count}</span>
        </label>
      ))}
    </fieldset>
  );
}

function lastMetrics(m: ModelHit): string {
  return Object.entries(m.metrics)
    .slice(0, 3)
    .map(([k, s]) => `${k} ${(s.last ?? []).map((v) => v.toPrecision(4)).join("/")}`)
    .join(" · ");
}

function Results({ hits, total }: { hits: ModelHit[]; total: number }) {
  if (!hits.length) return <Empty>No model matches this search.</Empty>;
  return (
    <div className="panel flush table-wrap">
      <table className="data" aria-label="Models found">
        <caption className="sr-only">{total} models found</caption>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">License</th>
            <th scope="col">Tags</th>
            <th scope="col">Base model</th>
            <th scope="col">Metrics</th>
            <th scope="col">Updated</th>
          </tr>
        </thead>
        <tbody>
          {hits.map((m) => (
            <tr key={m.id}>
              <td>
                <Link to={repoLink(m.namespace, m.name)}>{m.id}</Link>
                {m.private && <span className="badge" style={{ marginLeft: 4 }}>private</span>}
                {m.card === "generated" && <span className="badge" style={{ marginLeft: 4 }} title="No README.md: the card is generated from lineage">generated card</span>}
                {m.card === "invalid" && <span className="badge failed" style={{ marginLeft: 4 }}>invalid metadata</span>}
                {m.description && <div className="small muted wrap">{m.description}</div>}
              </td>
              <td>{m.license ?? <span className="muted">—</span>}</td>
              <td className="wrap">{m.tags.map((t) => <span key={t} className="badge" style={{ marginRight: 3 }}>{t}</span>)}</td>
              <td className="small">{m.base_model.join(", ") || <span className="muted">—</span>}</td>
              <td className="small mono">{lastMetrics(m) || <span className="muted">—</span>}</td>
              <td className="small muted" title={fmtDate(m.updated_at)}>{fmtAgo(m.updated_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The plain repo list: what the page shows when the search engine cannot answer. */
function RepoList() {
  const repos = useRepos();
  return (
    <QueryView query={repos} label="Loading repos…">
      {(page) =>
        page.results.length === 0 ? (
          <Empty>
            No model repos yet. Push one with <code>hub push ./checkpoint --repo you/model</code>.
          </Empty>
        ) : (
          <div className="panel flush table-wrap">
            <table className="data">
              <thead>
                <tr><th scope="col">Repo</th><th scope="col">Description</th><th scope="col">Visibility</th><th scope="col">Created</th></tr>
              </thead>
              <tbody>
                {page.results.map((r) => (
                  <tr key={r.id}>
                    <td><Link to={repoLink(r.namespace, r.name)}>{r.id}</Link></td>
                    <td className="wrap">{r.description || <span className="muted">—</span>}</td>
                    <td>{r.private ? "private" : "public"}</td>
                    <td>{fmtDate(r.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      }
    </QueryView>
  );
}

export function ModelsPage() {
  useTitle("Models");
  const [params, setParams] = useSearchParams();
  const filters: ModelFilters = {
    q: params.get("q") ?? "",
    tag: params.getAll("tag"),
    license: params.getAll("license"),
    base_model: params.getAll("base_model"),
  };
  const [text, setText] = useState(filters.q);
  useEffect(() => setText(filters.q), [filters.q]);
  const search = useModelSearch(filters);

  const update = (next: ModelFilters) => {
    const p = new URLSearchParams();
    if (next.q) p.set("q", next.q);
    for (const { key } of FACETS) for (const v of next[key]) p.append(key, v);
    setParams(p, { replace: true });
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    update({ ...filters, q: text.trim() });
  };
  const toggle = (key: "tag" | "license" | "base_model", value: string) => {
    const cur = filters[key];
    update({ ...filters, [key]: cur.includes(value) ? cur.filter((v) => v !== value) : [...cur, value] });
  };

  return (
    <>
      <div className="page-head">
        <div className="grow">
          <h1>Models</h1>
          <p className="muted">Versioned model repos: branches, tags, tensor-level diffs and merges.</p>
        </div>
        <form className="row" role="search" onSubmit={submit} style={{ gap: 6, alignItems: "end" }}>
          <div className="field">
            <label htmlFor="model-search">Search models</label>
            <input id="model-search" type="search" value={text} onChange={(e) => setText(e.target.value)}
              placeholder="name, card text, tag:moe, metric:val_loss<2.0" style={{ minWidth: 320 }} />
          </div>
          <button type="submit">Search</button>
        </form>
      </div>
      <div className="side-layout" style={{ gridTemplateColumns: "220px minmax(0, 1fr)" }}>
        <aside className="facets" aria-label="Filters">
          {search.data &&
            FACETS.map(({ key, facet, label }) => (
              <Facet key={key} label={label} counts={search.data.facets[facet]} selected={filters[key]} toggle={(v) => toggle(key, v)} />
            ))}
        </aside>
        <div>
          {search.error && search.data === undefined ? (
            <>
              <ErrorMessage error={search.error} title="Model search is unavailable; all repos are listed instead" retry={() => void search.refetch()} />
              <RepoList />
            </>
          ) : search.data === undefined ? (
            <Loading label="Searching models…" />
          ) : (
            <>
              <p className="small muted" role="status">
                {search.data.total} model{search.data.total === 1 ? "" : "s"}
                {filters.q || filters.tag.length || filters.license.length || filters.base_model.length ? " match" : ""}
              </p>
              <Results hits={search.data.results} total={search.data.total} />
            </>
          )}
        </div>
      </div>
    </>
  );
}
