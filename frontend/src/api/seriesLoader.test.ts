import { describe, expect, it, vi } from "vitest";
import { packBatches, SeriesLoader } from "./seriesLoader";
import type { Series } from "./types";

function fakeFetcher() {
  const calls: string[] = [];
  const fetcher = vi.fn(async (path: string) => {
    calls.push(path);
    const u = new URL(path, "http://x");
    const runs = u.searchParams.get("runs")!.split(",");
    const keys = u.searchParams.get("keys")!.split(",");
    const series: Series[] = [];
    for (const r of runs)
      for (const k of keys)
        if (k !== "missing") series.push({ run_id: r, key: k, x_axis: "step", downsampled: false, points: 1, step: [1], wall_time: [1], value: [k.length], });
    return { series };
  });
  return { calls, fetcher };
}

describe("SeriesLoader", () => {
  it("batches concurrent requests with the same axis and window into one call", async () => {
    const { calls, fetcher } = fakeFetcher();
    const loader = new SeriesLoader(fetcher, 1);
    const [a, b, c] = await Promise.all([
      loader.load({ run: "r1", key: "loss", x: "step", buckets: 500 }),
      loader.load({ run: "r1", key: "lr", x: "step", buckets: 500 }),
      loader.load({ run: "r2", key: "loss", x: "step", buckets: 500 }),
    ]);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toContain("runs=r1%2Cr2");
    expect(calls[0]).toContain("keys=loss%2Clr");
    expect([a.key, b.key, c.run_id]).toEqual(["loss", "lr", "r2"]);
  });

  it("keeps zoomed windows and other axes apart", async () => {
    const { calls, fetcher } = fakeFetcher();
    const loader = new SeriesLoader(fetcher, 1);
    await Promise.all([
      loader.load({ run: "r1", key: "loss", x: "step", buckets: 500 }),
      loader.load({ run: "r1", key: "loss", x: "step", buckets: 500, min: 10, max: 20 }),
      loader.load({ run: "r1", key: "loss", x: "time", buckets: 500 }),
    ]);
    expect(calls).toHaveLength(3);
    expect(calls.some((c) => c.includes("min=10") && c.includes("max=20"))).toBe(true);
  });

  it("answers an empty series for a key the run never logged", async () => {
    const { fetcher } = fakeFetcher();
    const s = await new SeriesLoader(fetcher, 1).load({ run: "r1", key: "missing", x: "step", buckets: 10 });
    expect(s.step).toEqual([]);
    expect(s.points).toBe(0);
  });

  it("rejects every request of a failed batch", async () => {
    const loader = new SeriesLoader(async () => { throw new Error("boom"); }, 1);
    await expect(loader.load({ run: "r", key: "k", x: "step", buckets: 1 })).rejects.toThrow("boom");
  });
});

describe("packBatches", () => {
  const item = (key: string, points?: number) => ({ req: { run: "r", key, x: "step" as const, buckets: 10, points } });
  it("keeps small series together and splits big ones by the point budget", () => {
    const b = packBatches([item("a", 1e6), item("b", 1e6), item("c", 1e6), item("d", 10), item("e")], 2e6);
    expect(b.map((x) => x.map((i) => i.req.key))).toEqual([["a", "b"], ["c", "d", "e"]]);
  });
  it("caps the keys of a batch", () => {
    const b = packBatches(["a", "b", "c"].map((k) => item(k)), 1e9, 2);
    expect(b.map((x) => x.length)).toEqual([2, 1]);
  });
});
