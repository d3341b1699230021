/** Shapes of the hub's REST API (/api/v1), as the dashboard reads them. */

export interface Page<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

export interface WhoAmI {
  username: string;
  is_admin: boolean;
  namespaces: { name: string; kind: string; role: string }[];
  token_scope: string | null;
}

export interface ApiToken {
  id: number;
  name: string;
  prefix: string;
  scope: "read" | "write";
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  token?: string;
}

// --- tracking ---------------------------------------------------------------------------------

export interface Project {
  id: string;
  namespace: string;
  name: string;
  private: boolean;
  description: string;
  created_at: string;
}

export type RunStatus = "running" | "finished" | "failed" | "killed";
export type ParamValue = string | number | boolean | (string | number | boolean)[] | null;

export interface SummaryStats {
  last: number;
  last_step?: number;
  min: number;
  min_step?: number;
  max: number;
  max_step?: number;
  count?: number;
}

/** A run as the search index returns it (GET /projects/{ns}/{name}/runs). */
export interface RunHit {
  id: string;
  project: string;
  name: string;
  group: string;
  user: string | null;
  status: RunStatus;
  tags: string[];
  notes: string;
  commit: string | null;
  job: string | null;
  created_at: string;
  ended_at: string | null;
  params: Record<string, ParamValue>;
  summary: Record<string, SummaryStats>;
}

export interface FacetValue {
  value: string;
  count: number;
}

export interface RunSearch {
  results: RunHit[];
  total: number;
  facets: Record<string, FacetValue[]>;
  next: unknown[] | null;
  took_ms: number;
  engine_elapsed_ms: number;
}

/** A run from the DB (GET /runs/{id}). */
export interface Run {
  id: string;
  project: string;
  name: string;
  group: string;
  status: RunStatus;
  user: string | null;
  started_at: string;
  ended_at: string | null;
  updated_at: string;
  params: Record<string, ParamValue>;
  tags: string[];
  notes: string;
  summary: Record<string, SummaryStats>;
  commit: { repo: string; sha: string } | null;
  job_id: string | null;
}

export interface MetricKey {
  key: string;
  count: number;
  first_step: number;
  last_step: number;
  last_value: number;
  min_value: number;
  max_value: number;
  last_wall_time: number;
}

export type XAxis = "step" | "time";

export interface Series {
  run_id: string;
  key: string;
  x_axis: XAxis;
  downsampled: boolean;
  points: number;
  step: number[];
  wall_time: number[];
  value: number[];
  min?: number[];
  max?: number[];
  count?: number[];
}

export interface CompareMetricRun {
  final: number;
  final_step?: number;
  best: number;
  best_step?: number;
  delta_final?: number;
  delta_final_pct?: number | null;
}

export interface CompareReport {
  runs: { id: string; name: string; status: RunStatus }[];
  baseline: string;
  target: string | null;
  params: { key: string; values: Record<string, ParamValue> }[];
  same_params: number;
  /** Params some runs did not record: not a difference, listed with the runs that recorded them. */
  partial_params?: { key: string; values: Record<string, ParamValue>; recorded_in: string[] }[];
  metrics: CompareMetric[];
  correlations: { param: string; spearman: number; n: number }[];
  summary: string[];
  /** Comparing commits: the kind of run compared, each ref's run and its commit id. */
  kind?: string;
  commits?: Record<string, string>;
  resolved?: Record<string, string>;
}

/** A metric of a comparison. The hub decides its direction (the project's metric_directions,
 * then the name) and sets best_run only for a metric every run logged that has one. */
export interface CompareMetric {
  key: string;
  direction: MetricDirection;
  shared?: boolean;
  missing?: string[];
  best_run: string | null;
  best_final_run?: string | null;
  runs: Record<string, CompareMetricRun>;
}

export type MetricDirection = "min" | "max" | "none";

// --- registry ---------------------------------------------------------------------------------

export interface Repo {
  id: string;
  namespace: string;
  name: string;
  private: boolean;
  description: string;
  default_branch: string;
  created_at: string;
  /** The last time a branch head moved (commit, merge, new branch). */
  updated_at: string;
}

/** GET /repos/{ns}/{name}/stats: what dedupe saves (definitions in hub/registry/dedupe.py). */
export interface RepoStats {
  head_bytes: number;
  logical_bytes: number;
  stored_bytes: number;
  dedupe_ratio: number | null;
  commits: number;
}

/** A commit's size: new bytes are those of chunks no parent references, reused those a parent does. */
export interface CommitStats {
  files: number;
  bytes: number;
  new_bytes: number;
  reused_bytes: number;
}

export interface Ref {
  name: string;
  kind: "branch" | "tag";
  commit: string;
  updated_at: string;
  protected?: boolean;
  message?: string;
}

export interface RepoDetail extends Repo {
  refs: Ref[];
  commits: number;
}

export interface Commit {
  sha: string;
  parents: string[];
  author: string;
  message: string;
  metadata: Record<string, unknown>;
  created_at: string;
  tree: string;
  generation: number;
  job_id: string | null;
  run_id: string | null;
}

export interface CommitLog {
  results: Commit[];
  page: number;
  has_more: boolean;
  next: number | null;
}

export interface TreeFile {
  path: string;
  oid: string;
  size: number;
  kind: string;
}

export interface CommitDetail extends Commit {
  files: TreeFile[];
  stats?: CommitStats;
}

export interface TensorInfo {
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

export interface FileInfo {
  path: string;
  commit: string;
  oid: string;
  size: number;
  kind: string;
  chunks: unknown[];
  tensors: Record<string, TensorInfo> | null;
  metadata: Record<string, string> | null;
}

export type DiffStatus = "added" | "removed" | "changed";

export interface TensorSide {
  dtype: string;
  shape: number[];
  bytes: number;
}

export interface TensorDiff {
  name: string;
  status: DiffStatus;
  a: TensorSide | null;
  b: TensorSide | null;
  shape_changed?: boolean;
  dtype_changed?: boolean;
  l2_delta?: number | null;
  rel_change?: number | null;
  cosine?: number | null;
  max_abs_delta?: number | null;
  norm_a?: number | null;
  norm_b?: number | null;
}

export interface FileDiff {
  path: string;
  status: DiffStatus;
  size_a: number | null;
  size_b: number | null;
  tensors?: TensorDiff[];
  unchanged_tensors?: number;
}

export interface DiffResult {
  a: { ref: string; commit: string };
  b: { ref: string; commit: string };
  files: FileDiff[];
}

export type MergeStrategy = "ours" | "theirs" | "average";

export interface MergeResult {
  result: "up_to_date" | "fast_forward" | "merge";
  commit: Commit;
  base: string | null;
  merged_files?: number;
  resolved: { path: string; tensor?: string | null; strategy: MergeStrategy; weight?: number }[];
}

export interface ConflictSide {
  /** added | changed | deleted */
  status: string;
  dtype?: string;
  shape?: number[];
  bytes?: number;
  /** whole-file conflicts (not safetensors) carry the file size instead of tensor stats */
  size?: number;
  l2_delta?: number | null;
  rel_change?: number | null;
  cosine?: number | null;
}

export interface MergeConflict {
  path: string;
  tensor: string | null;
  ours: ConflictSide | null;
  theirs: ConflictSide | null;
}

// --- jobs -------------------------------------------------------------------------------------

export type JobKind = "train" | "evaluate" | "profile" | "finetune";
export type JobStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled" | "lost";
export const JOB_KINDS: JobKind[] = ["train", "evaluate", "profile", "finetune"];
export const JOB_STATUSES: JobStatus[] = ["queued", "running", "succeeded", "failed", "cancelled", "lost"];
export const JOB_TERMINAL: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled", "lost"]);

export interface JobResources {
  gpus?: number;
  cpus?: number;
  memory_mb?: number;
  time_limit_s?: number;
}

export interface Job {
  id: string;
  project: string;
  kind: JobKind;
  status: JobStatus;
  reason: string;
  base: { repo: string; ref: string; commit: string } | null;
  target: { repo: string; branch: string } | null;
  resources: JobResources;
  queue: string;
  created_by: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  duration_s: number | null;
  progress: { step?: number; total?: number; eta_s?: number | null } | null;
  run_id: string | null;
  result: { commit: string; branch: string } | null;
  cancel_requested: boolean;
  attempt: number;
  relaunched_from: string | null;
}

export interface JobTransition {
  from: string | null;
  to: string;
  at: string;
  reason: string;
}

export interface JobArtifact {
  path: string;
  kind: string;
  size: number;
  oid: string;
}

export interface JobDetail extends Job {
  config: Record<string, unknown>;
  summary: Record<string, unknown>;
  worker: string;
  gpus: number[];
  heartbeat_at: string | null;
  events: { received: number; rejected: number };
  transitions: JobTransition[];
  artifacts: JobArtifact[];
}

export interface LogLine {
  seq: number;
  time: number | string;
  stream: string;
  line: string;
}

export interface JobLogs {
  lines: LogLine[];
  status: JobStatus;
}

/** A JSON Schema node, as far as the launch form reads it. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
  required?: string[];
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  enum?: unknown[];
  oneOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  description?: string;
  default?: unknown;
  title?: string;
  "x-cross-field-rules"?: string[];
}

export interface JobSchema {
  kind: JobKind;
  schema: JsonSchema;
  defaults: Record<string, unknown>;
}

export interface ConfigError {
  path: string;
  message: string;
}

export interface ProfileOp {
  op: string;
  calls: number;
  self_us: number;
  total_us: number;
  flops: number;
  self_memory_bytes: number;
}

export interface ProfileOps {
  job: string;
  commit: string;
  ops: ProfileOp[];
}

export interface ProfileCompare {
  a: { job: string; commit: string; total_self_us: number };
  b: { job: string; commit: string; total_self_us: number };
  ops: { op: string; a: ProfileOp | null; b: ProfileOp | null; self_us_ratio: number | null }[];
}
