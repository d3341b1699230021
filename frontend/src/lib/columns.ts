/** Columns of the runs table: fixed ones plus any param or summary metric, as
 * `params.<key>` / `summary.<key>` ids (the same names the query language and sort use). */
import type { RunHit } from "../api/types";

export const FIXED_COLUMNS = ["status", "created_at", "user", "tags"] as const;

export type ColumnId = string;

export function isHidden(key: string): boolean {
  return key.startsWith("moe/") || key.startsWith("system/");
}

export interface AvailableColumns {
  params: string[];
  metrics: string[];
}

export function availableColumns(runs: RunHit[]): AvailableColumns {
  const params = new Set<string>();
  const metrics = new Set<string>();
  for (const r of runs) {
    for (const k of Object.keys(r.params ?? {})) params.add(k);
    for (const k of Object.keys(r.summary ?? {})) metrics.add(k);
  }
  const byName = (a: string, b: string) => a.localeCompare(b);
  return { params: [...params].sort(byName), metrics: [...metrics].sort(byName) };
}

/** Columns worth showing when the URL names none: params whose values differ on the page
 * (what a sweep varies), then loss-like metrics, then other metrics. */
export function defaultColumns(runs: RunHit[], maxParams = 6, maxMetrics = 4): ColumnId[] {
  const { params, metrics } = availableColumns(runs);
  // Params most runs have come first (a sweep's axes), rare ones last.
  const presence = (k: string) => runs.filter((r) => r.params && k in r.params).length;
  const varying = params
    .filter((k) => new Set(runs.filter((r) => r.params && k in r.params).map((r) => JSON.stringify(r.params[k]))).size > 1)
    .sort((a, b) => presence(b) - presence(a) || a.localeCompare(b));
  const chosenParams = (varying.length ? varying : params).slice(0, maxParams);
  const visible = metrics.filter((k) => !isHidden(k));
  const lossy = visible.filter((k) => /loss|ppl|perplexity|acc/i.test(k));
  const rest = visible.filter((k) => !lossy.includes(k));
  const chosenMetrics = [...lossy.sort(valFirst), ...rest].slice(0, maxMetrics);
  return [...chosenParams.map((k) => `params.${k}`), ...chosenMetrics.map((k) => `summary.${k}`)];
}

function valFirst(a: string, b: string): number {
  const va = /val|eval|test/i.test(a) ? 0 : 1;
  const vb = /val|eval|test/i.test(b) ? 0 : 1;
  return va - vb || a.localeCompare(b);
}

export function columnLabel(id: ColumnId): string {
  if (id.startsWith("params.")) return id.slice(7);
  if (id.startsWith("summary.")) return id.slice(8);
  return { status: "Status", created_at: "Started", user: "User", tags: "Tags", name: "Name" }[id] ?? id;
}

export function columnKind(id: ColumnId): "param" | "metric" | "fixed" {
  if (id.startsWith("params.")) return "param";
  if (id.startsWith("summary.")) return "metric";
  return "fixed";
}

/** Whether the server can sort on a column (params sort numerically; tags cannot). */
export function sortable(id: ColumnId): boolean {
  return id !== "tags";
}

export function cellValue(run: RunHit, id: ColumnId): unknown {
  if (id.startsWith("params.")) return run.params?.[id.slice(7)];
  if (id.startsWith("summary.")) return run.summary?.[id.slice(8)]?.last;
  return (run as unknown as Record<string, unknown>)[id];
}
