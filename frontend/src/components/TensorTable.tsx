/** The tensors of a safetensors file: name, dtype, shape, parameter count, bytes. */
import { useMemo, useState } from "react";
import type { TensorInfo } from "../api/types";
import { fmtBytes, fmtCount, fmtShape, numel } from "../lib/format";
import { nameMatcher } from "../lib/diff";
import { SortHeader } from "./SortHeader";

type Key = "name" | "dtype" | "numel" | "bytes";
const LIMIT = 1000;

export function TensorTable({ tensors, label }: { tensors: Record<string, TensorInfo>; label: string }) {
  const [filter, setFilter] = useState("");
  const [sort, setSort] = useState<{ key: Key; desc: boolean }>({ key: "name", desc: false });
  const [all, setAll] = useState(false);
  const rows = useMemo(
    () => Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, numel: numel(t.shape), bytes: t.end - t.begin })),
    [tensors],
  );
  const match = nameMatcher(filter);
  const shown = rows
    .filter((r) => match(r.name))
    .sort((a, b) => {
      const x = a[sort.key];
      const y = b[sort.key];
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true });
      return sort.desc ? -c : c;
    });
  const total = rows.reduce((a, r) => ({ numel: a.numel + r.numel, bytes: a.bytes + r.bytes }), { numel: 0, bytes: 0 });
  const dir = (k: Key) => (sort.key === k ? (sort.desc ? "descending" : "ascending") : "none") as "ascending" | "descending" | "none";
  const by = (k: Key) => () => setSort((s) => ({ key: k, desc: s.key === k ? !s.desc : k !== "name" && k !== "dtype" }));
  return (
    <div>
      <div className="row" style={{ padding: "6px 10px" }}>
        <label htmlFor={`tf-${label}`}>Filter tensors</label>
        <input id={`tf-${label}`} type="search" value={filter} onChange={(e) => setFilter(e.target.value)} placeholder="layers.1.*.experts.*" />
        <span className="muted small">
          {shown.length.toLocaleString()} of {rows.length.toLocaleString()} tensors · {fmtCount(total.numel)} params · {fmtBytes(total.bytes)}
        </span>
      </div>
      <div className="table-wrap" style={{ maxHeight: 520 }}>
        <table className="data" aria-label={`Tensors of ${label}`}>
          <thead>
            <tr>
              <SortHeader label="Tensor" direction={dir("name")} onSort={by("name")} />
              <SortHeader label="Dtype" direction={dir("dtype")} onSort={by("dtype")} />
              <th scope="col">Shape</th>
              <SortHeader label="Params" direction={dir("numel")} onSort={by("numel")} className="num" />
              <SortHeader label="Size" direction={dir("bytes")} onSort={by("bytes")} className="num" />
            </tr>
          </thead>
          <tbody>
            {(all ? shown : shown.slice(0, LIMIT)).map((r) => (
              <tr key={r.name}>
                <td className="mono">{r.name}</td>
                <td className="mono">{r.dtype}</td>
                <td className="mono">{fmtShape(r.shape)}</td>
                <td className="num">{fmtCount(r.numel)}</td>
                <td className="num">{fmtBytes(r.bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {!all && shown.length > LIMIT && (
        <button type="button" className="small" style={{ margin: 8 }} onClick={() => setAll(true)}>Show all {shown.length.toLocaleString()} tensors</button>
      )}
    </div>
  );
}
