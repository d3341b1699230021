/** How the run page lays out a run's metric keys: per-expert families collapse into one
 * multi-series chart, charts fall into sections by key prefix, the important curves (loss,
 * validation, learning rate, throughput) come first in an "Overview", and pinned charts (kept
 * in the URL as repeated `pin=` parameters) come before everything.
 *
 * The training workload's keys (workers/moe/README.md, "metric names"):
 *
 *   loss, lm_loss, router_loss, lr, grad_norm, tokens_per_s, model_flops_per_s, mfu
 *   moe/layer{L}/load/expert{E}, moe/layer{L}/bias/expert{E}     per expert
 *   moe/layer{L}/{load_cv,entropy,dropped_frac,aux_loss,aux_balance}
 *   moe/{load_cv,entropy,dropped_frac}                             means over layers
 *   val/loss, val/bpb, val/moe/...;  eval/...;  system/...
 */

/** One chart: a single key, or a family of per-expert keys drawn as one multi-series chart. */
export interface ChartItem {
  /** the key, or the family's key with `expert*` in place of the expert segment */
  id: string;
  keys: string[];
  /** one label per key: the key itself, or "expert E" in a family */
  labels: string[];
  /** values are fractions: drawn on a 0–1 scale */
  fraction: boolean;
}

export interface Section {
  id: string;
  title: string;
  items: ChartItem[];
  /** closed until the user opens it (per-layer routing detail) */
  collapsed: boolean;
}

const EXPERT_SEGMENT = /(^|\/)expert(\d+)(?=\/|$)/;

/** `moe/layer0/load/expert3` → [`moe/layer0/load/expert*`, 3]; null for a key of no family. */
export function familyOf(key: string): [string, number] | null {
  const m = EXPERT_SEGMENT.exec(key);
  if (!m) return null;
  return [key.slice(0, m.index) + `${m[1]}expert*` + key.slice(m.index + m[0].length), Number(m[2])];
}

/** Keys whose values are fractions of a whole (0–1): dropped/any `_frac`, per-expert load
 * shares, model FLOPs utilisation. */
export function isFractionKey(key: string): boolean {
  const leaf = key.slice(key.lastIndexOf("/") + 1);
  return /(^|_)(frac|fraction)$/.test(leaf) || leaf === "mfu" || /(^|\/)load\/expert(\d+|\*)$/.test(key);
}

/** The y range a chart asks for: fractions on [0, 1] (widened if a value falls outside),
 * everything else (and log scales) fitted to the data. */
export function yRange(fraction: boolean, log: boolean): [number, number] | null {
  return fraction && !log ? [0, 1] : null;
}

/** Single keys and per-expert families (two or more experts share the family). */
export function chartItems(keys: string[]): ChartItem[] {
  const families = new Map<string, { e: number; key: string }[]>();
  for (const k of keys) {
    const f = familyOf(k);
    if (f) {
      if (!families.has(f[0])) families.set(f[0], []);
      families.get(f[0])!.push({ e: f[1], key: k });
    }
  }
  const out: ChartItem[] = [];
  const done = new Set<string>();
  for (const k of keys) {
    const f = familyOf(k);
    const members = f ? families.get(f[0])! : null;
    if (f && members && members.length > 1) {
      if (done.has(f[0])) continue;
      done.add(f[0]);
      members.sort((a, b) => a.e - b.e);
      out.push({ id: f[0], keys: members.map((m) => m.key), labels: members.map((m) => `expert ${m.e}`), fraction: isFractionKey(f[0]) });
    } else {
      out.push({ id: k, keys: [k], labels: [k], fraction: isFractionKey(k) });
    }
  }
  return out;
}

/** Lower is more important: loss, validation loss, learning rate, throughput, other losses. */
export function importance(id: string): number {
  const leaf = id.slice(id.lastIndexOf("/") + 1);
  const top = !id.includes("/") || /^train\/[^/]+$/.test(id);
  if (top && leaf === "loss") return 0;
  if (/^(val|valid|validation)\/loss$/.test(id)) return 1;
  if (top && /^(lr|learning_rate)$/.test(leaf)) return 2;
  if (top && /(tokens_per_s|samples_per_s|throughput)$/.test(leaf)) return 3;
  if (top && /(flops_per_s|^mfu)$/.test(leaf)) return 3.5;
  if (/^(val|valid|validation|eval)\/[^/]+$/.test(id)) return 4;
  if (top && /loss/.test(leaf)) return 5;
  return 10;
}

/** Overview holds the curves of rank ≤ OVERVIEW_RANK from every section. */
const OVERVIEW_RANK = 4;
const MOE = /(^|\/)moe(\/|$)/;

/** The section of a chart: top-level keys → "" (training), `a/b` → "a", deeper keys → "a/b"
 * (so `moe/layer0/...` is one section per layer and `val/moe/...` is apart from `val/loss`). */
export function sectionOf(id: string): string {
  const parts = id.split("/").filter((p) => p !== "expert*");
  if (parts.length <= 1) return "";
  if (parts.length === 2) return parts[0];
  return `${parts[0]}/${parts[1]}`;
}

function sectionRank(s: string): number {
  if (s === "" || s === "train") return 0;
  if (/^(val|valid|validation)$/.test(s)) return 1;
  if (s === "eval") return 2;
  if (s === "system") return 5;
  if (s === "moe") return 3;
  if (MOE.test(s)) return 4;
  return 2;
}

const byImportance = (a: ChartItem, b: ChartItem) => importance(a.id) - importance(b.id) || a.id.localeCompare(b.id, undefined, { numeric: true });

/** Pinned first (in pin order), then Overview, then the sections by prefix; each chart once. */
export function layoutSections(keys: string[], pins: string[] = []): Section[] {
  const items = chartItems(keys);
  const byId = new Map(items.map((i) => [i.id, i]));
  const pinned = pins.map((p) => byId.get(p)).filter((i): i is ChartItem => !!i);
  const pinnedIds = new Set(pinned.map((i) => i.id));
  const rest = items.filter((i) => !pinnedIds.has(i.id));
  const overview = rest.filter((i) => importance(i.id) <= OVERVIEW_RANK && !i.id.startsWith("system/"));
  const inOverview = new Set(overview.map((i) => i.id));
  const groups = new Map<string, ChartItem[]>();
  for (const i of rest) {
    if (inOverview.has(i.id)) continue;
    const s = sectionOf(i.id);
    if (!groups.has(s)) groups.set(s, []);
    groups.get(s)!.push(i);
  }
  const out: Section[] = [];
  if (pinned.length) out.push({ id: "pinned", title: "Pinned", items: pinned, collapsed: false });
  if (overview.length) out.push({ id: "overview", title: "Overview", items: overview.sort(byImportance), collapsed: false });
  const sections = [...groups.entries()].sort(([a], [b]) => sectionRank(a) - sectionRank(b) || a.localeCompare(b, undefined, { numeric: true }));
  for (const [s, its] of sections) {
    out.push({ id: `section:${s}`, title: s || "training", items: its.sort(byImportance), collapsed: MOE.test(s) && s !== "moe" });
  }
  return out;
}

/** Pins from the URL (`?pin=a&pin=b`), without duplicates, in order. */
export function parsePins(params: URLSearchParams): string[] {
  return [...new Set(params.getAll("pin").filter(Boolean))];
}

/** The URL parameters with `id` pinned or unpinned (other parameters kept). */
export function togglePin(params: URLSearchParams, id: string): URLSearchParams {
  const pins = parsePins(params);
  const next = new URLSearchParams(params);
  next.delete("pin");
  for (const p of pins.includes(id) ? pins.filter((p) => p !== id) : [...pins, id]) next.append("pin", p);
  return next;
}
