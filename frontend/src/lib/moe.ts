/** The MoE view's data model. The training workload logs, per MoE layer L and expert E:
 *
 *   moe/layer{L}/load/expert{E}   fraction of the layer's routed tokens sent to expert E
 *   moe/layer{L}/bias/expert{E}   the expert's routing bias (auxiliary-loss-free balancing)
 *   moe/layer{L}/entropy          routing entropy
 *   moe/layer{L}/dropped_frac     fraction of token→expert assignments dropped by capacity
 *                                 (older runs: moe/layer{L}/dropped)
 *   moe/layer{L}/aux_loss         load-balancing auxiliary loss
 *
 * Layers and experts are discovered from the run's metric keys. */

export interface MoeLayer {
  layer: number;
  loadExperts: number[];
  biasExperts: number[];
  entropy: boolean;
  dropped: boolean;
  /** the key the layer's dropped fraction is logged under: the trainer's `dropped_frac`, or `dropped` */
  droppedLeaf: "dropped_frac" | "dropped";
  auxLoss: boolean;
}

const EXPERT_KEY = /^moe\/layer(\d+)\/(load|bias)\/expert(\d+)$/;
const LAYER_KEY = /^moe\/layer(\d+)\/(entropy|dropped_frac|dropped|aux_loss)$/;

export const loadKey = (layer: number, expert: number) => `moe/layer${layer}/load/expert${expert}`;
export const biasKey = (layer: number, expert: number) => `moe/layer${layer}/bias/expert${expert}`;
export const layerKey = (layer: number, what: "entropy" | "dropped_frac" | "dropped" | "aux_loss") => `moe/layer${layer}/${what}`;
/** The key of a layer's dropped-token fraction, as that run logged it. */
export const droppedKey = (l: MoeLayer) => layerKey(l.layer, l.droppedLeaf);

export function isMoeKey(key: string): boolean {
  return EXPERT_KEY.test(key) || LAYER_KEY.test(key);
}

export function discoverMoe(keys: Iterable<string>): MoeLayer[] {
  const layers = new Map<number, MoeLayer>();
  const get = (l: number) => {
    let x = layers.get(l);
    if (!x) {
      x = { layer: l, loadExperts: [], biasExperts: [], entropy: false, dropped: false, droppedLeaf: "dropped_frac", auxLoss: false };
      layers.set(l, x);
    }
    return x;
  };
  for (const key of keys) {
    let m = EXPERT_KEY.exec(key);
    if (m) {
      const layer = get(Number(m[1]));
      (m[2] === "load" ? layer.loadExperts : layer.biasExperts).push(Number(m[3]));
      continue;
    }
    m = LAYER_KEY.exec(key);
    if (m) {
      const layer = get(Number(m[1]));
      if (m[2] === "entropy") layer.entropy = true;
      else if (m[2] === "dropped_frac" || m[2] === "dropped") {
        // dropped_frac is the trainer's name; a run with both keeps it
        if (!layer.dropped || m[2] === "dropped_frac") layer.droppedLeaf = m[2];
        layer.dropped = true;
      }
      else layer.auxLoss = true;
    }
  }
  const out = [...layers.values()].sort((a, b) => a.layer - b.layer);
  for (const l of out) {
    l.loadExperts.sort((a, b) => a - b);
    l.biasExperts.sort((a, b) => a - b);
  }
  return out;
}

export interface LoadMatrix {
  experts: number[];
  /** column c covers steps [x0 + c·dx, x0 + (c+1)·dx) */
  x0: number;
  dx: number;
  cols: number;
  /** experts.length × cols, row-major; NaN where an expert logged nothing in a column */
  values: Float32Array;
}

/** Bin each expert's series (x, value) into `cols` equal columns over the common x range,
 * averaging the points that fall in a column. Robust to experts logged at different steps
 * and to server-side downsampling with per-series buckets. */
export function loadMatrix(series: { expert: number; x: ArrayLike<number>; value: ArrayLike<number> }[], cols: number): LoadMatrix {
  let lo = Infinity;
  let hi = -Infinity;
  let longest = 0;
  for (const s of series) {
    longest = Math.max(longest, s.x.length);
    for (let i = 0; i < s.x.length; i++) {
      const x = s.x[i];
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  }
  const experts = series.map((s) => s.expert);
  if (!Number.isFinite(lo)) return { experts, x0: 0, dx: 1, cols: 0, values: new Float32Array(0) };
  const n = Math.max(1, Math.min(cols, longest, Math.floor(hi - lo) + 1));
  const dx = (hi - lo) / n || 1;
  const sum = new Float64Array(series.length * n);
  const cnt = new Uint32Array(series.length * n);
  series.forEach((s, r) => {
    for (let i = 0; i < s.x.length; i++) {
      const v = s.value[i];
      if (!Number.isFinite(v)) continue;
      const c = Math.min(n - 1, Math.floor((s.x[i] - lo) / dx));
      sum[r * n + c] += v;
      cnt[r * n + c]++;
    }
  });
  const values = new Float32Array(series.length * n);
  for (let i = 0; i < values.length; i++) values[i] = cnt[i] ? sum[i] / cnt[i] : NaN;
  return { experts, x0: lo, dx, cols: n, values };
}

/** Per column: the most loaded expert's load over the mean load (1 = perfectly balanced). */
export function imbalance(m: LoadMatrix): (number | null)[] {
  const rows = m.experts.length;
  const out: (number | null)[] = [];
  for (let c = 0; c < m.cols; c++) {
    let mx = -Infinity;
    let s = 0;
    let k = 0;
    for (let r = 0; r < rows; r++) {
      const v = m.values[r * m.cols + c];
      if (Number.isNaN(v)) continue;
      mx = Math.max(mx, v);
      s += v;
      k++;
    }
    out.push(k && s > 0 ? mx / (s / k) : null);
  }
  return out;
}

/** Diverging colour for a load relative to uniform (load × n_experts; 1 = balanced):
 * blue below, neutral at 1, red above, saturating at 1/4× and 4×. */
export function loadColor(relative: number): [number, number, number] {
  if (!Number.isFinite(relative)) return [128, 128, 128];
  const t = Math.max(-1, Math.min(1, Math.log2(Math.max(relative, 1e-6)) / 2));
  const mid: [number, number, number] = [240, 240, 236];
  const cold: [number, number, number] = [33, 102, 172];
  const hot: [number, number, number] = [178, 24, 43];
  const end = t < 0 ? cold : hot;
  const a = Math.abs(t);
  return [0, 1, 2].map((i) => Math.round(mid[i] + (end[i] - mid[i]) * a)) as [number, number, number];
}
