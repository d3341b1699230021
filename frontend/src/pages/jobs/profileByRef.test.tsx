// @vitest-environment happy-dom
import { cleanup, fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mockApi, renderAt } from "../../test/render";
import MemoryTab from "./MemoryTab";
import { CompareByRef } from "./ProfileByRef";
import { refSpec, sideProgress, type ProfileDiffSide } from "./profileApi";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const A = "a".repeat(40);
const B = "b".repeat(40);
const me = { username: "ann", token_scope: "session", namespaces: [{ name: "ann", role: "admin" }] };
const projects = { count: 1, results: [{ id: 1, namespace: "ann", name: "lab" }] };
const side = (spec: string, job: string, commit: string, status: ProfileDiffSide["status"], launched: boolean): ProfileDiffSide => ({ spec, job, commit, repo: "ann/moe", status, launched });

describe("refSpec", () => {
  it("keeps ns/repo@ref, takes a bare ref in this repo, a bare repo at main", () => {
    expect(refSpec(" ann/moe@v1 ", "x/y")).toBe("ann/moe@v1");
    expect(refSpec("abc123", "ann/moe")).toBe("ann/moe@abc123");
    expect(refSpec("bob/other", "ann/moe")).toBe("bob/other@main");
    expect(refSpec("", "ann/moe")).toBe("");
    expect(refSpec("abc", "")).toBe("abc");
  });
});

describe("sideProgress", () => {
  it("says profiling with steps while running, finished/reused/failed after", () => {
    const s = side("ann/moe@main", "j1", A, "queued", true);
    expect(sideProgress("B", s)).toBe(`profiling B ann/moe@${"a".repeat(12)}… (job j1: queued)`);
    expect(sideProgress("B", s, { id: "j1", status: "running", reason: "", progress: { step: 2, total: 3 } })).toBe(
      `profiling B ann/moe@${"a".repeat(12)}… (job j1: running 2/3)`,
    );
    expect(sideProgress("A", { ...s, status: "succeeded", launched: false })).toBe(`A ann/moe@${"a".repeat(12)}: profile j1 reused`);
    expect(sideProgress("A", s, { id: "j1", status: "failed", reason: "oom", progress: null })).toBe(`A ann/moe@${"a".repeat(12)}: profile j1 failed: oom`);
  });
});

describe("compare by commit", () => {
  it("asks again with the default config when neither commit has a profile, polls, then opens the diff", async () => {
    let tries = 0;
    let polls = 0;
    const calls = mockApi({
      "GET /api/v1/whoami": () => ({ body: me }),
      "GET /api/v1/projects": () => ({ body: projects }),
      "POST /api/v1/jobs/profile-diff": (_u, init) => {
        tries++;
        const body = JSON.parse(String(init?.body));
        if (!("config" in body)) return { status: 400, body: { error: { code: "profile_config_required", message: "no settings" } } };
        return { body: { a: side(body.a, "pa", A, "succeeded", false), b: side(body.b, "pb", B, "queued", true), ready: false } };
      },
      "GET /api/v1/jobs/pa": () => ({ body: { id: "pa", status: "succeeded", reason: "", progress: null } }),
      "GET /api/v1/jobs/pb": () => {
        polls++;
        return { body: { id: "pb", status: polls > 1 ? "succeeded" : "running", reason: "", progress: { step: 1, total: 3 } } };
      },
    });
    renderAt("/x", "/x", <CompareByRef a={`ann/moe@${A}`} repo="ann/moe" />);
    await waitFor(() => expect((screen.getByLabelText(/in project/) as HTMLInputElement).value).toBe("ann/lab"));
    fireEvent.change(screen.getByLabelText("Commit B"), { target: { value: "v2" } });
    fireEvent.click(screen.getByRole("button", { name: "Compare by commit" }));
    expect(await screen.findByText(/profiling B ann\/moe@bbbbbbbbbbbb… \(job pb: running 1\/3\)/)).toBeTruthy();
    const posts = calls.filter((c) => c.method === "POST");
    expect(tries).toBe(2);
    expect(posts[0].body).toMatchObject({ a: `ann/moe@${A}`, b: "ann/moe@v2", project: "ann/lab" });
    expect(posts[1].body).toMatchObject({ config: {} });
    await waitFor(() => expect(screen.getByTestId("location").textContent).toBe("/profiles/diff?a=pa&b=pb"), { timeout: 5000 });
  });

  it("shows an unknown ref and differing settings as messages", async () => {
    let n = 0;
    mockApi({
      "GET /api/v1/whoami": () => ({ body: me }),
      "GET /api/v1/projects": () => ({ body: projects }),
      "POST /api/v1/jobs/profile-diff": () =>
        ++n === 1
          ? { status: 404, body: { error: { code: "ref_not_found", message: "Ref nope not found in ann/moe." } } }
          : { status: 409, body: { error: { code: "profile_settings_differ", message: "Jobs x and y were profiled with different settings" } } },
    });
    renderAt("/x", "/x", <CompareByRef repo="ann/moe" />);
    fireEvent.change(screen.getByLabelText("Commit A"), { target: { value: "main" } });
    fireEvent.change(screen.getByLabelText("Commit B"), { target: { value: "nope" } });
    fireEvent.click(screen.getByRole("button", { name: "Compare by commit" }));
    expect(await screen.findByText("Ref nope not found in ann/moe.")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Compare by commit" }));
    expect(await screen.findByText(/profiled with different settings/)).toBeTruthy();
    expect(screen.getByTestId("location").textContent).toBe("/x");
  });
});

describe("memory tab", () => {
  it("launches a profile of this commit with the default config and shows its memory when it ends", async () => {
    let polls = 0;
    const calls = mockApi({
      "GET /api/v1/whoami": () => ({ body: me }),
      "GET /api/v1/projects": () => ({ body: projects }),
      "GET /api/v1/jobs": (u) => (u.pathname === "/api/v1/jobs" ? { body: { count: 0, results: [] } } : { status: 404, body: {} }),
      "POST /api/v1/jobs": () => ({ body: { id: "np", status: "queued", reason: "", progress: null } }),
      "GET /api/v1/jobs/np": () => {
        polls++;
        return { body: { id: "np", status: polls > 1 ? "succeeded" : "running", reason: "", progress: { step: 2, total: 4 } } };
      },
      "GET /api/v1/jobs/np/profile/memory": () => ({ status: 409, body: { error: { code: "x", message: "memory of np asked" } } }),
    });
    renderAt("/x", "/x", <MemoryTab target={{ ns: "ann", name: "moe", sha: A }} />);
    const button = await screen.findByRole("button", { name: "Profile this commit" });
    await waitFor(() => expect((button as HTMLButtonElement).disabled).toBe(false));
    fireEvent.click(button);
    const status = await screen.findByRole("status");
    expect(status.textContent).toMatch(/^Profile job np: (queued|running 2\/4)$/);
    await waitFor(() => expect(status.textContent).toBe("Profile job np: running 2/4"), { timeout: 5000 });
    const launch = calls.find((c) => c.method === "POST")!;
    expect(launch.body).toMatchObject({ project: "ann/lab", kind: "profile", config: {}, base: `ann/moe@${A}` });
    // Finished: the tab shows that job's memory view.
    expect(await screen.findByText("memory of np asked", {}, { timeout: 5000 })).toBeTruthy();
    expect(screen.getByRole("link", { name: "np" }).getAttribute("href")).toBe("/profiles/np");
  });

  it("offers no launch to a visitor", async () => {
    mockApi({
      "GET /api/v1/whoami": () => ({ status: 401, body: { error: { code: "not_authenticated", message: "sign in" } } }),
      "GET /api/v1/projects": () => ({ body: { count: 0, results: [] } }),
      "GET /api/v1/jobs": () => ({ body: { count: 0, results: [] } }),
    });
    renderAt("/x", "/x", <MemoryTab target={{ ns: "ann", name: "moe", sha: A }} />);
    expect(await screen.findByText(/No finished profile of this commit/)).toBeTruthy();
    expect(screen.queryByRole("button", { name: "Profile this commit" })).toBeNull();
  });
});
