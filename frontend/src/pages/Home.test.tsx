// @vitest-environment happy-dom
import { cleanup, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Project, RunHit } from "../api/types";
import { mockApi, renderAt } from "../test/render";
import HomePage, { homeProjects } from "./Home";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const page = <T,>(results: T[]) => ({ body: { count: results.length, next: null, previous: null, results } });
const project = (ns: string, name: string): Project => ({ id: `${ns}/${name}`, namespace: ns, name, private: false, description: "", metric_directions: {}, created_at: "2026-01-01T00:00:00Z" });
const hit = (id: string, project: string, created_at: string): RunHit => ({
  id, project, name: `run-${id}`, group: "", user: "ada", status: "finished", tags: [], notes: "", commit: null, job: null,
  created_at, ended_at: null, params: {}, summary: {},
});
const me = { body: { username: "ada", is_admin: false, token_scope: null, namespaces: [{ name: "ada", kind: "user", role: "admin" as const }] } };

describe("home page", () => {
  it("lists the newest runs across projects, running jobs and models, each linking to its page", async () => {
    const calls = mockApi({
      "GET /api/v1/whoami": () => me,
      "GET /api/v1/projects/ada/a/runs": () => ({ body: { results: [hit("r2", "ada/a", "2026-03-02T00:00:00Z")], total: 1, facets: {}, next: null, took_ms: 1, engine_elapsed_ms: 1 } }),
      "GET /api/v1/projects/zed/b/runs": () => ({ body: { results: [hit("r3", "zed/b", "2026-03-03T00:00:00Z"), hit("r1", "zed/b", "2026-03-01T00:00:00Z")], total: 2, facets: {}, next: null, took_ms: 1, engine_elapsed_ms: 1 } }),
      "GET /api/v1/projects": () => page([project("zed", "b"), project("ada", "a")]),
      "GET /api/v1/jobs": () => page([{ id: "j1", project: "ada/a", kind: "train", status: "running", progress: { step: 5, total: 20 } }]),
      // The hub sorts: a model created long ago but pushed to today comes first.
      "GET /api/v1/repos": () => page([{ id: "ada/old", namespace: "ada", name: "old", created_at: "2026-01-01T00:00:00Z", updated_at: "2026-03-01T00:00:00Z" }, { id: "ada/new", namespace: "ada", name: "new", created_at: "2026-02-01T00:00:00Z", updated_at: "2026-02-01T00:00:00Z" }]),
    });
    renderAt("/", "/", <HomePage />);
    const runs = await screen.findByRole("list", { name: "Recent runs" });
    expect(within(runs).getAllByRole("link").map((a) => a.getAttribute("href"))).toEqual(["/runs/r3", "/runs/r2", "/runs/r1"]);
    const jobs = await screen.findByRole("list", { name: "Running jobs" });
    expect(within(jobs).getByRole("link").getAttribute("href")).toBe("/jobs/j1");
    const models = await screen.findByRole("list", { name: "Recent models" });
    expect(within(models).getAllByRole("link").map((a) => a.getAttribute("href"))).toEqual(["/models/ada/old", "/models/ada/new"]);
    expect(within(models).getAllByText(/^updated /)).toHaveLength(2);
    const reposCall = calls.find((c) => c.url.pathname === "/api/v1/repos")!;
    expect(reposCall.url.searchParams.get("sort")).toBe("-updated_at");
    const jobsCall = calls.find((c) => c.url.pathname === "/api/v1/jobs")!;
    expect(jobsCall.url.searchParams.get("status")).toBe("running,queued");
  });

  it("says what to do when there is nothing yet", async () => {
    mockApi({
      "GET /api/v1/whoami": () => me,
      "GET /api/v1/projects": () => page([]),
      "GET /api/v1/jobs": () => page([]),
      "GET /api/v1/repos": () => page([]),
    });
    renderAt("/", "/", <HomePage />);
    expect(await screen.findByText(/No runs yet/)).toBeTruthy();
    expect(await screen.findByText(/No job is running or queued/)).toBeTruthy();
    expect(await screen.findByText(/No models yet/)).toBeTruthy();
    expect(screen.getAllByRole("link", { name: /launch/i }).every((a) => a.getAttribute("href") === "/jobs/new")).toBe(true);
  });

  it("reads runs from the user's own projects first", () => {
    const ps = [project("aaa", "x"), project("ada", "mine"), project("bbb", "y")];
    expect(homeProjects(ps, me.body, 2).map((p) => p.id)).toEqual(["ada/mine", "aaa/x"]);
  });
});
