import { describe, expect, it } from "vitest";
import { gradNormKeys } from "./GradNormPanel";
import { divergingColor, logColor } from "./MatrixHeatmap";

describe("gradient-norm heatmap rows", () => {
  it("orders each layer's parts before its experts, experts numerically, and drops other keys", () => {
    const keys = ["loss", "grad_norm/layer1/expert10", "grad_norm/layer1/expert2", "grad_norm/layer0/experts", "grad_norm/layer1/attn", "grad_norm/layer0/attn", "grad_norm/layer1/router", "grad_norm"];
    expect(gradNormKeys(keys)).toEqual([
      "grad_norm/layer0/attn",
      "grad_norm/layer0/experts",
      "grad_norm/layer1/attn",
      "grad_norm/layer1/router",
      "grad_norm/layer1/expert2",
      "grad_norm/layer1/expert10",
    ]);
  });
  it("colours zero black (a starved expert) and the range ends apart on a log scale", () => {
    expect(logColor(0, 1e-4, 1)).toEqual([0, 0, 0]);
    expect(logColor(1e-4, 1e-4, 1)).toEqual([48, 18, 59]);
    expect(logColor(1, 1e-4, 1)).toEqual([253, 231, 37]);
    expect(logColor(1e-2, 1e-4, 1)).toEqual([33, 145, 140]);
  });
  it("colours load change: red up, blue down, near-white for none", () => {
    expect(divergingColor(0, 0.1)).toEqual([240, 240, 236]);
    expect(divergingColor(0.1, 0.1)).toEqual([178, 24, 43]);
    expect(divergingColor(-0.5, 0.1)).toEqual([33, 102, 172]);
  });
});
