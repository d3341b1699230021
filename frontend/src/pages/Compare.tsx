/** Compare runs: generated summary, overlaid curves, param diff, metrics with the best
 * highlighted, parallel coordinates, correlations, Markdown export. State in the URL:
 * ?runs=a,b,c&baseline=a&keys=val_loss,loss */
import { useMemo } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { compareMarkdownUrl, useCompare } from "../api/hooks";
import type { CompareReport } from "../api/types";
import { ChartControls, chartBuckets, useChartSettings } from "../components/ChartControls";
import { MetricChart, type ChartRun } from "../components/MetricChart";
import { ParallelCoords, type PcAxis } from "../components/ParallelCoords";
import { Empty, ErrorMessage, Loading } from "../components/States";
import { columnLabel } from "../lib/columns";
import { directionLabel, isBest } from "../lib/compare";
import { fmtNum, fmtPct, fmtValue } from "../lib/format";
import { isMoeKey } from "../lib/moe";
import { color } from "../lib/series";
import { useMirror } from "../lib/useMirror";
import { useTitle } from "../lib/useTitle";

function list(v: string | null): string[] {
  return (v ?? "").split(",").filter(Boolean);
}

export function defaultCompareKeys(r: CompareReport): string[] {
  const keys = r.metrics.map((m) => m.key).filter((k) => !k.startsWith("system/") && !isMoeKey(k));
  const lossy = keys.filter((k) => /loss/i.test(k));
  const first = r.target && keys.includes(r.target) ? [r.target] : [];
  return [...new Set([...first, ...lossy, ...keys])].slice(0, 4);
}

/** The metrics table's rows: the target metric first, the rest as the hub ordered them. */
export function targetFirst<M extends { key: string }>(metrics: M[], target: string | null): M[] {
  const t = metrics.filter((m) => m.key === target);
  return [...t, ...metrics.filter((m) => m.key !== target)];
}

export function pcAxes(r: CompareReport, maxParams = 8): PcAxis[] {
  const axes: PcAxis[] = r.params.slice(0, maxParams).map((p) => ({ key: `params.${p.key}`, label: p.key, values: p.values }));
  const target = r.metrics.find((m) => m.key === r.target);
  if (target) {
    const values: Record<string, unknown> = {};
    for (const [id, v] of Object.entries(target.runs)) values[id] = v.final;
    axes.push({ key: `summary.${target.key}`, label: `${target.key} (final)`, values });
  }
  return axes;
}

export default function ComparePage() {
  const { ns = "", name = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const runs = list(params.get("runs"));
  const [baseline, setBaseline] = useMirror(params.get("baseline"));
  const report = useCompare(runs, baseline);
  const [settings, set] = useChartSettings();
  const buckets = useMemo(chartBuckets, []);
  useTitle(`Compare ${runs.length} runs`);
  const projectHref = `/projects/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  const setParam = (k: string, v: string | null) => {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    setParams(next, { replace: true });
  };

  const r = report.data;
  const chartRuns: ChartRun[] = useMemo(() => (r ? r.runs.map((x, i) => ({ id: x.id, label: x.name, color: color(i) })) : []), [r]);
  const [keys, setKeys] = useMirror(r ? (params.has("keys") ? list(params.get("keys")) : defaultCompareKeys(r)) : []);
  const allKeys = r ? r.metrics.map((m) => m.key).filter((k) => !isMoeKey(k)) : [];
  const toggleKey = (k: string) => {
    const next = keys.includes(k) ? keys.filter((x) => x !== k) : [...keys, k];
    setKeys(next);
    setParam("keys", next.join(",") || null);
  };
  const names = new Map(r?.runs.map((x) => [x.id, x.name]));

  if (runs.length < 2)
    return (
      <Empty>
        Pick two runs or more in the <Link to={projectHref}>runs table</Link> to compare them.
      </Empty>
    );
  return (
    <>
      <div className="page-head">
        <div className="grow">
          <div className="crumbs">
            <Link to="/projects">Projects</Link> / <Link to={`${projectHref}?sel=${runs.join(",")}`}>{ns}/{name}</Link> /
          </div>
          <h1>Compare {runs.length} runs</h1>
        </div>
        {r && (
          <div className="field">
            <label htmlFor="baseline">Baseline</label>
            <select id="baseline" value={baseline ?? r.baseline} onChange={(e) => {
              setBaseline(e.target.value);
              setParam("baseline", e.target.value);
            }}>
              {r.runs.map((x) => <option key={x.id} value={x.id}>{x.name}</option>)}
            </select>
          </div>
        )}
        <a className="button" href={compareMarkdownUrl(runs, baseline)} download="comparison.md" data-testid="export-markdown">
          Export Markdown
        </a>
      </div>
      {report.error && <ErrorMessage error={report.error} retry={() => void report.refetch()} />}
      {report.isPending && <Loading label="Building the comparison…" />}
      {r && (
        <div className="stack">
          <section className="panel">
            <h2>Summary</h2>
            {r.summary.length ? (
              <ul className="report-summary">{r.summary.map((s, i) => <li key={i}>{s}</li>)}</ul>
            ) : (
              <p className="muted">Nothing stands out.</p>
            )}
            <div className="row small" style={{ marginTop: 6 }}>
              {r.runs.map((x, i) => (
                <span key={x.id} className="nowrap">
                  <span aria-hidden="true" style={{ display: "inline-block", width: 12, height: 4, background: color(i), verticalAlign: "middle", marginRight: 4 }} />
                  <Link to={`/runs/${x.id}`}>{x.name}</Link>
                  {x.id === r.baseline && <span className="muted"> (baseline)</span>}
                  <button type="button" className="link small" style={{ marginLeft: 4 }} aria-label={`Remove ${x.name} from the comparison`}
                    disabled={runs.length <= 2} onClick={() => setParam("runs", runs.filter((id) => id !== x.id).join(","))}>
                    ×
                  </button>
                </span>
              ))}
            </div>
            {r.target && <p className="muted small">Target metric: <code>{r.target}</code></p>}
            {r.kind && <p className="muted small" data-testid="compared-kind">Compared {r.kind} runs of each commit.</p>}
          </section>

          <section aria-labelledby="curves-h">
            <h2 id="curves-h">Curves</h2>
            <ChartControls settings={settings} set={set} showFilter={false}>
              <details className="colpicker">
                <summary className="button small">Metrics ({keys.length})</summary>
                <div className="colpicker-menu" role="group" aria-label="Metrics to chart">
                  {allKeys.map((k) => (
                    <label key={k}>
                      <input type="checkbox" checked={keys.includes(k)} onChange={() => toggleKey(k)} />
                      <span className="mono">{k}</span>
                    </label>
                  ))}
                </div>
              </details>
            </ChartControls>
            {keys.length === 0 ? (
              <Empty>Choose metrics to overlay.</Empty>
            ) : (
              <div className="charts">
                {keys.map((k) => (
                  <MetricChart key={k} runs={chartRuns} metricKey={k} x={settings.x} smoothing={settings.smoothing} log={settings.log} buckets={buckets} eager bands={chartRuns.length <= 3} />
                ))}
              </div>
            )}
          </section>

          {/* one table a row: with a column per run, half a page is too narrow */}
          <div className="stack">
            <section className="panel flush" aria-labelledby="metrics-h">
              <h2 id="metrics-h" style={{ padding: "8px 10px", margin: 0 }}>Metrics <span className="muted small">final (Δ vs baseline) / best · ★ best</span></h2>
              {/* No inner scroll: the target metric comes first and every row is on the page. */}
              <div className="table-wrap">
                <table className="data" data-testid="compare-metrics">
                  <thead>
                    <tr>
                      <th scope="col">Metric</th>
                      {r.runs.map((x) => <th key={x.id} scope="col">{x.name}</th>)}
                    </tr>
                  </thead>
                  <tbody>
                    {targetFirst(r.metrics.filter((m) => !isMoeKey(m.key)), r.target).map((m) => (
                      <tr key={m.key} className={m.key === r.target ? "target" : undefined}>
                        <th scope="row" className="mono" style={{ fontWeight: m.key === r.target ? 600 : 400 }}>
                          {m.key} <span className="muted small" title={m.direction === "none" ? "no star: neither higher nor lower is better (the project's metric_directions can set one)" : undefined}>({directionLabel(m.direction)}{m.key === r.target ? ", target" : ""})</span>
                        </th>
                        {r.runs.map((x) => {
                          const v = m.runs[x.id];
                          const best = isBest(m, x.id);
                          return (
                            <td key={x.id} className={`num${best ? " best" : ""}`}>
                              {v ? (
                                <>
                                  {fmtNum(v.final)}
                                  {v.delta_final_pct !== undefined && v.delta_final_pct !== null && <span className="muted small"> ({fmtPct(v.delta_final_pct)})</span>}
                                  {" / "}
                                  {fmtNum(v.best)}
                                  {best && <span aria-label="best"> ★</span>}
                                </>
                              ) : (
                                "—"
                              )}
                            </td>
                          );
                        })}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </section>
            <section className="panel flush" aria-labelledby="params-h">
              <h2 id="params-h" style={{ padding: "8px 10px", margin: 0 }}>
                Params that differ ({r.params.length}) <span className="muted small">· {r.same_params} identical</span>
              </h2>
              {r.params.length === 0 ? (
                <Empty>{r.partial_params?.length ? "The runs share every param they all recorded." : "The runs share every param."}</Empty>
              ) : (
                <div className="table-wrap">
                  <table className="data" data-testid="param-diff">
                    <thead>
                      <tr>
                        <th scope="col">Param</th>
                        {r.runs.map((x) => <th key={x.id} scope="col">{x.name}</th>)}
                      </tr>
                    </thead>
                    <tbody>
                      {r.params.map((p) => (
                        <tr key={p.key}>
                          <th scope="row" className="mono" style={{ fontWeight: 400 }}>{p.key}</th>
                          {r.runs.map((x) => (
                            <td key={x.id} className="mono">{fmtValue(p.values[x.id])}</td>
                          ))}
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
            </section>
            {r.partial_params && r.partial_params.length > 0 && (
              <section className="panel flush" aria-labelledby="partial-h">
                <h2 id="partial-h" style={{ padding: "8px 10px", margin: 0 }}>
                  Params recorded only in some runs ({r.partial_params.length}) <span className="muted small">· not compared</span>
                </h2>
                <div className="table-wrap">
                  <table className="data" data-testid="param-partial">
                    <thead>
                      <tr>
                        <th scope="col">Param</th>
                        {r.runs.map((x) => <th key={x.id} scope="col">{x.name}</th>)}
                      </tr>
                    </thead>
                    <tbody>
                      {r.partial_params.map((p) => (
                        <tr key={p.key}>
                          <th scope="row" className="mono" style={{ fontWeight: 400 }}>{p.key}</th>
                          {r.runs.map((x) => (
                            <td key={x.id} className="mono">
                              {x.id in p.values ? fmtValue(p.values[x.id]) : <span className="muted">not recorded</span>}
                            </td>
                          ))}
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </section>
            )}
          </div>

          <section className="panel" aria-labelledby="pc-h">
            <h2 id="pc-h">Parallel coordinates</h2>
            <ParallelCoords axes={pcAxes(r)} runs={chartRuns} />
          </section>

          {r.correlations.length > 0 && (
            <section className="panel flush" aria-labelledby="corr-h">
              <h2 id="corr-h" style={{ padding: "8px 10px", margin: 0 }}>Rank correlation with {r.target}</h2>
              <table className="data">
                <thead><tr><th scope="col">Param</th><th scope="col" className="num">Spearman ρ</th><th scope="col" className="num">Runs</th></tr></thead>
                <tbody>
                  {r.correlations.map((c) => (
                    <tr key={c.param}>
                      <td className="mono">{columnLabel(c.param)}</td>
                      <td className="num">{c.spearman >= 0 ? "+" : ""}{c.spearman.toFixed(3)}</td>
                      <td className="num">{c.n}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </section>
          )}
          {names.size === 0 && <Empty>No runs.</Empty>}
        </div>
      )}
    </>
  );
}
