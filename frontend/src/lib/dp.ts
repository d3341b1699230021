/** Differential-privacy facts of a DP-SGD training run (train.dp), as the worker records
 * them: the `dp` object of a job's summary and of the commit it produced. */
import { fmtNum } from "./format";

export interface DpRecord {
  epsilon: number;
  epsilon_budget?: number;
  delta: number;
  noise_multiplier: number;
  sample_rate: number;
  steps: number;
  max_grad_norm: number;
  accountant?: string;
}

/** The `dp` record when `v` is one (numbers where the worker writes numbers), else null. */
export function asDp(v: unknown): DpRecord | null {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  const keys = ["epsilon", "delta", "noise_multiplier", "sample_rate", "steps", "max_grad_norm"];
  return keys.every((k) => typeof o[k] === "number") ? (o as unknown as DpRecord) : null;
}

/** "(ε = 0.879, δ = 1e-5)-DP" */
export function dpGuarantee(d: DpRecord): string {
  return `(ε = ${fmtNum(d.epsilon, 3)}, δ = ${fmtNum(d.delta, 2)})-DP`;
}

/** "σ = 1.1, q = 0.0054, 14 steps, C = 0.7, RDP accountant" */
export function dpMechanism(d: DpRecord): string {
  return (
    `σ = ${fmtNum(d.noise_multiplier, 4)}, q = ${fmtNum(d.sample_rate, 3)}, ${fmtNum(d.steps)} steps, ` +
    `C = ${fmtNum(d.max_grad_norm, 4)}, ${(d.accountant ?? "rdp").toUpperCase()} accountant`
  );
}
