/** A job's log: the last lines, then new lines as they arrive (Server-Sent Events from
 * /jobs/{id}/logs/stream; polling where streaming fails), until the job ends. Follows
 * the bottom unless the reader scrolled up; "Load earlier" pages back. */
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { errorFrom } from "../../api/client";
import { fetchJobLogs, jobLogStreamUrl } from "../../api/hooks";
import { JOB_TERMINAL, type LogLine } from "../../api/types";
import { ErrorMessage } from "../../components/States";
import "./jobs.css";

const TAIL = 200;
const MAX_LINES = 20_000;

/** Merge new lines into a sorted, de-duplicated list (reconnects resend lines). */
export function mergeLines(have: LogLine[], add: LogLine[]): LogLine[] {
  if (!add.length) return have;
  const last = have.length ? have[have.length - 1].seq : -Infinity;
  let out: LogLine[];
  if (add.every((l) => l.seq > last)) out = have.concat(add);
  else {
    const bySeq = new Map<number, LogLine>();
    for (const l of have) bySeq.set(l.seq, l);
    for (const l of add) bySeq.set(l.seq, l);
    out = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  }
  return out.length > MAX_LINES ? out.slice(out.length - MAX_LINES) : out;
}

/** Read Server-Sent Events from a response body; resolves "end" on an `end` event, or
 * "closed" when the server closed the stream first. */
export async function readEvents(body: ReadableStream<Uint8Array>, on: (event: string, data: string) => void): Promise<"end" | "closed"> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return "closed";
    buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const c = line.indexOf(":");
        const field = c < 0 ? line : line.slice(0, c);
        const v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
        if (field === "event") event = v;
        else if (field === "data") data.push(v);
      }
      if (event === "end") {
        await reader.cancel().catch(() => undefined);
        return "end";
      }
      if (data.length) on(event, data.join("\n"));
    }
  }
}

function fmtTime(t: number | string): string {
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleTimeString("en-GB", { hour12: false });
}

export function LogTail({ jobId, status, onEnd }: { jobId: string; status: string; onEnd?: () => void }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [live, setLive] = useState(false);
  const [follow, setFollow] = useState(true);
  const [filter, setFilter] = useState("");
  const [olderDone, setOlderDone] = useState(false);
  const view = useRef<HTMLDivElement>(null);
  const lastSeq = useRef<number | null>(null);
  const onEndRef = useRef(onEnd);
  onEndRef.current = onEnd;
  const terminal = JOB_TERMINAL.has(status);

  const add = useCallback((more: LogLine[]) => {
    if (!more.length) return;
    setLines((have) => {
      const next = mergeLines(have, more);
      lastSeq.current = next.length ? next[next.length - 1].seq : lastSeq.current;
      return next;
    });
  }, []);

  // The tail, once per job.
  // The job's status when the tail was read: following starts only if it was not over then
  // (the stream itself says when it ends, after its last lines).
  const [loadedStatus, setLoadedStatus] = useState<string | null>(null);
  const loaded = loadedStatus !== null;
  useEffect(() => {
    const ctl = new AbortController();
    setLines([]);
    lastSeq.current = null;
    setLoadedStatus(null);
    setOlderDone(false);
    fetchJobLogs(jobId, { tail: TAIL }, ctl.signal).then(
      (r) => {
        add(r.lines);
        if (r.lines.length < TAIL) setOlderDone(true);
        setLoadedStatus(r.status);
      },
      (e: unknown) => {
        if ((e as Error).name !== "AbortError") setError(e);
      },
    );
    return () => ctl.abort();
  }, [jobId, add]);

  // Then follow while the job is not over: the SSE stream, read with fetch (EventSource
  // cannot send an Accept header, and the hub's content negotiation answers its
  // `Accept: text/event-stream` with 406), reconnecting from the last line seen; polling
  // `?after_seq=` where streaming is not available.
  useEffect(() => {
    if (loadedStatus === null || JOB_TERMINAL.has(loadedStatus)) return;
    const ctl = new AbortController();
    const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));
    const ended = () => {
      setLive(false);
      onEndRef.current?.();
    };
    const poll = async () => {
      while (!ctl.signal.aborted) {
        try {
          const r = await fetchJobLogs(jobId, { after_seq: lastSeq.current ?? undefined, limit: 1000 }, ctl.signal);
          add(r.lines);
          if (JOB_TERMINAL.has(r.status) && r.lines.length < 1000) return ended();
        } catch (e) {
          if ((e as Error).name === "AbortError") return;
          setError(e);
        }
        await sleep(1500);
      }
    };
    const follow = async () => {
      let failures = 0;
      while (!ctl.signal.aborted) {
        let resp: Response;
        try {
          resp = await fetch(jobLogStreamUrl(jobId, lastSeq.current), {
            credentials: "same-origin",
            headers: { Accept: "text/event-stream, */*;q=0.1" },
            signal: ctl.signal,
          });
        } catch (e) {
          if ((e as Error).name === "AbortError") return;
          if (++failures > 3) return poll();
          await sleep(1000 * failures);
          continue;
        }
        if (!resp.ok) {
          if (resp.status === 401 || resp.status === 403 || resp.status === 404) return setError(await errorFrom(resp));
          return poll();
        }
        if (!resp.body || !(resp.headers.get("Content-Type") ?? "").includes("text/event-stream")) return poll();
        setLive(true);
        failures = 0;
        const ended_ = await readEvents(resp.body, (event, data) => {
          if (event === "line") {
            try {
              add([JSON.parse(data) as LogLine]);
            } catch {
              // a malformed event: skip it
            }
          }
        }).catch((e: unknown) => ((e as Error).name === "AbortError" ? "aborted" : "broken"));
        setLive(false);
        if (ended_ === "end") return ended();
        if (ended_ === "aborted") return;
        await sleep(1000); // the connection dropped: reconnect after the last line seen
      }
    };
    void follow();
    return () => {
      ctl.abort();
      setLive(false);
    };
  }, [jobId, loadedStatus, add]);

  // The job ended (seen by the page's polling) before the stream said so: read what is left.
  useEffect(() => {
    if (!terminal || loadedStatus === null || JOB_TERMINAL.has(loadedStatus)) return;
    const ctl = new AbortController();
    const t = setTimeout(() => {
      fetchJobLogs(jobId, { after_seq: lastSeq.current ?? undefined, limit: 1000 }, ctl.signal).then((r) => add(r.lines), () => undefined);
    }, 1000);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [terminal, jobId, loadedStatus, add]);

  useLayoutEffect(() => {
    const el = view.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [lines, follow]);

  const onScroll = () => {
    const el = view.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
    if (atBottom !== follow) setFollow(atBottom);
  };

  const loadEarlier = async () => {
    const first = lines[0]?.seq;
    if (first === undefined) return;
    try {
      const after = Math.max(-1, first - 1 - 1000);
      const r = await fetchJobLogs(jobId, after < 0 ? { limit: 1000 } : { after_seq: after, limit: 1000 });
      const older = r.lines.filter((l) => l.seq < first);
      if (after < 0 || !older.length) setOlderDone(true);
      setFollow(false);
      add(older);
    } catch (e) {
      setError(e);
    }
  };

  const f = filter.toLowerCase();
  const shown = f ? lines.filter((l) => l.line.toLowerCase().includes(f)) : lines;
  return (
    <section className="panel" aria-labelledby="logs-h">
      <div className="row" style={{ marginBottom: 6 }}>
        <h2 id="logs-h" style={{ margin: 0, flex: 1 }}>
          Logs{" "}
          <span className="small muted" data-testid="log-state">
            {live && !terminal ? "● live" : terminal ? `(job ${status})` : loaded ? "waiting for the stream…" : ""}
          </span>
        </h2>
        <label htmlFor="log-filter" className="sr-only">Filter log lines</label>
        <input id="log-filter" type="search" placeholder="filter…" value={filter} onChange={(e) => setFilter(e.target.value)} />
        <label className="inline small">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
      </div>
      {error !== null && <ErrorMessage error={error} title="Could not read the logs" />}
      <div ref={view} className="log-view" role="log" aria-label={`Log of job ${jobId}`} aria-live="off" tabIndex={0} onScroll={onScroll} data-testid="log-view">
        {!olderDone && lines.length > 0 && lines[0].seq > 1 && (
          <div style={{ padding: "0 8px 4px" }}>
            <button type="button" className="small" onClick={() => void loadEarlier()}>Load earlier lines</button>
          </div>
        )}
        {loaded && lines.length === 0 && <div className="muted" style={{ padding: "0 8px" }}>{terminal ? "This job logged nothing." : "No output yet."}</div>}
        {shown.map((l) => (
          <div key={l.seq} className={`log-line ${l.stream}`}>
            <span className="seq">{l.seq}</span>
            <span className="time">{fmtTime(l.time)}</span>
            <span className="stream">{l.stream}</span>
            <span className="text">{l.line}</span>
          </div>
        ))}
      </div>
      <div className="small muted" style={{ marginTop: 4 }}>
        {lines.length.toLocaleString()} line{lines.length === 1 ? "" : "s"}{f ? ` · ${shown.length.toLocaleString()} match` : ""}
      </div>
    </section>
  );
}
