import { describe, expect, it } from "vitest";
import { ema } from "./ema";

describe("ema", () => {
  it("returns the input when the weight is 0", () => {
    expect(ema([1, 2, 3], 0)).toEqual([1, 2, 3]);
  });

  it("is debiased: a constant series stays constant from the first point", () => {
    const out = ema([5, 5, 5, 5], 0.9);
    for (const v of out) expect(v).toBeCloseTo(5, 10);
  });

  it("lags behind a step and converges to it", () => {
    const out = ema([0, 0, 0, 10, 10, 10, 10, 10, 10, 10], 0.5) as number[];
    expect(out[3]).toBeGreaterThan(0);
    expect(out[3]).toBeLessThan(10);
    expect(out[9]).toBeGreaterThan(9.5);
  });

  it("passes gaps through without resetting the average", () => {
    const out = ema([1, null, NaN, 1], 0.9);
    expect(out[1]).toBeNull();
    expect(out[2]).toBeNull();
    expect(out[3]).toBeCloseTo(1, 10);
  });
});
