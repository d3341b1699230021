/** react-query hooks over the REST API: one per read, plus the writes the pages make. */
import { useEffect } from "react";
import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { API, ApiError, del, encodePath, errorFrom, get, patch, post, qs, repoPath, request } from "./client";
import { seriesLoader, type SeriesRequest } from "./seriesLoader";
import type {
  ApiToken,
  CommitDetail,
  CommitLog,
  CompareReport,
  DiffResult,
  FileInfo,
  Job,
  JobDetail,
  JobKind,
  JobLogs,
  JobResources,
  JobSchema,
  ProfileCompare,
  ProfileOps,
  MergeResult,
  MergeStrategy,
  Page,
  Project,
  Repo,
  RepoDetail,
  RepoStats,
  Run,
  RunSearch,
  WhoAmI,
} from "./types";

export function useWhoAmI() {
  return useQuery({
    queryKey: ["whoami"],
    queryFn: ({ signal }) => request<WhoAmI>("/whoami", { signal, quiet401: true }),
    retry: (n, e) => !(e instanceof ApiError && e.status === 401) && n < 2,
    staleTime: 5 * 60_000,
  });
}

export function useLogin() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (v: { username: string; password: string }) =>
      request<{ username: string; csrf_token: string }>("/auth/login", { method: "POST", body: v, quiet401: true }),
    // Drop everything cached while signed out (the 401 from whoami included).
    onSuccess: () => qc.clear(),
  });
}

export function useLogout() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: () => post<void>("/auth/logout"),
    onSettled: () => {
      qc.clear();
    },
  });
}

// --- tokens -----------------------------------------------------------------------------------

export function useTokens() {
  return useQuery({ queryKey: ["tokens"], queryFn: ({ signal }) => get<Page<ApiToken>>("/tokens?page_size=200", signal) });
}

export function useCreateToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (v: { name: string; scope: "read" | "write" }) => post<ApiToken>("/tokens", v),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["tokens"] }),
  });
}

export function useRevokeToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: number) => del<ApiToken>(`/tokens/${id}`),
    onSuccess: () => qc.invalidateQueries({ queryKey: ["tokens"] }),
  });
}

// --- tracking ---------------------------------------------------------------------------------

export function useProjects() {
  return useQuery({ queryKey: ["projects"], queryFn: ({ signal }) => get<Page<Project>>("/projects?page_size=500", signal) });
}

export interface RunSearchArgs {
  ns: string;
  name: string;
  q: string;
  sort: string;
  offset: number;
  size: number;
}

/** search_after cursors of pages reached by "Next": deep pages keep working on engines that
 * cap offsets (Elasticsearch's 10,000-hit window). Keyed by the page's search args. */
const cursors = new Map<string, unknown[]>();
const cursorKey = (a: RunSearchArgs) => JSON.stringify([a.ns, a.name, a.q, a.sort, a.size, a.offset]);

export function runSearchPath(a: RunSearchArgs, facets: string[] = []): string {
  const cursor = a.offset ? cursors.get(cursorKey(a)) : undefined;
  return `/projects/${encodeURIComponent(a.ns)}/${encodeURIComponent(a.name)}/runs${qs({
    q: a.q,
    sort: a.sort,
    ...(cursor ? { cursor: JSON.stringify(cursor) } : { offset: a.offset }),
    page_size: a.size,
    facets: facets.join(","),
  })}`;
}

async function searchPage(a: RunSearchArgs, signal?: AbortSignal): Promise<RunSearch> {
  const page = await get<RunSearch>(runSearchPath(a), signal);
  if (page.next) cursors.set(cursorKey({ ...a, offset: a.offset + a.size }), page.next);
  return page;
}

const noClientRetry = (n: number, e: Error) => !(e instanceof ApiError && e.status < 500) && n < 2;

/** One page of runs. Facets come from a separate query (useRunFacets) so the rows render as
 * soon as the engine returns them; the next page is prefetched once this one is on screen
 * and `prefetchNext` says the engine is idle (it may serve one search at a time). */
export const runSearchQuery = (a: RunSearchArgs) => ({
  queryKey: ["runs", a] as const,
  queryFn: ({ signal }: { signal?: AbortSignal }) => searchPage(a, signal),
  retry: noClientRetry,
});

export function useRunSearch(a: RunSearchArgs, prefetchNext = true) {
  const qc = useQueryClient();
  const query = useQuery({ ...runSearchQuery(a), placeholderData: keepPreviousData });
  const next = prefetchNext && query.data && !query.isPlaceholderData && query.data.next ? { ...a, offset: a.offset + a.size } : null;
  useEffect(() => {
    if (!next) return;
    const t = setTimeout(() => void qc.prefetchQuery({ queryKey: ["runs", next], queryFn: () => searchPage(next), staleTime: 30_000 }), 300);
    return () => clearTimeout(t);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [next && JSON.stringify(next)]);
  return query;
}

/** Facet counts for the query (not for a page: paging does not refetch them). */
export function useRunFacets(a: Pick<RunSearchArgs, "ns" | "name" | "q">, facets: string[], enabled: boolean) {
  return useQuery({
    queryKey: ["run-facets", a.ns, a.name, a.q, facets],
    queryFn: ({ signal }) =>
      get<RunSearch>(
        `/projects/${encodeURIComponent(a.ns)}/${encodeURIComponent(a.name)}/runs${qs({ q: a.q, page_size: 1, facets: facets.join(",") })}`,
        signal,
      ),
    enabled,
    placeholderData: keepPreviousData,
    retry: noClientRetry,
    staleTime: 60_000,
  });
}

export const runQuery = (id: string) => ({
  queryKey: ["run", id] as const,
  queryFn: ({ signal }: { signal?: AbortSignal }) => get<Run>(`/runs/${encodeURIComponent(id)}`, signal),
});

export function useRun(id: string) {
  return useQuery(runQuery(id));
}

export function useRuns(ids: string[]) {
  return useQuery({
    queryKey: ["runs-by-id", ids],
    queryFn: ({ signal }) => Promise.all(ids.map((id) => get<Run>(`/runs/${encodeURIComponent(id)}`, signal))),
    enabled: ids.length > 0,
  });
}

export function usePatchRun(id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (v: { status?: string; name?: string; notes?: string; add_tags?: string[]; remove_tags?: string[] }) =>
      patch<Run>(`/runs/${encodeURIComponent(id)}`, v),
    onSuccess: (run) => {
      qc.setQueryData(["run", id], run);
      void qc.invalidateQueries({ queryKey: ["runs"] });
    },
  });
}

export function useSeries(req: SeriesRequest, enabled = true) {
  return useQuery({
    queryKey: ["series", req.run, req.key, req.x, req.buckets, req.min ?? null, req.max ?? null],
    queryFn: () => seriesLoader.load(req),
    enabled,
    staleTime: 15_000,
    placeholderData: keepPreviousData,
  });
}

export function useCompare(runs: string[], baseline: string | null) {
  return useQuery({
    queryKey: ["compare", runs, baseline],
    queryFn: ({ signal }) => get<CompareReport>(`/runs/compare${qs({ runs: runs.join(","), baseline })}`, signal),
    enabled: runs.length >= 2,
    placeholderData: keepPreviousData,
  });
}

export function compareMarkdownUrl(runs: string[], baseline: string | null): string {
  return `/api/v1/runs/compare${qs({ runs: runs.join(","), baseline, render: "markdown" })}`;
}

// --- registry ---------------------------------------------------------------------------------

export function useRepos() {
  return useQuery({ queryKey: ["repos"], queryFn: ({ signal }) => get<Page<Repo>>("/repos?page_size=500", signal) });
}

/** The `n` most recently updated models (a branch head moved). */
export function useRecentRepos(n: number) {
  return useQuery({ queryKey: ["repos", "recent", n], queryFn: ({ signal }) => get<Page<Repo>>(`/repos${qs({ sort: "-updated_at", page_size: n })}`, signal) });
}

export function useRepoStats(ns: string, name: string) {
  return useQuery({ queryKey: ["repo", ns, name, "stats"], queryFn: ({ signal }) => get<RepoStats>(`${repoPath(ns, name)}/stats`, signal) });
}

export function useRepo(ns: string, name: string) {
  return useQuery({ queryKey: ["repo", ns, name], queryFn: ({ signal }) => get<RepoDetail>(repoPath(ns, name), signal) });
}

export function useCommitLog(ns: string, name: string, ref: string | null, pageSize = 100, enabled = true) {
  return useQuery({
    queryKey: ["log", ns, name, ref, pageSize],
    queryFn: ({ signal }) => get<CommitLog>(`${repoPath(ns, name)}/commits${qs({ ref, page_size: pageSize })}`, signal),
    enabled: enabled && !!ref,
  });
}

/** The history of every branch, merged (for the commit graph). */
export function useGraphCommits(ns: string, name: string, refs: string[], pageSize = 200) {
  return useQuery({
    queryKey: ["graph", ns, name, refs, pageSize],
    queryFn: async ({ signal }) => {
      const logs = await Promise.all(
        refs.map((ref) => get<CommitLog>(`${repoPath(ns, name)}/commits${qs({ ref, page_size: pageSize })}`, signal)),
      );
      const seen = new Map<string, CommitLog["results"][number]>();
      for (const log of logs) for (const c of log.results) seen.set(c.sha, c);
      return { commits: [...seen.values()], truncated: logs.some((l) => l.has_more) };
    },
    enabled: refs.length > 0,
  });
}

export function useCommit(ns: string, name: string, sha: string) {
  return useQuery({
    queryKey: ["commit", ns, name, sha],
    queryFn: ({ signal }) => get<CommitDetail>(`${repoPath(ns, name)}/commits/${encodeURIComponent(sha)}`, signal),
  });
}

export function useFileInfo(ns: string, name: string, path: string, ref: string, enabled = true) {
  return useQuery({
    queryKey: ["file-info", ns, name, path, ref],
    queryFn: ({ signal }) => get<FileInfo>(`${repoPath(ns, name)}/info/${encodePath(path)}${qs({ ref })}`, signal),
    enabled,
  });
}

export function fileDownloadUrl(ns: string, name: string, path: string, ref: string): string {
  return `/api/v1${repoPath(ns, name)}/files/${encodePath(path)}${qs({ ref })}`;
}

export function useDiff(ns: string, name: string, a: string, b: string) {
  return useQuery({
    queryKey: ["diff", ns, name, a, b],
    queryFn: ({ signal }) => get<DiffResult>(`${repoPath(ns, name)}/diff${qs({ a, b, tensors: 1 })}`, signal),
    enabled: !!a && !!b,
    retry: false,
  });
}

export interface MergeInput {
  source: string;
  target: string;
  strategy: MergeStrategy | null;
  weight: number;
  message: string | null;
  no_ff: boolean;
}

export function useMerge(ns: string, name: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (v: MergeInput) => post<MergeResult>(`${repoPath(ns, name)}/merge`, v),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["repo", ns, name] });
      void qc.invalidateQueries({ queryKey: ["graph", ns, name] });
      void qc.invalidateQueries({ queryKey: ["log", ns, name] });
      void qc.invalidateQueries({ queryKey: ["diff", ns, name] });
    },
  });
}

// --- jobs -------------------------------------------------------------------------------------

export interface JobListArgs {
  project: string;
  status: string[];
  kind: string;
  page: number;
  size: number;
}

export function jobListPath(a: JobListArgs): string {
  return `/jobs${qs({ project: a.project, status: a.status.join(","), kind: a.kind, page: a.page > 1 ? a.page : null, page_size: a.size })}`;
}

/** A page of jobs; polls while any job on it is queued or running. */
export function useJobs(a: JobListArgs) {
  return useQuery({
    queryKey: ["jobs", a],
    queryFn: ({ signal }) => get<Page<Job>>(jobListPath(a), signal),
    placeholderData: keepPreviousData,
    retry: noClientRetry,
    staleTime: 2_000,
    refetchInterval: (q) => (q.state.data?.results.some((j) => j.status === "queued" || j.status === "running") ? 3_000 : false),
  });
}

const jobPath = (id: string) => `/jobs/${encodeURIComponent(id)}`;

/** A job with its transitions and artifacts; polls (progress, heartbeat) until it ends. */
export function useJob(id: string, enabled = true) {
  return useQuery({
    queryKey: ["job", id],
    queryFn: ({ signal }) => get<JobDetail>(jobPath(id), signal),
    enabled: enabled && !!id,
    retry: noClientRetry,
    staleTime: 1_000,
    refetchInterval: (q) => (q.state.data && (q.state.data.status === "queued" || q.state.data.status === "running") ? 2_000 : false),
  });
}

export function useJobSchema(kind: JobKind) {
  return useQuery({
    queryKey: ["job-schema", kind],
    queryFn: ({ signal }) => get<JobSchema>(`/jobs/schema${qs({ kind })}`, signal),
    staleTime: 10 * 60_000,
  });
}

/** POST /jobs/validate: resolves true, or throws the `invalid_config` ApiError. */
export function validateJobConfig(kind: JobKind, config: unknown, signal?: AbortSignal): Promise<{ valid: true }> {
  return request<{ valid: true }>("/jobs/validate", { method: "POST", body: { kind, config }, signal });
}

export interface LaunchInput {
  project: string;
  kind: JobKind;
  config: unknown;
  base?: string;
  target?: string;
  resources: JobResources;
}

export function useLaunchJob() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (v: LaunchInput) => post<JobDetail>("/jobs", v),
    onSuccess: (job) => {
      qc.setQueryData(["job", job.id], job);
      void qc.invalidateQueries({ queryKey: ["jobs"] });
    },
  });
}

function useJobAction(action: "cancel" | "relaunch") {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => post<JobDetail>(`${jobPath(id)}/${action}`),
    onSuccess: (job, id) => {
      qc.setQueryData(["job", job.id], job);
      if (job.id !== id) void qc.invalidateQueries({ queryKey: ["job", id] });
      void qc.invalidateQueries({ queryKey: ["jobs"] });
    },
  });
}

export const useCancelJob = () => useJobAction("cancel");
export const useRelaunchJob = () => useJobAction("relaunch");

export function fetchJobLogs(id: string, params: { tail?: number; after_seq?: number; limit?: number }, signal?: AbortSignal) {
  return get<JobLogs>(`${jobPath(id)}/logs${qs(params)}`, signal);
}

export function jobLogStreamUrl(id: string, afterSeq: number | null): string {
  return `${API}${jobPath(id)}/logs/stream${qs({ after_seq: afterSeq })}`;
}

export function jobArtifactUrl(id: string, path: string): string {
  return `${API}${jobPath(id)}/artifacts/${encodePath(path)}`;
}

/** A job artifact's content: parsed JSON, or text. */
export function useJobArtifact<T>(id: string, path: string, as: "json" | "text", enabled = true) {
  return useQuery({
    queryKey: ["job-artifact", id, path],
    queryFn: async ({ signal }) => {
      const r = await fetch(jobArtifactUrl(id, path), { credentials: "same-origin", signal });
      if (!r.ok) throw await errorFrom(r);
      return (as === "json" ? await r.json() : await r.text()) as T;
    },
    enabled: enabled && !!id,
    retry: noClientRetry,
    staleTime: Infinity,
  });
}

export function useProfileOps(id: string) {
  return useQuery({
    queryKey: ["profile", id],
    queryFn: ({ signal }) => get<ProfileOps>(`${jobPath(id)}/profile`, signal),
    retry: noClientRetry,
    staleTime: Infinity,
  });
}

export function useProfileCompare(a: string, b: string | null) {
  return useQuery({
    queryKey: ["profile-compare", a, b],
    queryFn: ({ signal }) => get<ProfileCompare>(`/jobs/profile-compare${qs({ a, b })}`, signal),
    enabled: !!a && !!b,
    retry: noClientRetry,
    staleTime: Infinity,
  });
}
