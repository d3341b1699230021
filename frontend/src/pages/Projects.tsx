import { useState } from "react";
import { Link } from "react-router";
import { useProjects } from "../api/hooks";
import { Empty, QueryView } from "../components/States";
import { fmtDate } from "../lib/format";
import { useTitle } from "../lib/useTitle";

export function ProjectsPage() {
  useTitle("Projects");
  const projects = useProjects();
  const [filter, setFilter] = useState("");
  return (
    <>
      <div className="page-head">
        <div className="grow">
          <h1>Projects</h1>
          <p className="muted">Experiment-tracking projects: each holds runs with params, metrics and tags.</p>
        </div>
        <div className="field">
          <label htmlFor="project-filter">Filter projects</label>
          <input id="project-filter" type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="name…" />
        </div>
      </div>
      <QueryView query={projects} label="Loading projects…">
        {(page) => {
          const rows = page.results.filter((p) => p.id.toLowerCase().includes(filter.toLowerCase()));
          if (!page.results.length)
            return (
              <Empty>
                No projects yet. Start a run from Python:{" "}
                <code>{`Client().init_run("you/project", params={...})`}</code>
              </Empty>
            );
          if (!rows.length) return <Empty>No project matches “{filter}”.</Empty>;
          return (
            <div className="panel flush table-wrap">
              <table className="data">
                <thead>
                  <tr>
                    <th scope="col">Project</th>
                    <th scope="col">Description</th>
                    <th scope="col">Visibility</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((p) => (
                    <tr key={p.id}>
                      <td>
                        <Link to={`/projects/${encodeURIComponent(p.namespace)}/${encodeURIComponent(p.name)}`}>{p.id}</Link>
                      </td>
                      <td className="wrap">{p.description || <span className="muted">—</span>}</td>
                      <td>{p.private ? "private" : "public"}</td>
                      <td>{fmtDate(p.created_at)}</td>
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
