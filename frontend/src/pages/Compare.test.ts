import { describe, expect, it } from "vitest";
import type { CompareReport } from "../api/types";
import { defaultCompareKeys, pcAxes, targetFirst } from "./Compare";

const metric = (key: string, finals: Record<string, number>): CompareReport["metrics"][number] => ({
  key, direction: "min", best_run: null, runs: Object.fromEntries(Object.entries(finals).map(([id, final]) => [id, { final, best: final }])),
});

const report = (extra: Partial<CompareReport> = {}): CompareReport => ({
  runs: [{ id: "a", name: "top2", status: "finished" }, { id: "b", name: "top4", status: "finished" }],
  baseline: "a", target: null, params: [], same_params: 0, metrics: [], correlations: [], summary: [], ...extra,
});

describe("defaultCompareKeys", () => {
  it("puts the target first, then losses, then the rest; at most four", () => {
    const r = report({
      target: "eval/acc",
      metrics: ["lr", "train/loss", "eval/acc", "val/loss", "tokens_per_s", "grad_norm"].map((k) => metric(k, { a: 1 })),
    });
    expect(defaultCompareKeys(r)).toEqual(["eval/acc", "train/loss", "val/loss", "lr"]);
  });

  it("leaves out system and MoE routing metrics, and a target that is not a metric", () => {
    const r = report({
      target: "missing",
      metrics: ["system/gpu_util", "moe/layer0/load/expert1", "moe/layer0/entropy", "lr", "train/loss"].map((k) => metric(k, { a: 1 })),
    });
    expect(defaultCompareKeys(r)).toEqual(["train/loss", "lr"]);
    expect(defaultCompareKeys(report())).toEqual([]);
  });
});

describe("pcAxes", () => {
  const params = Array.from({ length: 10 }, (_, i) => ({ key: `p${i}`, values: { a: i, b: i + 1 } }));

  it("makes an axis per differing param (the first eight), then the target's final value", () => {
    const r = report({ target: "val/loss", params, metrics: [metric("train/loss", { a: 3, b: 2 }), metric("val/loss", { a: 2.5, b: 2.1 })] });
    const axes = pcAxes(r);
    expect(axes.map((a) => a.key)).toEqual([...params.slice(0, 8).map((p) => `params.${p.key}`), "summary.val/loss"]);
    expect(axes[0]).toEqual({ key: "params.p0", label: "p0", values: { a: 0, b: 1 } });
    expect(axes[8]).toEqual({ key: "summary.val/loss", label: "val/loss (final)", values: { a: 2.5, b: 2.1 } });
    expect(pcAxes(r, 2).map((a) => a.label)).toEqual(["p0", "p1", "val/loss (final)"]);
  });

  it("has no metric axis without a target", () => {
    expect(pcAxes(report({ params: params.slice(0, 2), metrics: [metric("train/loss", { a: 1 })] })).map((a) => a.key)).toEqual(["params.p0", "params.p1"]);
    expect(pcAxes(report())).toEqual([]);
  });
});

describe("metrics table rows", () => {
  it("put the target metric first so it is visible without scrolling", () => {
    const rows = targetFirst(["lr", "train/loss", "val/loss", "z"].map((k) => metric(k, { a: 1 })), "val/loss");
    expect(rows.map((m) => m.key)).toEqual(["val/loss", "lr", "train/loss", "z"]);
    expect(targetFirst([metric("a", { a: 1 })], null).map((m) => m.key)).toEqual(["a"]);
  });
});
