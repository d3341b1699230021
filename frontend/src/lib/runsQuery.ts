/** The runs table's state lives in the URL so a view can be shared:
 *   ?q=<query>&sort=-summary.val_loss&cols=params.lr,summary.loss&sel=id1,id2&offset=50&size=50
 * and the helpers that edit the tracker's query text from the facet panel. */

export interface RunsState {
  q: string;
  /** one field, "-" first for descending; "" = the server's default (newest first) */
  sort: string;
  /** null = choose columns automatically from the runs on the page */
  cols: string[] | null;
  sel: string[];
  offset: number;
  size: number;
}

export const PAGE_SIZES = [25, 50, 100, 200];
const DEFAULT_SIZE = 50;

function list(v: string | null): string[] {
  return (v ?? "").split(",").map((s) => s.trim()).filter(Boolean);
}

export function parseRunsState(p: URLSearchParams): RunsState {
  const size = Number(p.get("size"));
  const offset = Number(p.get("offset"));
  return {
    q: p.get("q") ?? "",
    sort: p.get("sort") ?? "",
    cols: p.has("cols") ? list(p.get("cols")) : null,
    sel: list(p.get("sel")),
    offset: Number.isInteger(offset) && offset > 0 ? offset : 0,
    size: PAGE_SIZES.includes(size) ? size : DEFAULT_SIZE,
  };
}

export function runsStateToParams(s: RunsState): URLSearchParams {
  const p = new URLSearchParams();
  if (s.q) p.set("q", s.q);
  if (s.sort) p.set("sort", s.sort);
  if (s.cols !== null) p.set("cols", s.cols.join(","));
  if (s.sel.length) p.set("sel", s.sel.join(","));
  if (s.offset) p.set("offset", String(s.offset));
  if (s.size !== DEFAULT_SIZE) p.set("size", String(s.size));
  return p;
}

/** Header click: ascending → descending → back to the default order. Metrics whose name
 * says loss start ascending (best first); everything else starts descending for numbers. */
export function nextSort(current: string, field: string): string {
  if (current === field) return `-${field}`;
  if (current === `-${field}`) return "";
  return field;
}

export function sortDirection(current: string, field: string): "ascending" | "descending" | "none" {
  if (current === field) return "ascending";
  if (current === `-${field}`) return "descending";
  return "none";
}

/** A value as the query language reads it: bare when safe, else a quoted phrase. */
export function quoteValue(v: string): string {
  if (/^[A-Za-z0-9_.\-/@]+$/.test(v) && !["AND", "OR", "NOT", "TO"].includes(v)) return v;
  return `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export function facetClause(field: string, value: string): string {
  return `${field}:${quoteValue(value)}`;
}

/** Whether `q` already holds `clause` as one of its top-level AND terms. */
export function hasClause(q: string, clause: string): boolean {
  return splitAnd(q).includes(clause);
}

function splitAnd(q: string): string[] {
  return q.split(/\s+AND\s+/).map((s) => s.trim()).filter(Boolean);
}

/** Add a facet clause with AND, or remove it when it is there (a facet click toggles). */
export function toggleClause(q: string, clause: string): string {
  const parts = splitAnd(q);
  // Only edit a plain conjunction; anything with OR or parentheses is wrapped.
  const simple = !/\bOR\b|[()]/.test(q);
  if (simple && parts.includes(clause)) return parts.filter((p) => p !== clause).join(" AND ");
  if (!q.trim()) return clause;
  return simple ? `${q.trim()} AND ${clause}` : `(${q.trim()}) AND ${clause}`;
}

/** Split the query at the server's error position for an inline marker. */
export function errorMarker(q: string, position: unknown): { before: string; at: string; after: string } | null {
  if (typeof position !== "number" || position < 0) return null;
  const pos = Math.min(position, q.length);
  return { before: q.slice(0, pos), at: q.slice(pos, pos + 1) || " ", after: q.slice(pos + 1) };
}
