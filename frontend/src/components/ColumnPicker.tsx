import { useEffect, useId, useRef, useState } from "react";
import type { AvailableColumns } from "../lib/columns";

/** "Columns" popover: choose which params and summary metrics the runs table shows. */
export function ColumnPicker({ available, chosen, onChange, onReset }: {
  available: AvailableColumns;
  chosen: string[];
  onChange: (cols: string[]) => void;
  onReset: () => void;
}) {
  const [open, setOpen] = useState(false);
  const [filter, setFilter] = useState("");
  const box = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const id = useId();
  useEffect(() => {
    if (!open) return;
    const onDoc = (e: MouseEvent) => {
      if (box.current && !box.current.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", onDoc);
    return () => document.removeEventListener("mousedown", onDoc);
  }, [open]);
  const toggle = (col: string) => onChange(chosen.includes(col) ? chosen.filter((c) => c !== col) : [...chosen, col]);
  const f = filter.toLowerCase();
  const group = (title: string, prefix: string, keys: string[]) => {
    const shown = keys.filter((k) => k.toLowerCase().includes(f));
    return (
      <fieldset>
        <legend>{title} <span className="muted small">({keys.length})</span></legend>
        {shown.length === 0 && <div className="muted small">none</div>}
        {shown.slice(0, 300).map((k) => (
          <label key={k}>
            <input type="checkbox" checked={chosen.includes(prefix + k)} onChange={() => toggle(prefix + k)} />
            <span className="mono">{k}</span>
          </label>
        ))}
      </fieldset>
    );
  };
  return (
    <div className="colpicker" ref={box} onKeyDown={(e) => { if (e.key === "Escape" && open) { setOpen(false); button.current?.focus(); } }}>
      <button ref={button} type="button" aria-expanded={open} aria-controls={id} onClick={() => setOpen(!open)}>
        Columns ({chosen.length})
      </button>
      {open && (
        <div className="colpicker-menu" id={id} role="group" aria-label="Choose columns">
          <div className="row" style={{ marginBottom: 8 }}>
            <label htmlFor={`${id}-filter`} className="sr-only">Filter columns</label>
            <input id={`${id}-filter`} type="search" placeholder="filter keys…" value={filter} onChange={(e) => setFilter(e.target.value)} autoFocus style={{ flex: 1 }} />
            <button type="button" className="small" onClick={onReset}>Automatic</button>
          </div>
          {group("Params", "params.", available.params)}
          {group("Summary metrics (last value)", "summary.", available.metrics)}
        </div>
      )}
    </div>
  );
}
