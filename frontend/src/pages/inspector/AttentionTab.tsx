/** Inspector → Attention: a prompt's attention weights per layer and head as a heatmap over
 * its byte tokens (shown as characters), with the router's expert choice per token beside it.
 * POST /repos/{ns}/{name}/attention runs in the inference sandbox; the weights come from an
 * explicit softmax(QKᵀ/√d + causal mask) checked against the model's fused SDPA output. */
import { useMemo, useState, type FormEvent } from "react";
import { useMutation } from "@tanstack/react-query";
import { post, repoPath } from "../../api/client";
import type { components } from "../../api/schema";
import { MatrixHeatmap, weightColor } from "../../components/MatrixHeatmap";
import { ErrorMessage } from "../../components/States";
import type { InspectorTarget } from "./Inspector";

type Attention = components["schemas"]["AttentionOutput"];

export default function AttentionTab({ target }: { target: InspectorTarget }) {
  const [prompt, setPrompt] = useState("def main(argv):\n    return run(argv)");
  const [layer, setLayer] = useState(0);
  const [head, setHead] = useState(0);
  const run = useMutation({
    mutationFn: (p: string) => post<Attention>(`${repoPath(target.ns, target.name)}/attention`, { ref: target.sha, prompt: p }),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    run.mutate(prompt);
  };
  const res = run.data;
  return (
    <div className="attention-tab">
      <form onSubmit={submit} className="row" style={{ alignItems: "flex-end", gap: 8, flexWrap: "wrap" }}>
        <label style={{ flex: 1, minWidth: 280 }}>
          Prompt <span className="muted small">(bytes are tokens; at most 256)</span>
          <textarea value={prompt} onChange={(e) => setPrompt(e.target.value)} rows={3} style={{ width: "100%", fontFamily: "monospace" }} aria-label="Prompt" />
        </label>
        <button type="submit" className="primary" disabled={run.isPending || !prompt}>{run.isPending ? "Computing…" : "Show attention"}</button>
      </form>
      {run.error && <ErrorMessage error={run.error} />}
      {res && (
        <AttentionView res={res} layer={Math.min(layer, res.n_layer - 1)} head={Math.min(head, res.n_head - 1)} setLayer={setLayer} setHead={setHead} />
      )}
    </div>
  );
}

function AttentionView({ res, layer, head, setLayer, setHead }: {
  res: Attention; layer: number; head: number; setLayer: (n: number) => void; setHead: (n: number) => void;
}) {
  const L = res.layers[layer];
  const T = res.tokens.length;
  const matrix = useMemo(() => {
    const values = new Float32Array(T * T).fill(NaN);
    L.heads[head].forEach((row, i) => row.forEach((q, j) => (values[i * T + j] = q / res.quant)));
    const labels = res.tokens.map((t, i) => `${i} ${t}`);
    return { rows: labels, cols: res.tokens, values };
  }, [L, head, T, res.quant, res.tokens]);
  // The routing beside the map: this layer's if it is an MoE layer, else the next MoE layer's.
  const routed = res.layers.slice(layer).find((x) => x.routing) ?? res.layers.find((x) => x.routing);
  const cell = Math.max(6, Math.min(18, Math.floor(560 / Math.max(T, 1))));
  return (
    <>
      <div className="row" style={{ gap: 12, margin: "10px 0" }}>
        <label>Layer{" "}
          <select aria-label="Layer" value={layer} onChange={(e) => setLayer(Number(e.target.value))}>
            {res.layers.map((x) => <option key={x.layer} value={x.layer}>{x.layer}{x.routing ? " (MoE)" : ""}</option>)}
          </select>
        </label>
        <label>Head{" "}
          <select aria-label="Head" value={head} onChange={(e) => setHead(Number(e.target.value))}>
            {Array.from({ length: res.n_head }, (_, h) => <option key={h} value={h}>{h}</option>)}
          </select>
        </label>
        <span className="muted small" data-testid="attention-check">
          {T} tokens · explicit vs SDPA output: max |Δ| = {L.max_abs_diff.toExponential(1)}
        </span>
      </div>
      <div className="row" style={{ alignItems: "flex-start", gap: 16, overflowX: "auto" }}>
        <MatrixHeatmap
          testId="attention-heatmap"
          m={matrix}
          cell={cell}
          label={`Attention of layer ${layer}, head ${head}`}
          color={weightColor}
          describe={(r, c, v) => (Number.isNaN(v) ? `token ${r} cannot attend to later token ${c}` : `${res.tokens[r]} (${r}) → ${res.tokens[c]} (${c}): ${(v * 100).toFixed(1)}%`)}
        />
        {routed?.routing && (
          <div role="list" className="small routing-per-token" aria-label={`Experts per token, layer ${routed.layer}`} data-testid="attention-routing">
            {res.tokens.map((t, i) => (
              <div role="listitem" key={i} data-row={i} className="mono" style={{ height: cell, lineHeight: `${cell}px`, fontSize: Math.min(12, cell), whiteSpace: "nowrap" }}>
                <span className="muted" style={{ display: "inline-block", width: 28 }}>{t}</span>
                {routed.routing!.experts[i].map((e, k) => (
                  <span key={k} title={`gate ${routed.routing!.gates[i][k]}`} style={{ marginRight: 6, fontWeight: k === 0 ? 700 : 400 }}>{e}</span>
                ))}
              </div>
            ))}
            <div className="muted small" style={{ marginTop: 4 }}>experts (layer {routed.layer}), top-1 bold</div>
          </div>
        )}
      </div>
    </>
  );
}
