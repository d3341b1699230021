import { describe, expect, it } from "vitest";
import { directionLabel, isBest } from "./compare";

describe("isBest", () => {
  it("follows the hub's best_run", () => {
    expect(isBest({ direction: "min", best_run: "a" }, "a")).toBe(true);
    expect(isBest({ direction: "max", best_run: "a" }, "b")).toBe(false);
    expect(isBest({ direction: "min", best_run: null }, "a")).toBe(false);
  });

  it("gives no star to a metric without a direction", () => {
    expect(isBest({ direction: "none", best_run: "a" }, "a")).toBe(false);
  });
});

describe("directionLabel", () => {
  it("says which way is better, or that neither is", () => {
    expect(directionLabel("min")).toBe("lower is better");
    expect(directionLabel("max")).toBe("higher is better");
    expect(directionLabel("none")).toBe("no direction");
  });
});
