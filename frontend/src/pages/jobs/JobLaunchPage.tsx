/** Launch a job: project, kind, base and target models, resources, and the config as JSON,
 * checked as you type against the workload's JSON Schema (in the browser) and, debounced, by
 * the hub (POST /jobs/validate, which also checks the cross-field rules). Errors are listed
 * under the editor as "path: message"; a launch the hub refuses shows its errors the same way.
 * `?from=JOB` starts from a copy of that job. */
import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { ApiError } from "../../api/client";
import { useJob, useJobSchema, useLaunchJob, useProjects, useRepos, useWhoAmI, validateJobConfig } from "../../api/hooks";
import { JOB_KINDS, type ConfigError, type JobKind, type JobResources, type JsonSchema } from "../../api/types";
import { ErrorMessage } from "../../components/States";
import { fmtValue } from "../../lib/format";
import { defaultProject, writableProjects } from "../../lib/projects";
import { useTitle } from "../../lib/useTitle";
import { configErrorsFrom, parseConfig, validateAgainstSchema } from "./jsonSchema";
import "./jobs.css";

const NEEDS_BASE: ReadonlySet<JobKind> = new Set(["evaluate", "profile", "finetune", "inspect"]);
const DEFAULT_RES: Required<JobResources> = { gpus: 0, cpus: 1, memory_mb: 3072, time_limit_s: 1800 };

type ServerCheck = { state: "idle" | "checking" } | { state: "valid" } | { state: "invalid"; errors: ConfigError[] } | { state: "error"; error: unknown };

/** Leaf fields of the schema, for the reference table under the editor. */
export function schemaFields(s: JsonSchema, path = ""): { path: string; node: JsonSchema }[] {
  if (s.properties) return Object.entries(s.properties).flatMap(([k, v]) => schemaFields(v, path ? `${path}.${k}` : k));
  return path ? [{ path, node: s }] : [];
}

function describeType(s: JsonSchema): string {
  const alts = s.oneOf ?? s.anyOf;
  if (alts) return alts.map(describeType).join(" | ");
  const t = Array.isArray(s.type) ? s.type.join(" | ") : s.type ?? "any";
  if (s.enum) return s.enum.map(String).join(" | ");
  if (t === "array" && s.items) return `${describeType(s.items)}[]`;
  const lo = s.minimum ?? s.exclusiveMinimum;
  const hi = s.maximum ?? s.exclusiveMaximum;
  const big = (v: number) => Math.abs(v) >= 1e12;
  const range = lo !== undefined || hi !== undefined
    ? ` ${s.exclusiveMinimum !== undefined ? "(" : "["}${lo === undefined ? "" : fmtValue(lo)}, ${hi === undefined || big(hi) ? "" : fmtValue(hi)}${s.exclusiveMaximum !== undefined ? ")" : "]"}`
    : "";
  return t + range;
}

function SchemaReference({ schema }: { schema: JsonSchema }) {
  const fields = useMemo(() => schemaFields(schema), [schema]);
  const rules = schema["x-cross-field-rules"] ?? [];
  return (
    <details className="small" style={{ marginTop: 10 }}>
      <summary>Config reference ({fields.length} fields)</summary>
      <div className="schema-ref table-wrap">
        <table className="data">
          <thead><tr><th scope="col">Key</th><th scope="col">Type</th><th scope="col">Default</th><th scope="col">Description</th></tr></thead>
          <tbody>
            {fields.map((f) => (
              <tr key={f.path}>
                <td className="mono">{f.path}</td>
                <td className="mono">{describeType(f.node)}</td>
                <td className="mono">{fmtValue(f.node.default)}</td>
                <td className="wrap">{f.node.description ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {rules.length > 0 && (
        <>
          <h3>Also checked by the hub</h3>
          <ul style={{ margin: 0, paddingLeft: 18 }}>{rules.map((r) => <li key={r}>{r}</li>)}</ul>
        </>
      )}
    </details>
  );
}

function NumberField({ id, label, value, onChange, min, max }: { id: string; label: string; value: number; onChange: (v: number) => void; min: number; max?: number }) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} type="number" min={min} max={max} value={Number.isFinite(value) ? value : ""} onChange={(e) => onChange(e.target.value === "" ? NaN : Number(e.target.value))} />
    </div>
  );
}

export default function JobLaunchPage() {
  useTitle("Launch a job");
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const me = useWhoAmI();
  const projects = useProjects();
  const repos = useRepos();
  const fromId = params.get("from") ?? "";
  const from = useJob(fromId, !!fromId);

  const [project, setProject] = useState(params.get("project") ?? "");
  const [kind, setKind] = useState<JobKind>((JOB_KINDS as string[]).includes(params.get("kind") ?? "") ? (params.get("kind") as JobKind) : "train");
  const [base, setBase] = useState(params.get("base") ?? "");
  const [target, setTarget] = useState(params.get("target") ?? "");
  const [res, setRes] = useState<Required<JobResources>>(DEFAULT_RES);
  const [text, setText] = useState("{\n  \n}");
  const [server, setServer] = useState<ServerCheck>({ state: "idle" });
  const launch = useLaunchJob();
  const schema = useJobSchema(kind);

  // Default project: one the user can write to (see lib/projects.ts).
  useEffect(() => {
    if (!project && !fromId && me.data && (projects.data || projects.isError)) setProject(defaultProject(projects.data?.results ?? [], me.data));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [me.data, projects.data, projects.isError]);

  // ?from=JOB: copy that job's inputs once it loads.
  const copied = useRef(false);
  useEffect(() => {
    const j = from.data;
    if (!j || copied.current) return;
    copied.current = true;
    setProject(j.project);
    setKind(j.kind);
    setBase(j.base ? `${j.base.repo}@${j.base.ref}` : "");
    setTarget(j.target ? `${j.target.repo}@${j.target.branch}` : "");
    setRes({ ...DEFAULT_RES, ...j.resources });
    setText(JSON.stringify(j.config, null, 2));
  }, [from.data]);

  const parsed = useMemo(() => parseConfig(text), [text]);
  const clientErrors = useMemo<ConfigError[]>(() => {
    if (!parsed.ok) return [parsed.error];
    return schema.data ? validateAgainstSchema(parsed.value, schema.data.schema) : [];
  }, [parsed, schema.data]);

  // The hub's check, debounced; only for configs that pass the client-side check (the hub
  // would list the same problems).
  const configKey = parsed.ok ? JSON.stringify(parsed.value) : null;
  useEffect(() => {
    if (!parsed.ok || clientErrors.length) {
      setServer({ state: "idle" });
      return;
    }
    const ctl = new AbortController();
    setServer({ state: "checking" });
    const t = setTimeout(() => {
      validateJobConfig(kind, parsed.value, ctl.signal).then(
        () => setServer({ state: "valid" }),
        (e: unknown) => {
          if ((e as Error).name === "AbortError") return;
          if (e instanceof ApiError && e.code === "invalid_config") setServer({ state: "invalid", errors: configErrorsFrom(e.details) });
          else setServer({ state: "error", error: e });
        },
      );
    }, 400);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [configKey, kind, clientErrors.length]);

  const launchErrors = launch.error instanceof ApiError && launch.error.code === "invalid_config" ? configErrorsFrom(launch.error.details) : [];
  const errors = clientErrors.length ? clientErrors : server.state === "invalid" ? server.errors : launchErrors;
  const baseMissing = NEEDS_BASE.has(kind) && !base.trim();
  const resOk = Object.values(res).every((v) => Number.isFinite(v) && v >= 0);
  const canLaunch = !!project.trim() && parsed.ok && errors.length === 0 && !baseMissing && resOk && !launch.isPending;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!parsed.ok) return;
    launch.mutate(
      { project: project.trim(), kind, config: parsed.value, base: base.trim() || undefined, target: target.trim() || undefined, resources: res },
      { onSuccess: (job) => navigate(`/jobs/${job.id}`) },
    );
  };
  const insertDefaults = () => {
    if (schema.data) setText(JSON.stringify(schema.data.defaults, null, 2));
  };
  const format = () => {
    if (parsed.ok) setText(JSON.stringify(parsed.value, null, 2));
  };
  const onEditorKey = (e: React.KeyboardEvent<HTMLTextAreaElement>) => {
    // Tab indents (two spaces) instead of leaving the editor; Escape then Tab still leaves.
    if (e.key !== "Tab" || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey) return;
    e.preventDefault();
    const el = e.currentTarget;
    const { selectionStart: a, selectionEnd: b } = el;
    const next = `${text.slice(0, a)}  ${text.slice(b)}`;
    setText(next);
    requestAnimationFrame(() => el.setSelectionRange(a + 2, a + 2));
  };
  const repoNames = repos.data?.results.map((r) => `${r.namespace}/${r.name}`) ?? [];

  return (
    <>
      <div className="page-head">
        <div className="grow">
          <div className="crumbs"><Link to="/jobs">Jobs</Link> /</div>
          <h1>Launch a job{fromId && <> <span className="muted small">from a copy of <Link to={`/jobs/${fromId}`} className="mono">{fromId}</Link></span></>}</h1>
        </div>
      </div>
      {from.error && <ErrorMessage error={from.error} title={`Cannot copy job ${fromId}`} />}
      <form onSubmit={submit} className="launch-grid" aria-label="Launch a job" noValidate>
        <div>
          <fieldset>
            <legend>Job</legend>
            <div className="field wide">
              <label htmlFor="job-project">Project</label>
              <input id="job-project" type="text" list="job-projects" value={project} required placeholder="namespace/project" onChange={(e) => setProject(e.target.value)} aria-invalid={!project.trim()} />
              <datalist id="job-projects">{(me.data ? writableProjects(projects.data?.results ?? [], me.data) : []).map((p) => <option key={p.id} value={`${p.namespace}/${p.name}`} />)}</datalist>
            </div>
            <div className="field wide">
              <label htmlFor="job-kind">Kind</label>
              <select id="job-kind" value={kind} onChange={(e) => setKind(e.target.value as JobKind)}>
                {JOB_KINDS.map((k) => <option key={k} value={k}>{k}</option>)}
              </select>
            </div>
            <div className="field wide">
              <label htmlFor="job-base">Base model {NEEDS_BASE.has(kind) ? "(required)" : "(optional: resume from)"}</label>
              <input id="job-base" type="text" list="job-repos" className="mono" value={base} placeholder="namespace/repo@ref" onChange={(e) => setBase(e.target.value)} aria-invalid={baseMissing} aria-describedby="job-base-help" />
              <span id="job-base-help" className="small muted">{baseMissing ? `A ${kind} job needs a base model.` : "A branch, tag or commit; the job pins it to a commit."}</span>
            </div>
            <div className="field wide">
              <label htmlFor="job-target">Target (optional)</label>
              <input id="job-target" type="text" list="job-repos" className="mono" value={target} placeholder="namespace/repo@branch" onChange={(e) => setTarget(e.target.value)} aria-describedby="job-target-help" />
              <span id="job-target-help" className="small muted">The weights become a commit on this branch.</span>
              <datalist id="job-repos">{repoNames.map((r) => <option key={r} value={`${r}@main`} />)}</datalist>
            </div>
          </fieldset>
          <fieldset>
            <legend>Resources</legend>
            <NumberField id="res-gpus" label="GPUs" value={res.gpus} min={0} max={16} onChange={(v) => setRes({ ...res, gpus: v })} />
            <NumberField id="res-cpus" label="CPUs" value={res.cpus} min={1} max={256} onChange={(v) => setRes({ ...res, cpus: v })} />
            <NumberField id="res-mem" label="Memory (MB)" value={res.memory_mb} min={256} onChange={(v) => setRes({ ...res, memory_mb: v })} />
            <NumberField id="res-time" label="Time limit (s)" value={res.time_limit_s} min={1} onChange={(v) => setRes({ ...res, time_limit_s: v })} />
          </fieldset>
          <div className="row">
            <button type="submit" className="primary" disabled={!canLaunch}>{launch.isPending ? "Launching…" : `Launch ${kind} job`}</button>
            <Link to="/jobs" className="button">Cancel</Link>
          </div>
          {launch.error && !launchErrors.length && (
            <ErrorMessage
              error={launch.error}
              title={launch.error instanceof ApiError && launch.error.code === "no_gpu_worker" ? "No GPU worker is available" : "Could not launch the job"}
            />
          )}
        </div>
        <div className="panel">
          <div className="row" style={{ marginBottom: 6 }}>
            <label htmlFor="job-config" style={{ flex: 1, color: "var(--text)", fontWeight: 600 }}>Config (JSON)</label>
            <button type="button" className="small" onClick={insertDefaults} disabled={!schema.data}>Insert defaults</button>
            <button type="button" className="small" onClick={format} disabled={!parsed.ok}>Format</button>
          </div>
          <textarea
            id="job-config"
            className="config-editor"
            spellCheck={false}
            autoCapitalize="off"
            autoCorrect="off"
            value={text}
            onChange={(e) => {
              setText(e.target.value);
              if (launch.error) launch.reset();
            }}
            onKeyDown={onEditorKey}
            aria-invalid={errors.length > 0}
            aria-describedby="config-status"
          />
          <div id="config-status" aria-live="polite">
            {errors.length > 0 ? (
              <ul className="config-errors" data-testid="config-errors" aria-label="Config problems">
                {errors.map((e, i) => <li key={`${e.path}-${i}`}><strong>{e.path || "config"}</strong>: {e.message}</li>)}
              </ul>
            ) : server.state === "checking" ? (
              <p className="small muted">Checking with the hub…</p>
            ) : server.state === "valid" ? (
              <p className="config-ok" data-testid="config-valid">✓ Valid {kind} config. Keys left out take their defaults.</p>
            ) : server.state === "error" ? (
              <ErrorMessage error={server.error} title="The hub could not check the config" />
            ) : null}
          </div>
          {schema.error && <ErrorMessage error={schema.error} title="Could not load the config schema" />}
          {schema.data && <SchemaReference schema={schema.data.schema} />}
        </div>
      </form>
    </>
  );
}
