import { describe, expect, it } from "vitest";
import type { JsonSchema } from "../../api/types";
import { flameDepth, flameKey, layoutFlame, nodeAt, parseFolded, type FlameKeyState } from "./flame";
import { fmtMicros, fmtRatio, fmtSeconds, speedscopeUrl } from "./format";
import { configErrorsFrom, parseConfig, validateAgainstSchema } from "./jsonSchema";
import { mergeLines, readEvents } from "./LogTail";
import { moduleShares, sortOps } from "./ProfilePage";

const schema: JsonSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    model: {
      type: "object",
      additionalProperties: false,
      properties: {
        top_k: { type: "integer", minimum: 2, maximum: 8 },
        router_score: { type: "string", enum: ["softmax", "sigmoid"] },
        route_scale: { type: "number", exclusiveMinimum: 0 },
        capacity_factor: { anyOf: [{ type: "number", exclusiveMinimum: 0, maximum: 64 }, { type: "null" }] },
        expert_hidden: { oneOf: [{ type: "integer", minimum: 1 }, { type: "array", items: { type: "integer", minimum: 1 }, minItems: 1 }] },
      },
    },
    train: { type: "object", additionalProperties: false, properties: { steps: { type: "integer", minimum: 1 } } },
  },
};

describe("config schema check", () => {
  it("accepts a partial valid config", () => {
    expect(validateAgainstSchema({ model: { top_k: 4, capacity_factor: null, expert_hidden: [8, 8] } }, schema)).toEqual([]);
  });

  it("lists every problem with the hub's wording", () => {
    const errs = validateAgainstSchema(
      { model: { top_k: 9, router_score: "relu", route_scale: 0, capacity_factor: 100, expert_hidden: [0], top_kk: 1 }, train: { steps: 1.5 } },
      schema,
    );
    expect(errs).toEqual([
      { path: "model.top_k", message: "must be between 2 and 8" },
      { path: "model.router_score", message: "must be one of softmax, sigmoid" },
      { path: "model.route_scale", message: "must be > 0" },
      { path: "model.capacity_factor", message: "must be > 0 and ≤ 64" },
      { path: "model.expert_hidden[0]", message: "must be ≥ 1" },
      { path: "model.top_kk", message: "unknown key (did you mean 'top_k'?)" },
      { path: "train.steps", message: "must be an integer" },
    ]);
  });

  it("reports JSON syntax errors with a position, and non-objects", () => {
    const bad = parseConfig('{\n  "model": {,}\n}');
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error.message).toMatch(/^invalid JSON/);
    expect(parseConfig("[1]")).toEqual({ ok: false, error: { path: "", message: "the config must be a JSON object" } });
    expect(parseConfig("  ")).toEqual({ ok: true, value: {} });
  });

  it("reads invalid_config details", () => {
    expect(configErrorsFrom({ errors: [{ path: "model.top_k", message: "must be ≤ n_experts (4)" }] })).toEqual([{ path: "model.top_k", message: "must be ≤ n_experts (4)" }]);
    expect(configErrorsFrom(null)).toEqual([]);
  });
});

describe("flame graph", () => {
  const folded = "train_step 10\ntrain_step;aten::mm 30\ntrain_step;attn;aten::mm 20\ntrain_step;attn 5\naten::to 5\nbad line\n";
  it("builds totals and self times from folded stacks", () => {
    const root = parseFolded(folded);
    expect(root.total).toBe(70);
    const step = root.children[0];
    expect(step).toMatchObject({ name: "train_step", total: 65, self: 10 });
    expect(step.children.map((c) => [c.name, c.total])).toEqual([["aten::mm", 30], ["attn", 25]]);
    expect(nodeAt(root, ["train_step", "attn"])).toMatchObject({ self: 5, total: 25 });
    expect(flameDepth(root)).toBe(4);
  });

  it("lays out rectangles proportional to time, zoomable", () => {
    const root = parseFolded(folded);
    const rects = layoutFlame(root);
    const attn = rects.find((r) => r.node.name === "attn")!;
    expect(attn.depth).toBe(2);
    expect(attn.x).toBeCloseTo(30 / 70);
    expect(attn.w).toBeCloseTo(25 / 70);
    const zoomed = layoutFlame(nodeAt(root, ["train_step", "attn"])!, 0, ["train_step", "attn"]);
    expect(zoomed[0]).toMatchObject({ depth: 0, x: 0, w: 1, path: ["train_step", "attn"] });
    expect(zoomed[1].w).toBeCloseTo(0.8);
  });
});

describe("flame graph keyboard", () => {
  const folded = "train_step 10\ntrain_step;aten::mm 30\ntrain_step;attn;aten::mm 20\ntrain_step;attn 5\naten::to 5\n";
  const root = parseFolded(folded);
  const rectsFor = (zoom: string[]) => layoutFlame(nodeAt(root, zoom)!, 0, zoom);
  /** Press keys from a state, laying out the rectangles for each state's zoom as the component does. */
  const press = (keys: string[], from: FlameKeyState = { sel: null, zoom: [] }) =>
    keys.reduce((s, k) => flameKey(k, rectsFor(s.zoom), s) ?? s, from);

  it("selects the root on the first arrow, then walks down, across and up", () => {
    expect(press(["ArrowRight"])).toEqual({ sel: [], zoom: [] });
    expect(press(["ArrowDown", "ArrowDown"]).sel).toEqual(["train_step"]);
    expect(press(["ArrowDown", "ArrowDown", "ArrowDown"]).sel).toEqual(["train_step", "aten::mm"]);
    expect(press(["ArrowDown", "ArrowDown", "ArrowDown", "ArrowRight"]).sel).toEqual(["train_step", "attn"]);
    expect(press(["ArrowDown", "ArrowDown", "ArrowDown", "ArrowRight", "ArrowDown"]).sel).toEqual(["train_step", "attn", "aten::mm"]);
    expect(press(["ArrowDown", "ArrowDown", "ArrowDown", "ArrowRight", "ArrowUp", "ArrowUp"]).sel).toEqual([]);
    // ← → stop at the ends of a row; ↓ on a leaf and ↑ on the root stay put
    expect(press(["ArrowDown", "ArrowDown", "ArrowRight", "ArrowRight", "ArrowRight"]).sel).toEqual(["aten::to"]);
    expect(press(["ArrowDown", "ArrowDown", "ArrowLeft"]).sel).toEqual(["train_step"]);
    expect(press(["ArrowDown", "ArrowDown", "ArrowRight", "ArrowDown"]).sel).toEqual(["aten::to"]);
    expect(press(["ArrowDown", "ArrowUp"]).sel).toEqual([]);
    expect(press(["Home"], { sel: ["train_step", "attn"], zoom: [] }).sel).toEqual([]);
  });

  it("moves across parents at the same depth", () => {
    const two = parseFolded("a;x 5\nb;y 5\n");
    const s = flameKey("ArrowRight", layoutFlame(two), { sel: ["a", "x"], zoom: [] });
    expect(s?.sel).toEqual(["b", "y"]);
  });

  it("zooms in with Enter and out with Escape or Backspace", () => {
    const zoomed = press(["ArrowDown", "ArrowDown", "ArrowDown", "ArrowRight", "Enter"]);
    expect(zoomed).toEqual({ sel: ["train_step", "attn"], zoom: ["train_step", "attn"] });
    // the zoomed frame is now the root of the drawing: ↓ goes to its child, ↑ stays
    expect(press(["ArrowDown"], zoomed).sel).toEqual(["train_step", "attn", "aten::mm"]);
    expect(press(["ArrowUp"], zoomed).sel).toEqual(["train_step", "attn"]);
    expect(press(["Escape"], zoomed)).toEqual({ sel: ["train_step", "attn"], zoom: ["train_step"] });
    expect(press(["Backspace", "Backspace"], zoomed)).toEqual({ sel: ["train_step", "attn"], zoom: [] });
    // Enter on the drawn root zooms out, like a click on it
    expect(press(["Enter"], zoomed).zoom).toEqual(["train_step"]);
    expect(press([" "], { sel: ["train_step"], zoom: [] }).zoom).toEqual(["train_step"]);
  });

  it("leaves other keys to the browser", () => {
    const rects = rectsFor([]);
    expect(flameKey("Tab", rects, { sel: [], zoom: [] })).toBeNull();
    expect(flameKey("Backspace", rects, { sel: [], zoom: [] })).toBeNull();
    expect(flameKey("Escape", rects, { sel: null, zoom: [] })).toBeNull();
    expect(flameKey("Escape", rects, { sel: ["train_step"], zoom: [] })).toEqual({ sel: null, zoom: [] });
    expect(flameKey("ArrowDown", [], { sel: null, zoom: [] })).toBeNull();
    // a selection that is no longer drawn (zoomed away) restarts at the root
    expect(flameKey("ArrowDown", rectsFor(["train_step", "attn"]), { sel: ["aten::to"], zoom: ["train_step", "attn"] })?.sel).toEqual(["train_step", "attn"]);
  });
});

describe("jobs helpers", () => {
  it("opens an artifact in the local speedscope by a same-origin path", () => {
    const u = speedscopeUrl("j1", "profile/stacks.folded", "profile j1 · ada/moe@abc&d=1");
    expect(u.startsWith("/speedscope/index.html#")).toBe(true);
    // speedscope splits the fragment on & and =, then decodes each value
    const params = Object.fromEntries(u.split("#")[1].split("&").map((kv) => kv.split("=")).map(([k, v]) => [k, decodeURIComponent(v)]));
    expect(params).toEqual({ profileURL: "/api/v1/jobs/j1/artifacts/profile/stacks.folded", title: "profile j1 · ada/moe@abc&d=1" });
  });

  it("merges log lines in order without duplicates", () => {
    const l = (seq: number) => ({ seq, time: 0, stream: "stdout", line: `l${seq}` });
    expect(mergeLines([l(1), l(2)], [l(3)]).map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(mergeLines([l(1), l(2)], [l(2), l(3), l(0)]).map((x) => x.seq)).toEqual([0, 1, 2, 3]);
  });

  it("reads Server-Sent Events split across chunks, until `end`", async () => {
    const chunks = ['id: 1\nevent: line\ndata: {"seq":1', ',"line":"a"}\n\n: keep-alive\n\n', 'event: line\r\ndata: {"seq":2,"line":"b"}\r\n\r\nevent: end\ndata: {"status":"succeeded"}\n\n'];
    const enc = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({ start(c) { chunks.forEach((x) => c.enqueue(enc.encode(x))); c.close(); } });
    const got: [string, string][] = [];
    expect(await readEvents(body, (e, d) => got.push([e, d]))).toBe("end");
    expect(got).toEqual([["line", '{"seq":1,"line":"a"}'], ["line", '{"seq":2,"line":"b"}']]);
  });

  it("reads module shares from the artifact or a flat map", () => {
    expect(moduleShares({ categories: ["a", "b"], cpu_share: { a: 0.25, b: 0.75 }, device_share: { a: 0, b: 0 } })).toEqual({ device: false, rows: [["b", 0.75], ["a", 0.25]] });
    expect(moduleShares({ experts: 0.6, attention: 0.4 }).rows[0]).toEqual(["experts", 0.6]);
  });

  it("sorts with missing values last", () => {
    expect(sortOps([{ v: 2 }, { v: null }, { v: 5 }], (r) => r.v, "desc").map((r) => r.v)).toEqual([5, 2, null]);
    expect(sortOps([{ v: 2 }, { v: null }, { v: 5 }], (r) => r.v, "asc").map((r) => r.v)).toEqual([2, 5, null]);
  });

  it("formats durations, micros and ratios", () => {
    expect(fmtSeconds(3725)).toBe("1h 02m");
    expect(fmtSeconds(65)).toBe("1m 05s");
    expect(fmtMicros(226623.9)).toBe("227 ms");
    expect(fmtRatio(1)).toBe("1.00×");
  });
});
