// @vitest-environment happy-dom
import { cleanup, fireEvent, screen, waitFor } from "@testing-library/react";
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

const stats = (count = 3) => ({ last: 0.1, min: 0.1, max: 0.2, count });
/** The keys a training job's run has (workers/moe/train.py), for one MoE layer of 4 experts. */
const trainerSummary = Object.fromEntries(
  ["loss", "lm_loss", "lr", "grad_norm", "tokens_per_s", "val/loss", "moe/dropped_frac", "moe/layer0/dropped_frac", "moe/layer0/entropy",
    ...[0, 1, 2, 3].flatMap((e) => [`moe/layer0/load/expert${e}`, `moe/layer0/bias/expert${e}`])].map((k) => [k, stats()]),
);
const seriesApi = { "GET /api/v1/metrics/series": () => ({ body: { series: [] } }) };

describe("run page metrics", () => {
  it("shows sections in order, the important curves first, and per-expert keys as one chart", async () => {
    mockApi({ "GET /api/v1/runs/r1": () => ({ body: run({ summary: trainerSummary }) }), ...seriesApi });
    const { container } = renderAt("/runs/r1", "/runs/:id", <RunPage />);
    await screen.findByText(/keys in/);
    const sections = [...container.querySelectorAll("details.chart-group")].map((d) => d.getAttribute("data-section"));
    expect(sections).toEqual(["overview", "section:", "section:moe", "section:moe/layer0"]);
    const overview = container.querySelector('[data-section="overview"]')!;
    expect([...overview.querySelectorAll("[data-chart]")].map((c) => c.getAttribute("data-chart"))).toEqual(["loss", "val/loss", "lr", "tokens_per_s"]);
    // per-layer routing is collapsed until opened; its experts are two charts, not eight
    const layer = container.querySelector('[data-section="section:moe/layer0"]') as HTMLDetailsElement;
    expect(layer.open).toBe(false);
    expect(layer.querySelector("summary")!.textContent).toContain("(4 charts)");
  });

  it("shows the charts pinned in the URL first, and pinning one adds it to the URL", async () => {
    mockApi({ "GET /api/v1/runs/r1": () => ({ body: run({ summary: trainerSummary }) }), ...seriesApi });
    const { container } = renderAt("/runs/r1?pin=moe/layer0/load/expert*&pin=moe/layer0/dropped_frac", "/runs/:id", <RunPage />);
    await screen.findByText(/2 pinned/);
    const first = container.querySelector("details.chart-group")!;
    expect(first.getAttribute("data-section")).toBe("pinned");
    expect([...first.querySelectorAll("[data-chart]")].map((c) => c.getAttribute("data-chart"))).toEqual(["moe/layer0/load/expert*", "moe/layer0/dropped_frac"]);
    fireEvent.click(screen.getByRole("button", { name: "Pin lr" }));
    await waitFor(() => expect(screen.getByTestId("location").textContent).toContain("pin=lr"));
    const pins = new URLSearchParams(screen.getByTestId("location").textContent!.split("?")[1]).getAll("pin");
    expect(pins).toEqual(["moe/layer0/load/expert*", "moe/layer0/dropped_frac", "lr"]);
    fireEvent.click(screen.getByRole("button", { name: "Unpin moe/layer0/dropped_frac" }));
    await waitFor(() => expect(screen.getByTestId("location").textContent).not.toContain("dropped_frac"));
  });

  it("draws the dropped-tokens chart of the MoE view from moe/layer{L}/dropped_frac", async () => {
    // (no per-expert load here: the heatmap draws on a canvas, which the test DOM lacks)
    const summary = { loss: stats(), "moe/layer0/dropped_frac": stats(), "moe/layer1/dropped_frac": stats(), "moe/layer0/entropy": stats() };
    const calls = mockApi({ "GET /api/v1/runs/r1": () => ({ body: run({ summary }) }), ...seriesApi });
    renderAt("/runs/r1?tab=moe", "/runs/:id", <RunPage />);
    expect(await screen.findByRole("region", { name: "Chart of dropped tokens (per layer)" })).toBeTruthy();
    await waitFor(() => expect(calls.some((c) => c.url.pathname === "/api/v1/metrics/series" && (c.url.searchParams.get("keys") ?? "").split(",").includes("moe/layer0/dropped_frac"))).toBe(true));
  });
});

describe("run page privacy", () => {
  it("shows ε spent against the budget, and the guarantee and stop reason its job recorded", async () => {
    const dp = { epsilon: 0.8786, epsilon_budget: 0.88, delta: 1e-5, noise_multiplier: 1, sample_rate: 0.005418, steps: 14, max_grad_norm: 1, accountant: "rdp" };
    mockApi({
      "GET /api/v1/runs/r1": () => ({ body: run({ job_id: "j1", params: { "train.dp.epsilon": 0.88 }, summary: { "dp/epsilon": { last: 0.8786, min: 0.87, max: 0.8786, count: 2, last_step: 14 } } }) }),
      "GET /api/v1/jobs/j1": () => ({ body: { id: "j1", status: "succeeded", reason: "privacy budget reached: ε = 0.8786 after 14 of 30 steps", summary: { dp } } }),
    });
    renderAt("/runs/r1?tab=overview", "/runs/:id", <RunPage />);
    const panel = await screen.findByTestId("run-dp");
    await waitFor(() => expect(panel.textContent).toContain("(ε = 0.879, δ = 1.0e-5)-DP"));
    expect(panel.textContent).toContain("0.8786 at step 14 of a budget of 0.88");
    expect(panel.textContent).toContain("σ = 1, q = 0.00542, 14 steps, C = 1");
    expect(panel.textContent).toContain("privacy budget reached");
  });

  it("has no privacy panel for a run without train.dp", async () => {
    mockApi({ "GET /api/v1/runs/r1": () => ({ body: run() }) });
    renderAt("/runs/r1?tab=overview", "/runs/:id", <RunPage />);
    await screen.findByRole("heading", { name: "Params (0)" });
    expect(screen.queryByTestId("run-dp")).toBeNull();
  });
});
