import { useState, type FormEvent } from "react";
import { useCreateToken, useRevokeToken, useTokens } from "../api/hooks";
import type { ApiToken } from "../api/types";
import { Empty, ErrorMessage, QueryView } from "../components/States";
import { fmtAgo, fmtDate } from "../lib/format";
import { useTitle } from "../lib/useTitle";

export function TokensPage() {
  useTitle("API tokens");
  const tokens = useTokens();
  const create = useCreateToken();
  const revoke = useRevokeToken();
  const [name, setName] = useState("");
  const [scope, setScope] = useState<"read" | "write">("read");
  const [created, setCreated] = useState<ApiToken | null>(null);
  const [copied, setCopied] = useState(false);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate(
      { name, scope },
      {
        onSuccess: (t) => {
          setCreated(t);
          setCopied(false);
          setName("");
        },
      },
    );
  };
  return (
    <>
      <div className="page-head">
        <div className="grow">
          <h1>API tokens</h1>
          <p className="muted">
            Tokens let the SDK, the CLI and CI act as you: <code>Authorization: Bearer &lt;token&gt;</code>. A read token can only read.
          </p>
        </div>
      </div>
      <div className="panel" style={{ marginBottom: 12 }}>
        <h2>New token</h2>
        <form className="row" onSubmit={submit} style={{ alignItems: "flex-end" }}>
          <div className="field">
            <label htmlFor="token-name">Name</label>
            <input id="token-name" type="text" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} placeholder="laptop, ci…" />
          </div>
          <div className="field">
            <label htmlFor="token-scope">Scope</label>
            <select id="token-scope" value={scope} onChange={(e) => setScope(e.target.value as "read" | "write")}>
              <option value="read">read</option>
              <option value="write">write</option>
            </select>
          </div>
          <button type="submit" className="primary" disabled={create.isPending || !name.trim()}>
            Create token
          </button>
        </form>
        <div aria-live="polite">
          {create.error && <ErrorMessage error={create.error} title="Could not create the token" />}
          {created?.token && (
            <div className="success" role="status">
              <p>
                Token <strong>{created.name}</strong> ({created.scope}) created. Copy it now: it will not be shown again.
              </p>
              <div className="row">
                <code className="secret" data-testid="new-token">{created.token}</code>
                <button
                  type="button"
                  className="small"
                  onClick={() => void navigator.clipboard?.writeText(created.token!).then(() => setCopied(true))}
                >
                  {copied ? "Copied" : "Copy"}
                </button>
              </div>
            </div>
          )}
        </div>
      </div>
      <QueryView query={tokens} label="Loading tokens…">
        {(page) =>
          page.results.length === 0 ? (
            <Empty>No tokens yet.</Empty>
          ) : (
            <div className="panel flush table-wrap">
              <table className="data">
                <caption className="sr-only">Your API tokens</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Prefix</th>
                    <th scope="col">Scope</th>
                    <th scope="col">Created</th>
                    <th scope="col">Last used</th>
                    <th scope="col">State</th>
                    <th scope="col"><span className="sr-only">Actions</span></th>
                  </tr>
                </thead>
                <tbody>
                  {page.results.map((t) => (
                    <tr key={t.id}>
                      <td>{t.name}</td>
                      <td className="mono">{t.prefix}…</td>
                      <td>{t.scope}</td>
                      <td>{fmtDate(t.created_at)}</td>
                      <td>{t.last_used_at ? fmtAgo(t.last_used_at) : "never"}</td>
                      <td>{t.revoked_at ? <span className="badge failed">revoked</span> : <span className="badge finished">active</span>}</td>
                      <td>
                        {!t.revoked_at && (
                          <button
                            type="button"
                            className="small danger"
                            disabled={revoke.isPending}
                            onClick={() => {
                              if (confirm(`Revoke token “${t.name}”? Scripts using it stop working.`)) revoke.mutate(t.id);
                            }}
                            aria-label={`Revoke token ${t.name}`}
                          >
                            Revoke
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {revoke.error && <ErrorMessage error={revoke.error} title="Could not revoke the token" />}
            </div>
          )
        }
      </QueryView>
    </>
  );
}
