import { describe, expect, it } from "vitest";
import type { Series } from "../api/types";
import { forLog, join, lineData } from "./series";

const s = (over: Partial<Series>): Series => ({ run_id: "r", key: "k", x_axis: "step", downsampled: false, points: 3, step: [0, 1, 2], wall_time: [10, 11, 12], value: [1, 2, 3], ...over });

describe("series helpers", () => {
  it("keeps min/max bands only for downsampled series", () => {
    expect(lineData(s({}), 0, false).min).toBeNull();
    const d = lineData(s({ downsampled: true, min: [0, 1, 2], max: [2, 3, 4] }), 0, false);
    expect(d.min).toEqual([0, 1, 2]);
    expect(d.max).toEqual([2, 3, 4]);
  });

  it("smooths the drawn line and keeps the raw one", () => {
    const d = lineData(s({ value: [0, 10, 10] }), 0.5, false);
    expect(d.raw).toEqual([0, 10, 10]);
    expect((d.y[1] as number) < 10).toBe(true);
  });

  it("turns non-positive values into gaps on a log scale", () => {
    expect(forLog([1, 0, -1, 2, NaN])).toEqual([1, null, null, 2, null]);
  });

  it("aligns tables on the union of x", () => {
    const j = join([
      { x: [0, 2], cols: [[1, 3]] },
      { x: [1, 2], cols: [[5, 6]] },
    ]);
    expect(j.x).toEqual([0, 1, 2]);
    expect(j.cols).toEqual([
      [1, null, 3],
      [null, 5, 6],
    ]);
  });
});
