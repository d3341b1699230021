// @vitest-environment happy-dom
import { cleanup, fireEvent, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { renderAt } from "../test/render";
import PlaygroundPage, { expertColor, parseSse } from "./Playground";

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const token = (index: number, text: string, experts: number[][]) => ({
  index,
  id: text.charCodeAt(0),
  text,
  routing: experts.map((e, i) => ({ layer: i + 1, experts: e, weights: e.length === 2 ? [0.7, 0.3] : e.map(() => 1 / e.length) })),
});

function sse(events: [string, unknown][]): string {
  return events.map(([k, d]) => `event: ${k}\ndata: ${JSON.stringify(d)}\n\n`).join("");
}

/** fetch answering the generate POST with an SSE body delivered in two chunks (split mid-event). */
function mockGenerate(body: string, status = 200) {
  const calls: { url: string; init?: RequestInit }[] = [];
  vi.stubGlobal("fetch", vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    calls.push({ url, init });
    if (url.endsWith("/auth/csrf")) {
      return new Response(JSON.stringify({ csrf_token: "tok" }), { headers: { "Content-Type": "application/json" } });
    }
    if (status !== 200) {
      return new Response(body, { status, headers: { "Content-Type": "application/json", "Retry-After": "42" } });
    }
    const cut = Math.floor(body.length / 2);
    const enc = new TextEncoder();
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(enc.encode(body.slice(0, cut)));
        c.enqueue(enc.encode(body.slice(cut)));
        c.close();
      },
    });
    return new Response(stream, { headers: { "Content-Type": "text/event-stream" } });
  }));
  return calls;
}

describe("parseSse", () => {
  it("keeps an unfinished event for the next chunk", () => {
    const text = sse([["token", token(0, "a", [[1, 2]])]]);
    const first = parseSse(text.slice(0, 20));
    expect(first.events).toEqual([]);
    const second = parseSse(first.rest + text.slice(20));
    expect(second.events).toHaveLength(1);
    expect(second.events[0].type).toBe("token");
    expect(second.rest).toBe("");
  });
});

describe("playground page", () => {
  it("streams tokens coloured by expert, shows routing on hover and the stats", async () => {
    const calls = mockGenerate(
      sse([
        ["start", { id: "r", repo: "ada/moe", commit: "c0ffee".padEnd(40, "0"), cold: false, load_s: 0, fetch_s: 0, queue_s: 0.01 }],
        ["token", token(0, "H", [[3, 5], [0, 7]])],
        ["token", token(1, "i", [[5, 3], [2, 7]])],
        ["token", token(2, "!", [[1, 4], [0, 2]])],
        ["done", { finish_reason: "length", text: "Hi!", prompt_tokens: 4, tokens: 3, time_to_first_token_s: 0.012, tokens_per_s: 250, elapsed_s: 0.02, kv_cache: true, watermark: null }],
      ]),
    );
    renderAt("/models/ada/moe/playground?ref=main", "/models/:ns/:name/playground", <PlaygroundPage />);
    const params = screen.getByRole("form", { name: "Generation parameters" });
    fireEvent.change(within(params).getByLabelText("Prompt"), { target: { value: "say " } });
    fireEvent.change(within(params).getByLabelText("Seed"), { target: { value: "7" } });
    fireEvent.change(within(params).getByLabelText("Top-k"), { target: { value: "4" } });
    fireEvent.submit(params);

    const stats = await screen.findByLabelText("Generation stats");
    expect(stats.textContent).toContain("3 tokens");
    expect(stats.textContent).toContain("250.0 tokens/s");
    expect(stats.textContent).toContain("first token 12 ms");

    const post = calls.find((c) => c.url.endsWith("/generate"))!;
    expect(post.url).toBe("/api/v1/repos/ada/moe/generate");
    const body = JSON.parse(String(post.init!.body));
    expect(body).toMatchObject({ ref: "main", prompt: "say ", seed: 7, top_k: 4, stream: true, watermark: null });
    expect((post.init!.headers as Record<string, string>)["X-CSRFToken"]).toBe("tok");

    const out = screen.getByTestId("generated");
    expect(out.textContent).toBe("say Hi!");
    const spans = out.querySelectorAll("[data-token]");
    expect(spans).toHaveLength(3);
    // Coloured by the first layer's top expert: tokens 0 and 1 chose 3 and 5 first.
    const colour = (el: Element) => (el as HTMLElement).style.borderBottom;
    expect(colour(spans[0])).toContain(normalise(expertColor(3)));
    expect(colour(spans[1])).toContain(normalise(expertColor(5)));

    fireEvent.mouseEnter(spans[1]);
    const detail = screen.getByRole("region", { name: "Token routing" });
    expect(within(detail).getByTestId("route-1-5").textContent).toContain("0.700");
    expect(within(detail).getByTestId("route-2-7").textContent).toContain("expert 7");

    // Colour by the second layer instead.
    fireEvent.change(screen.getByLabelText("Colour by layer"), { target: { value: "2" } });
    await waitFor(() => expect(colour(screen.getByTestId("generated").querySelectorAll("[data-token]")[1])).toContain(normalise(expertColor(2))));
  });

  it("shows the hub's refusal (rate limit) as an error", async () => {
    mockGenerate(JSON.stringify({ error: { code: "throttled", message: "At most 30 generation requests per 60 s; retry in 42 s." } }), 429);
    renderAt("/models/ada/moe/playground", "/models/:ns/:name/playground", <PlaygroundPage />);
    fireEvent.submit(screen.getByRole("form", { name: "Generation parameters" }));
    expect(await screen.findByText(/retry in 42 s/)).toBeTruthy();
    expect(screen.queryByTestId("generated")).toBeNull();
  });

  it("links the commit it generated from", async () => {
    mockGenerate(
      sse([
        ["start", { id: "r", repo: "ada/moe", commit: "beef".padEnd(40, "1"), cold: true, load_s: 0.2, fetch_s: 0.1, queue_s: 0 }],
        ["error", { code: "engine_failed", message: "the inference engine stopped answering" }],
      ]),
    );
    renderAt("/models/ada/moe/playground", "/models/:ns/:name/playground", <PlaygroundPage />);
    fireEvent.submit(screen.getByRole("form", { name: "Generation parameters" }));
    expect(await screen.findByText(/stopped answering/)).toBeTruthy();
    const link = screen.getByRole("link", { name: "beef111111" });
    expect(link.getAttribute("href")).toBe(`/models/ada/moe/commit/${"beef".padEnd(40, "1")}`);
    expect(screen.getByText(/cold start/)).toBeTruthy();
  });
});

/** happy-dom serialises hsl() colours as rgb(); compare after the same conversion. */
function normalise(css: string): string {
  const el = document.createElement("div");
  el.style.color = css;
  return el.style.color;
}
