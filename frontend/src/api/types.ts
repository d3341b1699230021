/** Shapes of the hub's REST API (/api/v1), as the dashboard reads them.
 *
 * The API's own types come from its OpenAPI schema: `npm run api:types` regenerates
 * ./schema.d.ts (openapi-typescript) from `manage.py spectacular`, and `npm run api:check` (and
 * tests/integration/test_openapi_contract.py) fails when the committed file has drifted. Only
 * what the schema does not describe is written by hand here: the generic page, JSON Schema
 * nodes of a job config, and the details of some errors. */

import type { components } from "./schema";

type S = components["schemas"];

export interface Page<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

export type WhoAmI = S["WhoAmIOutput"];

/** A token as listed; `token` (the secret) only in the answer that created it. */
export type ApiToken = S["TokenOut"] & Partial<Pick<S["TokenCreatedOut"], "token">>;

// --- tracking ---------------------------------------------------------------------------------

export type Project = S["ProjectOut"];
export type RunStatus = S["RunStatusEnum"];
export type ParamValue = S["ParamValue"];
export type SummaryStats = S["SummaryStatsOut"];

/** A run as the search index returns it (GET /projects/{ns}/{name}/runs). */
export type RunHit = S["RunHitOut"];
export type FacetValue = S["FacetValueOut"];
export type RunSearch = S["RunSearchOut"];

/** A run from the DB (GET /runs/{id}). */
export type Run = S["RunOut"];
export type MetricKey = S["MetricKeyOut"];
export type XAxis = S["XAxisEnum"];
export type Series = S["SeriesItemOut"];

/** A comparison (GET /runs/compare). The hub decides each metric's direction (the project's
 * metric_directions, then the name) and sets best_run only for a metric every run logged that
 * has one. */
export type CompareReport = S["CompareReportOut"];
export type CompareMetric = S["CompareMetricOut"];
export type MetricDirection = S["MetricDirectionEnum"];

export type CompareMetricRun = S["CompareMetricRunOut"];

// --- registry ---------------------------------------------------------------------------------

export type Repo = S["RepoOut"];
/** GET /repos/{ns}/{name}/stats: what dedupe saves (definitions in hub/registry/dedupe.py). */
export type RepoStats = S["RepoStatsOut"];
export type CommitStats = S["CommitStatsOut"];
export type Ref = S["RefOut"];
export type RepoDetail = S["RepoDetailOut"];
export type Commit = S["CommitOut"];
export type CommitLog = S["CommitLogOut"];
export type TreeFile = S["TreeFileOut"];
export type CommitDetail = S["CommitDetailOut"];
export type TensorInfo = S["TensorInfoOut"];
export type FileInfo = S["FileInfoOut"];
export type DiffStatus = S["DiffStatusEnum"];
export type TensorSide = S["TensorSideOut"];
export type TensorDiff = S["TensorDiffOut"];
export type FileDiff = S["FileDiffOut"];
export type DiffResult = S["DiffOut"];
export type MergeStrategy = S["StrategyEnum"];
export type MergeResult = S["MergeOut"];

/** The details of a 409 merge_conflict (error details are not in the schema). */
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

export type JobKind = S["JobKindEnum"];
export type JobStatus = S["JobStatusEnum"];
export const JOB_KINDS: JobKind[] = ["train", "evaluate", "profile", "finetune", "inspect"];
export const JOB_STATUSES: JobStatus[] = ["queued", "running", "succeeded", "failed", "cancelled", "lost"];
export const JOB_TERMINAL: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled", "lost"]);

export type JobResources = S["JobResourcesOut"];
export type Job = S["JobOut"];
export type JobTransition = S["JobTransitionOut"];
export type JobArtifact = S["JobArtifactOut"];
export type JobDetail = S["JobDetailOut"];
export type LogLine = S["LogLineOut"];
export type JobLogs = S["JobLogsOut"];

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

/** GET /jobs/schema; the schema itself is a JSON Schema (typed by hand above). */
export type JobSchema = Omit<S["JobSchemaOut"], "schema"> & { schema: JsonSchema };

export interface ConfigError {
  path: string;
  message: string;
}

export type ProfileOp = S["ProfileOpOut"];

export type ProfileOps = S["ProfileOut"];

export type ProfileCompare = S["ProfileCompareOut"];
