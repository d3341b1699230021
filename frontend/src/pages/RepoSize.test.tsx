// @vitest-environment happy-dom
import { cleanup, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mockApi, renderAt } from "../test/render";
import { RepoSize } from "./Repo";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("repo size", () => {
  it("shows the logical and stored sizes the hub measured, and what dedupe saves", async () => {
    const GiB = 1024 ** 3;
    mockApi({
      "GET /api/v1/repos/ada/moe/stats": () => ({ body: { head_bytes: GiB, logical_bytes: 3.1 * GiB, stored_bytes: 1.1 * GiB, dedupe_ratio: 2.8182, commits: 3 } }),
    });
    renderAt("/models/ada/moe", "/models/:ns/:name", <RepoSize ns="ada" name="moe" />);
    expect((await screen.findByTestId("repo-size")).textContent).toBe("3 commits, 3.10 GiB logical, 1.10 GiB stored — dedupe saves 65% · head 1.00 GiB");
  });
});
