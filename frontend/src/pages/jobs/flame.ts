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

const samePath = (a: string[], b: string[]) => a.length === b.length && a.every((s, i) => s === b[i]);

/** Keyboard state of the flame graph: the selected frame (its path from the profile's root,
 * null for none) and the zoom (the path of the node drawn as the root). */
export interface FlameKeyState {
  sel: string[] | null;
  zoom: string[];
}

/** The next state after a key, or null when the key is not the flame graph's (the browser keeps
 * it). `rects` are the frames drawn now (layoutFlame of the zoomed node, in depth-first order,
 * so frames of one depth come left to right). Arrows move the selection: ↑ parent, ↓ widest
 * child, ← → neighbours at the same depth; Home selects the root; Enter (or Space) zooms into
 * the selected frame (on the root: zooms out, as a click there does); Escape and Backspace
 * zoom out one level, Escape with no zoom clears the selection. */
export function flameKey(key: string, rects: FlameRect[], state: FlameKeyState): FlameKeyState | null {
  const { sel, zoom } = state;
  if (!rects.length) return null;
  const root = rects[0];
  const cur = sel ? rects.find((r) => samePath(r.path, sel)) : undefined;
  const arrows = ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Home", "Enter", " "];
  if (!cur && arrows.includes(key)) return { sel: root.path, zoom };
  switch (key) {
    case "Home":
      return { sel: root.path, zoom };
    case "ArrowUp":
      return { sel: cur!.depth === 0 ? cur!.path : cur!.path.slice(0, -1), zoom };
    case "ArrowDown": {
      const p = cur!.path;
      const child = rects.find((r) => r.depth === cur!.depth + 1 && r.path.length === p.length + 1 && samePath(r.path.slice(0, -1), p));
      return { sel: child ? child.path : p, zoom };
    }
    case "ArrowLeft":
    case "ArrowRight": {
      const row = rects.filter((r) => r.depth === cur!.depth);
      const i = row.indexOf(cur!) + (key === "ArrowLeft" ? -1 : 1);
      return { sel: row[Math.max(0, Math.min(row.length - 1, i))].path, zoom };
    }
    case "Enter":
    case " ":
      if (cur!.depth === 0) return zoom.length ? { sel: cur!.path, zoom: zoom.slice(0, -1) } : state;
      return { sel: cur!.path, zoom: cur!.path };
    case "Escape":
    case "Backspace":
      if (zoom.length) return { sel: sel ?? zoom, zoom: zoom.slice(0, -1) };
      return key === "Escape" && sel ? { sel: null, zoom } : null;
    default:
      return null;
  }
}
