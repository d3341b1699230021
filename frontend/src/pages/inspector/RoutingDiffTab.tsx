/** Inspector → Routing diff: this commit (A) against another (B) on the probe set: per layer the
 * share of tokens with the same top-1 expert, each expert's load change, the routing entropy of
 * each, and which experts swapped roles (matched by routing overlap). A table and a
 * layers × experts heatmap of the load change. POST /repos/{ns}/{name}/routing-diff. */
import { useMemo, useState, type FormEvent } from "react";
import { useMutation } from "@tanstack/react-query";
import { post, repoPath } from "../../api/client";
import type { components } from "../../api/schema";
import { divergingColor, MatrixHeatmap } from "../../components/MatrixHeatmap";
import { ErrorMessage } from "../../components/States";
import { shortSha } from "../../lib/format";
import type { InspectorTarget } from "./Inspector";

type Diff = components["schemas"]["RoutingDiffOut"];

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

export default function RoutingDiffTab({ target }: { target: InspectorTarget }) {
  const [other, setOther] = useState(`${target.ns}/${target.name}@main`);
  const run = useMutation({
    mutationFn: (spec: string) => {
      const [repo, ref] = spec.includes("@") ? spec.split("@", 2) : [spec, "HEAD"];
      return post<Diff>(`${repoPath(target.ns, target.name)}/routing-diff`, { a: target.sha, b: ref || "HEAD", b_repo: repo });
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    run.mutate(other.trim());
  };
  return (
    <div className="routing-diff-tab">
      <form onSubmit={submit} className="row" style={{ gap: 8, alignItems: "flex-end", flexWrap: "wrap" }}>
        <span>A: <code>{target.ns}/{target.name}@{shortSha(target.sha)}</code></span>
        <label>B{" "}
          <input aria-label="Compare with (ns/name@ref)" value={other} onChange={(e) => setOther(e.target.value)} style={{ width: 320 }} placeholder="ns/name@ref" />
        </label>
        <button type="submit" className="primary" disabled={run.isPending || !other.trim()}>{run.isPending ? "Routing the probe set…" : "Compare routing"}</button>
      </form>
      {run.error && <ErrorMessage error={run.error} />}
      {run.data && <DiffView d={run.data} />}
    </div>
  );
}

function DiffView({ d }: { d: Diff }) {
  const scale = Math.max(d.summary.max_abs_load_delta, 1e-6);
  const matrix = useMemo(
    () => ({
      rows: d.layers.map((L) => `layer ${L.layer}`),
      cols: Array.from({ length: d.n_experts }, (_, e) => String(e)),
      values: d.layers.flatMap((L) => L.load_delta),
    }),
    [d],
  );
  const color = useMemo(() => (v: number) => divergingColor(v, scale), [scale]);
  return (
    <div style={{ marginTop: 12 }}>
      <p className="small muted">
        {d.a.repo}@{shortSha(d.a.commit)} → {d.b.repo}@{shortSha(d.b.commit)} on probe set v{d.probe_version} ({d.tokens} tokens);
        top-k {d.top_k_a} → {d.top_k_b}. Same top-1 overall: <strong>{pct(d.summary.same_top1)}</strong>, {d.summary.swaps} swapped expert(s).
      </p>
      <div className="table-wrap"><table className="data small" data-testid="routing-diff-table">
        <thead>
          <tr><th>Layer</th><th>Same top-1</th><th>Same after matching</th><th>Entropy A → B</th><th>Largest load change</th><th>Swapped roles (A → B)</th></tr>
        </thead>
        <tbody>
          {d.layers.map((L) => {
            const big = L.load_delta.reduce((best, v, e) => (Math.abs(v) > Math.abs(L.load_delta[best]) ? e : best), 0);
            return (
              <tr key={L.layer}>
                <td>{L.layer}</td>
                <td>{pct(L.same_top1)}</td>
                <td>{pct(L.matched_same_top1)}</td>
                <td>{L.entropy_a.toFixed(3)} → {L.entropy_b.toFixed(3)}</td>
                <td>expert {big}: {(L.load_delta[big] * 100).toFixed(1)} pts</td>
                <td>{L.swaps.length ? L.swaps.map((s) => `${s.a}→${s.b} (${pct(s.overlap)})`).join(", ") : "—"}</td>
              </tr>
            );
          })}
        </tbody>
      </table></div>
      <h3 className="small">Load change per expert (B − A)</h3>
      <MatrixHeatmap
        testId="routing-diff-heatmap"
        m={matrix}
        cell={28}
        label="Load change per layer and expert"
        color={color}
        describe={(r, c, v) => `layer ${d.layers[r].layer}, expert ${c}: ${pct(d.layers[r].load_a[c])} → ${pct(d.layers[r].load_b[c])} (${(v * 100).toFixed(1)} pts)`}
      />
      <p className="small muted">Blue: less load in B; red: more (±{(scale * 100).toFixed(1)} pts at the ends). Experts matched by routing overlap ({d.layers[0]?.method === "greedy" ? "greedy matching: scipy is not installed on the hub" : "Hungarian method"}).</p>
    </div>
  );
}
