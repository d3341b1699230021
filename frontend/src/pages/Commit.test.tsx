// @vitest-environment happy-dom
import { cleanup, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CommitDetail } from "../api/types";
import { mockApi, renderAt } from "../test/render";
import CommitPage from "./Commit";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const commit = (extra: Partial<CommitDetail> = {}): CommitDetail => ({
  sha: "c0ffee".padEnd(64, "0"), parents: [], author: "ada", message: "train: 20 steps", metadata: {},
  created_at: new Date().toISOString(), tree: "t".repeat(64), generation: 1, job_id: null, run_id: null, files: [],
  stats: { files: 0, bytes: 0, new_bytes: 0, reused_bytes: 0 }, ...extra,
});

describe("commit page lineage", () => {
  it("links the run and the job that produced the commit", async () => {
    mockApi({
      "GET /api/v1/repos/ada/moe/commits/": () => ({ body: commit({ run_id: "run1", job_id: "job1" }) }),
      "GET /api/v1/repos/ada/moe": () => ({ body: { refs: [] } }),
      "GET /api/v1/repos/ada/moe/card": () => ({ status: 404, body: { error: { code: "not_found", message: "no card" } } }),
    });
    renderAt("/models/ada/moe/commit/c0ffee", "/models/:ns/:name/commit/:sha", <CommitPage />);
    const lineage = await screen.findByRole("region", { name: "Lineage" });
    expect(within(lineage).getByRole("link", { name: "run1" }).getAttribute("href")).toBe("/runs/run1");
    expect(within(lineage).getByRole("link", { name: "job1" }).getAttribute("href")).toBe("/jobs/job1");
  });

  it("shows dashes without lineage", async () => {
    mockApi({
      "GET /api/v1/repos/ada/moe/commits/": () => ({ body: commit() }),
      "GET /api/v1/repos/ada/moe": () => ({ body: { refs: [] } }),
      "GET /api/v1/repos/ada/moe/card": () => ({ status: 404, body: { error: { code: "not_found", message: "no card" } } }),
    });
    renderAt("/models/ada/moe/commit/c0ffee", "/models/:ns/:name/commit/:sha", <CommitPage />);
    await screen.findByRole("heading", { name: "train: 20 steps" });
    expect(screen.queryByRole("link", { name: /job|run/ })).toBeNull();
  });

  it("shows the bytes the commit added and the bytes it reused from its parent", async () => {
    mockApi({
      "GET /api/v1/repos/ada/moe/commits/": () => ({ body: commit({ parents: ["p".repeat(40)], stats: { files: 2, bytes: 1100 * 1024 ** 2, new_bytes: 12.4 * 1024 ** 2, reused_bytes: 1.02 * 1024 ** 3 } }) }),
      "GET /api/v1/repos/ada/moe": () => ({ body: { refs: [] } }),
      "GET /api/v1/repos/ada/moe/card": () => ({ status: 404, body: { error: { code: "not_found", message: "no card" } } }),
    });
    renderAt("/models/ada/moe/commit/c0ffee", "/models/:ns/:name/commit/:sha", <CommitPage />);
    expect((await screen.findByTestId("commit-stats")).textContent).toBe("12.4 MiB new, 1.02 GiB reused");
    expect(screen.getByText("1.07 GiB in 2 files")).toBeTruthy();
  });
});

describe("commit page privacy", () => {
  const dp = { epsilon: 0.8786, epsilon_budget: 0.88, delta: 1e-5, noise_multiplier: 1.1, sample_rate: 0.005418, steps: 14, max_grad_norm: 0.7, accountant: "rdp" };
  const sha = "c0ffee".padEnd(64, "0");

  it("states the DP-SGD guarantee a training job recorded, confirmed by that job's own record", async () => {
    mockApi({
      "GET /api/v1/repos/ada/moe/commits/": () => ({ body: commit({ job_id: "job1", metadata: { dp } }) }),
      "GET /api/v1/repos/ada/moe": () => ({ body: { refs: [] } }),
      "GET /api/v1/repos/ada/moe/card": () => ({ status: 404, body: { error: { code: "not_found", message: "no card" } } }),
      "GET /api/v1/jobs/job1": () => ({ body: { id: "job1", status: "succeeded", result: { commit: sha, branch: "main" }, summary: { dp } } }),
    });
    renderAt("/models/ada/moe/commit/c0ffee", "/models/:ns/:name/commit/:sha", <CommitPage />);
    const row = await screen.findByTestId("commit-dp");
    expect(row.textContent).toContain("trained with DP-SGD: (ε = 0.879, δ = 1.0e-5)-DP");
    expect(row.textContent).toContain("σ = 1.1, q = 0.00542, 14 steps, C = 0.7, RDP accountant");
    expect((await screen.findByTestId("commit-dp-confirmed")).textContent).toBe("confirmed by job job1");
  });

  it("does not confirm a DP claim that the named job did not produce (pushed metadata)", async () => {
    mockApi({
      "GET /api/v1/repos/ada/moe/commits/": () => ({ body: commit({ job_id: "job1", metadata: { dp } }) }),
      "GET /api/v1/repos/ada/moe": () => ({ body: { refs: [] } }),
      "GET /api/v1/repos/ada/moe/card": () => ({ status: 404, body: { error: { code: "not_found", message: "no card" } } }),
      // a real DP job, but its result is another commit
      "GET /api/v1/jobs/job1": () => ({ body: { id: "job1", status: "succeeded", result: { commit: "f".repeat(64), branch: "main" }, summary: { dp } } }),
    });
    renderAt("/models/ada/moe/commit/c0ffee", "/models/:ns/:name/commit/:sha", <CommitPage />);
    await waitFor(() => expect(screen.getByTestId("commit-dp-unconfirmed").textContent).toContain("no job record confirms it"));
    expect(screen.queryByTestId("commit-dp-confirmed")).toBeNull();
  });

  it("shows no privacy row for a commit without a dp record (or a malformed one)", async () => {
    mockApi({
      "GET /api/v1/repos/ada/moe/commits/": () => ({ body: commit({ metadata: { dp: { epsilon: "8" } } }) }),
      "GET /api/v1/repos/ada/moe": () => ({ body: { refs: [] } }),
      "GET /api/v1/repos/ada/moe/card": () => ({ status: 404, body: { error: { code: "not_found", message: "no card" } } }),
    });
    renderAt("/models/ada/moe/commit/c0ffee", "/models/:ns/:name/commit/:sha", <CommitPage />);
    await screen.findByRole("heading", { name: "train: 20 steps" });
    expect(screen.queryByTestId("commit-dp")).toBeNull();
  });
});
