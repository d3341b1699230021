// @vitest-environment happy-dom
import { cleanup, fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Job, JobDetail, JsonSchema } from "../../api/types";
import { mockApi, renderAt } from "../../test/render";
import JobLaunchPage from "./JobLaunchPage";
import JobPage from "./JobPage";
import JobsPage from "./JobsPage";
import ProfilePage from "./ProfilePage";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const schema: JsonSchema = {
  type: "object",
  additionalProperties: false,
  properties: { model: { type: "object", additionalProperties: false, properties: { top_k: { type: "integer", minimum: 2, maximum: 8, default: 2, description: "experts per token" }, n_experts: { type: "integer", minimum: 2 } } } },
};

const job = (id: string, extra: Partial<JobDetail> = {}): JobDetail => ({
  id, project: "ada/exp", kind: "train", status: "running", reason: "started on vm", base: null, target: { repo: "ada/moe", branch: "main" },
  resources: { gpus: 0, cpus: 1, memory_mb: 3072, time_limit_s: 300 }, queue: "cpu", created_by: "ada", created_at: new Date().toISOString(),
  started_at: new Date().toISOString(), ended_at: null, duration_s: 12, progress: { step: 5, total: 20, eta_s: 30 }, run_id: "run1", result: null,
  cancel_requested: false, attempt: 1, relaunched_from: null, config: {}, summary: {}, worker: "vm", gpus: [], heartbeat_at: null,
  events: { received: 3, rejected: 0 }, transitions: [{ from: null, to: "queued", at: new Date().toISOString(), reason: "launched" }], artifacts: [], ...extra,
});

const common = {
  "GET /api/v1/whoami": () => ({ body: { username: "ada", is_admin: false, namespaces: [], token_scope: null } }),
  "GET /api/v1/projects": () => ({ body: { count: 0, next: null, previous: null, results: [] } }),
  "GET /api/v1/repos": () => ({ body: { count: 0, next: null, previous: null, results: [] } }),
  "GET /api/v1/jobs/schema": () => ({ body: { kind: "train", schema, defaults: { model: { top_k: 2, n_experts: 16 } } } }),
};

describe("launch form", () => {
  it("shows schema errors under the editor as you type and will not launch", async () => {
    const calls = mockApi({ ...common, "POST /api/v1/jobs/validate": () => ({ body: { valid: true } }) });
    renderAt("/jobs/new", "/jobs/new", <JobLaunchPage />);
    const editor = await screen.findByLabelText("Config (JSON)");
    await screen.findByText(/Config reference/);
    fireEvent.change(editor, { target: { value: '{"model": {"top_k": 9, "topk": 1}}' } });
    const errs = await screen.findByTestId("config-errors");
    expect(errs.textContent).toContain("model.top_k: must be between 2 and 8");
    expect(errs.textContent).toContain("model.topk: unknown key (did you mean 'top_k'?)");
    expect(editor.getAttribute("aria-invalid")).toBe("true");
    expect((screen.getByRole("button", { name: /^Launch train job/ }) as HTMLButtonElement).disabled).toBe(true);
    fireEvent.change(editor, { target: { value: "{ nope" } });
    expect((await screen.findByTestId("config-errors")).textContent).toMatch(/invalid JSON/);
    expect(calls.some((c) => c.method === "POST")).toBe(false);
  });

  it("shows the hub's cross-field errors, then launches a valid config", async () => {
    const calls = mockApi({
      ...common,
      "POST /api/v1/jobs/validate": (_u, init) => {
        const body = JSON.parse(String(init?.body));
        return body.config.model?.top_k > (body.config.model?.n_experts ?? 16)
          ? { status: 400, body: { error: { code: "invalid_config", message: "1 problem", details: { errors: [{ path: "model.top_k", message: "must be ≤ n_experts (4)" }] } } } }
          : { body: { valid: true } };
      },
      "POST /api/v1/jobs": () => ({ status: 201, body: job("newjob") }),
    });
    renderAt("/jobs/new?project=ada/exp", "/jobs/new", <JobLaunchPage />);
    const editor = await screen.findByLabelText("Config (JSON)");
    fireEvent.change(editor, { target: { value: '{"model": {"top_k": 8, "n_experts": 4}}' } });
    expect((await screen.findByTestId("config-errors", {}, { timeout: 2000 })).textContent).toContain("model.top_k: must be ≤ n_experts (4)");
    fireEvent.change(editor, { target: { value: '{"model": {"top_k": 2, "n_experts": 4}}' } });
    await screen.findByTestId("config-valid", {}, { timeout: 2000 });
    fireEvent.change(screen.getByLabelText("CPUs"), { target: { value: "2" } });
    fireEvent.click(screen.getByRole("button", { name: /^Launch train job/ }));
    await waitFor(() => expect(screen.getByTestId("location").textContent).toBe("/jobs/newjob"));
    const post = calls.find((c) => c.method === "POST" && c.url.pathname === "/api/v1/jobs")!;
    expect(post.body).toMatchObject({ project: "ada/exp", kind: "train", config: { model: { top_k: 2, n_experts: 4 } }, resources: { cpus: 2, memory_mb: 3072 } });
  });

  it("defaults the project to the first one the user can write to", async () => {
    const project = (ns: string, name: string) => ({ id: `${ns}/${name}`, namespace: ns, name, private: false, description: "", created_at: "2026-01-01T00:00:00Z" });
    mockApi({
      ...common,
      "GET /api/v1/whoami": () => ({ body: { username: "ada", is_admin: false, token_scope: null,
        namespaces: [{ name: "ada", kind: "user", role: "admin" }, { name: "lab", kind: "org", role: "write" }, { name: "viewers", kind: "org", role: "read" }] } }),
      // listed by name: public projects of others first, one the user may only read, then theirs
      "GET /api/v1/projects": () => ({ body: { count: 4, next: null, previous: null, results: [project("aaa", "public"), project("lab", "sweeps"), project("viewers", "x"), project("ada", "moe")] } }),
    });
    renderAt("/jobs/new", "/jobs/new", <JobLaunchPage />);
    await waitFor(() => expect((screen.getByLabelText("Project") as HTMLInputElement).value).toBe("ada/moe"));
    const options = [...document.querySelectorAll("#job-projects option")].map((o) => o.getAttribute("value"));
    expect(options).toEqual(["ada/moe", "lab/sweeps"]);
  });

  it("defaults to a project of a namespace the user writes to when they own none", async () => {
    mockApi({
      ...common,
      "GET /api/v1/whoami": () => ({ body: { username: "bob", is_admin: false, token_scope: null, namespaces: [{ name: "bob", kind: "user", role: "admin" }, { name: "lab", kind: "org", role: "write" }] } }),
      "GET /api/v1/projects": () => ({ body: { count: 2, next: null, previous: null, results: [{ id: "aaa/p", namespace: "aaa", name: "p", private: false, description: "", created_at: "" }, { id: "lab/sweeps", namespace: "lab", name: "sweeps", private: false, description: "", created_at: "" }] } }),
    });
    renderAt("/jobs/new", "/jobs/new", <JobLaunchPage />);
    await waitFor(() => expect((screen.getByLabelText("Project") as HTMLInputElement).value).toBe("lab/sweeps"));
  });

  it("asks for a base model for a profile job", async () => {
    mockApi({ ...common, "POST /api/v1/jobs/validate": () => ({ body: { valid: true } }) });
    renderAt("/jobs/new?kind=profile&project=ada/exp", "/jobs/new", <JobLaunchPage />);
    expect(await screen.findByText("A profile job needs a base model.")).toBeTruthy();
    expect((screen.getByRole("button", { name: /^Launch profile job/ }) as HTMLButtonElement).disabled).toBe(true);
  });
});

describe("jobs list and job page", () => {
  it("filters by status in the URL and the request", async () => {
    const calls = mockApi({ ...common, "GET /api/v1/jobs": () => ({ body: { count: 1, next: null, previous: null, results: [job("j1") as Job] } }) });
    renderAt("/jobs", "/jobs", <JobsPage />);
    expect(await screen.findByRole("link", { name: "j1" })).toBeTruthy();
    fireEvent.click(screen.getByLabelText("running"));
    await waitFor(() => expect(screen.getByTestId("location").textContent).toBe("/jobs?status=running"));
    await waitFor(() => expect(calls.some((c) => c.url.pathname === "/api/v1/jobs" && c.url.searchParams.get("status") === "running")).toBe(true));
  });

  it("shows transitions, lineage and logs, and cancels", async () => {
    vi.stubGlobal("confirm", () => true);
    let status = "running";
    const calls = mockApi({
      ...common,
      "GET /api/v1/jobs/j1/logs": () => ({ body: { lines: [{ seq: 1, time: 1795334127.3, stream: "stdout", line: "step 5 loss 3.1" }], status } }),
      "GET /api/v1/jobs/j1": () => ({ body: job("j1", { status: status as JobDetail["status"], base: { repo: "ada/moe", ref: "main", commit: "abc123" } }) }),
      "POST /api/v1/jobs/j1/cancel": () => {
        status = "cancelled";
        return { body: job("j1", { status: "cancelled" }) };
      },
    });
    renderAt("/jobs/j1", "/jobs/:id", <JobPage />);
    expect(await screen.findByText("step 5 loss 3.1")).toBeTruthy();
    expect(screen.getByRole("link", { name: "run1" }).getAttribute("href")).toBe("/runs/run1");
    expect(screen.getByRole("link", { name: "abc123" }).getAttribute("href")).toBe("/models/ada/moe/commit/abc123");
    expect(screen.getByText("launched")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Cancel job" }));
    await waitFor(() => expect(screen.getByTestId("job-status").textContent).toContain("cancelled"));
    expect(calls.some((c) => c.method === "POST" && c.url.pathname === "/api/v1/jobs/j1/cancel")).toBe(true);
    expect(screen.getByRole("button", { name: "Relaunch" })).toBeTruthy();
  });
});

describe("job page summary", () => {
  it("is a table of keys and formatted values, nested objects as dotted keys", async () => {
    mockApi({
      ...common,
      "GET /api/v1/jobs/j1/logs": () => ({ body: { lines: [], status: "succeeded" } }),
      "GET /api/v1/jobs/j1": () => ({ body: job("j1", { status: "succeeded", summary: { steps: 20, val_loss: 3.14159265, resumed_from: null, events: { received: 12, rejected: 0 } } }) }),
    });
    renderAt("/jobs/j1", "/jobs/:id", <JobPage />);
    const table = await screen.findByTestId("job-summary");
    const rows = [...table.querySelectorAll("tbody tr")].map((tr) => [...tr.children].map((c) => c.textContent));
    expect(rows).toEqual([["steps", "20"], ["val_loss", "3.142"], ["resumed_from", "—"], ["events.received", "12"], ["events.rejected", "0"]]);
    expect(document.body.textContent).not.toContain('{"received"');
  });
});

describe("profile page", () => {
  it("renders the op table sorted, module shares and a comparison with ratios", async () => {
    const op = (name: string, self: number) => ({ op: name, calls: 3, self_us: self, total_us: self * 2, flops: 1e9, self_memory_bytes: 1024 });
    mockApi({
      ...common,
      "GET /api/v1/jobs/p1": () => ({
        body: job("p1", { kind: "profile", status: "succeeded", base: { repo: "ada/moe", ref: "main", commit: "abc" }, summary: { module_share: { experts: 0.6, attention: 0.4 } } }),
      }),
      "GET /api/v1/jobs/p1/profile": () => ({ body: { job: "p1", commit: "abc", ops: [op("aten::mm", 100), op("aten::add", 300)] } }),
      "GET /api/v1/jobs": () => ({ body: { count: 1, next: null, previous: null, results: [job("p1", { kind: "profile", status: "succeeded" })] } }),
      "GET /api/v1/jobs/profile-compare": () => ({
        body: { a: { job: "p1", commit: "abc", total_self_us: 400 }, b: { job: "p1", commit: "abc", total_self_us: 400 }, ops: [{ op: "aten::add", a: op("aten::add", 300), b: op("aten::add", 300), self_us_ratio: 1 }] },
      }),
    });
    renderAt("/profiles/p1", "/profiles/:id", <ProfilePage />);
    const table = await screen.findByTestId("op-table");
    const firstOp = () => table.querySelector("tbody tr td")!.textContent;
    expect(firstOp()).toBe("aten::add");
    fireEvent.click(screen.getByRole("button", { name: /^Self time/ }));
    await waitFor(() => expect(firstOp()).toBe("aten::mm"));
    expect(screen.getByTestId("module-share").textContent).toContain("60.0%");
    fireEvent.change(await screen.findByLabelText("Profile B"), { target: { value: "p1" } });
    const ratios = await screen.findAllByTestId("ratio");
    expect(ratios.map((r) => r.textContent)).toEqual(["1.00×"]);
    // no stacks artifact: no speedscope link
    expect(screen.queryByRole("link", { name: "Open in speedscope" })).toBeNull();
  });

  it("opens the folded stacks in the local speedscope", async () => {
    const art = (path: string) => ({ path, kind: "file", size: 10, oid: "o" });
    mockApi({
      ...common,
      "GET /api/v1/jobs/p1": () => ({
        body: job("p1", { kind: "profile", status: "succeeded", base: { repo: "ada/moe", ref: "main", commit: "abc123" }, artifacts: [art("profile/stacks.folded"), art("profile/trace.json")] }),
      }),
      "GET /api/v1/jobs/p1/profile": () => ({ body: { job: "p1", commit: "abc123", ops: [] } }),
      "GET /api/v1/jobs/p1/artifacts/": () => ({ body: {} }),
      "GET /api/v1/jobs": () => ({ body: { count: 0, next: null, previous: null, results: [] } }),
    });
    renderAt("/profiles/p1", "/profiles/:id", <ProfilePage />);
    const link = await screen.findByRole("link", { name: "Open in speedscope" });
    expect(link.getAttribute("href")).toBe(
      `/speedscope/index.html#profileURL=${encodeURIComponent("/api/v1/jobs/p1/artifacts/profile/stacks.folded")}&title=${encodeURIComponent("profile p1 · ada/moe@abc123")}`,
    );
    expect(link.getAttribute("target")).toBe("_blank");
  });
});
