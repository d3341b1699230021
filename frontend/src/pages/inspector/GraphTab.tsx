/** The Inspector's Graph tab: a commit's computation graph (from its newest inspect job, or
 * the job in ?job=), laid out by elkjs (layered, top to bottom), folded by module hierarchy:
 * click a group to expand or collapse it, search to find and focus a node, wheel to zoom and
 * drag to pan (the SVG viewBox), and the selected item's details beside it. ?diff=ns/repo@ref
 * colours what changed against another commit's graph. */
import { useEffect, useMemo, useRef, useState, type PointerEvent as RPointerEvent, type WheelEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { useQuery } from "@tanstack/react-query";
import ELK, { type ElkNode } from "elkjs/lib/elk.bundled.js";
import { ApiError, get, qs } from "../../api/client";
import { Empty, ErrorMessage, Loading } from "../../components/States";
import { fmtNum, shortSha } from "../../lib/format";
import type { InspectorTarget } from "./Inspector";
import {
  diffStatus,
  expandFor,
  fmtCompact,
  fold,
  GROUP_PREFIX,
  openTree,
  search,
  shapeText,
  toggleGroup,
  type DrawnGraph,
  type DrawnItem,
  type GraphDiffResult,
  type GraphDoc,
  type GraphNode,
} from "./graphModel";

interface GraphResponse {
  job: string;
  repo: string;
  commit: string;
  created_at: string;
  onnx_url: string | null;
  graph: GraphDoc;
}

interface DiffResponse {
  a: Omit<GraphResponse, "graph">;
  b: Omit<GraphResponse, "graph">;
  diff: GraphDiffResult & { summary: Record<string, number | null>; modules_added: string[]; modules_removed: string[] };
}

interface Placed { x: number; y: number; w: number; h: number }
interface Layout { pos: Map<string, Placed>; edges: { id: string; pts: [number, number][] }[]; width: number; height: number; frames: string[] }

const elk = new ELK();
const NODE_H = 40;

function itemWidth(it: DrawnItem): number {
  return Math.max(110, Math.min(320, 7.2 * Math.max(it.label.length, it.sub.length * 0.85) + 24));
}

const FRAME_HEADER = 26;

/** elkjs layered layout; open groups are compound nodes (frames) around what they hold, and
 * every coordinate comes back relative to the root (elk.json.shapeCoords/edgeCoords). */
async function layout(g: DrawnGraph, expanded: ReadonlySet<string>): Promise<Layout> {
  const tree = openTree(g, expanded);
  const nodes = new Map<string, ElkNode>();
  const root: ElkNode = {
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "DOWN",
      "elk.hierarchyHandling": "INCLUDE_CHILDREN",
      "elk.layered.spacing.nodeNodeBetweenLayers": "36",
      "elk.spacing.nodeNode": "24",
      "elk.edgeRouting": "POLYLINE",
      "elk.json.shapeCoords": "ROOT",
      "elk.json.edgeCoords": "ROOT",
    },
    children: [],
    edges: g.edges.map(([s, d], i) => ({ id: `e${i}`, sources: [s], targets: [d] })),
  };
  const holder = (id: string): ElkNode => (id ? nodes.get(id) ?? root : root);
  for (const o of tree.open) {
    const id = `open:${o}`;
    nodes.set(id, {
      id,
      children: [],
      layoutOptions: { "elk.padding": `[top=${FRAME_HEADER + 8},left=10,bottom=10,right=10]` },
    });
  }
  for (const o of tree.open) {
    const id = `open:${o}`;
    holder(tree.parent.get(id) ?? "").children!.push(nodes.get(id)!);
  }
  for (const it of g.items) {
    holder(tree.parent.get(it.id) ?? "").children!.push({ id: it.id, width: itemWidth(it), height: NODE_H });
  }
  const res = await elk.layout(root);
  const pos = new Map<string, Placed>();
  const walk = (n: ElkNode) => {
    for (const c of n.children ?? []) {
      pos.set(c.id, { x: c.x ?? 0, y: c.y ?? 0, w: c.width ?? 0, h: c.height ?? 0 });
      walk(c);
    }
  };
  walk(res);
  const edges = (res.edges ?? []).map((e) => {
    const pts: [number, number][] = [];
    for (const s of e.sections ?? []) {
      pts.push([s.startPoint.x, s.startPoint.y]);
      for (const b of s.bendPoints ?? []) pts.push([b.x, b.y]);
      pts.push([s.endPoint.x, s.endPoint.y]);
    }
    return { id: e.id, pts };
  });
  return { pos, edges, width: res.width ?? 0, height: res.height ?? 0, frames: tree.open };
}

function useGraph(t: InspectorTarget) {
  return useQuery({
    queryKey: ["graph", t.ns, t.name, t.sha, t.job],
    queryFn: ({ signal }) =>
      get<GraphResponse>(t.job ? `/jobs/${encodeURIComponent(t.job)}/graph` : `/repos/${t.ns}/${t.name}/commits/${encodeURIComponent(t.sha)}/graph`, signal),
    retry: false,
    staleTime: 60_000,
  });
}

function useDiff(a: string | null, b: string) {
  return useQuery({
    queryKey: ["graph-diff", a, b],
    queryFn: ({ signal }) => get<DiffResponse>(`/graphs/diff${qs({ a, b })}`, signal),
    enabled: !!a,
    retry: false,
  });
}

const STATUS_LABEL = { added: "added", changed: "changed", removed: "removed" } as const;

export default function GraphTab({ target }: { target: InspectorTarget }) {
  const q = useGraph(target);
  const [params, setParams] = useSearchParams();
  const diffWith = params.get("diff");
  const diff = useDiff(diffWith, `${target.ns}/${target.name}@${target.sha}`);
  if (q.isPending) return <Loading label="Loading the graph…" />;
  if (q.error) {
    if (q.error instanceof ApiError && q.error.status === 404 && q.error.code === "graph_not_found") {
      return (
        <Empty>
          No computation graph of this commit yet. Launch one:{" "}
          <code>hub inspect graph {target.ns}/{target.name}@{shortSha(target.sha)} --project NS/PROJECT</code>
          {" "}or <Link to={`/jobs/new?kind=inspect&base=${encodeURIComponent(`${target.ns}/${target.name}@${target.sha}`)}`}>launch an inspect job</Link>.
        </Empty>
      );
    }
    return <ErrorMessage error={q.error} retry={() => void q.refetch()} />;
  }
  const setDiff = (v: string) => {
    const next = new URLSearchParams(params);
    if (v) next.set("diff", v);
    else next.delete("diff");
    setParams(next);
  };
  return <GraphView data={q.data} diff={diff.data ?? null} diffError={diff.error} diffWith={diffWith} setDiff={setDiff} />;
}

function GraphView({ data, diff, diffError, diffWith, setDiff }: {
  data: GraphResponse;
  diff: DiffResponse | null;
  diffError: unknown;
  diffWith: string | null;
  setDiff: (v: string) => void;
}) {
  const doc = data.graph;
  const [expanded, setExpanded] = useState<Set<string>>(() => new Set());
  const [selected, setSelected] = useState<string | null>(null);
  const [query, setQuery] = useState("");
  const [diffInput, setDiffInput] = useState(diffWith ?? "");
  const status = useMemo(() => diffStatus(diff?.diff), [diff]);
  const drawn = useMemo(() => fold(doc, expanded, status), [doc, expanded, status]);
  const [lay, setLay] = useState<Layout | null>(null);
  const [layError, setLayError] = useState<unknown>(null);
  const [view, setView] = useState<[number, number, number, number] | null>(null);
  const focusRef = useRef<string | null>(null);
  const svgRef = useRef<SVGSVGElement | null>(null);
  const drag = useRef<{ x: number; y: number; v: [number, number, number, number] } | null>(null);
  const byId = useMemo(() => new Map(doc.nodes.map((n) => [n.id, n])), [doc]);
  const hits = useMemo(() => search(doc, query), [doc, query]);
  const types = useMemo(() => new Map((doc.modules ?? []).map((m) => [m.path, m.type])), [doc]);

  useEffect(() => {
    let live = true;
    layout(drawn, expanded).then(
      (l) => {
        if (!live) return;
        setLay(l);
        const f = focusRef.current ? focusBox(l, drawn, focusRef.current) : undefined;
        if (f) {
          const w = Math.max(1000, f.w + 120);
          const h = Math.max(w * 0.6, f.h + 120);
          setView([f.x + f.w / 2 - w / 2, f.y + f.h / 2 - h / 2, w, h]);
          focusRef.current = null;
        } else {
          setView((v) => v ?? [-20, -20, Math.max(l.width + 40, 400), Math.max(l.height + 40, 300)]);
        }
      },
      (e) => live && setLayError(e),
    );
    return () => {
      live = false;
    };
  }, [drawn]);

  const focus = (n: GraphNode) => {
    focusRef.current = n.id;
    setExpanded(expandFor(n, expanded));
    setSelected(n.id);
  };
  const onItem = (it: DrawnItem) => {
    setSelected(it.id);
    if (it.group) {
      focusRef.current = `${GROUP_PREFIX}${it.module}`; // the view follows what opened
      setExpanded(toggleGroup(it.module, expanded));
    }
  };
  const onWheel = (e: WheelEvent<SVGSVGElement>) => {
    if (!view || !svgRef.current) return;
    const r = svgRef.current.getBoundingClientRect();
    const k = e.deltaY > 0 ? 1.15 : 1 / 1.15;
    const px = view[0] + ((e.clientX - r.left) / r.width) * view[2];
    const py = view[1] + ((e.clientY - r.top) / r.height) * view[3];
    setView([px - (px - view[0]) * k, py - (py - view[1]) * k, view[2] * k, view[3] * k]);
  };
  const onDown = (e: RPointerEvent<SVGSVGElement>) => {
    if (!view || (e.target as Element).closest('[role="button"]')) return;
    drag.current = { x: e.clientX, y: e.clientY, v: view };
    (e.currentTarget as Element).setPointerCapture?.(e.pointerId);
  };
  const onMove = (e: RPointerEvent<SVGSVGElement>) => {
    const d = drag.current;
    if (!d || !svgRef.current) return;
    const r = svgRef.current.getBoundingClientRect();
    setView([d.v[0] - ((e.clientX - d.x) / r.width) * d.v[2], d.v[1] - ((e.clientY - d.y) / r.height) * d.v[3], d.v[2], d.v[3]]);
  };
  const zoom = (k: number) => view && setView([view[0] + (view[2] * (1 - k)) / 2, view[1] + (view[3] * (1 - k)) / 2, view[2] * k, view[3] * k]);
  const fit = () => lay && setView([-20, -20, Math.max(lay.width + 40, 400), Math.max(lay.height + 40, 300)]);

  const selItem = drawn.items.find((i) => i.id === selected);
  const selNode = selected && !selected.startsWith(GROUP_PREFIX) ? byId.get(selected) : undefined;
  const selChange = diff?.diff.changed.find((c) => c.b_id === selected);
  const model = doc.model ?? {};

  return (
    <div className="graph-tab">
      <div className="graph-toolbar">
        <span className="graph-summary">
          {fmtNum(doc.nodes.length)} nodes · {fmtCompact(doc.params_total)} parameters
          {doc.flops_total ? ` · ${fmtCompact(doc.flops_total)} FLOPs per forward` : ""}
          {doc.input ? ` (batch ${doc.input.batch} × ${doc.input.seq_len} tokens)` : ""}
          {typeof model.n_experts === "number" ? ` · ${model.n_experts} experts, top-${model.top_k}` : ""}
        </span>
        <label className="graph-search">
          Search{" "}
          <input type="search" aria-label="Search nodes" placeholder="op, node or module" value={query} onChange={(e) => setQuery(e.target.value)} />
        </label>
        <button type="button" onClick={() => zoom(1 / 1.3)} aria-label="Zoom in">+</button>
        <button type="button" onClick={() => zoom(1.3)} aria-label="Zoom out">−</button>
        <button type="button" onClick={fit}>Fit</button>
        <button type="button" onClick={() => { setExpanded(new Set()); setSelected(null); focusRef.current = null; setView(null); }}>Collapse all</button>
        {data.onnx_url && <a className="button" href={`/api/v1${data.onnx_url.replace(/^\/api\/v1/, "")}`} download>Download ONNX</a>}
        <Link to={`/jobs/${data.job}`}>job {data.job}</Link>
      </div>
      {query && (
        <ul className="graph-hits" aria-label="Search results">
          {hits.length === 0 && <li>No node matches.</li>}
          {hits.slice(0, 12).map((n) => (
            <li key={n.id}>
              <button type="button" onClick={() => focus(n)}>
                <code>{n.id}</code> {n.kind === "op" ? n.target : n.kind} <span className="muted">{n.module || "(model)"}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      <form className="graph-diff-form" onSubmit={(e) => { e.preventDefault(); setDiff(diffInput.trim()); }}>
        <label>
          Compare with{" "}
          <input aria-label="Compare with commit" placeholder="ns/repo@ref" value={diffInput} onChange={(e) => setDiffInput(e.target.value)} />
        </label>
        <button type="submit">Diff</button>
        {diffWith && <button type="button" onClick={() => { setDiffInput(""); setDiff(""); }}>Clear</button>}
        {diff && (
          <span className="graph-diff-summary">
            against {diff.a.repo}@{shortSha(diff.a.commit)}:{" "}
            <span className="st-added">{diff.diff.summary.added} added</span>,{" "}
            <span className="st-changed">{diff.diff.summary.changed} changed</span>,{" "}
            <span className="st-removed">{diff.diff.summary.removed} removed</span>
          </span>
        )}
        {diffError != null && <ErrorMessage error={diffError} />}
      </form>
      <div className="graph-main">
        <div className="graph-canvas">
          {layError != null && <ErrorMessage error={layError} />}
          {!lay || !view ? (
            <Loading label="Laying out…" />
          ) : (
            <svg
              ref={svgRef}
              role="img"
              aria-label="Computation graph"
              viewBox={view.join(" ")}
              onWheel={onWheel}
              onPointerDown={onDown}
              onPointerMove={onMove}
              onPointerUp={() => { drag.current = null; }}
            >
              <defs>
                <marker id="graph-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
                  <path d="M 0 0 L 10 5 L 0 10 z" fill="#888" />
                </marker>
              </defs>
              {lay.frames.map((o) => {
                const p = lay.pos.get(`open:${o}`);
                if (!p) return null;
                return (
                  <g key={o} className={`graph-frame ${frameClass(o)}`} data-frame={o} transform={`translate(${p.x},${p.y})`}>
                    <rect width={p.w} height={p.h} rx={10} />
                    <g
                      className="graph-frame-head"
                      role="button"
                      tabIndex={0}
                      aria-label={`collapse ${o}`}
                      onClick={() => { focusRef.current = `${GROUP_PREFIX}${o}`; setSelected(`${GROUP_PREFIX}${o}`); setExpanded(toggleGroup(o, expanded)); }}
                      onKeyDown={(e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); setExpanded(toggleGroup(o, expanded)); } }}
                    >
                      <rect width={p.w} height={FRAME_HEADER} rx={10} />
                      <text x={10} y={17} className="graph-label">▾ {o} <tspan className="graph-sub">{types.get(o) ?? ""}</tspan></text>
                    </g>
                  </g>
                );
              })}
              {lay.edges.map((e) => (
                <polyline key={e.id} points={e.pts.map((p) => p.join(",")).join(" ")} fill="none" stroke="#999" strokeWidth={1.2} markerEnd="url(#graph-arrow)" />
              ))}
              {drawn.items.map((it) => {
                const p = lay.pos.get(it.id);
                if (!p) return null;
                const cls = [
                  "graph-item",
                  it.group ? "is-group" : `is-${it.kind}`,
                  groupClass(it),
                  it.status ? `st-${it.status}` : "",
                  it.id === selected ? "is-selected" : "",
                  query && hits.some((h) => h.id === it.id) ? "is-hit" : "",
                ].filter(Boolean).join(" ");
                return (
                  <g
                    key={it.id}
                    data-item={it.id}
                    className={cls}
                    transform={`translate(${p.x},${p.y})`}
                    onClick={() => onItem(it)}
                    role="button"
                    tabIndex={0}
                    aria-label={`${it.group ? "group" : "node"} ${it.label}`}
                    onKeyDown={(e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onItem(it); } }}
                  >
                    <rect width={p.w} height={p.h} rx={it.group ? 8 : 4} />
                    <text x={8} y={16} className="graph-label">{it.group ? `${expandedMark(it)} ${it.label}` : it.label}</text>
                    <text x={8} y={31} className="graph-sub">{it.sub}</text>
                  </g>
                );
              })}
            </svg>
          )}
        </div>
        <aside className="graph-details" aria-label="Selected node">
          {!selItem && !selNode ? (
            <>
              <p className="muted">Click a group to expand it, a node to see its details. Wheel zooms, drag pans.</p>
              {doc.notes?.map((n) => <p key={n} className="graph-note">{n}</p>)}
              {diff && diff.diff.removed.length > 0 && <Removed diff={diff} />}
              {diff && diff.diff.modules_added.length > 0 && (
                <p>Modules added: {diff.diff.modules_added.slice(0, 20).map((m) => <code key={m}>{m} </code>)}</p>
              )}
            </>
          ) : selNode ? (
            <NodeDetails n={selNode} status={status.get(selNode.id)} change={selChange} />
          ) : selItem ? (
            <dl>
              <dt>Group</dt><dd><code>{selItem.module}</code></dd>
              <dt>Contents</dt><dd>{selItem.sub}</dd>
              <dt>Parameters</dt><dd>{fmtNum(selItem.params)}</dd>
              <dt>FLOPs</dt><dd>{fmtCompact(selItem.flops)}</dd>
              {selItem.status && <><dt>Diff</dt><dd className={`st-${selItem.status}`}>{STATUS_LABEL[selItem.status]}</dd></>}
            </dl>
          ) : null}
        </aside>
      </div>
    </div>
  );
}

/** The box to show after a change: the focused node, or everything a group opened into. */
function focusBox(l: Layout, g: DrawnGraph, focus: string): Placed | undefined {
  if (!focus.startsWith(GROUP_PREFIX)) return l.pos.get(focus);
  const path = focus.slice(GROUP_PREFIX.length);
  const boxes = g.items
    .filter((it) => it.module === path || it.module.startsWith(`${path}.`))
    .map((it) => l.pos.get(it.id))
    .filter((p): p is Placed => !!p);
  if (!boxes.length) return undefined;
  const x0 = Math.min(...boxes.map((b) => b.x));
  const y0 = Math.min(...boxes.map((b) => b.y));
  const x1 = Math.max(...boxes.map((b) => b.x + b.w));
  const y1 = Math.max(...boxes.map((b) => b.y + b.h));
  return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
}

function expandedMark(it: DrawnItem): string {
  return it.group ? "▸" : "";
}

function frameClass(path: string): string {
  if (/\.ffn$/.test(path)) return "frame-moe";
  if (/\.expert\.\d+$|\.router$|\.dispatch$/.test(path)) return "frame-moe-part";
  return "";
}

/** A colour class by what a module is: the MoE layer's parts stand out. */
function groupClass(it: DrawnItem): string {
  const m = it.module;
  if (/\.router$/.test(m) || it.sub.startsWith("Router")) return "mod-router";
  if (/\.dispatch$/.test(m)) return "mod-dispatch";
  if (/\.expert\.\d+$|\.experts$|\.shared$/.test(m)) return "mod-expert";
  if (/\.attn$/.test(m)) return "mod-attn";
  return "";
}

function NodeDetails({ n, status, change }: { n: GraphNode; status?: string; change?: GraphDiffResult["changed"][number] }) {
  return (
    <dl>
      <dt>Node</dt><dd><code>{n.id}</code></dd>
      <dt>Op</dt><dd><code>{n.target}</code></dd>
      <dt>Module</dt><dd><code>{n.module || "(model)"}</code>{n.module_type ? ` (${n.module_type})` : ""}</dd>
      {n.inputs && n.inputs.length > 0 && <><dt>Inputs</dt><dd>{shapeText(n.inputs)}</dd></>}
      <dt>Outputs</dt><dd>{shapeText(n.outputs) || "—"}</dd>
      {n.args && <><dt>Arguments</dt><dd><code>{JSON.stringify(n.args)}</code></dd></>}
      {n.params ? <><dt>Parameters</dt><dd>{fmtNum(n.params)}</dd></> : null}
      {n.flops ? <><dt>FLOPs</dt><dd>{fmtNum(n.flops)}</dd></> : null}
      {status && <><dt>Diff</dt><dd className={`st-${status}`}>{status}</dd></>}
      {change && change.changes.map((c) => (
        <div key={c.field}>
          <dt>{c.field}</dt>
          <dd><code>{JSON.stringify(c.a)}</code> → <code>{JSON.stringify(c.b)}</code></dd>
        </div>
      ))}
    </dl>
  );
}

function Removed({ diff }: { diff: DiffResponse }) {
  return (
    <div className="graph-removed">
      <h3 className="st-removed">Removed ({diff.diff.removed.length})</h3>
      <ul>
        {diff.diff.removed.slice(0, 30).map((r) => (
          <li key={r.id}><code>{r.module || "(model)"}</code> {r.target}</li>
        ))}
      </ul>
    </div>
  );
}
