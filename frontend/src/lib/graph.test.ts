import { describe, expect, it } from "vitest";
import { edgePath, layoutGraph, sortCommits } from "./graph";

// main: M (merge of C and B) ← C ← A;  branch: B ← A
const commits = [
  { sha: "M", parents: ["C", "B"] },
  { sha: "C", parents: ["A"] },
  { sha: "B", parents: ["A"] },
  { sha: "A", parents: [] },
];

describe("layoutGraph", () => {
  it("puts the first-parent chain in lane 0 and a merged branch in lane 1", () => {
    const g = layoutGraph(commits);
    const lane = Object.fromEntries(g.nodes.map((n) => [n.sha, n.lane]));
    expect(lane).toEqual({ M: 0, C: 0, B: 1, A: 0 });
    expect(g.lanes).toBe(2);
    expect(g.nodes.find((n) => n.sha === "M")!.merge).toBe(true);
  });

  it("connects every parent link to the parent's row and lane", () => {
    const g = layoutGraph(commits);
    const e = g.edges.find((x) => x.from === "M" && x.to === "B")!;
    expect(e).toMatchObject({ fromRow: 0, fromLane: 0, lane: 1, toRow: 2, toLane: 1 });
    const back = g.edges.find((x) => x.from === "B" && x.to === "A")!;
    expect(back).toMatchObject({ lane: 1, toRow: 3, toLane: 0 });
  });

  it("sends links to commits that are not loaded out of the bottom", () => {
    const g = layoutGraph([{ sha: "X", parents: ["older"] }]);
    expect(g.edges[0].toRow).toBe(1);
  });

  it("keeps two independent branch heads in separate lanes", () => {
    const g = layoutGraph([
      { sha: "b2", parents: ["a"] },
      { sha: "c2", parents: ["a"] },
      { sha: "a", parents: [] },
    ]);
    expect(g.nodes.map((n) => n.lane)).toEqual([0, 1, 0]);
  });
});

describe("sortCommits", () => {
  it("orders children first by generation, then time", () => {
    const s = sortCommits([
      { sha: "a", generation: 1, created_at: "2024-01-01" },
      { sha: "c", generation: 2, created_at: "2024-01-03" },
      { sha: "b", generation: 2, created_at: "2024-01-02" },
    ]);
    expect(s.map((c) => c.sha)).toEqual(["c", "b", "a"]);
  });
});

describe("edgePath", () => {
  it("draws a straight segment within a lane", () => {
    expect(edgePath({ from: "a", to: "b", fromRow: 0, fromLane: 0, lane: 0, toRow: 2, toLane: 0 }, 10, 20)).toBe("M5,10 L5,50");
  });

  it("bends into another lane", () => {
    const d = edgePath({ from: "a", to: "b", fromRow: 0, fromLane: 0, lane: 1, toRow: 1, toLane: 1 }, 10, 20);
    expect(d.startsWith("M5,10 C")).toBe(true);
    expect(d.endsWith("15,30")).toBe(true);
  });
});
