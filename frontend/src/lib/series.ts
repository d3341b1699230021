/** Series from /metrics/series → the column arrays uPlot draws. */
import type { Series, XAxis } from "../api/types";
import { ema } from "./ema";

export type Col = (number | null)[];

export function xOf(s: Series, axis: XAxis): number[] {
  return axis === "time" ? s.wall_time : s.step;
}

/** Log scales cannot show values ≤ 0: they become gaps. */
export function forLog(values: ArrayLike<number | null>): Col {
  const out: Col = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = v !== null && v > 0 && Number.isFinite(v) ? v : null;
  }
  return out;
}

function clean(values: ArrayLike<number | null>): Col {
  const out: Col = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = v !== null && Number.isFinite(v) ? v : null;
  }
  return out;
}

export interface LineData {
  /** the drawn line: smoothed when smoothing > 0 */
  y: Col;
  /** the raw line, drawn faintly under a smoothed one (null when not smoothing) */
  raw: Col | null;
  /** min–max band of downsampled buckets, so spikes stay visible */
  min: Col | null;
  max: Col | null;
}

export function lineData(s: Series, smoothing: number, log: boolean): LineData {
  const tx = log ? forLog : clean;
  const smooth = smoothing > 0;
  const y = smooth ? ema(s.value, smoothing) : s.value;
  return {
    y: tx(y),
    raw: smooth ? tx(s.value) : null,
    min: s.downsampled && s.min ? tx(s.min) : null,
    max: s.downsampled && s.max ? tx(s.max) : null,
  };
}

/** Align several (x, columns...) tables on the union of their x values (missing → null),
 * for overlaying runs whose steps differ. Inputs must be sorted by x. */
export function join(tables: { x: ArrayLike<number>; cols: Col[] }[]): { x: number[]; cols: Col[] } {
  if (tables.length === 1) return { x: Array.from(tables[0].x), cols: tables[0].cols };
  const all = new Set<number>();
  for (const t of tables) for (let i = 0; i < t.x.length; i++) all.add(t.x[i]);
  const x = [...all].sort((a, b) => a - b);
  const pos = new Map<number, number>();
  x.forEach((v, i) => pos.set(v, i));
  const cols: Col[] = [];
  for (const t of tables) {
    for (const c of t.cols) {
      const out: Col = new Array(x.length).fill(null);
      for (let i = 0; i < t.x.length; i++) out[pos.get(t.x[i])!] = c[i];
      cols.push(out);
    }
  }
  return { x, cols };
}

/** A palette that reads on light and dark backgrounds. */
export const PALETTE = [
  "#3b6fd8", "#e0622a", "#2e9d5b", "#c23b7a", "#8a63d2", "#c9a227", "#1f9fb0", "#d14a4a", "#6b8e23", "#7f7f7f",
];
export const color = (i: number) => PALETTE[i % PALETTE.length];
