import { describe, expect, it } from "vitest";
import { asDp, dpGuarantee, dpMechanism } from "./dp";

const rec = { epsilon: 0.8786, epsilon_budget: 0.88, delta: 1e-5, noise_multiplier: 1, sample_rate: 0.005418, steps: 14, max_grad_norm: 1, accountant: "rdp" };

describe("dp", () => {
  it("reads a worker's dp record and refuses anything else", () => {
    expect(asDp(rec)).toEqual(rec);
    expect(asDp({ ...rec, epsilon: "8" })).toBeNull();
    expect(asDp(null)).toBeNull();
    expect(asDp([rec])).toBeNull();
  });
  it("words the guarantee and the mechanism", () => {
    expect(dpGuarantee(rec)).toBe("(ε = 0.879, δ = 1.0e-5)-DP");
    expect(dpMechanism(rec)).toBe("σ = 1, q = 0.00542, 14 steps, C = 1, RDP accountant");
  });
});
