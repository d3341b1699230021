/** A commit's model card: the README.md rendered by the hub, or a card generated from the
 * model's lineage with "Download README.md" and "Add this card" actions.
 *
 * The HTML comes from the hub already rendered and sanitised (markdown-it-py with raw HTML
 * off, then nh3's allow-list): rendering server-side keeps one sanitizer, tested in one place
 * (tests/integration/test_model_cards.py), for the dashboard and every API client alike, so
 * this component inserts it as it is instead of shipping a second Markdown stack (marked +
 * DOMPurify) to the browser. */
import { Fragment, useMemo } from "react";
import { useAddCard, useModelCard, type ModelCard as Card } from "../api/cards";
import { ErrorMessage, QueryView } from "./States";

function Fields({ card }: { card: Card }) {
  const f = card.fields;
  const rows: [string, string[]][] = [
    ["License", f.license ? [f.license] : []],
    ["Base model", f.base_model ?? []],
    ["Datasets", f.datasets ?? []],
    ["Metrics", f.metrics ?? []],
    ["Language", f.language ?? []],
    ["Task", f.pipeline_tag ? [f.pipeline_tag] : []],
  ];
  return (
    <div className="card-fields" aria-label="Card metadata">
      {(f.tags ?? []).length > 0 && (
        <div className="row small" style={{ gap: 4, flexWrap: "wrap" }}>
          {(f.tags ?? []).map((t) => <span key={t} className="badge">{t}</span>)}
        </div>
      )}
      <dl className="kv small">
        {rows.filter(([, v]) => v.length).map(([k, v]) => (
          <Fragment key={k}><dt>{k}</dt><dd>{v.join(", ")}</dd></Fragment>
        ))}
      </dl>
    </div>
  );
}

export function ModelCard({ ns, name, refName, branch, head }: { ns: string; name: string; refName: string; branch?: string; head?: string }) {
  const card = useModelCard(ns, name, refName);
  const add = useAddCard(ns, name);
  return (
    <section className="panel" aria-labelledby="card-h" data-testid="model-card">
      <QueryView query={card} label="Loading the model card…">
        {(c) => (
          <>
            <div className="row" style={{ alignItems: "baseline", gap: 8 }}>
              <h2 id="card-h" style={{ margin: 0 }} className="grow">
                Model card{" "}
                {c.source === "generated"
                  ? <span className="badge" title="This commit has no README.md: the hub built this card from its lineage">generated card</span>
                  : <span className="badge">{c.path}</span>}
              </h2>
              {c.source === "generated" && c.markdown !== null && (
                <>
                  <DownloadCard markdown={c.markdown} />
                  {branch && head === c.commit && (
                    <button type="button" className="small" disabled={add.isPending}
                      onClick={() => add.mutate({ branch, expected_head: c.commit })}
                      title={`Commit this card as ${c.path} on ${branch}`}>
                      {add.isPending ? "Adding…" : "Add this card"}
                    </button>
                  )}
                </>
              )}
            </div>
            {add.error && <ErrorMessage error={add.error} title="Could not add the card" />}
            {c.metadata_error && (
              <div className="error" role="note" data-testid="card-metadata-error">
                <strong>Invalid metadata</strong>: {c.metadata_error} The card is shown without it.
              </div>
            )}
            {c.warnings.map((w) => <p key={w} className="small muted">Metadata: {w}</p>)}
            <Fields card={c} />
            <div className="markdown" data-testid="card-body" dangerouslySetInnerHTML={{ __html: c.html }} />
            {c.truncated && <p className="small muted">The README is longer than the hub renders; the rest is cut.</p>}
          </>
        )}
      </QueryView>
    </section>
  );
}

function DownloadCard({ markdown }: { markdown: string }) {
  const href = useMemo(() => `data:text/markdown;charset=utf-8,${encodeURIComponent(markdown)}`, [markdown]);
  return <a className="button small" href={href} download="README.md">Download README.md</a>;
}
