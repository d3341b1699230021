import { describe, expect, it } from "vitest";
import { modelSearchPath } from "./cards";

describe("modelSearchPath", () => {
  it("repeats each facet value and encodes the query", () => {
    const path = modelSearchPath({ q: "metric:val_loss<2.0 moe", tag: ["moe", "a&b"], license: ["mit"], base_model: ["alice/base"] }, 20);
    const url = new URL(path, "http://hub");
    expect(url.pathname).toBe("/models/search");
    expect(url.searchParams.get("q")).toBe("metric:val_loss<2.0 moe");
    expect(url.searchParams.getAll("tag")).toEqual(["moe", "a&b"]);
    expect(url.searchParams.getAll("license")).toEqual(["mit"]);
    expect(url.searchParams.getAll("base_model")).toEqual(["alice/base"]);
    expect(url.searchParams.get("page_size")).toBe("20");
  });

  it("leaves an empty query out", () => {
    expect(modelSearchPath({ q: "", tag: [], license: [], base_model: [] }, 50)).toBe("/models/search?page_size=50");
  });
});
