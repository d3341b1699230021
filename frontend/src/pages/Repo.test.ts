import { afterEach, describe, expect, it, vi } from "vitest";
import { mockApi } from "../test/render";
import { allTreeFiles } from "./Repo";

afterEach(() => vi.unstubAllGlobals());

const file = (path: string) => ({ path, oid: path, size: 1, kind: "other" });

describe("allTreeFiles", () => {
  it("follows every page, asking later pages by the commit the first one resolved", async () => {
    const calls = mockApi({
      "GET /api/v1/repos/ada/moe/tree": (url) => {
        const page = Number(url.searchParams.get("page") ?? "1");
        const files = page === 1 ? [file("a"), file("b")] : page === 2 ? [file("c"), file("d")] : [file("e")];
        return { body: { commit: "c0ffee", files, next: page < 3 ? `next-${page + 1}` : null } };
      },
    });
    const out = await allTreeFiles("/repos/ada/moe/tree", "main");
    expect(out.commit).toBe("c0ffee");
    expect(out.files.map((f) => f.path)).toEqual(["a", "b", "c", "d", "e"]);
    expect(calls.map((c) => c.url.searchParams.get("ref"))).toEqual(["main", "c0ffee", "c0ffee"]);
    expect(calls.map((c) => c.url.searchParams.get("page"))).toEqual([null, "2", "3"]);
  });
});
