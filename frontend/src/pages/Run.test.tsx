// @vitest-environment happy-dom
import { cleanup, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Run } from "../api/types";
import { mockApi, renderAt } from "../test/render";
import RunPage from "./Run";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const run = (extra: Partial<Run> = {}): Run => ({
  id: "r1", project: "ada/exp", name: "top4", group: "", status: "finished", user: "ada",
  started_at: new Date().toISOString(), ended_at: new Date().toISOString(), updated_at: new Date().toISOString(),
  params: {}, tags: [], notes: "", summary: {}, commit: null, job_id: null, ...extra,
});

describe("run page logs tab", () => {
  it("tails the log of the job that produced the run", async () => {
    const calls = mockApi({
      "GET /api/v1/runs/r1": () => ({ body: run({ job_id: "j1" }) }),
      "GET /api/v1/jobs/j1/logs": () => ({ body: { lines: [{ seq: 1, time: 1795334127.3, stream: "stdout", line: "step 5 loss 3.1" }], status: "succeeded" } }),
      "GET /api/v1/jobs/j1": () => ({ body: { id: "j1", status: "succeeded" } }),
    });
    renderAt("/runs/r1?tab=logs", "/runs/:id", <RunPage />);
    expect(await screen.findByText("step 5 loss 3.1")).toBeTruthy();
    expect(screen.getByRole("log", { name: "Log of job j1" })).toBeTruthy();
    const links = screen.getAllByRole("link", { name: "j1" });
    expect(links.every((a) => a.getAttribute("href") === "/jobs/j1")).toBe(true);
    expect(calls.some((c) => c.url.pathname === "/api/v1/jobs/j1/logs" && c.url.searchParams.get("tail") === "200")).toBe(true);
  });

  it("says there is no log when the run was not produced by a job", async () => {
    const calls = mockApi({ "GET /api/v1/runs/r1": () => ({ body: run() }) });
    renderAt("/runs/r1?tab=logs", "/runs/:id", <RunPage />);
    expect(await screen.findByText(/logged from outside a job/)).toBeTruthy();
    expect(screen.queryByRole("log")).toBeNull();
    expect(calls.some((c) => c.url.pathname.startsWith("/api/v1/jobs"))).toBe(false);
  });
});

describe("run page header", () => {
  it("offers the full-resolution export as CSV and as Parquet", async () => {
    mockApi({ "GET /api/v1/runs/r1": () => ({ body: run() }) });
    renderAt("/runs/r1?tab=logs", "/runs/:id", <RunPage />);
    const csv = await screen.findByRole("link", { name: "Export CSV" });
    expect(csv.getAttribute("href")).toBe("/api/v1/runs/r1/metrics/export");
    expect(screen.getByRole("link", { name: "Export Parquet" }).getAttribute("href"))
      .toBe("/api/v1/runs/r1/metrics/export?as=parquet");
  });
});
