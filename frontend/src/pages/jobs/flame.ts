/** Folded stacks ("frame;frame;op self_us" lines, as flamegraph.pl reads them) → a tree, and
 * the tree → rectangles of an icicle graph (root on top, children below, width ∝ total). */

export interface FlameNode {
  name: string;
  /** self + every descendant */
  total: number;
  self: number;
  children: FlameNode[];
}

export function parseFolded(text: string): FlameNode {
  const root: FlameNode = { name: "all", total: 0, self: 0, children: [] };
  const index = new Map<FlameNode, Map<string, FlameNode>>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const sp = line.lastIndexOf(" ");
    if (sp <= 0) continue;
    const value = Number(line.slice(sp + 1));
    if (!Number.isFinite(value) || value <= 0) continue;
    const frames = line.slice(0, sp).split(";").filter((f) => f.length > 0);
    let node = root;
    root.total += value;
    for (const f of frames) {
      let kids = index.get(node);
      if (!kids) index.set(node, (kids = new Map()));
      let child = kids.get(f);
      if (!child) {
        child = { name: f, total: 0, self: 0, children: [] };
        kids.set(f, child);
        node.children.push(child);
      }
      child.total += value;
      node = child;
    }
    node.self += value;
  }
  const sort = (n: FlameNode) => {
    n.children.sort((a, b) => b.total - a.total);
    n.children.forEach(sort);
  };
  sort(root);
  return root;
}

export interface FlameRect {
  node: FlameNode;
  depth: number;
  /** 0..1 of the zoomed root's width */
  x: number;
  w: number;
  /** the path from the root, for zooming and labels */
  path: string[];
}

/** The rectangles under `focus` (the zoomed node), in [0, 1], dropping those under `minW`. */
export function layoutFlame(focus: FlameNode, minW = 0, basePath: string[] = []): FlameRect[] {
  const out: FlameRect[] = [];
  if (focus.total <= 0) return out;
  const walk = (n: FlameNode, depth: number, x: number, path: string[]) => {
    const w = n.total / focus.total;
    if (w < minW) return;
    out.push({ node: n, depth, x, w, path });
    let cx = x;
    for (const c of n.children) {
      walk(c, depth + 1, cx, [...path, c.name]);
      cx += c.total / focus.total;
    }
  };
  walk(focus, 0, 0, basePath);
  return out;
}

/** Find the node at a path of names under root (null when the path no longer exists). */
export function nodeAt(root: FlameNode, path: string[]): FlameNode | null {
  let n: FlameNode | undefined = root;
  for (const name of path) {
    n = n.children.find((c) => c.name === name);
    if (!n) return null;
  }
  return n;
}

export function flameDepth(n: FlameNode): number {
  return 1 + n.children.reduce((m, c) => Math.max(m, flameDepth(c)), 0);
}

/** A stable warm colour per frame name (flame graph convention), cooler for non-op frames. */
export function flameColor(name: string): string {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  const hue = name.startsWith("aten::") ? 10 + (h % 40) : name.includes("/") || name.startsWith("nn.") ? 190 + (h % 40) : 35 + (h % 25);
  return `hsl(${hue} 75% ${58 + (h % 12)}%)`;
}
