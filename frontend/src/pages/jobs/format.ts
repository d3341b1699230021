/** Formatting for the jobs and profile pages (the shared helpers are in lib/format.ts). */
import { jobArtifactUrl } from "../../api/hooks";
import { fmtValue } from "../../lib/format";

/** Seconds as "1h 02m", "3m 05s", "12.3s" (job durations, ETAs). */
export function fmtSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return "—";
  if (s < 10) return `${s.toFixed(1)}s`;
  let r = Math.round(s);
  const h = Math.floor(r / 3600);
  r -= h * 3600;
  const m = Math.floor(r / 60);
  r -= m * 60;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

/** Microseconds as "1.23 s", "45.6 ms", "789 µs". */
export function fmtMicros(us: number | null | undefined): string {
  if (us === null || us === undefined || !Number.isFinite(us)) return "—";
  const a = Math.abs(us);
  if (a >= 1e6) return `${+(us / 1e6).toPrecision(3)} s`;
  if (a >= 1e3) return `${+(us / 1e3).toPrecision(3)} ms`;
  return `${+us.toPrecision(3)} µs`;
}

/** FLOPs as "3.64 GFLOP". */
export function fmtFlops(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n) || n === 0) return n === 0 ? "0" : "—";
  const units = ["", "k", "M", "G", "T", "P"];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${+v.toPrecision(3)} ${units[i]}FLOP`;
}

/** A ratio as "1.00×". */
export function fmtRatio(r: number | null | undefined): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return "—";
  return `${r.toFixed(2)}×`;
}

/** "ns/repo@ref" → the registry route of the ref or commit. */
export function modelLink(repo: string, ref?: string | null, commit?: string | null): string {
  if (commit) return `/models/${repo}/commit/${commit}`;
  return `/models/${repo}${ref ? `?ref=${encodeURIComponent(ref)}` : ""}`;
}

/** The dashboard's local copy of speedscope (built into dist/speedscope/ from the npm
 * package) opening an artifact of the job: speedscope fetches `profileURL` itself, a
 * same-origin path, so the session cookie goes with it. */
export function speedscopeUrl(jobId: string, path: string, title: string): string {
  return `/speedscope/index.html#profileURL=${encodeURIComponent(jobArtifactUrl(jobId, path))}&title=${encodeURIComponent(title)}`;
}

/** A job's summary (any JSON object) as table rows: nested objects become dotted keys
 * (`events.received`), scalars and short lists are formatted as values. */
export function summaryRows(summary: Record<string, unknown>, prefix = "", depth = 0): { key: string; value: string; numeric: boolean }[] {
  const rows: { key: string; value: string; numeric: boolean }[] = [];
  for (const [k, v] of Object.entries(summary)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v) && depth < 4 && Object.keys(v).length) {
      rows.push(...summaryRows(v as Record<string, unknown>, key, depth + 1));
    } else {
      rows.push({ key, value: fmtValue(v), numeric: typeof v === "number" });
    }
  }
  return rows;
}
