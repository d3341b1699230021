// @vitest-environment happy-dom
import { cleanup, fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Ref } from "../api/types";
import { mockApi, renderAt } from "../test/render";
import { MergeDialog } from "./MergeDialog";

const refs: Ref[] = [
  { name: "main", kind: "branch", commit: "a".repeat(40), updated_at: "", protected: false },
  { name: "exp", kind: "branch", commit: "b".repeat(40), updated_at: "", protected: false },
];

beforeAll(() => {
  // happy-dom's <dialog> lacks showModal in some versions
  const proto = HTMLDialogElement.prototype as unknown as { showModal?: () => void; close?: () => void };
  if (!proto.showModal) proto.showModal = function (this: HTMLDialogElement) { this.setAttribute("open", ""); };
});
afterEach(cleanup);

describe("merge dialog", () => {
  it("lists conflicts with both sides' stats, then merges with the chosen strategy", async () => {
    const calls = mockApi({
      "GET /api/v1/auth/csrf": () => ({ body: { csrf_token: "t" } }),
      "POST /api/v1/repos/ns/m/merge": (_u, init) => {
        const body = JSON.parse(String(init!.body));
        if (!body.strategy)
          return {
            status: 409,
            body: { error: { code: "merge_conflict", message: "1 conflict(s)", details: { base: "c".repeat(40), conflicts: [
              { path: "model.safetensors", tensor: "layers.0.moe.router.weight",
                ours: { status: "changed", dtype: "F32", shape: [8, 64], bytes: 2048, l2_delta: 0.2, rel_change: 0.5, cosine: 0.88 },
                theirs: { status: "changed", dtype: "F32", shape: [8, 64], bytes: 2048, l2_delta: 0.3, rel_change: 0.6, cosine: 0.8 } },
            ] } } },
          };
        return { status: 201, body: { result: "merge", commit: { sha: "d".repeat(40) }, base: "c".repeat(40), resolved: [{ path: "model.safetensors", tensor: "layers.0.moe.router.weight", strategy: "average", weight: 0.5 }] } };
      },
    });
    renderAt("/", "/", <MergeDialog ns="ns" name="m" refs={refs} open onClose={() => undefined} initialSource="exp" initialTarget="main" />);
    fireEvent.click(screen.getByRole("button", { name: "Merge" }));
    const conflict = await screen.findByTestId("merge-conflict");
    expect(conflict.textContent).toContain("layers.0.moe.router.weight");
    expect(conflict.textContent).toContain("[8 × 64]");
    fireEvent.click(screen.getByLabelText(/Weighted average/));
    expect(screen.getByRole("button", { name: /Merge with “average”/ })).toBeTruthy();
    fireEvent.submit(document.getElementById("merge-form")!);
    await waitFor(() => expect(calls.filter((c) => c.method === "POST")).toHaveLength(2));
    const result = await screen.findByTestId("merge-result");
    expect(result.textContent).toContain("Merged");
    await waitFor(() => expect(calls.filter((c) => c.method === "POST").at(-1)!.body).toMatchObject({ source: "exp", target: "main", strategy: "average", weight: 0.5 }));
  });
});
