/** Profile memory (tensor lifetimes) and profile diff: hooks and the pure helpers the views
 * share (stacking, colours), unit-tested in profileViews.test.ts. */
import { useQuery } from "@tanstack/react-query";
import { ApiError, get, post, qs } from "../../api/client";
import type { components } from "../../api/schema";

type S = components["schemas"];
export type ProfileMemory = S["ProfileMemoryOut"];
export type TensorLifetime = S["TensorLifetimeOut"];
export type ProfileDiff = S["ProfileDiffOut"];
export type ProfileDiffOp = S["ProfileDiffOpOut"];
export type ProfileDiffPrepared = S["ProfileDiffPrepareOut"];
export type ProfileDiffSide = S["ProfileDiffSideOut"];
type JobLike = Pick<S["JobDetailOut"], "id" | "status" | "reason" | "progress">;
export interface DiffFrame {
  name: string;
  a_us: number;
  b_us: number;
  ratio: number | null;
  only: string | null;
  children: DiffFrame[];
}

export function useProfileMemory(id: string, enabled = true) {
  return useQuery({
    queryKey: ["profile-memory", id],
    queryFn: ({ signal }) => get<ProfileMemory>(`/jobs/${encodeURIComponent(id)}/profile/memory`, signal),
    enabled: enabled && !!id,
    staleTime: Infinity,
  });
}

export function useProfileDiff(a: string, b: string) {
  return useQuery({
    queryKey: ["profile-diff", a, b],
    queryFn: ({ signal }) => get<ProfileDiff>(`/jobs/profile-diff${qs({ a, b })}`, signal),
    enabled: !!a && !!b,
    staleTime: Infinity,
  });
}

/** Resources of a profile the dashboard launches: the launch page's defaults. */
export const PROFILE_RESOURCES = { gpus: 0, cpus: 1, memory_mb: 3072, time_limit_s: 1800 };
export const JOB_ENDED: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled", "lost"]);

/** A side as the API takes it: `ns/repo@ref` stays; a bare ref (a commit, branch or tag, no
 * `@`) is taken in `repo`; `ns/repo` alone is its default branch; "" stays "". */
export function refSpec(input: string, repo: string): string {
  const s = input.trim();
  if (!s || s.includes("@")) return s;
  if (s.includes("/")) return `${s}@main`;
  return repo ? `${repo}@${s}` : s;
}

/** POST /jobs/profile-diff for two refs or jobs: reuses each commit's profile of identical
 * settings (those of a side's profile) or launches one in `project`. When neither commit has
 * a profile to take settings from (400 profile_config_required) it asks again with the
 * default profile config, `{}`. */
export async function prepareProfileDiff(a: string, b: string, project: string): Promise<ProfileDiffPrepared> {
  const body = { a, b, project, resources: PROFILE_RESOURCES };
  try {
    return await post<ProfileDiffPrepared>("/jobs/profile-diff", body);
  } catch (e) {
    if (e instanceof ApiError && e.code === "profile_config_required") return post<ProfileDiffPrepared>("/jobs/profile-diff", { ...body, config: {} });
    throw e;
  }
}

/** One side's progress line, as `hub profile diff` prints it: "profiling A (job): running 2/3". */
export function sideProgress(label: string, side: ProfileDiffSide, job?: JobLike): string {
  const status = job?.status ?? side.status;
  const p = job?.progress;
  const steps = p && p.total ? ` ${p.step ?? 0}/${p.total}` : "";
  const what = `${side.repo}@${side.commit.slice(0, 12)}`;
  if (status === "succeeded") return `${label} ${what}: profile ${side.job} ${side.launched ? "finished" : "reused"}`;
  if (JOB_ENDED.has(status)) return `${label} ${what}: profile ${side.job} ${status}${job?.reason ? `: ${job.reason}` : ""}`;
  return `profiling ${label} ${what}… (job ${side.job}: ${status}${steps})`;
}

/** Category colours, in stacking order (the worker's MEMORY_CATEGORIES). */
export const CATEGORY_COLORS: Record<string, string> = {
  parameter: "#2f5fc4",
  gradient: "#c4452f",
  optimizer_state: "#8a4fc4",
  activation: "#2f9e6b",
  temporary: "#d09a1c",
  input: "#5a8fa8",
  other: "#9a9a9a",
};

/** The stacked bands: for each category the cumulative lower and upper bytes per point. */
export function stackBands(points: number[][], categories: string[]): { cat: string; lo: number[]; hi: number[] }[] {
  const acc = points.map(() => 0);
  const bands = [];
  for (let c = 0; c < categories.length; c++) {
    const lo = [...acc];
    points.forEach((p, i) => {
      acc[i] += p[c + 1] ?? 0;
    });
    if (points.some((p) => (p[c + 1] ?? 0) > 0)) bands.push({ cat: categories[c], lo, hi: [...acc] });
  }
  return bands;
}

/** A differential frame's colour: red slower (B > A), blue faster, intensity by |log2 ratio|
 * (full at 4x); a frame only in B is dark red, only in A dark blue, unchanged grey. */
export function diffColor(f: { ratio: number | null; only: string | null }): string {
  if (f.only === "b") return "rgb(150,20,20)";
  if (f.only === "a") return "rgb(20,40,150)";
  if (f.ratio === null || !isFinite(f.ratio) || f.ratio <= 0) return "rgb(200,200,200)";
  const t = Math.min(1, Math.abs(Math.log2(f.ratio)) / 2);
  const base = 225;
  if (f.ratio >= 1) return `rgb(${base + Math.round(30 * t)},${Math.round(base - 170 * t)},${Math.round(base - 170 * t)})`;
  return `rgb(${Math.round(base - 170 * t)},${Math.round(base - 120 * t)},${base + Math.round(30 * t)})`;
}

export interface DiffRect {
  frame: DiffFrame;
  x: number;
  w: number;
  depth: number;
}

/** Icicle layout of the merged tree, width by max(A, B) per frame (so frames only in A still
 * show), fractions of the root. Children whose max(A, B) add up to more than their parent's
 * (A grew in one, B in another) are scaled down together to fit under it. */
export function layoutDiff(root: DiffFrame): DiffRect[] {
  const out: DiffRect[] = [];
  const size = (f: DiffFrame) => Math.max(f.a_us, f.b_us);
  const total = size(root) || 1;
  const walk = (f: DiffFrame, x: number, w: number, depth: number) => {
    out.push({ frame: f, x, w, depth });
    const sum = f.children.reduce((a, c) => a + size(c) / total, 0);
    const k = sum > w && sum > 0 ? w / sum : 1;
    let cx = x;
    for (const c of f.children) {
      const cw = (size(c) / total) * k;
      walk(c, cx, cw, depth + 1);
      cx += cw;
    }
  };
  walk(root, 0, size(root) / total, 0);
  return out;
}
