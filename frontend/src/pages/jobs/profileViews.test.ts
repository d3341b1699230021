import { describe, expect, it } from "vitest";
import { diffColor, layoutDiff, stackBands, type DiffFrame } from "./profileApi";

describe("stackBands", () => {
  it("stacks categories cumulatively and leaves out empty ones", () => {
    const pts = [
      [0, 10, 0, 5],
      [1, 10, 0, 7],
    ];
    const bands = stackBands(pts, ["parameter", "gradient", "activation"]);
    expect(bands.map((b) => b.cat)).toEqual(["parameter", "activation"]);
    expect(bands[1].lo).toEqual([10, 10]);
    expect(bands[1].hi).toEqual([15, 17]);
  });
});

describe("diffColor", () => {
  it("is red for slower, blue for faster, grey unchanged, dark for one-sided", () => {
    const slow = diffColor({ ratio: 4, only: null }).match(/\d+/g)!.map(Number);
    const fast = diffColor({ ratio: 0.25, only: null }).match(/\d+/g)!.map(Number);
    const same = diffColor({ ratio: 1, only: null }).match(/\d+/g)!.map(Number);
    expect(slow[0]).toBeGreaterThan(slow[2] + 100);
    expect(fast[2]).toBeGreaterThan(fast[0] + 100);
    expect(new Set(same).size).toBe(1);
    expect(diffColor({ ratio: null, only: "b" })).not.toBe(diffColor({ ratio: null, only: "a" }));
    // intensity grows with the ratio
    const mild = diffColor({ ratio: 1.3, only: null }).match(/\d+/g)!.map(Number);
    expect(mild[1]).toBeGreaterThan(slow[1]);
  });
});

describe("layoutDiff", () => {
  it("lays children side by side by max(A, B), scaled to fit under their parent", () => {
    const f = (name: string, a: number, b: number, children: DiffFrame[] = []): DiffFrame => ({ name, a_us: a, b_us: b, ratio: a ? b / a : null, only: null, children });
    const root = f("all", 100, 80, [f("x", 60, 80), f("y", 40, 0)]);
    const rects = layoutDiff(root);
    const byName = Object.fromEntries(rects.map((r) => [r.frame.name, r]));
    // 80 + 40 > 100: both scaled by 100/120 to fit under the root
    expect(byName.x.w).toBeCloseTo(0.8 / 1.2);
    expect(byName.y.x).toBeCloseTo(0.8 / 1.2);
    expect(byName.y.w).toBeCloseTo(0.4 / 1.2);
    expect(byName.y.x + byName.y.w).toBeCloseTo(1);
    expect(byName.y.depth).toBe(1);
  });
});
