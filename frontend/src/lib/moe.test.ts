import { describe, expect, it } from "vitest";
import { discoverMoe, droppedKey, imbalance, isMoeKey, loadColor, loadKey, loadMatrix } from "./moe";

describe("discoverMoe", () => {
  it("finds layers and experts from metric keys, numerically sorted", () => {
    const keys = [
      "train/loss",
      "moe/layer1/load/expert10",
      "moe/layer1/load/expert2",
      "moe/layer0/load/expert0",
      "moe/layer0/entropy",
      "moe/layer1/dropped",
      "moe/layer1/aux_loss",
      "moe/layer1/bias/expert3",
      "moe/layer1/load/expertX",
    ];
    const layers = discoverMoe(keys);
    expect(layers.map((l) => l.layer)).toEqual([0, 1]);
    expect(layers[0]).toMatchObject({ loadExperts: [0], entropy: true, dropped: false, auxLoss: false });
    expect(layers[1]).toMatchObject({ loadExperts: [2, 10], biasExperts: [3], dropped: true, auxLoss: true, entropy: false });
  });

  it("reads the dropped-token fraction under the trainer's key, moe/layer{L}/dropped_frac", () => {
    const layers = discoverMoe(["moe/layer0/load/expert0", "moe/layer0/dropped_frac", "moe/layer1/dropped", "moe/dropped_frac"]);
    expect(layers.map((l) => [l.layer, l.dropped, droppedKey(l)])).toEqual([
      [0, true, "moe/layer0/dropped_frac"],
      [1, true, "moe/layer1/dropped"],
    ]);
    expect(isMoeKey("moe/layer0/dropped_frac")).toBe(true);
  });

  it("prefers dropped_frac when a layer logged both names", () => {
    const [l] = discoverMoe(["moe/layer2/dropped_frac", "moe/layer2/dropped"]);
    expect(droppedKey(l)).toBe("moe/layer2/dropped_frac");
    const [m] = discoverMoe(["moe/layer2/dropped", "moe/layer2/dropped_frac"]);
    expect(droppedKey(m)).toBe("moe/layer2/dropped_frac");
  });

  it("recognises only the convention", () => {
    expect(isMoeKey(loadKey(3, 7))).toBe(true);
    expect(isMoeKey("moe/layer3/loads/expert7")).toBe(false);
    expect(isMoeKey("train/moe/layer3/entropy")).toBe(false);
  });
});

describe("loadMatrix", () => {
  it("bins each expert's points into columns over the common step range", () => {
    const m = loadMatrix(
      [
        { expert: 0, x: [0, 1, 2, 3], value: [0.5, 0.5, 0.25, 0.25] },
        { expert: 1, x: [0, 1, 2, 3], value: [0.5, 0.5, 0.75, 0.75] },
      ],
      2,
    );
    expect(m.cols).toBe(2);
    expect(m.x0).toBe(0);
    expect(Array.from(m.values)).toEqual([0.5, 0.25, 0.5, 0.75]);
  });

  it("leaves NaN where an expert has no point in a column", () => {
    const m = loadMatrix(
      [
        { expert: 0, x: [0, 10], value: [1, 1] },
        { expert: 1, x: [10], value: [1] },
      ],
      2,
    );
    expect(Number.isNaN(m.values[2])).toBe(true);
    expect(m.values[3]).toBe(1);
  });

  it("is empty without points", () => {
    expect(loadMatrix([{ expert: 0, x: [], value: [] }], 10).cols).toBe(0);
  });

  it("measures imbalance as max over mean", () => {
    const m = loadMatrix(
      [
        { expert: 0, x: [0, 1], value: [0.5, 0.9] },
        { expert: 1, x: [0, 1], value: [0.5, 0.1] },
      ],
      2,
    );
    const imb = imbalance(m);
    expect(imb[0]).toBeCloseTo(1);
    expect(imb[1]).toBeCloseTo(1.8);
  });
});

describe("loadColor", () => {
  it("is neutral at uniform load, blue below, red above", () => {
    const [r1, , b1] = loadColor(1);
    expect(Math.abs(r1 - b1)).toBeLessThan(10);
    const [rl, , bl] = loadColor(0.25);
    expect(bl).toBeGreaterThan(rl);
    const [rh, , bh] = loadColor(4);
    expect(rh).toBeGreaterThan(bh);
    expect(loadColor(100)).toEqual(loadColor(4)); // saturates
  });
});
