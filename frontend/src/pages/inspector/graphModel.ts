/** The Graph tab's model: folding a computation graph (graph.json of an inspect job) by module
 * hierarchy, search, and diff colouring. Pure functions, no React (graphModel.test.ts).
 *
 * Folding. A node's module path ("blocks.1.ffn.expert.3") gives its groups, outermost first;
 * a numeric segment belongs to the name before it, so the groups are "blocks.1",
 * "blocks.1.ffn", "blocks.1.ffn.expert.3". A node is drawn as its outermost group that is not
 * expanded, or as itself when every group is. Parameter and buffer placeholders are not drawn
 * (their counts are in the groups' details); a getitem (tuple unpacking) is drawn as the node
 * it unpacks. Edges join the drawn items of their ends, without duplicates or self-loops. */

export interface TensorMeta { shape: number[]; dtype: string }

export interface GraphNode {
  id: string;
  op: string;
  kind: string; // op | input | output | parameter | buffer
  target: string;
  module: string;
  module_type?: string;
  inputs?: TensorMeta[];
  outputs?: TensorMeta[];
  params?: number;
  tied_to?: string;
  flops?: number;
  args?: Record<string, unknown>;
}

export interface GraphModule {
  path: string;
  type: string;
  params: number;
  /** An expert's slice of its layer's packed weights (counted in the bank's params). */
  view_params?: number;
}

export interface GraphDoc {
  format?: number;
  model?: Record<string, unknown>;
  params_total: number;
  flops_total?: number;
  dispatch?: string;
  notes?: string[];
  input?: { batch: number; seq_len: number };
  modules?: GraphModule[];
  nodes: GraphNode[];
  edges: [string, string][];
}

export type DiffStatus = "added" | "changed" | "removed";

export interface DrawnItem {
  id: string; // a node id, or "group:<module path>"
  group: boolean;
  label: string;
  sub: string; // the second line: a group's type and size, an op's output shape
  module: string;
  kind: string;
  nodes: number; // graph nodes folded into it (1 for a node)
  params: number;
  flops: number;
  status?: DiffStatus;
}

export interface DrawnGraph { items: DrawnItem[]; edges: [string, string][] }

export const GROUP_PREFIX = "group:";

/** The groups of a module path, outermost first ("" → none). */
export function moduleGroups(path: string): string[] {
  if (!path) return [];
  const parts = path.split(".");
  const out: string[] = [];
  let cur = "";
  for (const p of parts) {
    const numeric = /^\d+$/.test(p);
    cur = cur ? `${cur}.${p}` : p;
    if (numeric && out.length && out[out.length - 1] === cur.slice(0, cur.length - p.length - 1)) {
      out[out.length - 1] = cur; // "blocks" + "0" → "blocks.0"
    } else {
      out.push(cur);
    }
  }
  return out;
}

/** The drawn item a node folds into, or null for a node that is not drawn. */
export function representative(n: GraphNode, expanded: ReadonlySet<string>): string | null {
  if (n.kind === "parameter" || n.kind === "buffer") return null;
  for (const g of moduleGroups(n.module)) {
    if (!expanded.has(g)) return GROUP_PREFIX + g;
  }
  return n.id;
}

function isGetitem(n: GraphNode): boolean {
  return n.target.includes("getitem");
}

export function shapeText(m: TensorMeta[] | undefined): string {
  if (!m || !m.length) return "";
  return m.map((t) => `${t.dtype === "float32" ? "" : t.dtype}[${t.shape.join("×")}]`).join(", ");
}

export function shortTarget(t: string): string {
  return t.replace(/^aten\./, "").replace(/\.(default|Tensor|int|dim_IntList|src|Scalar)$/, "");
}

/** Own parameters per module path, and the totals of each group (a module and below). */
export function groupParams(doc: GraphDoc): Map<string, number> {
  const total = new Map<string, number>();
  const own: [string, number][] = doc.modules?.length
    ? doc.modules.map((m) => [m.path, m.params])
    : doc.nodes.filter((n) => n.kind === "parameter").map((n) => [n.module, n.params ?? 0]);
  for (const [path, p] of own) {
    for (const g of moduleGroups(path)) total.set(g, (total.get(g) ?? 0) + p);
  }
  return total;
}

export function fold(
  doc: GraphDoc,
  expanded: ReadonlySet<string>,
  status: ReadonlyMap<string, DiffStatus> = new Map(),
): DrawnGraph {
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const params = groupParams(doc);
  const types = new Map((doc.modules ?? []).map((m) => [m.path, m.type]));
  const views = new Map((doc.modules ?? []).map((m) => [m.path, m.view_params ?? 0]));
  const rep = new Map<string, string | null>();
  const inputsOf = new Map<string, string[]>();
  for (const [s, d] of doc.edges) {
    const l = inputsOf.get(d);
    if (l) l.push(s);
    else inputsOf.set(d, [s]);
  }
  const repOf = (id: string, depth = 0): string | null => {
    if (rep.has(id)) return rep.get(id) ?? null;
    const n = byId.get(id);
    let r: string | null = null;
    if (n) {
      r = representative(n, expanded);
      if (r === n.id && isGetitem(n) && depth < 8) {
        const src = (inputsOf.get(id) ?? []).map((s) => repOf(s, depth + 1)).find((x) => x !== null);
        if (src) r = src;
      }
    }
    rep.set(id, r);
    return r;
  };
  const items = new Map<string, DrawnItem>();
  for (const n of doc.nodes) {
    const r = repOf(n.id);
    if (r === null) continue;
    const st = status.get(n.id);
    if (r.startsWith(GROUP_PREFIX)) {
      const path = r.slice(GROUP_PREFIX.length);
      let it = items.get(r);
      if (!it) {
        const type = types.get(path) ?? n.module_type ?? "";
        it = { id: r, group: true, label: path, sub: type, module: path, kind: "group", nodes: 0, params: params.get(path) || views.get(path) || 0, flops: 0 };
        items.set(r, it);
      }
      it.nodes += 1;
      it.flops += n.flops ?? 0;
      if (st) it.status = it.status === undefined || it.status === st ? st : "changed";
      else if (it.status === "added") it.status = "changed"; // partly added: changed
    } else if (r === n.id) {
      items.set(r, {
        id: n.id,
        group: false,
        label: n.kind === "op" ? shortTarget(n.target) : n.kind === "input" ? `input ${n.target}` : n.kind,
        sub: shapeText(n.outputs),
        module: n.module,
        kind: n.kind,
        nodes: 1,
        params: n.params ?? 0,
        flops: n.flops ?? 0,
        status: st,
      });
    }
  }
  // A group holding added and unchanged nodes was marked as it went; one whose first nodes
  // were unchanged and later ones added needs the second pass.
  for (const n of doc.nodes) {
    const r = repOf(n.id);
    if (r && r.startsWith(GROUP_PREFIX) && !status.get(n.id)) {
      const it = items.get(r);
      if (it && it.status === "added") it.status = "changed";
    }
  }
  const seen = new Set<string>();
  const edges: [string, string][] = [];
  for (const [s, d] of doc.edges) {
    const a = repOf(s);
    const b = repOf(d);
    if (!a || !b || a === b || !items.has(a) || !items.has(b)) continue;
    const k = `${a}\u0000${b}`;
    if (seen.has(k)) continue;
    seen.add(k);
    edges.push([a, b]);
  }
  for (const it of items.values()) {
    if (it.group) {
      const parts = [it.sub, `${it.nodes} ops`];
      if (it.params) parts.push(`${fmtCompact(it.params)} params`);
      it.sub = parts.filter(Boolean).join(" · ");
    }
  }
  return { items: [...items.values()], edges };
}

export function fmtCompact(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e12) return `${(n / 1e12).toFixed(1)}T`;
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** Nodes whose id, op or module contains the query (case-insensitive), drawn ones first. */
export function search(doc: GraphDoc, query: string, limit = 50): GraphNode[] {
  const q = query.trim().toLowerCase();
  if (!q) return [];
  const hits = doc.nodes.filter(
    (n) => n.kind !== "parameter" && n.kind !== "buffer" &&
      (n.id.toLowerCase().includes(q) || n.target.toLowerCase().includes(q) || n.module.toLowerCase().includes(q)),
  );
  return hits.slice(0, limit);
}

/** The groups to expand so that node ``n`` is drawn as itself. */
export function expandFor(n: GraphNode, expanded: ReadonlySet<string>): Set<string> {
  const next = new Set(expanded);
  for (const g of moduleGroups(n.module)) next.add(g);
  return next;
}

/** Toggle a group; collapsing one also collapses the groups inside it. */
export function toggleGroup(path: string, expanded: ReadonlySet<string>): Set<string> {
  const next = new Set(expanded);
  if (next.has(path)) {
    for (const g of expanded) if (g === path || g.startsWith(`${path}.`)) next.delete(g);
  } else {
    next.add(path);
  }
  return next;
}

export interface GraphDiffResult {
  added: { id: string }[];
  removed: { id: string; module: string; target: string }[];
  changed: { b_id: string; a_id: string; module: string; target: string; changes: { field: string; a: unknown; b: unknown }[] }[];
}

/** Diff status by node id of graph B (the one drawn). */
export function diffStatus(d: GraphDiffResult | null | undefined): Map<string, DiffStatus> {
  const m = new Map<string, DiffStatus>();
  if (!d) return m;
  for (const a of d.added) m.set(a.id, "added");
  for (const c of d.changed) m.set(c.b_id, "changed");
  return m;
}

/** The open groups that hold drawn items, as a tree: each drawn item's and each open group's
 * parent is its innermost open group ("" = the top level). Open groups with nothing drawn
 * inside are left out. The page draws them as frames around what they hold. */
export function openTree(g: DrawnGraph, expanded: ReadonlySet<string>): { parent: Map<string, string>; open: string[] } {
  const parent = new Map<string, string>();
  const used = new Set<string>();
  const innermost = (groups: string[]) => {
    for (let i = groups.length - 1; i >= 0; i--) if (expanded.has(groups[i])) return groups[i];
    return "";
  };
  for (const it of g.items) {
    const groups = moduleGroups(it.module);
    const own = it.group ? groups.slice(0, -1) : groups; // a folded group is inside its parents
    const p = innermost(own.filter((x) => expanded.has(x) && own.slice(0, own.indexOf(x)).every((y) => expanded.has(y))));
    parent.set(it.id, p ? `open:${p}` : "");
    for (let x = p; x; ) {
      if (used.has(x)) break;
      used.add(x);
      const up = innermost(moduleGroups(x).slice(0, -1));
      parent.set(`open:${x}`, up ? `open:${up}` : "");
      x = up;
    }
  }
  const open = [...used].sort((a, b) => moduleGroups(a).length - moduleGroups(b).length);
  return { parent, open };
}
