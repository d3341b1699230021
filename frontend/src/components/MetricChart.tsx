/** One metric key for one or more runs: fetches (batched, downsampled server-side), smooths,
 * draws, and re-queries the server when the user zooms. */
import { useEffect, useMemo, useRef, useState } from "react";
import { useQueries } from "@tanstack/react-query";
import { seriesLoader } from "../api/seriesLoader";
import type { Series, XAxis } from "../api/types";
import { join, lineData, xOf } from "../lib/series";
import { fmtCount } from "../lib/format";
import { TimeChart, type ChartSeries } from "./TimeChart";
import { ErrorMessage } from "./States";

export interface ChartRun {
  id: string;
  label: string;
  color: string;
}

/** One line of a chart: a run's metric key. */
export interface ChartLine {
  run: string;
  key: string;
  label: string;
  color: string;
  /** stored points, when known (sizes the server batches) */
  points?: number;
}

export interface MetricChartProps {
  /** the runs to overlay for `metricKey`, or explicit `lines` (several keys) with a `title` */
  runs?: ChartRun[];
  metricKey?: string;
  /** stored points per run id for `metricKey`, when known */
  points?: Record<string, number | undefined>;
  lines?: ChartLine[];
  title?: string;
  x: XAxis;
  smoothing: number;
  log: boolean;
  buckets: number;
  /** fetch at once instead of when scrolled into view */
  eager?: boolean;
  height?: number;
  bands?: boolean;
  /** a y range the scale always covers (fractions: [0, 1]) */
  yRange?: [number, number] | null;
  /** controls in the chart's header (the run page's pin button) */
  actions?: React.ReactNode;
}

function useVisible(eager: boolean) {
  const ref = useRef<HTMLDivElement>(null);
  const [visible, setVisible] = useState(eager);
  useEffect(() => {
    if (visible || !ref.current) return;
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) setVisible(true);
    }, { rootMargin: "300px" });
    io.observe(ref.current);
    return () => io.disconnect();
  }, [visible]);
  return [ref, visible] as const;
}

export function MetricChart(props: MetricChartProps) {
  const { x, smoothing, log, buckets, eager = false, height = 200, bands = true, yRange = null, actions } = props;
  const lines: ChartLine[] =
    props.lines ?? (props.runs ?? []).map((r) => ({ run: r.id, key: props.metricKey!, label: r.label, color: r.color, points: props.points?.[r.id] }));
  const title = props.title ?? props.metricKey ?? "";
  const [ref, visible] = useVisible(eager);
  const [zoom, setZoom] = useState<[number, number] | null>(null);
  useEffect(() => setZoom(null), [x]);

  const queries = useQueries({
    queries: lines.map((l) => ({
      queryKey: ["series", l.run, l.key, x, buckets, zoom?.[0] ?? null, zoom?.[1] ?? null],
      queryFn: () => seriesLoader.load({ run: l.run, key: l.key, x, buckets, min: zoom?.[0], max: zoom?.[1], points: l.points }),
      enabled: visible,
      staleTime: 15_000,
      placeholderData: (prev: Series | undefined) => prev,
    })),
  });
  const datas = queries.map((q) => q.data);
  const error = queries.find((q) => q.error)?.error;
  const loading = queries.some((q) => q.isFetching);
  const ready = datas.every((d) => d !== undefined);

  const chart = useMemo(() => {
    if (!ready) return null;
    const ss = datas as Series[];
    const tables = ss.map((s) => {
      const d = lineData(s, smoothing, log);
      const cols = [d.y];
      if (d.raw) cols.push(d.raw);
      if (bands && d.max && d.min) cols.push(d.max, d.min);
      return { x: xOf(s, x), cols, d };
    });
    const joined = join(tables.map((t) => ({ x: t.x, cols: t.cols })));
    let c = 0;
    const series: ChartSeries[] = tables.map((t, i) => {
      const out: ChartSeries = { label: lines[i].label, color: lines[i].color, y: joined.cols[c++] };
      if (t.d.raw) out.raw = joined.cols[c++];
      if (bands && t.d.max && t.d.min) {
        out.max = joined.cols[c++];
        out.min = joined.cols[c++];
      }
      return out;
    });
    const points = ss.reduce((a, s) => a + s.points, 0);
    const drawn = ss.reduce((a, s) => a + s.step.length, 0);
    return { x: joined.x, series, points, drawn, downsampled: ss.some((s) => s.downsampled) };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ready, ...datas, smoothing, log, x, bands]);

  const empty = chart && chart.x.length === 0;
  return (
    <section className="chart-card" ref={ref} aria-label={`Chart of ${title}`} data-chart={title}>
      <div className="chart-head">
        <h3 title={title}>{title}</h3>
        {loading && <span className="spinner" role="status" aria-label="Loading" />}
        {chart && !empty && (
          <span className="muted small" title="points in range → points drawn">
            {chart.downsampled ? `${fmtCount(chart.points)} pts → ${fmtCount(chart.drawn)}` : `${fmtCount(chart.drawn)} pts`}
          </span>
        )}
        {zoom && (
          <button type="button" className="small" onClick={() => setZoom(null)}>
            Reset zoom
          </button>
        )}
        {actions}
      </div>
      {lines.length > 1 && (
        <div className="row small" style={{ gap: 10, margin: "2px 0 4px" }}>
          {lines.slice(0, 12).map((l) => (
            <span key={`${l.run}/${l.key}`} className="nowrap">
              <span aria-hidden="true" style={{ display: "inline-block", width: 10, height: 3, background: l.color, verticalAlign: "middle", marginRight: 4 }} />
              {l.label}
            </span>
          ))}
          {lines.length > 12 && <span className="muted">+{lines.length - 12} more</span>}
        </div>
      )}
      {error ? (
        <ErrorMessage error={error} />
      ) : !chart ? (
        <div className="chart-body" style={{ height: height + 17 }}>
          <div className="state">{visible ? "Loading…" : ""}</div>
        </div>
      ) : empty ? (
        <div className="chart-body" style={{ height: height + 17 }}>
          <div className="state">No points{zoom ? " in this range" : ""}.</div>
        </div>
      ) : (
        <TimeChart
          id={title}
          label={`${title} over ${x === "step" ? "steps" : "time"}${lines.length > 1 ? `, ${lines.length} lines` : ""}`}
          x={chart.x}
          series={chart.series}
          xAxis={x}
          log={log}
          height={height}
          yRange={yRange}
          zoom={zoom}
          onZoom={setZoom}
        />
      )}
    </section>
  );
}
