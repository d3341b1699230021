/** The tensor-level diff table: one row per tensor (or per non-tensor file), filterable by
 * name (substring, or a glob with * and ?) and by status, sortable on any column. */
import type { DiffResult, DiffStatus, TensorSide } from "../api/types";

export interface DiffRow {
  id: string;
  file: string;
  name: string;
  status: DiffStatus;
  tensor: boolean;
  a: TensorSide | null;
  b: TensorSide | null;
  shapeChanged: boolean;
  dtypeChanged: boolean;
  l2: number | null;
  rel: number | null;
  cosine: number | null;
  maxAbs: number | null;
  sizeA: number | null;
  sizeB: number | null;
}

export function diffRows(d: DiffResult): DiffRow[] {
  const rows: DiffRow[] = [];
  for (const f of d.files) {
    if (f.tensors && f.tensors.length) {
      for (const t of f.tensors) {
        rows.push({
          id: `${f.path}::${t.name}`,
          file: f.path,
          name: t.name,
          status: t.status,
          tensor: true,
          a: t.a ?? null,
          b: t.b ?? null,
          shapeChanged: !!t.shape_changed,
          dtypeChanged: !!t.dtype_changed,
          l2: t.l2_delta ?? null,
          rel: t.rel_change ?? null,
          cosine: t.cosine ?? null,
          maxAbs: t.max_abs_delta ?? null,
          sizeA: t.a?.bytes ?? null,
          sizeB: t.b?.bytes ?? null,
        });
      }
    } else {
      rows.push({
        id: f.path,
        file: f.path,
        name: f.path,
        status: f.status,
        tensor: false,
        a: null,
        b: null,
        shapeChanged: false,
        dtypeChanged: false,
        l2: null,
        rel: null,
        cosine: null,
        maxAbs: null,
        sizeA: f.size_a ?? null,
        sizeB: f.size_b ?? null,
      });
    }
  }
  return rows;
}

/** "experts.3" matches as a substring; "layers.1.*.experts.*" as a glob (whole name). */
export function nameMatcher(filter: string): (name: string) => boolean {
  const f = filter.trim();
  if (!f) return () => true;
  if (/[*?]/.test(f)) {
    const re = new RegExp(
      "^" + f.split("").map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\]/g, "\\$&"))).join("") + "$",
      "i",
    );
    return (n) => re.test(n);
  }
  const low = f.toLowerCase();
  return (n) => n.toLowerCase().includes(low);
}

export type DiffSortKey = "name" | "status" | "l2" | "rel" | "cosine" | "maxAbs" | "size";

function sortValue(r: DiffRow, k: DiffSortKey): string | number | null {
  switch (k) {
    case "name":
      return r.name;
    case "status":
      return r.status;
    case "size":
      return r.sizeB ?? r.sizeA;
    default:
      return r[k];
  }
}

/** Sort with missing values last in both directions. */
export function sortRows(rows: DiffRow[], key: DiffSortKey, desc: boolean): DiffRow[] {
  return [...rows].sort((x, y) => {
    const a = sortValue(x, key);
    const b = sortValue(y, key);
    if (a === null && b === null) return x.name.localeCompare(y.name);
    if (a === null) return 1;
    if (b === null) return -1;
    const c = typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
    return (desc ? -c : c) || x.name.localeCompare(y.name);
  });
}

export function filterRows(rows: DiffRow[], filter: string, statuses: Set<DiffStatus>): DiffRow[] {
  const match = nameMatcher(filter);
  return rows.filter((r) => statuses.has(r.status) && (match(r.name) || match(r.file)));
}

export function countByStatus(rows: DiffRow[]): Record<DiffStatus, number> {
  const out: Record<DiffStatus, number> = { added: 0, removed: 0, changed: 0 };
  for (const r of rows) out[r.status]++;
  return out;
}
