import type { ReactNode } from "react";
import { Link } from "react-router";
import { ApiError } from "../api/client";

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="state" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>;
}

/** An error as a message: what happened, the hub's code, and what to do about it. */
export function ErrorMessage({ error, title, retry }: { error: unknown; title?: string; retry?: () => void }) {
  const e = error as Partial<ApiError> & Error;
  const status = e instanceof ApiError ? e.status : undefined;
  return (
    <div className="error" role="alert">
      <strong>{title ?? (status === 404 ? "Not found" : status === 403 ? "Not allowed" : "Something went wrong")}</strong>
      <div>{e?.message ?? String(error)}</div>
      {e instanceof ApiError && (
        <div className="code">
          {e.code}
          {e.status ? ` · HTTP ${e.status}` : ""}
        </div>
      )}
      {status === 401 && (
        <div>
          <Link to={`/login?next=${encodeURIComponent(location.pathname + location.search)}`}>Sign in</Link> to continue.
        </div>
      )}
      {retry && (
        <button type="button" className="small" onClick={retry} style={{ marginTop: 6 }}>
          Retry
        </button>
      )}
    </div>
  );
}

interface QueryLike<T> {
  data: T | undefined;
  error: unknown;
  isPending: boolean;
  refetch: () => unknown;
}

/** Loading / error / data for one query. */
export function QueryView<T>({ query, children, label }: { query: QueryLike<T>; children: (data: T) => ReactNode; label?: string }) {
  if (query.error && query.data === undefined) return <ErrorMessage error={query.error} retry={() => void query.refetch()} />;
  if (query.isPending || query.data === undefined) return <Loading label={label} />;
  return <>{children(query.data)}</>;
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge ${status}`}>{status}</span>;
}
