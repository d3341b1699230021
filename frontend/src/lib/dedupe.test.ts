import { describe, expect, it } from "vitest";
import { commitStatsLine, repoStatsLine, savedFraction } from "./dedupe";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe("dedupe figures", () => {
  it("says how much of the logical size dedupe saves", () => {
    const s = { head_bytes: GiB, logical_bytes: 3.1 * GiB, stored_bytes: 1.1 * GiB, dedupe_ratio: 2.82, commits: 3 };
    expect(savedFraction(s)).toBeCloseTo(1 - 1.1 / 3.1);
    expect(repoStatsLine(s)).toBe("3 commits, 3.10 GiB logical, 1.10 GiB stored — dedupe saves 65%");
  });

  it("says nothing is stored instead of dividing by zero", () => {
    const s = { head_bytes: 0, logical_bytes: 0, stored_bytes: 0, dedupe_ratio: null, commits: 1 };
    expect(savedFraction(s)).toBeNull();
    expect(repoStatsLine(s)).toBe("1 commit, nothing stored yet");
  });

  it("gives a commit's new and reused bytes", () => {
    expect(commitStatsLine({ files: 2, bytes: 1050 * MiB, new_bytes: 12.4 * MiB, reused_bytes: 1.02 * GiB })).toBe("12.4 MiB new, 1.02 GiB reused");
    expect(commitStatsLine({ files: 1, bytes: 4096, new_bytes: 4096, reused_bytes: 0 })).toBe("4.00 KiB new");
    expect(commitStatsLine({ files: 0, bytes: 0, new_bytes: 0, reused_bytes: 0 })).toBe("no bytes");
  });
});
