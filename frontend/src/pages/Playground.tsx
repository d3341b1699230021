import { useMemo, useRef, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { API, ApiError, errorFrom, getCookie, get, repoPath } from "../api/client";
import { ErrorMessage } from "../components/States";
import { shortSha } from "../lib/format";
import { useTitle } from "../lib/useTitle";

/** The inference playground: prompt a commit of a model repo in the hub's inference sandbox
 * and watch the tokens stream (POST /repos/{ns}/{name}/generate, Server-Sent Events), with the
 * MoE view: for every generated token, the experts each MoE layer chose and their weights,
 * coloured by expert; hovering a token shows its routing. */

export interface Routing {
  layer: number;
  experts: number[];
  weights: number[];
}
export interface TokenEvent {
  index: number;
  id: number;
  text: string;
  routing: Routing[];
}
export interface StartEvent {
  id: string;
  repo: string;
  commit: string;
  cold: boolean;
  load_s: number;
  fetch_s: number;
  queue_s: number;
  worker?: string;
}
export interface DoneEvent {
  finish_reason: string;
  text: string;
  prompt_tokens: number;
  tokens: number;
  time_to_first_token_s: number | null;
  tokens_per_s: number | null;
  elapsed_s: number;
  kv_cache: boolean;
  watermark: { key_id: string; strength: number } | null;
}
export type GenEvent =
  | { type: "start"; data: StartEvent }
  | { type: "token"; data: TokenEvent }
  | { type: "text"; data: { text: string } }
  | { type: "done"; data: DoneEvent }
  | { type: "error"; data: { code: string; message: string } };

export interface GenParams {
  ref: string;
  prompt: string;
  max_new_tokens: number;
  temperature: number;
  top_k: number;
  top_p: number;
  seed: number | null;
  stop: string[];
  watermark: boolean | null;
}

/** Split an SSE byte stream's text into events; returns the events and the unfinished rest. */
export function parseSse(buffer: string): { events: GenEvent[]; rest: string } {
  const events: GenEvent[] = [];
  const blocks = buffer.split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let kind = "";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) kind = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (kind && data) events.push({ type: kind, data: JSON.parse(data) } as GenEvent);
  }
  return { events, rest };
}

/** POST the request and call onEvent for each streamed event. A refusal before the stream
 * (404, 429, 503) throws the hub's ApiError. */
export async function streamGenerate(
  ns: string,
  name: string,
  params: GenParams,
  onEvent: (e: GenEvent) => void,
  signal?: AbortSignal,
): Promise<void> {
  const csrf = getCookie("csrftoken") ?? (await get<{ csrf_token: string }>("/auth/csrf")).csrf_token;
  const resp = await fetch(`${API}${repoPath(ns, name)}/generate`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": csrf },
    credentials: "same-origin",
    body: JSON.stringify({ ...params, stream: true }),
    signal,
  });
  if (!resp.ok) throw await errorFrom(resp);
  if (!resp.body) throw new ApiError(0, "no_stream", "The browser did not expose the response stream.");
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    const { events, rest } = parseSse(buf);
    buf = rest;
    events.forEach(onEvent);
  }
  const { events } = parseSse(buf + "\n\n");
  events.forEach(onEvent);
}

/** A colour per expert id, far apart for neighbouring ids (golden-angle hues). */
export function expertColor(expert: number): string {
  return `hsl(${Math.round((expert * 137.508) % 360)}, 62%, 52%)`;
}

/** Shown characters of a token: whitespace made visible so every token has a box. */
function shown(text: string): string {
  if (text === "") return "·";
  return text.replace(/\n/g, "↵\n").replace(/\t/g, "→");
}

function RoutingDetail({ token }: { token: TokenEvent }) {
  return (
    <div className="small" aria-label="Token routing" role="region">
      <div>
        token #{token.index} · id {token.id} · <span className="mono">{JSON.stringify(token.text)}</span>
      </div>
      <table className="small" style={{ marginTop: 4 }}>
        <tbody>
          {token.routing.map((r) => (
            <tr key={r.layer}>
              <td className="muted">layer {r.layer}</td>
              {r.experts.map((e, i) => (
                <td key={e} data-testid={`route-${r.layer}-${e}`}>
                  <span style={{ display: "inline-block", width: 10, height: 10, background: expertColor(e), marginRight: 4, borderRadius: 2 }} />
                  expert {e} <span className="muted">{(r.weights[i] ?? 0).toFixed(3)}</span>
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Per MoE layer, each token's chosen experts as stacked bars (height = gate weight). */
function RoutingGrid({ tokens, onHover }: { tokens: TokenEvent[]; onHover: (i: number) => void }) {
  const layers = tokens.length ? tokens[0].routing.map((r) => r.layer) : [];
  if (!layers.length) return null;
  return (
    <div style={{ overflowX: "auto" }} aria-label="Routing per layer" role="figure">
      {layers.map((layer, li) => {
        const counts = new Map<number, number>();
        for (const t of tokens) for (const e of t.routing[li]?.experts ?? []) counts.set(e, (counts.get(e) ?? 0) + 1);
        const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6);
        return (
          <div key={layer} style={{ display: "flex", alignItems: "flex-end", gap: 1, marginBottom: 6 }}>
            <span className="small muted" style={{ width: 64, flex: "none" }}>layer {layer}</span>
            {tokens.map((t) => {
              const r = t.routing[li];
              return (
                <div key={t.index} onMouseEnter={() => onHover(t.index)} title={`token ${t.index}`}
                  style={{ display: "flex", flexDirection: "column", width: 8, height: 28, flex: "none" }}>
                  {r?.experts.map((e, i) => (
                    <div key={e} style={{ background: expertColor(e), flex: `${Math.max(r.weights[i] ?? 0, 0.02)} 0 0` }} />
                  ))}
                </div>
              );
            })}
            <span className="small muted" style={{ marginLeft: 8, flex: "none" }}>
              most used: {top.map(([e, n]) => `${e}×${n}`).join(" ")}
            </span>
          </div>
        );
      })}
    </div>
  );
}

const FIELD = { display: "flex", flexDirection: "column", gap: 2 } as const;

function num(v: string, fallback: number): number {
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

export default function PlaygroundPage() {
  const { ns = "", name = "" } = useParams();
  const [search] = useSearchParams();
  useTitle(`Playground · ${ns}/${name}`);
  const [ref, setRef] = useState(search.get("ref") ?? "HEAD");
  const [prompt, setPrompt] = useState("def ");
  const [maxNew, setMaxNew] = useState("64");
  const [temperature, setTemperature] = useState("0.8");
  const [topK, setTopK] = useState("0");
  const [topP, setTopP] = useState("0.95");
  const [seed, setSeed] = useState("");
  const [stop, setStop] = useState("");
  const [watermark, setWatermark] = useState<"default" | "off">("default");
  const [running, setRunning] = useState(false);
  const [start, setStart] = useState<StartEvent | null>(null);
  const [tokens, setTokens] = useState<TokenEvent[]>([]);
  const [tail, setTail] = useState("");
  const [done, setDone] = useState<DoneEvent | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [hover, setHover] = useState<number | null>(null);
  const [colourLayer, setColourLayer] = useState<number | null>(null);
  const abort = useRef<AbortController | null>(null);
  const base = `/models/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;

  const layers = useMemo(() => (tokens[0]?.routing ?? []).map((r) => r.layer), [tokens]);
  const layer = colourLayer ?? layers[0] ?? null;

  async function run() {
    abort.current?.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    setRunning(true);
    setStart(null);
    setTokens([]);
    setTail("");
    setDone(null);
    setError(null);
    setHover(null);
    const params: GenParams = {
      ref: ref.trim() || "HEAD",
      prompt,
      max_new_tokens: Math.max(1, Math.round(num(maxNew, 64))),
      temperature: num(temperature, 1),
      top_k: Math.max(0, Math.round(num(topK, 0))),
      top_p: num(topP, 1),
      seed: seed.trim() === "" ? null : Math.round(num(seed, 0)),
      stop: stop.split("\n").filter((s) => s !== ""),
      watermark: watermark === "off" ? false : null,
    };
    const got: TokenEvent[] = [];
    try {
      await streamGenerate(ns, name, params, (e) => {
        if (e.type === "start") setStart(e.data);
        else if (e.type === "token") {
          got.push(e.data);
          setTokens([...got]);
        } else if (e.type === "text") setTail((t) => t + e.data.text);
        else if (e.type === "done") setDone(e.data);
        else if (e.type === "error") setError(new ApiError(0, e.data.code, e.data.message));
      }, ctl.signal);
    } catch (e) {
      if ((e as Error).name !== "AbortError") setError(e as Error);
    } finally {
      setRunning(false);
    }
  }

  const hovered = hover !== null ? tokens[hover] : null;
  return (
    <>
      <div className="page-head">
        <div className="grow">
          <div className="crumbs">
            <Link to="/models">Models</Link> / <Link to={base}>{ns}/{name}</Link> /
          </div>
          <h1>Playground</h1>
          <p className="muted small">
            Generation runs in the hub's inference sandbox (no network, no secrets). Each token shows the experts its MoE layers chose.
          </p>
        </div>
      </div>
      <form
        className="card"
        aria-label="Generation parameters"
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
        style={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(150px, 1fr))", gap: 8, marginBottom: 12 }}
      >
        <label style={{ ...FIELD, gridColumn: "1 / -1" }}>
          Prompt
          <textarea value={prompt} onChange={(e) => setPrompt(e.target.value)} rows={4} style={{ width: "100%", fontFamily: "monospace" }} />
        </label>
        <label style={FIELD}>Ref <input type="text" value={ref} onChange={(e) => setRef(e.target.value)} /></label>
        <label style={FIELD}>Max new tokens <input type="number" min={1} value={maxNew} onChange={(e) => setMaxNew(e.target.value)} /></label>
        <label style={FIELD}>Temperature <input type="number" step="0.05" min={0} value={temperature} onChange={(e) => setTemperature(e.target.value)} /></label>
        <label style={FIELD}>Top-k <input type="number" min={0} value={topK} onChange={(e) => setTopK(e.target.value)} /></label>
        <label style={FIELD}>Top-p <input type="number" step="0.01" min={0.01} max={1} value={topP} onChange={(e) => setTopP(e.target.value)} /></label>
        <label style={FIELD}>Seed <input type="number" min={0} value={seed} placeholder="random" onChange={(e) => setSeed(e.target.value)} /></label>
        <label style={FIELD}>Stop strings (one per line) <textarea rows={1} value={stop} onChange={(e) => setStop(e.target.value)} /></label>
        <label style={FIELD}>
          Watermark
          <select value={watermark} onChange={(e) => setWatermark(e.target.value as "default" | "off")}>
            <option value="default">repo setting</option>
            <option value="off">off</option>
          </select>
        </label>
        <div style={{ display: "flex", gap: 8, alignItems: "end" }}>
          <button type="submit" className="primary" disabled={running}>{running ? "Generating…" : "Generate"}</button>
          {running && <button type="button" onClick={() => abort.current?.abort()}>Stop</button>}
        </div>
      </form>
      {error && <ErrorMessage error={error} title="Generation failed" />}
      {(start || tokens.length > 0) && (
        <section className="card" aria-label="Output">
          <div className="row small muted" style={{ marginBottom: 6 }}>
            {start && (
              <span>
                commit <Link className="mono" to={`${base}/commit/${start.commit}`}>{shortSha(start.commit)}</Link> ·{" "}
                {start.cold ? `cold start (load ${(start.load_s * 1000).toFixed(0)} ms)` : "warm"}
              </span>
            )}
            {layers.length > 0 && (
              <label>
                {" "}· colour by layer{" "}
                <select aria-label="Colour by layer" value={layer ?? ""} onChange={(e) => setColourLayer(Number(e.target.value))}>
                  {layers.map((l) => <option key={l} value={l}>{l}</option>)}
                </select>
              </label>
            )}
          </div>
          <pre data-testid="generated" style={{ whiteSpace: "pre-wrap", lineHeight: 1.7 }}>
            <span className="muted">{prompt}</span>
            {tokens.map((t) => {
              const r = t.routing.find((x) => x.layer === layer);
              const e = r?.experts[0];
              return (
                <span
                  key={t.index}
                  data-token={t.index}
                  onMouseEnter={() => setHover(t.index)}
                  style={{
                    borderBottom: e === undefined ? undefined : `3px solid ${expertColor(e)}`,
                    background: hover === t.index ? "rgba(127,127,127,0.25)" : undefined,
                    cursor: "default",
                  }}
                  title={r ? `layer ${r.layer}: ${r.experts.map((x, i) => `expert ${x} ${(r.weights[i] ?? 0).toFixed(2)}`).join(", ")}` : undefined}
                >
                  {shown(t.text)}
                </span>
              );
            })}
            {tail}
            {running && <span className="muted">▍</span>}
          </pre>
          {hovered ? <RoutingDetail token={hovered} /> : <p className="small muted">Hover a token to see its routing in every MoE layer.</p>}
          <RoutingGrid tokens={tokens} onHover={setHover} />
          {done && (
            <p className="small" aria-label="Generation stats">
              {done.tokens} tokens · {done.finish_reason} · first token {done.time_to_first_token_s === null ? "—" : `${(done.time_to_first_token_s * 1000).toFixed(0)} ms`} ·{" "}
              {done.tokens_per_s === null ? "—" : `${done.tokens_per_s.toFixed(1)} tokens/s`} · {done.kv_cache ? "KV cache" : "no cache"}
              {done.watermark ? ` · watermarked (key ${done.watermark.key_id})` : ""}
            </p>
          )}
        </section>
      )}
    </>
  );
}
