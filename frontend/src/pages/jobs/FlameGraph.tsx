/** An icicle flame graph of folded stacks on a <canvas>: the root on top, callees below,
 * width ∝ time. Hover shows the frame, its total and self time; click zooms into a frame,
 * "Reset" or a click on the root zooms out; a search highlights matching frames. Keyboard:
 * the canvas takes focus; arrows select frames (flameKey), Enter zooms in, Escape/Backspace
 * zoom out; the selected frame is outlined, shown in the tooltip and announced. */
import { useEffect, useMemo, useRef, useState } from "react";
import { flameColor, flameDepth, flameKey, layoutFlame, nodeAt, parseFolded, type FlameRect } from "./flame";
import { fmtMicros } from "./format";

const ROW = 18;

export function FlameGraph({ folded }: { folded: string }) {
  const root = useMemo(() => parseFolded(folded), [folded]);
  const [zoom, setZoom] = useState<string[]>([]);
  const [search, setSearch] = useState("");
  const [tip, setTip] = useState<{ x: number; y: number; rect: FlameRect } | null>(null);
  const [sel, setSel] = useState<string[] | null>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const wrap = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(800);
  const focus = nodeAt(root, zoom) ?? root;
  const rects = useMemo(() => layoutFlame(focus, 0, zoom), [focus, zoom]);
  const depth = useMemo(() => flameDepth(focus), [focus]);
  const height = Math.min(depth, 60) * ROW;
  // What the keyboard moves over: the frames that are drawn (wide enough, not below the cut).
  const drawn = useMemo(() => rects.filter((r) => r.w * width >= 0.5 && r.depth * ROW < height), [rects, width, height]);
  const selRect = useMemo(() => (sel ? drawn.find((r) => r.path.length === sel.length && r.path.every((p, i) => p === sel[i])) ?? null : null), [drawn, sel]);
  const q = search.trim().toLowerCase();
  const matched = useMemo(() => {
    if (!q) return 0;
    // time under matching frames, each counted once (not again under a matching ancestor)
    let t = 0;
    const walk = (n: typeof root, inMatch: boolean) => {
      const m = !inMatch && n.name.toLowerCase().includes(q);
      if (m) t += n.total;
      n.children.forEach((c) => walk(c, inMatch || m));
    };
    walk(focus, false);
    return t;
  }, [q, focus]);

  useEffect(() => {
    const el = wrap.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(Math.max(300, el.clientWidth)));
    ro.observe(el);
    setWidth(Math.max(300, el.clientWidth));
    return () => ro.disconnect();
  }, []);

  useEffect(() => {
    const c = canvas.current;
    if (!c) return;
    const dpr = window.devicePixelRatio || 1;
    c.width = Math.round(width * dpr);
    c.height = Math.round(height * dpr);
    const ctx = c.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const text = getComputedStyle(document.documentElement).getPropertyValue("--text").trim() || "#111";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (const r of rects) {
      const x = r.x * width;
      const w = r.w * width;
      const y = r.depth * ROW;
      if (y >= height || w < 0.5) continue;
      const hit = q && r.node.name.toLowerCase().includes(q);
      ctx.fillStyle = q && !hit ? "rgba(150,150,150,0.35)" : hit ? "hsl(300 70% 62%)" : flameColor(r.node.name);
      ctx.fillRect(x, y, Math.max(0.5, w - 1), ROW - 1);
      if (w > 30) {
        ctx.fillStyle = q && !hit ? text : "#111";
        const label = r.node.name;
        const maxChars = Math.floor((w - 6) / 6.2);
        ctx.fillText(label.length > maxChars ? `${label.slice(0, Math.max(1, maxChars - 1))}…` : label, x + 3, y + ROW / 2);
      }
    }
    if (selRect) {
      ctx.strokeStyle = text;
      ctx.lineWidth = 2;
      ctx.strokeRect(selRect.x * width + 1, selRect.depth * ROW + 1, Math.max(2, selRect.w * width - 3), ROW - 3);
    }
  }, [rects, width, height, q, selRect]);

  const rectAt = (ev: React.MouseEvent): FlameRect | null => {
    const c = canvas.current;
    if (!c) return null;
    const b = c.getBoundingClientRect();
    const fx = (ev.clientX - b.left) / b.width;
    const d = Math.floor((ev.clientY - b.top) / ROW);
    return rects.find((r) => r.depth === d && fx >= r.x && fx < r.x + r.w) ?? null;
  };

  if (root.total <= 0) return <p className="muted">No stacks recorded.</p>;
  const pct = (v: number) => `${((v / root.total) * 100).toFixed(1)}%`;
  const describe = (r: FlameRect) => `${r.node.name}: total ${fmtMicros(r.node.total)} (${pct(r.node.total)}), self ${fmtMicros(r.node.self)}`;
  // The tooltip follows the mouse; without one, it shows the keyboard's selected frame.
  const shownTip = tip ?? (selRect ? { x: Math.max(0, (selRect.x + selRect.w / 2) * width - 12), y: (selRect.depth + 1) * ROW - 14, rect: selRect } : null);
  return (
    <div>
      <div className="row" style={{ marginBottom: 6 }}>
        <span className="small muted" style={{ flex: 1 }}>
          {zoom.length ? (
            <>
              Zoomed into <span className="mono">{zoom.join(" › ")}</span>
            </>
          ) : (
            <>Click a frame (or focus the graph and use the arrows and Enter) to zoom · {fmtMicros(root.total)} of self time over {rects.length.toLocaleString()} frames</>
          )}
          {q && <> · “{search}” matches {fmtMicros(matched)} ({pct(matched)})</>}
        </span>
        <label htmlFor="flame-search" className="sr-only">Highlight frames</label>
        <input id="flame-search" type="search" placeholder="highlight…" value={search} onChange={(e) => setSearch(e.target.value)} />
        <button type="button" className="small" disabled={!zoom.length} onClick={() => setZoom([])}>Reset zoom</button>
      </div>
      <div className="flame-wrap" ref={wrap} onMouseLeave={() => setTip(null)}>
        <canvas
          ref={canvas}
          style={{ height }}
          data-testid="flame-graph"
          role="img"
          tabIndex={0}
          aria-label={`Flame graph of ${rects.length} frames; the widest below the root: ${focus.children.slice(0, 5).map((c) => `${c.name} ${pct(c.total)}`).join(", ")}. Arrow keys select frames, Enter zooms in, Escape zooms out.`}
          aria-describedby="flame-selected"
          onKeyDown={(e) => {
            const next = flameKey(e.key, drawn, { sel: selRect ? selRect.path : null, zoom });
            if (!next) return;
            e.preventDefault();
            setTip(null);
            setSel(next.sel);
            setZoom(next.zoom);
          }}
          onMouseMove={(e) => {
            const r = rectAt(e);
            const b = wrap.current!.getBoundingClientRect();
            setTip(r ? { x: e.clientX - b.left, y: e.clientY - b.top, rect: r } : null);
          }}
          onClick={(e) => {
            const r = rectAt(e);
            if (r) {
              setSel(r.path);
              setZoom(r.depth === 0 && zoom.length ? zoom.slice(0, -1) : r.path);
            }
          }}
        />
        {shownTip && (
          <div className="flame-tip" style={{ left: Math.max(0, Math.min(shownTip.x + 12, width - 300)), top: shownTip.y + 14 }}>
            <div className="mono">{shownTip.rect.node.name}</div>
            <div className="muted">
              total {fmtMicros(shownTip.rect.node.total)} ({pct(shownTip.rect.node.total)}) · self {fmtMicros(shownTip.rect.node.self)}
            </div>
          </div>
        )}
        <div id="flame-selected" className="sr-only" aria-live="polite" data-testid="flame-selected">
          {selRect ? `Selected ${describe(selRect)}` : ""}
        </div>
      </div>
    </div>
  );
}
