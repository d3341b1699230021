import { describe, expect, it } from "vitest";
import { errorMarker, facetClause, hasClause, nextSort, parseRunsState, quoteValue, runsStateToParams, toggleClause } from "./runsQuery";

describe("runs table URL state", () => {
  it("round-trips through the query string", () => {
    const s = { q: "tags:baseline", sort: "-summary.val_loss", cols: ["params.lr", "summary.loss"], sel: ["a", "b"], offset: 50, size: 100 };
    expect(parseRunsState(runsStateToParams(s))).toEqual(s);
  });

  it("defaults and rejects nonsense", () => {
    expect(parseRunsState(new URLSearchParams("offset=-3&size=7"))).toEqual({ q: "", sort: "", cols: null, sel: [], offset: 0, size: 50 });
    expect(runsStateToParams(parseRunsState(new URLSearchParams(""))).toString()).toBe("");
  });

  it("distinguishes no columns chosen from automatic columns", () => {
    expect(parseRunsState(new URLSearchParams("cols=")).cols).toEqual([]);
    expect(parseRunsState(new URLSearchParams("")).cols).toBeNull();
  });
});

describe("sorting", () => {
  it("cycles ascending, descending, default", () => {
    expect(nextSort("", "summary.loss")).toBe("summary.loss");
    expect(nextSort("summary.loss", "summary.loss")).toBe("-summary.loss");
    expect(nextSort("-summary.loss", "summary.loss")).toBe("");
    expect(nextSort("-name", "summary.loss")).toBe("summary.loss");
  });
});

describe("facet clauses", () => {
  it("quotes values the query language would misread", () => {
    expect(quoteValue("adamw")).toBe("adamw");
    expect(quoteValue("0.001")).toBe("0.001");
    expect(quoteValue("my tag")).toBe('"my tag"');
    expect(quoteValue('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(quoteValue("AND")).toBe('"AND"');
    expect(facetClause("tags", "x y")).toBe('tags:"x y"');
  });

  it("adds and removes a clause as a toggle", () => {
    let q = "";
    q = toggleClause(q, "status:finished");
    expect(q).toBe("status:finished");
    q = toggleClause(q, "tags:baseline");
    expect(q).toBe("status:finished AND tags:baseline");
    expect(hasClause(q, "tags:baseline")).toBe(true);
    q = toggleClause(q, "status:finished");
    expect(q).toBe("tags:baseline");
  });

  it("wraps a query with OR before adding a clause", () => {
    expect(toggleClause("tags:a OR tags:b", "status:failed")).toBe("(tags:a OR tags:b) AND status:failed");
  });
});

describe("errorMarker", () => {
  it("splits the query at the error position", () => {
    expect(errorMarker("a AND (b", 8)).toEqual({ before: "a AND (b", at: " ", after: "" });
    expect(errorMarker("summary.x:<<2", 11)).toEqual({ before: "summary.x:<", at: "<", after: "2" });
    expect(errorMarker("q", undefined)).toBeNull();
  });
});
