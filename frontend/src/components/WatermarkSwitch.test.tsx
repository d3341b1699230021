// @vitest-environment happy-dom
import { cleanup, fireEvent, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mockApi, renderAt } from "../test/render";
import { WatermarkSwitch } from "./WatermarkSwitch";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const setting = (enabled: boolean, can_edit: boolean) => ({
  enabled,
  strength: 0.3,
  delta: 3,
  can_edit,
  keys: [],
});

describe("WatermarkSwitch", () => {
  it("lets an admin switch the repo's watermark on", async () => {
    const calls = mockApi({
      "GET /api/v1/auth/csrf": () => ({ body: { csrf_token: "t" } }),
      "GET /api/v1/repos/ada/moe/watermark": () => ({ body: setting(false, true) }),
      "PATCH /api/v1/repos/ada/moe/watermark": () => ({ body: setting(true, true) }),
    });
    renderAt("/", "/", <WatermarkSwitch ns="ada" name="moe" />);
    const box = (await screen.findByRole("checkbox", { name: /watermark generated text/i })) as HTMLInputElement;
    expect(box.checked).toBe(false);
    fireEvent.click(box);
    await waitFor(() => expect(box.checked).toBe(true));
    const sent = calls.find((c) => c.method === "PATCH");
    expect(sent?.body).toEqual({ enabled: true });
  });

  it("shows readers the setting without letting them change it", async () => {
    mockApi({ "GET /api/v1/repos/ada/moe/watermark": () => ({ body: setting(true, false) }) });
    renderAt("/", "/", <WatermarkSwitch ns="ada" name="moe" />);
    const box = (await screen.findByRole("checkbox", { name: /watermark generated text/i })) as HTMLInputElement;
    expect(box.checked).toBe(true);
    expect(box.disabled).toBe(true);
  });
});
