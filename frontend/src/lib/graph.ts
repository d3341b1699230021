/** Lane layout of a commit graph (as `git log --graph` draws it), for an SVG beside the
 * commit list. Input: commits children-first (newest first, topologically ordered). Each
 * commit gets a row and a lane; each parent link becomes an edge that leaves the child's
 * lane, runs down a lane and joins the parent's lane at the parent's row. */

export interface GraphCommit {
  sha: string;
  parents: string[];
}

export interface GraphNode {
  sha: string;
  row: number;
  lane: number;
  merge: boolean;
}

export interface GraphEdge {
  from: string;
  to: string;
  fromRow: number;
  fromLane: number;
  /** the lane the edge runs down */
  lane: number;
  /** the parent's row, or `rows` when the parent is not loaded (the edge leaves the bottom) */
  toRow: number;
  toLane: number;
}

export interface GraphLayout {
  nodes: GraphNode[];
  edges: GraphEdge[];
  lanes: number;
  rows: number;
}

export function layoutGraph(commits: GraphCommit[]): GraphLayout {
  const lanes: (string | null)[] = [];
  const nodes: GraphNode[] = [];
  const edges: GraphEdge[] = [];
  const open = new Map<string, GraphEdge[]>(); // parent sha → edges waiting for it
  let width = 0;
  const freeLane = (from = 0) => {
    for (let i = from; i < lanes.length; i++) if (lanes[i] === null) return i;
    lanes.push(null);
    return lanes.length - 1;
  };

  commits.forEach((c, row) => {
    let lane = lanes.indexOf(c.sha);
    if (lane === -1) lane = freeLane();
    // every lane that was waiting for this commit converges here
    for (let j = 0; j < lanes.length; j++) if (lanes[j] === c.sha) lanes[j] = null;
    for (const e of open.get(c.sha) ?? []) {
      e.toRow = row;
      e.toLane = lane;
    }
    open.delete(c.sha);
    nodes.push({ sha: c.sha, row, lane, merge: c.parents.length > 1 });

    c.parents.forEach((p, i) => {
      let pl: number;
      if (i === 0) {
        pl = lane;
      } else {
        pl = lanes.indexOf(p);
        if (pl === -1) pl = freeLane(lane + 1);
      }
      lanes[pl] = p;
      const e: GraphEdge = { from: c.sha, to: p, fromRow: row, fromLane: lane, lane: pl, toRow: -1, toLane: pl };
      edges.push(e);
      const waiting = open.get(p);
      if (waiting) waiting.push(e);
      else open.set(p, [e]);
    });
    while (lanes.length && lanes[lanes.length - 1] === null) lanes.pop();
    width = Math.max(width, lanes.length, lane + 1);
  });
  for (const waiting of open.values()) for (const e of waiting) e.toRow = commits.length;
  return { nodes, edges, lanes: Math.max(width, 1), rows: commits.length };
}

/** Children-first order: newer generation first, then newer time. */
export function sortCommits<T extends { generation: number; created_at: string; sha: string }>(commits: T[]): T[] {
  return [...commits].sort(
    (a, b) => b.generation - a.generation || b.created_at.localeCompare(a.created_at) || a.sha.localeCompare(b.sha),
  );
}

/** The SVG path of one edge, for rows `rowH` tall and lanes `laneW` wide. */
export function edgePath(e: GraphEdge, laneW: number, rowH: number, pad = laneW / 2): string {
  const x = (l: number) => pad + l * laneW;
  const y = (r: number) => r * rowH + rowH / 2;
  const x0 = x(e.fromLane);
  const y0 = y(e.fromRow);
  const xl = x(e.lane);
  const x1 = x(e.toLane);
  const y1 = e.toRow >= 0 ? y(e.toRow) : y0 + rowH;
  const parts = [`M${x0},${y0}`];
  let cy = y0;
  if (xl !== x0) {
    // bend into the lane within one row
    const ny = Math.min(y0 + rowH, y1);
    parts.push(`C${x0},${(cy + ny) / 2} ${xl},${(cy + ny) / 2} ${xl},${ny}`);
    cy = ny;
  }
  if (x1 !== xl) {
    const by = Math.max(cy, y1 - rowH);
    if (by > cy) parts.push(`L${xl},${by}`);
    parts.push(`C${xl},${(by + y1) / 2} ${x1},${(by + y1) / 2} ${x1},${y1}`);
  } else if (y1 > cy) {
    parts.push(`L${x1},${y1}`);
  }
  return parts.join(" ");
}
