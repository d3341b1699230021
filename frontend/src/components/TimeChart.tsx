/** A uPlot time-series chart: lines with optional raw (under a smoothed line) and min–max
 * bands for downsampled buckets, drag-to-zoom (the caller re-queries the window), double
 * click or "0" to reset, and keyboard zoom/pan when focused. */
import { useEffect, useLayoutEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { XAxis } from "../api/types";
import type { Col } from "../lib/series";
import { axisLabels, fmtNum, logAxisLabels } from "../lib/format";

export interface ChartSeries {
  label: string;
  color: string;
  y: Col;
  raw?: Col | null;
  min?: Col | null;
  max?: Col | null;
}

export interface TimeChartProps {
  /** names the performance mark `chart-drawn:<id>` */
  id: string;
  label: string;
  x: number[];
  series: ChartSeries[];
  xAxis: XAxis;
  log: boolean;
  height?: number;
  /** a y range the scale always covers (fractions: [0, 1]); widened to the data if it leaves it */
  yRange?: [number, number] | null;
  zoom: [number, number] | null;
  onZoom: (range: [number, number] | null) => void;
  onDrawn?: () => void;
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function alpha(hex: string, a: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

function buildData(x: number[], series: ChartSeries[]): uPlot.AlignedData {
  const cols: (number | null)[][] = [];
  for (const s of series) {
    cols.push(s.y);
    if (s.raw) cols.push(s.raw);
    if (s.max && s.min) cols.push(s.max, s.min);
  }
  return [x, ...cols] as uPlot.AlignedData;
}

/** The width an axis needs for its longest tick label (uPlot's `size` hook), so no label is
 * clipped: a fixed size cuts "250,000" or "1.5e-4" on the left edge. */
export function axisSize(longestLabelPx: number, tickSize: number, gap: number, min = 30): number {
  return Math.max(min, Math.ceil(longestLabelPx + tickSize + gap + 4));
}

function measuredSize(u: uPlot, values: string[] | null, axisIdx: number, cycleNum: number): number {
  const axis = u.axes[axisIdx] as uPlot.Axis & { _size?: number };
  if (cycleNum > 1 && axis._size) return axis._size;
  const longest = (values ?? []).reduce((a, b) => (String(b).length > a.length ? String(b) : a), "");
  let px = longest.length * 7; // no canvas (tests): about 7px a character at 11px
  if (longest && u.ctx) {
    u.ctx.font = (axis.font as unknown as [string])?.[0] ?? "11px system-ui";
    px = u.ctx.measureText(longest).width / (devicePixelRatio || 1);
  }
  return axisSize(px, (axis.ticks as { size?: number } | undefined)?.size ?? 10, (axis.gap as number | undefined) ?? 5);
}

function structureKey(p: TimeChartProps): string {
  return [p.xAxis, p.log, p.height, String(p.yRange), ...p.series.map((s) => `${s.label}|${s.color}|${!!s.raw}|${!!(s.min && s.max)}`)].join(";");
}

export function TimeChart(props: TimeChartProps) {
  const { id, label, x, series, xAxis, log, height = 200, yRange = null, zoom, onZoom, onDrawn } = props;
  const wrap = useRef<HTMLDivElement>(null);
  const readout = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const structure = structureKey(props);
  const cb = useRef({ onZoom, onDrawn, series, xAxis });
  cb.current = { onZoom, onDrawn, series, xAxis };
  const drawnFor = useRef<unknown>(null);

  // (Re)create the plot when the series layout changes.
  useLayoutEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const muted = cssVar("--muted", "#666");
    const grid = cssVar("--grid", "rgba(0,0,0,.08)");
    const uSeries: uPlot.Series[] = [{}];
    const bands: uPlot.Band[] = [];
    const main: number[] = [];
    for (const s of series) {
      main.push(uSeries.length);
      uSeries.push({ label: s.label, stroke: s.color, width: 1.5, spanGaps: true, points: { show: false } });
      if (s.raw) uSeries.push({ label: `${s.label} (raw)`, stroke: alpha(s.color, 0.3), width: 1, spanGaps: true, points: { show: false } });
      if (s.max && s.min) {
        const hi = uSeries.length;
        uSeries.push({ label: `${s.label} max`, stroke: alpha(s.color, 0.25), width: 0.5, spanGaps: true, points: { show: false } });
        uSeries.push({ label: `${s.label} min`, stroke: alpha(s.color, 0.25), width: 0.5, spanGaps: true, points: { show: false } });
        bands.push({ series: [hi, hi + 1], fill: alpha(s.color, 0.14) });
      }
    }
    const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font: "11px system-ui" };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: false },
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: {
          dblclick: () => () => {
            cb.current.onZoom(null);
            return null;
          },
        },
      },
      // Room on the right for the last x label, which uPlot centres on the plot's edge.
      padding: [8, 18, 0, 0],
      scales: {
        x: { time: xAxis === "time" },
        y: log
          ? { distr: 3 }
          : yRange
            ? { range: (_u, min, max) => [Math.min(yRange[0], min ?? yRange[0]), Math.max(yRange[1], max ?? yRange[1])] }
            : {},
      },
      axes: [
        { ...axis, size: 30, ...(xAxis === "step" ? { values: (_u: uPlot, vals: number[]) => axisLabels(vals) } : {}) },
        { ...axis, size: measuredSize, values: (_u, vals) => (log ? logAxisLabels(vals) : axisLabels(vals)) },
      ],
      series: uSeries,
      bands,
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width > 4) {
              const a = u.posToVal(u.select.left, "x");
              const b = u.posToVal(u.select.left + u.select.width, "x");
              u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
              cb.current.onZoom([a, b]);
            }
          },
        ],
        setCursor: [
          (u) => {
            const out = readout.current;
            if (!out) return;
            const i = u.cursor.idx;
            if (i === null || i === undefined) {
              out.textContent = "";
              return;
            }
            const xv = u.data[0][i];
            const xs = cb.current.xAxis === "time" ? new Date(xv * 1000).toLocaleString() : `step ${fmtNum(xv)}`;
            const parts = main.map((si, k) => {
              const v = u.data[si][i];
              return `${cb.current.series.length > 1 ? cb.current.series[k]?.label + " " : ""}${fmtNum(v ?? null)}`;
            });
            out.textContent = `${xs} · ${parts.join(" · ")}`;
          },
        ],
        draw: [
          (u) => {
            if (drawnFor.current !== u.data) {
              drawnFor.current = u.data;
              performance.mark(`chart-drawn:${id}`);
              cb.current.onDrawn?.();
            }
          },
        ],
      },
    };
    const u = new uPlot(opts, buildData(x, series), el);
    plot.current = u;
    if (zoom) u.setScale("x", { min: zoom[0], max: zoom[1] });
    const ro = new ResizeObserver(() => {
      const w = Math.max(200, el.clientWidth);
      if (Math.abs(w - u.width) > 1) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [structure]);

  // New data for the same layout: swap it in.
  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    const data = buildData(x, series);
    if (u.data[0] === x && u.data.length === data.length && u.data.every((c, i) => c === data[i])) return;
    u.setData(data, !zoom);
    if (zoom) u.setScale("x", { min: zoom[0], max: zoom[1] });
  }, [x, series, zoom]);

  const onKey = (e: React.KeyboardEvent) => {
    const u = plot.current;
    if (!u) return;
    const min = u.scales.x.min ?? 0;
    const max = u.scales.x.max ?? 1;
    const span = max - min;
    const full: [number, number] = [x[0] ?? min, x[x.length - 1] ?? max];
    let next: [number, number] | null | undefined;
    if (e.key === "+" || e.key === "=") next = [min + span / 4, max - span / 4];
    else if (e.key === "-" || e.key === "_") {
      next = [min - span / 2, max + span / 2];
      if (!zoom) next = undefined;
      else if (next[0] <= full[0] && next[1] >= full[1]) next = null;
    } else if (e.key === "0" || e.key === "Escape") next = zoom ? null : undefined;
    else if (e.key === "ArrowLeft" && zoom) next = [min - span / 4, max - span / 4];
    else if (e.key === "ArrowRight" && zoom) next = [min + span / 4, max + span / 4];
    if (next === undefined) return;
    e.preventDefault();
    onZoom(next);
  };

  return (
    <div>
      <div
        className="chart-body"
        style={{ height }}
        ref={wrap}
        tabIndex={0}
        role="img"
        aria-label={`${label}. Drag to zoom; when focused, + and − zoom, arrows pan, 0 resets.`}
        onKeyDown={onKey}
      />
      <div ref={readout} className="muted small mono" aria-hidden="true" style={{ minHeight: 17, whiteSpace: "nowrap", overflow: "hidden", textOverflow: "ellipsis" }} />
    </div>
  );
}
