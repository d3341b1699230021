// @vitest-environment happy-dom
import { cleanup, fireEvent, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mockApi, renderAt } from "../../test/render";
import { MemoryLifetimes } from "./MemoryLifetimes";
import ProfileDiffPage from "./ProfileDiffPage";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const cats = ["parameter", "gradient", "optimizer_state", "activation", "temporary", "input", "other"];
const memory = {
  job: "p1", commit: "c".repeat(40), device: "cpu", categories: cats, columns: ["t_ms", ...cats],
  points: [[0, 1000, 0, 0, 0, 0, 0, 0], [1, 1000, 0, 0, 3000, 0, 0, 0], [2, 1000, 0, 0, 0, 0, 0, 0]],
  duration_ms: 3,
  peak: { t_ms: 1, bytes: 4000, by_category: { ...Object.fromEntries(cats.map((c) => [c, 0])), parameter: 1000, activation: 3000 }, live_count: 2, live: [2, 1] },
  tensor_count: 2,
  tensors: [
    { id: 1, category: "parameter", bytes: 1000, alloc_ms: null, free_ms: null, op: null, module: null },
    { id: 2, category: "activation", bytes: 3000, alloc_ms: 1, free_ms: 2, op: "aten::mm", module: "blocks.0.ffn.w13" },
  ],
  longest: [1, 2], largest: [2, 1], snapshot: false,
};

describe("memory view", () => {
  it("stacks the categories, lists the peak's tensors and draws lifetime bars", async () => {
    mockApi({ "GET /api/v1/jobs/p1/profile/memory": () => ({ body: memory }) });
    renderAt("/x", "/x", <MemoryLifetimes jobId="p1" />);
    const stack = await screen.findByTestId("memory-stack");
    expect(stack.getAttribute("aria-label")).toBe("Memory by category over 3.0 ms; peak 3.91 KiB at 1.0 ms");
    expect(stack.querySelectorAll("path").length).toBe(2); // parameter + activation, not the empty ones
    const rows = screen.getByTestId("peak-table").querySelectorAll("tbody tr");
    expect(rows[0].textContent).toContain("aten::mm");
    expect(rows[0].textContent).toContain("blocks.0.ffn.w13");
    expect(rows[1].textContent).toContain("before");
    const bars = screen.getByTestId("lifetime-bars");
    expect(bars.querySelectorAll("rect").length).toBe(2);
    expect(bars.querySelector("title")?.textContent).toMatch(/aten::mm · blocks\.0\.ffn\.w13 · 1\.00 ms → 2\.00 ms/);
    fireEvent.change(screen.getByLabelText("Which tensors"), { target: { value: "longest" } });
    expect(screen.getByTestId("lifetime-bars").querySelector("title")?.textContent).toContain("before profiling → end");
  });
});

describe("profile diff page", () => {
  it("colours frames by change and lists ops by impact", async () => {
    const frame = (name: string, a: number, b: number, only: string | null, children: unknown[] = []) => ({ name, a_us: a, b_us: b, ratio: a && b ? b / a : null, only, children });
    const diff = {
      a: { job: "ja", commit: "a".repeat(40), repo: "ada/moe", steps: 2 },
      b: { job: "jb", commit: "b".repeat(40), repo: "ada/moe", steps: 2 },
      same_settings: true,
      summary: { a_total_us: 100, b_total_us: 150, total_ratio: 1.5, ops_only_in_a: 0, ops_only_in_b: 1 },
      ops: [
        { op: "aten::topk", a_self_us: 10, b_self_us: 60, self_ratio: 6, a_memory_bytes: 8, b_memory_bytes: 16, memory_ratio: 2, delta_us: 50, only: null },
        { op: "aten::new", a_self_us: null, b_self_us: 5, self_ratio: null, a_memory_bytes: null, b_memory_bytes: 0, memory_ratio: null, delta_us: 5, only: "b" },
      ],
      flame: { root: frame("all", 100, 150, null, [frame("moe::router", 10, 60, null), frame("moe::experts", 90, 85, null), frame("new", 0, 5, "b")]), frames: 4, truncated: false },
    };
    mockApi({ "GET /api/v1/jobs/profile-diff": () => ({ body: diff }), "GET /api/v1/whoami": () => ({ body: { username: "ada", is_admin: false, namespaces: [], token_scope: null } }) });
    renderAt("/profiles/diff?a=ja&b=jb", "/profiles/diff", <ProfileDiffPage />);
    const flame = await screen.findByTestId("diff-flame");
    const fills = [...flame.querySelectorAll("rect")].map((r) => r.getAttribute("fill"));
    expect(new Set(fills).size).toBe(4);
    const ratios = screen.getAllByTestId("diff-ratio").map((e) => e.textContent);
    expect(ratios[0]).toMatch(/^6\.00×$/);
    expect(screen.getByTestId("diff-table").textContent).toContain("(only B)");
  });
});
