import { describe, expect, it } from "vitest";
import type { DiffResult } from "../api/types";
import { countByStatus, diffRows, filterRows, nameMatcher, sortRows } from "./diff";

const side = (shape: number[]) => ({ dtype: "F32", shape, bytes: shape.reduce((a, b) => a * b, 4) });
const d: DiffResult = {
  a: { ref: "main", commit: "a".repeat(40) },
  b: { ref: "ft", commit: "b".repeat(40) },
  files: [
    {
      path: "model.safetensors",
      status: "changed",
      size_a: 100,
      size_b: 120,
      unchanged_tensors: 10,
      tensors: [
        { name: "layers.0.moe.experts.3.w1.weight", status: "changed", a: side([4, 4]), b: side([4, 4]), l2_delta: 0.5, rel_change: 0.1, cosine: 0.99, max_abs_delta: 0.2 },
        { name: "layers.1.moe.experts.3.w1.weight", status: "changed", a: side([4, 4]), b: side([4, 4]), l2_delta: 2.0, rel_change: 0.4, cosine: 0.9, max_abs_delta: 0.7 },
        { name: "layers.1.moe.router.weight", status: "added", b: side([8, 4]) },
        { name: "lm_head.weight", status: "removed", a: side([2, 2]) },
      ],
    },
    { path: "config.json", status: "changed", size_a: 10, size_b: 12 },
  ],
};

describe("diff rows", () => {
  it("flattens tensors and non-tensor files", () => {
    const rows = diffRows(d);
    expect(rows).toHaveLength(5);
    expect(rows.find((r) => r.name === "config.json")!.tensor).toBe(false);
    expect(countByStatus(rows)).toEqual({ changed: 3, added: 1, removed: 1 });
  });

  it("filters by substring or glob, case-insensitively", () => {
    const rows = diffRows(d);
    const all = new Set(["changed", "added", "removed"] as const);
    expect(filterRows(rows, "experts.3", all)).toHaveLength(2);
    expect(filterRows(rows, "layers.1.*.experts.*", all).map((r) => r.name)).toEqual(["layers.1.moe.experts.3.w1.weight"]);
    expect(filterRows(rows, "LAYERS.1.MOE.ROUTER", all)).toHaveLength(1);
    expect(filterRows(rows, "", new Set(["added"] as const))).toHaveLength(1);
  });

  it("treats regex characters in a glob literally", () => {
    expect(nameMatcher("a+b*")("a+bc")).toBe(true);
    expect(nameMatcher("a+b*")("aab")).toBe(false);
  });

  it("sorts numerically with missing values last in both directions", () => {
    const rows = diffRows(d);
    const desc = sortRows(rows, "l2", true).map((r) => r.l2);
    expect(desc.slice(0, 2)).toEqual([2, 0.5]);
    expect(desc.slice(2).every((v) => v === null)).toBe(true);
    const asc = sortRows(rows, "l2", false).map((r) => r.l2);
    expect(asc.slice(0, 2)).toEqual([0.5, 2]);
  });
});
