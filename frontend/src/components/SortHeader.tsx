import type { ReactNode } from "react";

/** A column header that sorts: a real <button> inside the <th>, with aria-sort on the th. */
export function SortHeader({ label, direction, onSort, className, title, sortable = true, sub }: {
  label: ReactNode;
  direction: "ascending" | "descending" | "none";
  onSort: () => void;
  className?: string;
  title?: string;
  sortable?: boolean;
  sub?: string;
}) {
  return (
    <th scope="col" aria-sort={sortable ? direction : undefined} className={className} title={title}>
      {sub && <span className="col-kind">{sub}</span>}
      {sortable ? (
        <button type="button" className="sort" onClick={onSort}>
          {label}
          <span className="arrow" aria-hidden="true">{direction === "ascending" ? "▲" : direction === "descending" ? "▼" : ""}</span>
        </button>
      ) : (
        label
      )}
    </th>
  );
}
