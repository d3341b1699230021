/** Words for what dedupe saves (the figures come from the API: hub/registry/dedupe.py). */
import type { CommitStats, RepoStats } from "../api/types";
import { fmtBytes } from "./format";

/** The share of the logical size that dedupe does not store: 1 - stored / logical (null when nothing is stored). */
export function savedFraction(s: RepoStats): number | null {
  return s.logical_bytes > 0 ? 1 - s.stored_bytes / s.logical_bytes : null;
}

/** ["3 commits, 3.1 GiB logical, 1.1 GiB stored", "dedupe saves 65%"]; the second is null
 * when nothing is stored yet. */
export function repoStatsParts(s: RepoStats): [string, string | null] {
  const commits = `${s.commits} commit${s.commits === 1 ? "" : "s"}`;
  const saved = savedFraction(s);
  if (saved === null) return [`${commits}, nothing stored yet`, null];
  return [`${commits}, ${fmtBytes(s.logical_bytes)} logical, ${fmtBytes(s.stored_bytes)} stored`, `dedupe saves ${Math.round(saved * 100)}%`];
}

/** "3 commits, 3.1 GiB logical, 1.1 GiB stored — dedupe saves 65%". */
export function repoStatsLine(s: RepoStats): string {
  const [lead, saved] = repoStatsParts(s);
  return saved ? `${lead} — ${saved}` : lead;
}

/** "12.4 MiB new, 1.02 GiB reused"; a commit without a parent's chunks says only what is new. */
export function commitStatsLine(s: CommitStats): string {
  if (s.new_bytes === 0 && s.reused_bytes === 0) return "no bytes";
  if (s.reused_bytes === 0) return `${fmtBytes(s.new_bytes)} new`;
  return `${fmtBytes(s.new_bytes)} new, ${fmtBytes(s.reused_bytes)} reused`;
}
