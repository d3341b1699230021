// @vitest-environment happy-dom
import { cleanup, fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import type { RunHit } from "../api/types";
import { mockApi, renderAt } from "../test/render";
import RunsPage from "./Runs";

const hit = (id: string, name: string, extra: Partial<RunHit> = {}): RunHit => ({
  id, project: "team/moe", name, group: "", user: "ada", status: "finished", tags: ["baseline"], notes: "",
  commit: null, job: null, created_at: new Date().toISOString(), ended_at: null,
  params: { lr: id === "r1" ? 0.001 : 0.002, "moe.top_k": 2 }, summary: { val_loss: { last: 2.5, min: 2.4, max: 3 } }, ...extra,
});

const page = (results: RunHit[]) => ({
  results, total: results.length, next: null, took_ms: 1, engine_elapsed_ms: 1.2,
  facets: { status: [{ value: "finished", count: results.length }], tags: [{ value: "baseline", count: results.length }], user: [] },
});

afterEach(cleanup);

describe("runs table", () => {
  it("renders names as text, never as markup", async () => {
    mockApi({ "GET /api/v1/projects/team/moe/runs": () => ({ body: page([hit("r1", "<script>alert(1)</script>"), hit("r2", "ok")]) }) });
    renderAt("/projects/team/moe", "/projects/:ns/:name", <RunsPage />);
    expect(await screen.findByText("<script>alert(1)</script>")).toBeTruthy();
    expect(document.querySelector("main script, table script")).toBeNull();
  });

  it("shows a query syntax error inline, under the search box, at its position", async () => {
    mockApi({
      "GET /api/v1/projects/team/moe/runs": (url) =>
        url.searchParams.get("q")
          ? { status: 400, body: { error: { code: "invalid_query", message: "Query syntax error at position 11: expected a value", details: { position: 11, query: url.searchParams.get("q") } } } }
          : { body: page([hit("r1", "a")]) },
    });
    renderAt("/projects/team/moe", "/projects/:ns/:name", <RunsPage />);
    await screen.findByText("a");
    const box = screen.getByLabelText("Search runs");
    fireEvent.change(box, { target: { value: "params.lr:<" } });
    fireEvent.submit(box.closest("form")!);
    const err = await screen.findByTestId("query-error");
    expect(err.textContent).toContain("position 11");
    expect(err.querySelector("mark")).not.toBeNull();
    expect(box.getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByTestId("location").textContent).toContain("q=params.lr%3A%3C");
  });

  it("adds a facet to the query, sorts from a header button, and compares the selection", async () => {
    const calls = mockApi({ "GET /api/v1/projects/team/moe/runs": () => ({ body: page([hit("r1", "a"), hit("r2", "b")]) }) });
    renderAt("/projects/team/moe", "/projects/:ns/:name", <RunsPage />);
    await screen.findByText("a");
    fireEvent.click(await screen.findByRole("button", { name: /^finished/ }));
    await waitFor(() => expect(screen.getByTestId("location").textContent).toContain("q=status%3Afinished"));
    fireEvent.click(screen.getByRole("button", { name: /val_loss/ }));
    await waitFor(() => expect(calls.some((c) => c.url.searchParams.get("sort") === "summary.val_loss")).toBe(true));
    const compare = screen.getByRole("button", { name: /^Compare/ });
    expect((compare as HTMLButtonElement).disabled).toBe(true);
    fireEvent.click(screen.getByLabelText("Select run a"));
    fireEvent.click(screen.getByLabelText("Select run b"));
    await waitFor(() => expect((screen.getByRole("button", { name: /^Compare/ }) as HTMLButtonElement).disabled).toBe(false));
    fireEvent.click(screen.getByRole("button", { name: /^Compare/ }));
    await waitFor(() => expect(screen.getByTestId("location").textContent).toBe("/projects/team/moe/compare?runs=r1,r2"));
  });

  it("says so when a project has no runs", async () => {
    mockApi({ "GET /api/v1/projects/team/moe/runs": () => ({ body: page([]) }) });
    renderAt("/projects/team/moe", "/projects/:ns/:name", <RunsPage />);
    expect(await screen.findByText(/No runs in this project yet/)).toBeTruthy();
  });
});

describe("runs table paging", () => {
  it("prefetches the next page with the server's cursor, and asks for facets separately", async () => {
    const many = Array.from({ length: 50 }, (_, i) => hit(`r${i}`, `run-${i}`));
    const calls = mockApi({
      "GET /api/v1/projects/team/moe/runs": (url) => ({
        body: { ...page(url.searchParams.get("page_size") === "1" ? many.slice(0, 1) : many), total: 500, next: [123, "r49"] },
      }),
    });
    renderAt("/projects/team/moe", "/projects/:ns/:name", <RunsPage />);
    await screen.findByText("run-0");
    await waitFor(() => expect(calls.some((c) => c.url.searchParams.get("cursor") === '[123,"r49"]')).toBe(true), { timeout: 3000 });
    const facetCalls = calls.filter((c) => c.url.searchParams.get("facets"));
    expect(facetCalls.length).toBeGreaterThan(0);
    expect(facetCalls.every((c) => c.url.searchParams.get("page_size") === "1")).toBe(true);
    expect(calls.filter((c) => c.url.searchParams.get("page_size") === "50").every((c) => !c.url.searchParams.get("facets"))).toBe(true);
  });
});
