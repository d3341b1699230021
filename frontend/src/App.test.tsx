// @vitest-environment happy-dom
import { QueryClient } from "@tanstack/react-query";
import { describe, expect, it } from "vitest";
import { prefetchForLocation } from "./App";
import { mockApi } from "./test/render";

describe("prefetchForLocation", () => {
  it("starts the runs table's first page with the same key the page uses", async () => {
    const calls = mockApi({ "GET /api/v1/projects/team/moe/runs": () => ({ body: { results: [], total: 0, facets: {}, next: null } }) });
    const qc = new QueryClient();
    prefetchForLocation(qc, "/projects/team/moe", "?q=tags%3Ax&sort=-name&size=100");
    await new Promise((r) => setTimeout(r, 10));
    expect(calls).toHaveLength(1);
    expect(calls[0].url.searchParams.get("q")).toBe("tags:x");
    expect(calls[0].url.searchParams.get("page_size")).toBe("100");
    const key = ["runs", { ns: "team", name: "moe", q: "tags:x", sort: "-name", offset: 0, size: 100 }];
    expect(qc.getQueryData(key)).toEqual({ results: [], total: 0, facets: {}, next: null });
  });

  it("starts a run page's run", async () => {
    const calls = mockApi({ "GET /api/v1/runs/abc": () => ({ body: { id: "abc" } }) });
    const qc = new QueryClient();
    prefetchForLocation(qc, "/runs/abc", "");
    await new Promise((r) => setTimeout(r, 10));
    expect(calls.map((c) => c.url.pathname)).toEqual(["/api/v1/runs/abc"]);
    expect(qc.getQueryData(["run", "abc"])).toEqual({ id: "abc" });
  });

  it("does nothing elsewhere", () => {
    const calls = mockApi({});
    prefetchForLocation(new QueryClient(), "/models", "");
    expect(calls).toHaveLength(0);
  });
});
