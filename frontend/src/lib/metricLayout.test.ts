import { describe, expect, it } from "vitest";
import { chartItems, familyOf, importance, isFractionKey, layoutSections, parsePins, togglePin, yRange } from "./metricLayout";

/** The keys the training workload emits for a 2-layer, 4-expert model (workers/moe/train.py). */
const TRAINER = [
  "loss", "lm_loss", "router_loss", "lr", "grad_norm", "tokens_per_s", "model_flops_per_s",
  ...[0, 1].flatMap((l) => [
    ...[0, 1, 2, 3].flatMap((e) => [`moe/layer${l}/load/expert${e}`, `moe/layer${l}/bias/expert${e}`]),
    ...["load_cv", "entropy", "dropped_frac", "aux_loss", "aux_balance"].map((k) => `moe/layer${l}/${k}`),
  ]),
  "moe/load_cv", "moe/entropy", "moe/dropped_frac",
  "val/loss", "val/bpb", "val/moe/layer0/load/expert0", "val/moe/layer0/load/expert1", "val/moe/layer0/dropped_frac",
];

describe("per-expert families", () => {
  it("names a family by its key with expert* in place of the expert segment", () => {
    expect(familyOf("moe/layer0/load/expert3")).toEqual(["moe/layer0/load/expert*", 3]);
    expect(familyOf("moe/layer0/expert12/load")).toEqual(["moe/layer0/expert*/load", 12]);
    expect(familyOf("moe/layer0/experts")).toBeNull();
    expect(familyOf("loss")).toBeNull();
  });

  it("collapses each family into one chart with a line per expert, in expert order", () => {
    const items = chartItems(["moe/layer0/load/expert10", "moe/layer0/load/expert2", "moe/layer0/load/expert1", "loss"]);
    expect(items.map((i) => i.id)).toEqual(["moe/layer0/load/expert*", "loss"]);
    expect(items[0].keys).toEqual(["moe/layer0/load/expert1", "moe/layer0/load/expert2", "moe/layer0/load/expert10"]);
    expect(items[0].labels).toEqual(["expert 1", "expert 2", "expert 10"]);
  });

  it("keeps a lone expert key as its own chart", () => {
    expect(chartItems(["moe/layer0/load/expert0"]).map((i) => i.id)).toEqual(["moe/layer0/load/expert0"]);
  });

  it("turns the trainer's per-expert keys into two charts per layer instead of one per expert", () => {
    const items = chartItems(TRAINER);
    expect(items.length).toBe(TRAINER.length - 2 * 2 * 3 - 1); // 4 keys → 1 chart, twice per layer; val's 2 → 1
    expect(items.filter((i) => i.id.includes("expert*")).map((i) => i.id)).toEqual([
      "moe/layer0/load/expert*", "moe/layer0/bias/expert*", "moe/layer1/load/expert*", "moe/layer1/bias/expert*", "val/moe/layer0/load/expert*",
    ]);
  });
});

describe("ordering and sections", () => {
  it("ranks loss, then validation loss, then learning rate, then throughput", () => {
    const ranked = ["grad_norm", "tokens_per_s", "lr", "val/loss", "lm_loss", "loss"].sort((a, b) => importance(a) - importance(b));
    expect(ranked).toEqual(["loss", "val/loss", "lr", "tokens_per_s", "lm_loss", "grad_norm"]);
    expect(importance("train/loss")).toBe(importance("loss"));
    expect(importance("moe/layer0/aux_loss")).toBeGreaterThan(importance("lm_loss"));
  });

  it("puts the important curves in an Overview first, then sections by prefix, per-layer routing collapsed", () => {
    const s = layoutSections(TRAINER);
    expect(s.map((x) => [x.title, x.collapsed])).toEqual([
      ["Overview", false], ["training", false], ["moe", false], ["moe/layer0", true], ["moe/layer1", true], ["val/moe", true],
    ]);
    expect(s[0].items.map((i) => i.id)).toEqual(["loss", "val/loss", "lr", "tokens_per_s", "model_flops_per_s", "val/bpb"]);
    expect(s[1].items.map((i) => i.id)).toEqual(["lm_loss", "router_loss", "grad_norm"]);
    expect(s[3].items.map((i) => i.id)).toContain("moe/layer0/load/expert*");
  });

  it("shows every chart exactly once", () => {
    const ids = layoutSections(TRAINER, ["moe/layer1/entropy", "loss"]).flatMap((s) => s.items.map((i) => i.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(chartItems(TRAINER).length);
  });

  it("groups the seeded train/ and val/ prefixes the same way as top-level keys", () => {
    const s = layoutSections(["train/loss", "train/lr", "train/tokens_per_s", "val/loss", "system/gpu_util"]);
    expect(s[0].items.map((i) => i.id)).toEqual(["train/loss", "val/loss", "train/lr", "train/tokens_per_s"]);
    expect(s[s.length - 1].title).toBe("system");
  });
});

describe("pins", () => {
  it("puts pinned charts first, in pin order, and takes them out of their sections", () => {
    const s = layoutSections(TRAINER, ["moe/layer1/load/expert*", "moe/dropped_frac", "no/such/key"]);
    expect(s[0].title).toBe("Pinned");
    expect(s[0].items.map((i) => i.id)).toEqual(["moe/layer1/load/expert*", "moe/dropped_frac"]);
    expect(s.find((x) => x.title === "moe")!.items.map((i) => i.id)).not.toContain("moe/dropped_frac");
  });

  it("reads pins from repeated pin= parameters and toggles one, keeping the others and other parameters", () => {
    const p = new URLSearchParams("tab=metrics&pin=loss&pin=moe/layer0/load/expert*&smooth=0.6");
    expect(parsePins(p)).toEqual(["loss", "moe/layer0/load/expert*"]);
    const added = togglePin(p, "val/loss");
    expect(parsePins(added)).toEqual(["loss", "moe/layer0/load/expert*", "val/loss"]);
    expect(added.get("smooth")).toBe("0.6");
    const removed = togglePin(added, "loss");
    expect(parsePins(removed)).toEqual(["moe/layer0/load/expert*", "val/loss"]);
    expect(removed.toString()).toContain("tab=metrics");
  });
});

describe("fraction scale", () => {
  it("knows the fraction keys: dropped_frac, per-expert load shares, mfu", () => {
    for (const k of ["moe/layer0/dropped_frac", "moe/dropped_frac", "val/moe/layer1/dropped_frac", "moe/layer0/load/expert3", "moe/layer0/load/expert*", "mfu"]) {
      expect(isFractionKey(k), k).toBe(true);
    }
    for (const k of ["loss", "moe/layer0/bias/expert3", "moe/layer0/load_cv", "tokens_per_s", "moe/layer0/entropy", "system/gpu_util"]) {
      expect(isFractionKey(k), k).toBe(false);
    }
  });

  it("draws fractions on 0–1 (not fitted to the data, not 0–100), except on a log scale", () => {
    expect(yRange(true, false)).toEqual([0, 1]);
    expect(yRange(true, true)).toBeNull();
    expect(yRange(false, false)).toBeNull();
    expect(chartItems(["moe/layer0/dropped_frac"])[0].fraction).toBe(true);
  });
});
