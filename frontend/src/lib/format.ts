/** Number, size, date and identifier formatting shared by every page. */

export function fmtNum(v: unknown, digits = 4): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return v.toLocaleString("en-US");
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(Math.max(0, digits - 1)).replace("e+", "e");
  return String(Number(v.toPrecision(digits)));
}

/** A param or cell value of any JSON type, as short text. */
export function fmtValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(fmtValue).join(", ")}]`;
  if (v !== null && typeof v === "object") return JSON.stringify(v);
  return fmtNum(v);
}

export function fmtPct(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  return `${v > 0 ? "+" : ""}${v.toFixed(digits)}%`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${UNITS[i]}`;
}

/** 1234567 → "1.23M" (parameter counts, point counts). */
export function fmtCount(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toLocaleString("en-US");
}

export function shortSha(sha: string | null | undefined, n = 10): string {
  return sha ? sha.slice(0, n) : "—";
}

export function fmtShape(shape: number[] | null | undefined): string {
  if (!shape) return "—";
  return `[${shape.join(" × ")}]`;
}

export function numel(shape: number[] | null | undefined): number {
  if (!shape) return 0;
  return shape.reduce((a, b) => a * b, 1);
}

export function fmtDate(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString("en-GB", { year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

/** "3 min ago"; `now` is injectable for tests. */
export function fmtAgo(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "—";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const s = Math.round((now - t) / 1000);
  if (s < 0) return fmtDate(iso);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 86400 * 30) return `${Math.floor(s / 86400)} d ago`;
  return fmtDate(iso);
}

export function fmtDuration(startIso: string | null | undefined, endIso: string | null | undefined, now = Date.now()): string {
  if (!startIso) return "—";
  const a = new Date(startIso).getTime();
  const b = endIso ? new Date(endIso).getTime() : now;
  let s = Math.max(0, Math.round((b - a) / 1000));
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

/** Axis tick labels: short (260k, 1.2M, 3e-4). */
export function fmtAxis(v: number | null | undefined): string {
  return fmtAxisDigits(v, 3);
}

function fmtAxisDigits(v: number | null | undefined, digits: number): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "";
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(digits)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(digits)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(digits)}k`;
  if (a < 1e-3) return v.toExponential(Math.max(0, digits - 3)).replace("e+", "e");
  return String(+v.toPrecision(digits));
}

/** Tick labels as short as fmtAxis's, with more digits where neighbouring ticks would read
 * the same (a curve between 1.385 and 1.395 gets 1.385, 1.39, 1.395, not 1.39 three times). */
export function axisLabels(vals: number[]): string[] {
  let step = Infinity;
  for (let i = 1; i < vals.length; i++) step = Math.min(step, Math.abs(vals[i] - vals[i - 1]));
  const unit: Record<string, number> = { G: 1e9, M: 1e6, k: 1e3 };
  const read = (l: string) => (l.slice(-1) in unit ? Number(l.slice(0, -1)) * unit[l.slice(-1)] : Number(l));
  // each label within 1% of a tick step of its tick, and no two alike
  const fits = (out: string[]) => new Set(out).size === out.length && out.every((l, i) => !(step < Infinity) || Math.abs(read(l) - vals[i]) <= step / 100);
  let out = vals.map((v) => fmtAxisDigits(v, 3));
  for (let d = 4; d <= 12 && !fits(out); d++) out = vals.map((v) => fmtAxisDigits(v, d));
  return out;
}

/** Log-axis labels: powers of ten only, thinned to at most `max` labels. */
export function logAxisLabels(vals: number[], max = 6): string[] {
  const pow = vals.map((v) => v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9);
  const n = pow.filter(Boolean).length;
  const every = Math.max(1, Math.ceil(n / max));
  let k = 0;
  return vals.map((v, i) => (pow[i] && k++ % every === 0 ? fmtAxis(v) : ""));
}
