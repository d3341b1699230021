import { useState } from "react";
import { Link } from "react-router";
import { useRepos } from "../api/hooks";
import { Empty, QueryView } from "../components/States";
import { fmtDate } from "../lib/format";
import { useTitle } from "../lib/useTitle";

export function ModelsPage() {
  useTitle("Models");
  const repos = useRepos();
  const [filter, setFilter] = useState("");
  return (
    <>
      <div className="page-head">
        <div className="grow">
          <h1>Models</h1>
          <p className="muted">Versioned model repos: branches, tags, tensor-level diffs and merges.</p>
        </div>
        <div className="field">
          <label htmlFor="repo-filter">Filter repos</label>
          <input id="repo-filter" type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="name…" />
        </div>
      </div>
      <QueryView query={repos} label="Loading repos…">
        {(page) => {
          const rows = page.results.filter((r) => r.id.toLowerCase().includes(filter.toLowerCase()));
          if (!page.results.length)
            return (
              <Empty>
                No model repos yet. Push one with <code>hub push ./checkpoint --repo you/model</code>.
              </Empty>
            );
          if (!rows.length) return <Empty>No repo matches “{filter}”.</Empty>;
          return (
            <div className="panel flush table-wrap">
              <table className="data">
                <thead>
                  <tr>
                    <th scope="col">Repo</th>
                    <th scope="col">Description</th>
                    <th scope="col">Default branch</th>
                    <th scope="col">Visibility</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((r) => (
                    <tr key={r.id}>
                      <td>
                        <Link to={`/models/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`}>{r.id}</Link>
                      </td>
                      <td className="wrap">{r.description || <span className="muted">—</span>}</td>
                      <td><span className="badge branch">{r.default_branch}</span></td>
                      <td>{r.private ? "private" : "public"}</td>
                      <td>{fmtDate(r.created_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </QueryView>
    </>
  );
}
