/** Chart settings shared by a page's charts, kept in the URL: ?smooth=0.6&x=time&log=1 */
import { useSearchParams } from "react-router";
import type { XAxis } from "../api/types";
import { useMirror } from "../lib/useMirror";

export interface ChartSettings {
  smoothing: number;
  x: XAxis;
  log: boolean;
  filter: string;
}

export function useChartSettings(): [ChartSettings, (p: Partial<ChartSettings>) => void] {
  const [params, setParams] = useSearchParams();
  const sm = Number(params.get("smooth"));
  const [settings, setLocal] = useMirror<ChartSettings>({
    smoothing: Number.isFinite(sm) && sm >= 0 && sm < 1 ? sm : 0,
    x: params.get("x") === "time" ? "time" : "step",
    log: params.get("log") === "1",
    filter: params.get("filter") ?? "",
  });
  const set = (p: Partial<ChartSettings>) => {
    const next = new URLSearchParams(params);
    const s = { ...settings, ...p };
    setLocal(s);
    if (s.smoothing) next.set("smooth", String(s.smoothing));
    else next.delete("smooth");
    if (s.x === "time") next.set("x", "time");
    else next.delete("x");
    if (s.log) next.set("log", "1");
    else next.delete("log");
    if (s.filter) next.set("filter", s.filter);
    else next.delete("filter");
    setParams(next, { replace: true });
  };
  return [settings, set];
}

export function ChartControls({ settings, set, children, showFilter = true }: {
  settings: ChartSettings;
  set: (p: Partial<ChartSettings>) => void;
  children?: React.ReactNode;
  showFilter?: boolean;
}) {
  return (
    <div className="toolbar" role="group" aria-label="Chart settings">
      {showFilter && (
        <div className="row">
          <label htmlFor="chart-filter">Filter</label>
          <input id="chart-filter" type="search" placeholder="metric key…" value={settings.filter} onChange={(e) => set({ filter: e.target.value })} style={{ width: 180 }} />
        </div>
      )}
      <div className="row">
        <label htmlFor="smoothing">Smoothing</label>
        <input
          id="smoothing"
          type="range"
          min={0}
          max={0.99}
          step={0.01}
          value={settings.smoothing}
          onChange={(e) => set({ smoothing: Number(e.target.value) })}
          aria-valuetext={settings.smoothing ? `EMA ${settings.smoothing.toFixed(2)}` : "off"}
        />
        <span className="mono small" style={{ width: 32 }}>{settings.smoothing ? settings.smoothing.toFixed(2) : "off"}</span>
      </div>
      <div className="row">
        <span id="x-axis-label" className="muted">X axis</span>
        <div className="segmented" role="group" aria-labelledby="x-axis-label">
          <button type="button" aria-pressed={settings.x === "step"} onClick={() => set({ x: "step" })}>Step</button>
          <button type="button" aria-pressed={settings.x === "time"} onClick={() => set({ x: "time" })}>Time</button>
        </div>
      </div>
      <label className="inline">
        <input type="checkbox" checked={settings.log} onChange={(e) => set({ log: e.target.checked })} />
        Log scale
      </label>
      {children}
    </div>
  );
}

/** Buckets per chart ≈ its width in pixels (two charts per row). */
export function chartBuckets(): number {
  const w = typeof window === "undefined" ? 1280 : window.innerWidth;
  return Math.max(200, Math.min(1500, Math.round((Math.min(w, 1680) - 80) / 2)));
}
