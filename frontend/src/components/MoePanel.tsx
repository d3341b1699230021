/** The MoE view: per layer, the expert-load heatmap (experts × steps), load imbalance over
 * time, routing entropy, dropped tokens, auxiliary loss and per-expert bias — all from the
 * run's metric series (see lib/moe.ts for the key convention). */
import { useMemo } from "react";
import { useQueries } from "@tanstack/react-query";
import { useSearchParams } from "react-router";
import { seriesLoader } from "../api/seriesLoader";
import type { Run, Series } from "../api/types";
import { fmtNum } from "../lib/format";
import { biasKey, droppedKey, imbalance, layerKey, loadKey, loadMatrix, type MoeLayer } from "../lib/moe";
import { yRange } from "../lib/metricLayout";
import { color } from "../lib/series";
import { useMirror } from "../lib/useMirror";
import { ChartControls, chartBuckets, useChartSettings } from "./ChartControls";
import { Heatmap, LoadLegend } from "./Heatmap";
import { MetricChart, type ChartLine } from "./MetricChart";
import { ErrorMessage, Loading } from "./States";
import { TimeChart } from "./TimeChart";

function LayerStats({ run, layer }: { run: Run; layer: MoeLayer }) {
  const finals = layer.loadExperts
    .map((e) => ({ e, v: run.summary[loadKey(layer.layer, e)]?.last }))
    .filter((x): x is { e: number; v: number } => typeof x.v === "number");
  if (!finals.length) return null;
  const n = layer.loadExperts.length;
  const mean = finals.reduce((a, b) => a + b.v, 0) / finals.length;
  const max = finals.reduce((a, b) => (b.v > a.v ? b : a));
  const min = finals.reduce((a, b) => (b.v < a.v ? b : a));
  const starved = finals.filter((x) => x.v * n < 0.1).length;
  return (
    <dl className="kv small" style={{ gridTemplateColumns: "repeat(4, max-content minmax(0,1fr))" }}>
      <dt>Experts</dt><dd>{n}</dd>
      <dt>Final max / mean load</dt><dd>{mean > 0 ? `${fmtNum(max.v / mean, 3)}×` : "—"}</dd>
      <dt>Most used</dt><dd>expert {max.e} ({(max.v * 100).toFixed(1)}%)</dd>
      <dt>Least used</dt><dd>expert {min.e} ({(min.v * 100).toFixed(2)}%)</dd>
      <dt>Starved (&lt; 0.1× uniform)</dt><dd>{starved}</dd>
      {layer.entropy && <><dt>Final entropy</dt><dd>{fmtNum(run.summary[layerKey(layer.layer, "entropy")]?.last)}</dd></>}
      {layer.dropped && <><dt>Final dropped</dt><dd>{fmtNum(run.summary[droppedKey(layer)]?.last)}</dd></>}
      {layer.auxLoss && <><dt>Final aux loss</dt><dd>{fmtNum(run.summary[layerKey(layer.layer, "aux_loss")]?.last)}</dd></>}
    </dl>
  );
}

function LayerHeatmap({ run, layer, x, cols }: { run: Run; layer: MoeLayer; x: "step"; cols: number }) {
  const qs = useQueries({
    queries: layer.loadExperts.map((e) => ({
      queryKey: ["series", run.id, loadKey(layer.layer, e), x, cols, null, null],
      queryFn: () => seriesLoader.load({ run: run.id, key: loadKey(layer.layer, e), x, buckets: cols, points: run.summary[loadKey(layer.layer, e)]?.count }),
      staleTime: 15_000,
    })),
  });
  const error = qs.find((q) => q.error)?.error;
  const ready = qs.every((q) => q.data);
  const matrix = useMemo(() => {
    if (!ready) return null;
    return loadMatrix(
      qs.map((q, i) => ({ expert: layer.loadExperts[i], x: (q.data as Series).step, value: (q.data as Series).value })),
      cols,
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ready, ...qs.map((q) => q.data), cols]);
  const imb = useMemo(() => (matrix ? imbalance(matrix) : null), [matrix]);
  const imbX = useMemo(() => (matrix ? Array.from({ length: matrix.cols }, (_, c) => matrix.x0 + (c + 1) * matrix.dx) : []), [matrix]);
  const imbSeries = useMemo(() => (imb ? [{ label: "max / mean load", color: color(1), y: imb }] : []), [imb]);
  if (error) return <ErrorMessage error={error} title="Could not load the expert-load series" />;
  if (!matrix || !imb) return <Loading label={`Loading ${layer.loadExperts.length} expert-load series…`} />;
  return (
    <>
      <Heatmap m={matrix} label={`Expert load, layer ${layer.layer}`} />
      <div className="row" style={{ justifyContent: "space-between", marginTop: 6 }}>
        <LoadLegend />
        <span className="muted small">x: training step · rows: experts · colour: load ÷ uniform (1/{layer.loadExperts.length})</span>
      </div>
      <section className="chart-card" style={{ marginTop: 12 }} aria-label="Load imbalance over time">
        <div className="chart-head"><h3>load imbalance (max / mean over experts)</h3></div>
        <TimeChart id={`imbalance-${layer.layer}`} label={`Load imbalance of layer ${layer.layer} over steps`} x={imbX} series={imbSeries} xAxis="step" log={false} height={160} zoom={null} onZoom={() => undefined} />
      </section>
    </>
  );
}

export default function MoePanel({ run, layers }: { run: Run; layers: MoeLayer[] }) {
  const [params, setParams] = useSearchParams();
  const [settings, set] = useChartSettings();
  const buckets = useMemo(chartBuckets, []);
  const heatCols = useMemo(() => Math.min(1200, buckets * 2), [buckets]);
  const [wanted, setWanted] = useMirror(Number(params.get("layer")));
  const layer = layers.find((l) => l.layer === wanted) ?? layers[0];
  const setLayer = (l: number) => {
    setWanted(l);
    const next = new URLSearchParams(params);
    next.set("layer", String(l));
    setParams(next, { replace: true });
  };
  const perLayer = (key: (l: MoeLayer) => string, has: (l: MoeLayer) => boolean): ChartLine[] =>
    layers.filter(has).map((l, i) => ({ run: run.id, key: key(l), label: `layer ${l.layer}`, color: color(i), points: run.summary[key(l)]?.count }));
  const entropy = perLayer((l) => layerKey(l.layer, "entropy"), (l) => l.entropy);
  const dropped = perLayer(droppedKey, (l) => l.dropped);
  const aux = perLayer((l) => layerKey(l.layer, "aux_loss"), (l) => l.auxLoss);
  const bias: ChartLine[] = layer.biasExperts.map((e, i) => ({ run: run.id, key: biasKey(layer.layer, e), label: `expert ${e}`, color: color(i), points: run.summary[biasKey(layer.layer, e)]?.count }));
  const common = { x: settings.x, smoothing: settings.smoothing, log: settings.log, buckets, eager: true };
  return (
    <div className="stack">
      <section className="panel">
        <div className="row" style={{ marginBottom: 8 }}>
          <h2 style={{ margin: 0, flex: 1 }}>Expert load — layer {layer.layer}</h2>
          <label htmlFor="moe-layer">Layer</label>
          <select id="moe-layer" value={layer.layer} onChange={(e) => setLayer(Number(e.target.value))}>
            {layers.map((l) => (
              <option key={l.layer} value={l.layer}>layer {l.layer} ({l.loadExperts.length} experts)</option>
            ))}
          </select>
        </div>
        <LayerStats run={run} layer={layer} />
        {layer.loadExperts.length ? (
          <LayerHeatmap key={layer.layer} run={run} layer={layer} x="step" cols={heatCols} />
        ) : (
          <p className="muted">Layer {layer.layer} logged no per-expert load.</p>
        )}
      </section>
      <ChartControls settings={settings} set={set} showFilter={false} />
      <div className="charts">
        {entropy.length > 0 && <MetricChart title="routing entropy (per layer)" lines={entropy} {...common} bands={false} />}
        {dropped.length > 0 && <MetricChart title="dropped tokens (per layer)" lines={dropped} {...common} bands={false} yRange={yRange(true, settings.log)} />}
        {aux.length > 0 && <MetricChart title="aux loss (per layer)" lines={aux} {...common} bands={false} />}
        {bias.length > 0 && <MetricChart title={`expert bias — layer ${layer.layer}`} lines={bias} {...common} bands={false} />}
      </div>
      {!entropy.length && !dropped.length && !aux.length && !bias.length && (
        <p className="muted small">No entropy, dropped-token, aux-loss or bias series in this run.</p>
      )}
    </div>
  );
}
