/** A small JSON Schema checker for the job launch form: the subset the workload schema uses
 * (type, properties, additionalProperties:false, required, items, min/maxItems, minimum,
 * maximum, exclusive bounds, enum, oneOf/anyOf). Messages follow the hub's wording
 * ("model.top_k: must be between 2 and 8") so the client and server errors read alike; the
 * server (POST /jobs/validate) stays the authority: it also checks cross-field rules. */
import type { ConfigError, JsonSchema } from "../../api/types";

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function typeOk(v: unknown, t: string): boolean {
  const got = typeOf(v);
  if (t === "number") return got === "number" || got === "integer";
  return got === t;
}

const TYPE_MSG: Record<string, string> = {
  integer: "must be an integer",
  number: "must be a number",
  string: "must be a string",
  boolean: "must be true or false",
  object: "must be an object",
  array: "must be a list",
  null: "must be null",
};

const num = (v: number) => String(v);

function rangeMessage(s: JsonSchema): string {
  const lo = s.exclusiveMinimum ?? s.minimum;
  const hi = s.exclusiveMaximum ?? s.maximum;
  if (s.minimum !== undefined && s.maximum !== undefined && s.exclusiveMinimum === undefined && s.exclusiveMaximum === undefined) {
    return `must be between ${num(s.minimum)} and ${num(s.maximum)}`;
  }
  const parts: string[] = [];
  if (lo !== undefined) parts.push(`${s.exclusiveMinimum !== undefined ? ">" : "≥"} ${num(lo)}`);
  if (hi !== undefined) parts.push(`${s.exclusiveMaximum !== undefined ? "<" : "≤"} ${num(hi)}`);
  return `must be ${parts.join(" and ")}`;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function check(v: unknown, s: JsonSchema, path: string, out: ConfigError[]): void {
  const alts = s.oneOf ?? s.anyOf;
  if (alts) {
    // Valid when one alternative accepts it; otherwise report the closest alternative (the
    // one whose type matches), or a summary of the accepted types.
    const tries = alts.map((a) => {
      const errs: ConfigError[] = [];
      check(v, a, path, errs);
      return { a, errs };
    });
    if (tries.some((t) => t.errs.length === 0)) return;
    const typed = tries.filter((t) => {
      const ts = t.a.type === undefined ? [] : Array.isArray(t.a.type) ? t.a.type : [t.a.type];
      return ts.some((x) => typeOk(v, x));
    });
    if (typed.length === 1) {
      out.push(...typed[0].errs);
      return;
    }
    const kinds = [...new Set(alts.flatMap((a) => (a.type === undefined ? [] : Array.isArray(a.type) ? a.type : [a.type])))];
    out.push({ path, message: `must be ${kinds.map((k) => (k === "array" ? "a list" : k === "integer" ? "an integer" : k === "object" ? "an object" : k)).join(" or ")}` });
    return;
  }
  if (s.type !== undefined) {
    const ts = Array.isArray(s.type) ? s.type : [s.type];
    if (!ts.some((t) => typeOk(v, t))) {
      out.push({ path, message: ts.length === 1 ? TYPE_MSG[ts[0]] ?? `must be ${ts[0]}` : `must be ${ts.join(" or ")}` });
      return;
    }
  }
  if (s.enum && !s.enum.some((e) => e === v)) {
    out.push({ path, message: `must be one of ${s.enum.map(String).join(", ")}` });
    return;
  }
  if (typeof v === "number") {
    if (!Number.isFinite(v)) out.push({ path, message: "must be a finite number" });
    else if (
      (s.minimum !== undefined && v < s.minimum) ||
      (s.maximum !== undefined && v > s.maximum) ||
      (s.exclusiveMinimum !== undefined && v <= s.exclusiveMinimum) ||
      (s.exclusiveMaximum !== undefined && v >= s.exclusiveMaximum)
    ) {
      out.push({ path, message: rangeMessage(s) });
    }
    return;
  }
  if (Array.isArray(v)) {
    if (s.minItems !== undefined && v.length < s.minItems) out.push({ path, message: `must have at least ${s.minItems} item(s)` });
    if (s.maxItems !== undefined && v.length > s.maxItems) out.push({ path, message: `must have at most ${s.maxItems} item(s)` });
    if (s.items) v.forEach((x, i) => check(x, s.items!, `${path}[${i}]`, out));
    return;
  }
  if (v !== null && typeof v === "object") {
    const obj = v as Record<string, unknown>;
    const props = s.properties ?? {};
    for (const req of s.required ?? []) if (!(req in obj)) out.push({ path: join(path, req), message: "is required" });
    for (const [k, x] of Object.entries(obj)) {
      if (props[k]) check(x, props[k], join(path, k), out);
      else if (s.additionalProperties === false) out.push({ path: join(path, k), message: suggest(k, Object.keys(props)) });
      else if (s.additionalProperties && typeof s.additionalProperties === "object") check(x, s.additionalProperties, join(path, k), out);
    }
  }
}

/** "unknown key", with the closest known key when one is near (a typo). */
function suggest(key: string, known: string[]): string {
  let best: string | null = null;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== null && bestD <= Math.max(1, Math.floor(key.length / 3)) ? `unknown key (did you mean '${best}'?)` : "unknown key";
}

export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** Every schema problem of a value (empty: valid as far as the schema says). */
export function validateAgainstSchema(value: unknown, schema: JsonSchema): ConfigError[] {
  const out: ConfigError[] = [];
  check(value, schema, "", out);
  return out;
}

export type ParsedConfig = { ok: true; value: unknown } | { ok: false; error: ConfigError };

/** Parse the editor's text; a syntax error carries its line and column. */
export function parseConfig(text: string): ParsedConfig {
  if (!text.trim()) return { ok: true, value: {} };
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return { ok: false, error: { path: "", message: "the config must be a JSON object" } };
    }
    return { ok: true, value };
  } catch (e) {
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    let where = "";
    if (pos) {
      const before = text.slice(0, Number(pos[1]));
      const line = before.split("\n").length;
      const col = Number(pos[1]) - before.lastIndexOf("\n");
      where = ` (line ${line}, column ${col})`;
    }
    return { ok: false, error: { path: "", message: `invalid JSON${where}: ${msg.replace(/^JSON\.parse: /, "")}` } };
  }
}

/** The hub's invalid_config details → errors (tolerant of other shapes). */
export function configErrorsFrom(details: unknown): ConfigError[] {
  const errs = (details as { errors?: unknown } | null)?.errors;
  if (!Array.isArray(errs)) return [];
  return errs
    .filter((e): e is { path?: unknown; message?: unknown } => !!e && typeof e === "object")
    .map((e) => ({ path: String(e.path ?? ""), message: String(e.message ?? "") }));
}
