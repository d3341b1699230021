/** Batches the charts of a page into few /metrics/series calls: every chart asks for its
 * (run, key); requests made within a few milliseconds that share the axis, bucket count and
 * x window go out together, naming all their keys (the server downsamples them in one query).
 * A batch holds at most ~POINT_BUDGET stored points (when the caller knows the series' sizes,
 * from the run summary), so that big series arrive — and are drawn — progressively instead of
 * all at the end of one long query. */
import { get, qs } from "./client";
import type { Series, XAxis } from "./types";

export interface SeriesRequest {
  run: string;
  key: string;
  x: XAxis;
  buckets: number;
  min?: number | null;
  max?: number | null;
  /** stored points of the series, if known (run summary count): sizes the batches */
  points?: number;
}

interface Pending {
  req: SeriesRequest;
  resolve: (s: Series) => void;
  reject: (e: unknown) => void;
}

const MAX_KEYS = 100;
export const POINT_BUDGET = 2_000_000;

/** Split a group of requests into batches of ≤ maxKeys keys and ≤ budget known points. */
export function packBatches<T extends { req: SeriesRequest }>(items: T[], budget = POINT_BUDGET, maxKeys = MAX_KEYS): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let points = 0;
  let keys = new Set<string>();
  for (const it of items) {
    const p = it.req.points ?? 0;
    const newKey = !keys.has(it.req.key);
    if (cur.length && (points + p > budget || (newKey && keys.size >= maxKeys))) {
      out.push(cur);
      cur = [];
      points = 0;
      keys = new Set();
    }
    cur.push(it);
    points += p;
    keys.add(it.req.key);
  }
  if (cur.length) out.push(cur);
  return out;
}

export type Fetcher = (path: string) => Promise<{ series: Series[] }>;

export class SeriesLoader {
  private queue = new Map<string, Pending[]>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly fetcher: Fetcher;
  private readonly delayMs: number;

  constructor(fetcher: Fetcher = (p) => get<{ series: Series[] }>(p), delayMs = 4) {
    this.fetcher = fetcher;
    this.delayMs = delayMs;
  }

  load(req: SeriesRequest): Promise<Series> {
    return new Promise((resolve, reject) => {
      const group = [req.x, req.buckets, req.min ?? "", req.max ?? ""].join("|");
      const list = this.queue.get(group) ?? [];
      list.push({ req, resolve, reject });
      this.queue.set(group, list);
      if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.delayMs);
    });
  }

  private flush(): void {
    this.timer = null;
    const groups = [...this.queue.values()];
    this.queue.clear();
    for (const pending of groups) for (const batch of packBatches(pending)) void this.send(batch);
  }

  private async send(batch: Pending[]): Promise<void> {
    const { x, buckets, min, max } = batch[0].req;
    const runs = [...new Set(batch.map((p) => p.req.run))];
    const keys = [...new Set(batch.map((p) => p.req.key))];
    try {
      const body = await this.fetcher(
        `/metrics/series${qs({ runs: runs.join(","), keys: keys.join(","), x, buckets, min, max })}`,
      );
      const byId = new Map(body.series.map((s) => [`${s.run_id}\u0000${s.key}`, s]));
      for (const p of batch) {
        const s = byId.get(`${p.req.run}\u0000${p.req.key}`);
        p.resolve(
          s ?? { run_id: p.req.run, key: p.req.key, x_axis: x, downsampled: false, points: 0, step: [], wall_time: [], value: [] },
        );
      }
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
  }
}

export const seriesLoader = new SeriesLoader();
