import { describe, expect, it } from "vitest";
import { axisScale, niceTicks } from "./ParallelCoords";
import { axisSize } from "./TimeChart";

describe("chart axes", () => {
  it("sizes the y axis to its longest tick label, so labels are not clipped", () => {
    expect(axisSize(0, 10, 5)).toBe(30);
    expect(axisSize(60, 10, 5)).toBe(79);
    expect(axisSize(60.2, 10, 5)).toBeGreaterThan(axisSize(40, 10, 5));
  });

  it("puts round ticks on parallel-coordinate axes", () => {
    expect(niceTicks(2, 8)).toEqual([2, 4, 6, 8]);
    expect(niceTicks(2.289, 2.439)).toEqual([2.25, 2.3, 2.35, 2.4, 2.45]);
    expect(niceTicks(0.0001, 0.001)).toEqual([0, 0.00025, 0.0005, 0.00075, 0.001]);
  });

  it("spans a numeric axis over its ticks and places every value inside it", () => {
    const s = axisScale([2.289, 2.339, 2.439]);
    expect(s.kind).toBe("num");
    expect(s.ticks.map((t) => t.v)).toEqual(["2.25", "2.3", "2.35", "2.4", "2.45"]);
    expect(s.ticks[0].p).toBe(0);
    expect(s.ticks[s.ticks.length - 1].p).toBe(1);
    for (const v of [2.289, 2.339, 2.439]) expect(s.pos(v)!).toBeGreaterThan(0);
    expect(s.pos(2.439)!).toBeLessThan(1);
  });

  it("gives a constant numeric axis ticks around its value", () => {
    const s = axisScale([4, 4]);
    expect(s.ticks.length).toBeGreaterThan(1);
    expect(s.pos(4)).toBeCloseTo(0.5, 1);
  });
});
