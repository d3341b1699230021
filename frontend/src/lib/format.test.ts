import { describe, expect, it } from "vitest";
import { fmtAgo, fmtAxis, logAxisLabels, fmtBytes, fmtCount, fmtNum, fmtPct, fmtShape, fmtValue, numel, axisLabels } from "./format";

describe("format", () => {
  it("formats numbers compactly", () => {
    expect(fmtNum(1234567)).toBe("1,234,567");
    expect(fmtNum(0.000123)).toBe("1.230e-4");
    expect(fmtNum(2.345678)).toBe("2.346");
    expect(fmtNum(null)).toBe("—");
    expect(fmtNum(true)).toBe("true");
  });
  it("formats values, sizes, shapes", () => {
    expect(fmtValue([1, "a"])).toBe("[1, a]");
    expect(fmtBytes(1536)).toBe("1.50 KiB");
    expect(fmtBytes(512)).toBe("512 B");
    expect(fmtShape([8, 64])).toBe("[8 × 64]");
    expect(numel([8, 64])).toBe(512);
    expect(fmtCount(1_500_000)).toBe("1.50M");
    expect(fmtPct(12.345)).toBe("+12.3%");
  });
  it("formats axis ticks short", () => {
    expect([260000, 1_500_000, 0.0003, 2.5, 0, 12345].map(fmtAxis)).toEqual(["260k", "1.5M", "3e-4", "2.5", "0", "12.3k"]);
  });
  it("gives close axis ticks enough digits to tell them apart", () => {
    expect(axisLabels([1.385, 1.39, 1.395])).toEqual(["1.385", "1.39", "1.395"]);
    expect(axisLabels([1.0099, 1.01, 1.0101])).toEqual(["1.0099", "1.01", "1.0101"]);
    expect(axisLabels([0, 0.5, 1])).toEqual(["0", "0.5", "1"]);
    expect(axisLabels([0.00015, 0.0002, 0.00025])).toEqual(["1.5e-4", "2.0e-4", "2.5e-4"]);
  });
  it("labels log axes at thinned powers of ten", () => {
    expect(logAxisLabels([0.01, 0.02, 0.1, 1, 10], 6)).toEqual(["0.01", "", "0.1", "1", "10"]);
    const decades = Array.from({ length: 12 }, (_, i) => 10 ** (i - 13));
    expect(logAxisLabels(decades, 6).filter(Boolean)).toHaveLength(6);
  });
  it("formats relative times", () => {
    const now = Date.parse("2024-01-01T01:00:00Z");
    expect(fmtAgo("2024-01-01T00:59:30Z", now)).toBe("30s ago");
    expect(fmtAgo("2024-01-01T00:00:00Z", now)).toBe("1 h ago");
  });
});
