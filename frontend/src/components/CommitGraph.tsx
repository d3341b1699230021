/** The commit list with its graph: lanes and merge edges in an SVG beside each row. */
import { useMemo } from "react";
import { Link } from "react-router";
import type { Commit, Ref } from "../api/types";
import { edgePath, layoutGraph, sortCommits } from "../lib/graph";
import { PALETTE } from "../lib/series";
import { fmtAgo, shortSha } from "../lib/format";

const ROW = 32;
const LANE = 16;

export function CommitGraph({ commits, refs, base, truncated }: { commits: Commit[]; refs: Ref[]; base: string; truncated?: boolean }) {
  const sorted = useMemo(() => sortCommits(commits), [commits]);
  const layout = useMemo(() => layoutGraph(sorted), [sorted]);
  const refsBySha = useMemo(() => {
    const m = new Map<string, Ref[]>();
    for (const r of refs) m.set(r.commit, [...(m.get(r.commit) ?? []), r]);
    return m;
  }, [refs]);
  const width = layout.lanes * LANE + LANE / 2;
  const laneColor = (l: number) => PALETTE[l % PALETTE.length];
  return (
    <div className="commit-list" role="list" aria-label="Commits, newest first">
      <svg className="graph-svg" width={width} height={layout.rows * ROW + (truncated ? ROW / 2 : 0)} aria-hidden="true">
        {layout.edges.map((e, i) => (
          <path key={i} d={edgePath(e, LANE, ROW)} fill="none" stroke={laneColor(e.lane)} strokeWidth={2} />
        ))}
        {layout.nodes.map((n) => (
          <circle
            key={n.sha}
            cx={LANE / 2 + n.lane * LANE}
            cy={n.row * ROW + ROW / 2}
            r={n.merge ? 5 : 4}
            fill={n.merge ? "var(--panel)" : laneColor(n.lane)}
            stroke={laneColor(n.lane)}
            strokeWidth={2}
          />
        ))}
      </svg>
      {sorted.map((c) => {
        const rs = refsBySha.get(c.sha) ?? [];
        return (
          <div key={c.sha} className="commit-row" role="listitem" style={{ gridTemplateColumns: `${width}px minmax(0,1fr) 110px 90px 96px` }}>
            <span />
            <span className="msg">
              {rs.map((r) => (
                <span key={`${r.kind}:${r.name}`} className={`badge ${r.kind}`} style={{ marginRight: 4 }}>
                  {r.kind === "tag" ? "tag: " : ""}
                  {r.name}
                </span>
              ))}
              <Link to={`${base}/commit/${c.sha}`}>{c.message.split("\n")[0] || "(no message)"}</Link>
              {c.parents.length > 1 && <span className="muted small"> · merge</span>}
            </span>
            <span className="muted small nowrap" title={c.author} style={{ overflow: "hidden", textOverflow: "ellipsis" }}>{c.author}</span>
            <span className="muted small nowrap" title={c.created_at}>{fmtAgo(c.created_at)}</span>
            <Link to={`${base}/commit/${c.sha}`} className="mono small" aria-label={`Commit ${shortSha(c.sha)}`}>
              {shortSha(c.sha)}
            </Link>
          </div>
        );
      })}
      {truncated && <div className="muted small" style={{ padding: "6px 0 0 8px" }}>Older history not shown.</div>}
    </div>
  );
}
