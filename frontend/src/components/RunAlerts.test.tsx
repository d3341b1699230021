// @vitest-environment happy-dom
import { cleanup, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mockApi, renderAt } from "../test/render";
import { AlertBadge, RunAlertsBanner } from "./RunAlerts";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const alert = (step: number, expert: number) => ({
  kind: "collapse", key: `collapse/layer1/expert${expert}`, step, time: "2026-12-02T13:40:00Z",
  message: `layer 1: expert ${expert} serves 100% of the tokens (threshold 50%) for 3 logged steps`,
  details: { layer: 1, expert }, action: "stop",
});

describe("run alerts", () => {
  it("lists a run's alerts in a banner with what the job did", async () => {
    mockApi({
      "GET /api/v1/runs/r1/alerts": () => ({
        body: { run: "r1", count: 2, kinds: { collapse: 1, dead_expert: 1 }, results: [
          { ...alert(20, 5), kind: "dead_expert", action: "none", message: "layer 1 expert 5: load share 0 below 0.0125" },
          alert(40, 3),
        ] },
      }),
    });
    renderAt("/runs/r1", "/runs/:id", <RunAlertsBanner runId="r1" />);
    const banner = await screen.findByRole("region", { name: "MoE health alerts" });
    expect(banner.textContent).toContain("2 MoE health alerts");
    expect(banner.textContent).toContain("Routing collapse: 1");
    const rows = banner.querySelectorAll("tbody tr");
    expect(Array.from(rows, (r) => r.getAttribute("data-alert"))).toEqual(["dead_expert", "collapse"]);
    expect(rows[1].textContent).toContain("expert 3 serves 100% of the tokens");
    expect(rows[1].textContent).toContain("job stopped");
    expect(rows[0].textContent).toContain("recorded");
  });

  it("shows a job's alert text as text, never as markup", async () => {
    const evil = '<img src=x onerror="window.__xss=1">';
    mockApi({
      "GET /api/v1/runs/r1/alerts": () => ({
        body: { run: "r1", count: 1, kinds: { collapse: 1 }, results: [{ ...alert(4, 3), message: evil }] },
      }),
    });
    renderAt("/runs/r1", "/runs/:id", <RunAlertsBanner runId="r1" />);
    const banner = await screen.findByRole("region", { name: "MoE health alerts" });
    expect(banner.textContent).toContain(evil);
    expect(banner.querySelector("img")).toBeNull();
  });

  it("shows nothing for a run without alerts", async () => {
    const calls = mockApi({ "GET /api/v1/runs/r1/alerts": () => ({ body: { run: "r1", count: 0, kinds: {}, results: [] } }) });
    const { container } = renderAt("/runs/r1", "/runs/:id", <RunAlertsBanner runId="r1" />);
    await vi.waitFor(() => expect(calls.length).toBe(1));
    expect(container.querySelector(".alert-banner")).toBeNull();
  });

  it("badges a runs-table row with its count and kinds", () => {
    render(<AlertBadge alerts={{ count: 3, kinds: { collapse: 2, dead_expert: 1 } }} />);
    const badge = screen.getByLabelText("3 alerts: Routing collapse: 2, Dead expert: 1");
    expect(badge.textContent).toBe("⚠ 3");
    cleanup();
    render(<AlertBadge alerts={{ count: 0, kinds: {} }} />);
    expect(screen.getByLabelText("no alerts").textContent).toBe("—");
  });
});
