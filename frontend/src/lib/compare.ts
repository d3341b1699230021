/** The compare page's reading of a report: "best" is the hub's word, never a guess here. */
import type { CompareMetric, MetricDirection } from "../api/types";

/** Whether run `id` holds the best value of `m`: the hub's best_run, and only for a metric with
 * a direction (the hub sends no best_run without one; this holds even for an older hub). */
export function isBest(m: Pick<CompareMetric, "direction" | "best_run">, id: string): boolean {
  return m.direction !== "none" && m.best_run === id;
}

/** How the metrics table names a direction. */
export function directionLabel(d: MetricDirection): string {
  return d === "min" ? "lower is better" : d === "max" ? "higher is better" : "no direction";
}
