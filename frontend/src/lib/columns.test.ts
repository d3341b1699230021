import { describe, expect, it } from "vitest";
import type { RunHit } from "../api/types";
import { availableColumns, cellValue, defaultColumns } from "./columns";

const run = (id: string, params: RunHit["params"], summary: Record<string, number>): RunHit => ({
  id, project: "p/q", name: id, group: "", user: "u", status: "finished", tags: [], notes: "", commit: null, job: null,
  created_at: "2024-01-01T00:00:00Z", ended_at: null, params,
  summary: Object.fromEntries(Object.entries(summary).map(([k, v]) => [k, { last: v, min: v, max: v }])),
});

const runs = [
  run("a", { lr: 0.1, "moe.top_k": 2, seed: 1 }, { "train/loss": 2, val_loss: 2.1, "moe/layer0/entropy": 1, "system/gpu": 90, acc: 0.5 }),
  run("b", { lr: 0.2, "moe.top_k": 2, seed: 1 }, { "train/loss": 1.9, val_loss: 2.0, acc: 0.6 }),
];

describe("columns", () => {
  it("lists every param and metric seen on the page", () => {
    expect(availableColumns(runs).params).toEqual(["lr", "moe.top_k", "seed"]);
    expect(availableColumns(runs).metrics).toContain("system/gpu");
  });

  it("puts params most runs have first", () => {
    const more = [...runs, run("c", { lr: 0.3, rare: 1 }, {}), run("d", { lr: 0.4, rare: 2 }, {})];
    expect(defaultColumns(more)[0]).toBe("params.lr");
    expect(defaultColumns(more)).toContain("params.rare");
  });

  it("defaults to varying params and loss-like metrics, validation first, no moe/system keys", () => {
    const cols = defaultColumns(runs);
    expect(cols[0]).toBe("params.lr");
    expect(cols).not.toContain("params.seed");
    expect(cols.filter((c) => c.startsWith("summary."))).toEqual(["summary.val_loss", "summary.acc", "summary.train/loss"]);
  });

  it("reads cells", () => {
    expect(cellValue(runs[0], "params.lr")).toBe(0.1);
    expect(cellValue(runs[1], "summary.val_loss")).toBe(2.0);
    expect(cellValue(runs[1], "summary.missing")).toBeUndefined();
    expect(cellValue(runs[1], "status")).toBe("finished");
  });
});
