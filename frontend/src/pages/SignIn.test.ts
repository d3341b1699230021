import { describe, expect, it } from "vitest";
import { safeNext } from "./SignIn";

describe("safeNext (where sign-in goes next)", () => {
  it("follows same-site paths with their query and fragment", () => {
    expect(safeNext("/projects/ada/exp?q=tags%3Abest&sort=-summary.val%2Floss")).toBe("/projects/ada/exp?q=tags%3Abest&sort=-summary.val%2Floss");
    expect(safeNext("/runs/abc#logs")).toBe("/runs/abc#logs");
    expect(safeNext("/models")).toBe("/models");
  });

  it("falls back to /projects when there is nowhere to go", () => {
    expect(safeNext(null)).toBe("/projects");
    expect(safeNext("")).toBe("/projects");
  });

  it("never leaves the site (open redirects)", () => {
    for (const next of [
      "https://evil.example/x",
      "//evil.example/x",
      "/\\evil.example/x",
      "/\t/evil.example",
      "/\n/evil.example",
      "\\\\evil.example",
      "javascript:alert(1)",
      "evil.example",
      " /projects",
    ]) {
      expect(safeNext(next), JSON.stringify(next)).toBe("/projects");
    }
  });

  it("does not loop back to the sign-in page", () => {
    expect(safeNext("/login")).toBe("/projects");
    expect(safeNext("/login?next=%2Fmodels")).toBe("/projects");
    expect(safeNext("/login/")).toBe("/projects");
  });
});
