/** Merge a ref into a branch: strategy choice, the conflict list with both sides' stats
 * when the hub refuses (409 merge_conflict), and the result. */
import { useEffect, useState, type FormEvent } from "react";
import { Link } from "react-router";
import { ApiError } from "../api/client";
import { useMerge } from "../api/hooks";
import type { ConflictSide, MergeConflict, MergeStrategy, Ref } from "../api/types";
import { fmtBytes, fmtNum, fmtShape, shortSha } from "../lib/format";
import { Dialog } from "./Dialog";
import { ErrorMessage } from "./States";

function Side({ s }: { s: ConflictSide | null }) {
  if (!s) return <span className="muted">—</span>;
  return (
    <span className="small">
      <span className={`badge ${s.status === "deleted" ? "removed" : s.status}`}>{s.status}</span>{" "}
      {s.shape && <span className="mono">{s.dtype} {fmtShape(s.shape)}</span>}
      {s.size !== undefined && <span> {fmtBytes(s.size)}</span>}
      {s.l2_delta !== undefined && s.l2_delta !== null && (
        <span className="muted" style={{ display: "block" }}>‖Δ‖₂ {fmtNum(s.l2_delta, 3)} · rel {fmtNum(s.rel_change, 3)} · cos {fmtNum(s.cosine, 4)}</span>
      )}
    </span>
  );
}

export function ConflictTable({ conflicts, source, target }: { conflicts: MergeConflict[]; source: string; target: string }) {
  return (
    <div className="table-wrap" style={{ maxHeight: 300, color: "var(--text)", marginTop: 8 }}>
      <table className="data" data-testid="merge-conflicts">
        <caption className="sr-only">Merge conflicts</caption>
        <thead>
          <tr>
            <th scope="col">File</th>
            <th scope="col">Tensor</th>
            <th scope="col">Ours ({target}) vs base</th>
            <th scope="col">Theirs ({source}) vs base</th>
          </tr>
        </thead>
        <tbody>
          {conflicts.map((c, i) => (
            <tr key={i}>
              <td className="mono">{c.path}</td>
              <td className="mono">{c.tensor ?? <span className="muted">whole file</span>}</td>
              <td className="wrap"><Side s={c.ours} /></td>
              <td className="wrap"><Side s={c.theirs} /></td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function MergeDialog({ ns, name, refs, open, onClose, initialSource, initialTarget }: {
  ns: string;
  name: string;
  refs: Ref[];
  open: boolean;
  onClose: () => void;
  initialSource: string;
  initialTarget: string;
}) {
  const branches = refs.filter((r) => r.kind === "branch");
  const [source, setSource] = useState(initialSource);
  const [target, setTarget] = useState(initialTarget);
  const [strategy, setStrategy] = useState<MergeStrategy | "">("");
  const [weight, setWeight] = useState(0.5);
  const [message, setMessage] = useState("");
  const [noFf, setNoFf] = useState(false);
  const merge = useMerge(ns, name);
  useEffect(() => {
    if (open) {
      setSource(initialSource);
      setTarget(initialTarget);
      merge.reset();
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [open, initialSource, initialTarget]);

  const err = merge.error;
  const conflict = err instanceof ApiError && err.code === "merge_conflict" ? (err.details as { conflicts: MergeConflict[]; base?: string }) : null;
  const result = merge.data;
  const base = `/models/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    merge.mutate({ source, target, strategy: strategy || null, weight, message: message.trim() || null, no_ff: noFf });
  };
  const targetRef = branches.find((b) => b.name === target);

  return (
    <Dialog
      open={open}
      onClose={onClose}
      title="Merge"
      labelId="merge-title"
      footer={
        result ? (
          <button type="button" className="primary" onClick={onClose}>Done</button>
        ) : (
          <>
            <button type="button" onClick={onClose}>Cancel</button>
            <button type="submit" form="merge-form" className="primary" disabled={merge.isPending || !source || !target || source === target}>
              {merge.isPending ? "Merging…" : conflict && strategy ? `Merge with “${strategy}”` : "Merge"}
            </button>
          </>
        )
      }
    >
      {result ? (
        <div className="success" role="status" data-testid="merge-result">
          {result.result === "up_to_date" && <p><strong>Already up to date:</strong> {target} already contains {source}.</p>}
          {result.result === "fast_forward" && <p><strong>Fast-forward:</strong> {target} moved to {source}'s head.</p>}
          {result.result === "merge" && <p><strong>Merged</strong> {source} into {target} with a new merge commit.</p>}
          <p>
            {target} is now at{" "}
            <Link to={`${base}/commit/${result.commit.sha}`} className="mono" onClick={onClose}>{shortSha(result.commit.sha)}</Link>
            {result.base && <span className="muted"> · merge base {shortSha(result.base)}</span>}
          </p>
          {result.resolved.length > 0 && (
            <details>
              <summary>{result.resolved.length} conflict(s) resolved by strategy</summary>
              <ul className="small mono">
                {result.resolved.map((r, i) => (
                  <li key={i}>{r.path}{r.tensor ? `:${r.tensor}` : ""} → {r.strategy}{r.weight !== undefined && r.strategy === "average" ? ` (w=${r.weight})` : ""}</li>
                ))}
              </ul>
            </details>
          )}
        </div>
      ) : (
        <form id="merge-form" onSubmit={submit} className="stack">
          <div className="row" style={{ alignItems: "flex-end" }}>
            <div className="field">
              <label htmlFor="merge-source">Merge (source)</label>
              <select id="merge-source" value={source} onChange={(e) => { setSource(e.target.value); merge.reset(); }}>
                {refs.map((r) => <option key={`${r.kind}:${r.name}`} value={r.name}>{r.name} ({r.kind})</option>)}
              </select>
            </div>
            <span style={{ paddingBottom: 6 }}>into</span>
            <div className="field">
              <label htmlFor="merge-target">Target branch</label>
              <select id="merge-target" value={target} onChange={(e) => { setTarget(e.target.value); merge.reset(); }}>
                {branches.map((r) => <option key={r.name} value={r.name}>{r.name}{r.protected ? " (protected)" : ""}</option>)}
              </select>
            </div>
          </div>
          {source === target && <p className="muted small">Choose two different refs.</p>}
          {targetRef?.protected && <p className="notice small">{target} is protected: only namespace admins can merge into it.</p>}
          <fieldset className="radios">
            <legend>When both sides changed the same tensor</legend>
            <label><input type="radio" name="strategy" value="" checked={strategy === ""} onChange={() => setStrategy("")} /> <span><strong>Stop and show the conflicts</strong> <span className="muted">— nothing is written</span></span></label>
            <label><input type="radio" name="strategy" value="ours" checked={strategy === "ours"} onChange={() => setStrategy("ours")} /> <span><strong>Ours</strong> <span className="muted">— keep {target}'s tensor</span></span></label>
            <label><input type="radio" name="strategy" value="theirs" checked={strategy === "theirs"} onChange={() => setStrategy("theirs")} /> <span><strong>Theirs</strong> <span className="muted">— take {source}'s tensor</span></span></label>
            <label><input type="radio" name="strategy" value="average" checked={strategy === "average"} onChange={() => setStrategy("average")} /> <span><strong>Weighted average</strong> <span className="muted">— (1 − w)·{target} + w·{source}, float tensors of equal shape</span></span></label>
            {strategy === "average" && (
              <div className="row" style={{ paddingLeft: 24 }}>
                <label htmlFor="merge-weight">Weight of {source} (w)</label>
                <input id="merge-weight" type="range" min={0} max={1} step={0.05} value={weight} onChange={(e) => setWeight(Number(e.target.value))} />
                <span className="mono">{weight.toFixed(2)}</span>
              </div>
            )}
          </fieldset>
          <div className="field">
            <label htmlFor="merge-message">Commit message (optional)</label>
            <input id="merge-message" type="text" value={message} onChange={(e) => setMessage(e.target.value)} placeholder={`Merge ${source} into ${target}`} />
          </div>
          <label className="inline"><input type="checkbox" checked={noFf} onChange={(e) => setNoFf(e.target.checked)} /> Always create a merge commit (no fast-forward)</label>
          <div aria-live="polite">
            {conflict ? (
              <div className="error" role="alert" data-testid="merge-conflict">
                <strong>{conflict.conflicts.length} conflict{conflict.conflicts.length === 1 ? "" : "s"}</strong>: both branches changed {conflict.conflicts.length === 1 ? "this tensor" : "these tensors"} since the merge base
                {conflict.base ? <> <span className="mono">{shortSha(conflict.base)}</span></> : null}. Nothing was written. Pick a strategy above and merge again.
                <ConflictTable conflicts={conflict.conflicts} source={source} target={target} />
              </div>
            ) : err ? (
              <ErrorMessage error={err} title="Merge failed" />
            ) : null}
          </div>
        </form>
      )}
    </Dialog>
  );
}
