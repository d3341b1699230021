import { describe, expect, it } from "vitest";
import { diffStatus, expandFor, fold, moduleGroups, openTree, search, toggleGroup, type GraphDoc } from "./graphModel";

const doc: GraphDoc = {
  params_total: 30,
  modules: [
    { path: "", type: "Logits", params: 0 },
    { path: "wte", type: "Embedding", params: 10 },
    { path: "blocks.0", type: "Block", params: 0 },
    { path: "blocks.0.ffn", type: "MoE", params: 0 },
    { path: "blocks.0.ffn.router", type: "Router", params: 8 },
    { path: "blocks.0.ffn.experts", type: "ExpertBank", params: 12 },
    { path: "blocks.0.ffn.expert.1", type: "ExpertView", params: 0, view_params: 6 },
  ],
  nodes: [
    { id: "p_wte", op: "placeholder", kind: "parameter", target: "wte.weight", module: "wte", params: 10 },
    { id: "p_router", op: "placeholder", kind: "parameter", target: "blocks.0.ffn.router.weight", module: "blocks.0.ffn.router", params: 8 },
    { id: "idx", op: "placeholder", kind: "input", target: "idx", module: "" },
    { id: "embedding", op: "call_function", kind: "op", target: "aten.embedding.default", module: "wte", flops: 0 },
    { id: "linear", op: "call_function", kind: "op", target: "aten.linear.default", module: "blocks.0.ffn.router", flops: 100 },
    { id: "topk", op: "call_function", kind: "op", target: "aten.topk.default", module: "blocks.0.ffn.router" },
    { id: "getitem", op: "call_function", kind: "op", target: "<built-in function getitem>", module: "blocks.0.ffn.router" },
    { id: "scatter", op: "call_function", kind: "op", target: "aten.scatter.src", module: "blocks.0.ffn.dispatch" },
    { id: "mm", op: "call_function", kind: "op", target: "aten.matmul.default", module: "blocks.0.ffn.expert.1", flops: 50 },
    { id: "output", op: "output", kind: "output", target: "output", module: "" },
  ],
  edges: [
    ["p_wte", "embedding"], ["idx", "embedding"], ["embedding", "linear"], ["p_router", "linear"],
    ["linear", "topk"], ["topk", "getitem"], ["getitem", "scatter"], ["scatter", "mm"], ["mm", "output"],
  ],
};

describe("moduleGroups", () => {
  it("joins a numeric index to its list's name", () => {
    expect(moduleGroups("blocks.1.ffn.expert.3")).toEqual(["blocks.1", "blocks.1.ffn", "blocks.1.ffn.expert.3"]);
    expect(moduleGroups("lm_head")).toEqual(["lm_head"]);
    expect(moduleGroups("")).toEqual([]);
  });
});

describe("fold", () => {
  it("folds everything into top-level groups, with params and flops summed", () => {
    const g = fold(doc, new Set());
    const ids = g.items.map((i) => i.id).sort();
    expect(ids).toEqual(["group:blocks.0", "group:wte", "idx", "output"]);
    const block = g.items.find((i) => i.id === "group:blocks.0")!;
    expect(block.params).toBe(20);
    expect(block.flops).toBe(150);
    expect(block.nodes).toBe(5);
    expect(g.edges).toEqual([["idx", "group:wte"], ["group:wte", "group:blocks.0"], ["group:blocks.0", "output"]]);
  });

  it("expanding the MoE layer shows router, dispatch and each expert; getitem joins its source", () => {
    const g = fold(doc, new Set(["blocks.0", "blocks.0.ffn"]));
    const ids = g.items.map((i) => i.id);
    expect(ids).toContain("group:blocks.0.ffn.router");
    expect(ids).toContain("group:blocks.0.ffn.dispatch");
    expect(ids).toContain("group:blocks.0.ffn.expert.1");
    expect(g.items.find((i) => i.id === "group:blocks.0.ffn.expert.1")!.params).toBe(6); // its slice
    expect(g.items.find((i) => i.id === "group:blocks.0.ffn.router")!.params).toBe(8);
    expect(g.edges).toContainEqual(["group:blocks.0.ffn.router", "group:blocks.0.ffn.dispatch"]);
    const open = fold(doc, new Set(["blocks.0", "blocks.0.ffn", "blocks.0.ffn.router", "blocks.0.ffn.dispatch"]));
    expect(open.items.map((i) => i.id)).not.toContain("getitem");
    expect(open.edges).toContainEqual(["topk", "scatter"]);
  });

  it("colours diff status onto nodes and the groups holding them", () => {
    const st = diffStatus({ added: [{ id: "mm" }], removed: [], changed: [{ b_id: "topk", a_id: "topk", module: "", target: "", changes: [] }] });
    const g = fold(doc, new Set(["blocks.0", "blocks.0.ffn"]), st);
    const by = new Map(g.items.map((i) => [i.id, i.status]));
    expect(by.get("group:blocks.0.ffn.expert.1")).toBe("added");
    expect(by.get("group:blocks.0.ffn.router")).toBe("changed");
    expect(by.get("group:blocks.0.ffn.dispatch")).toBeUndefined();
    const top = fold(doc, new Set(), st);
    expect(top.items.find((i) => i.id === "group:blocks.0")!.status).toBe("changed");
  });
});

describe("search, expandFor and toggleGroup", () => {
  it("finds by op and opens the groups down to the node", () => {
    const [hit] = search(doc, "topk");
    expect(hit.id).toBe("topk");
    const ex = expandFor(hit, new Set());
    expect(fold(doc, ex).items.map((i) => i.id)).toContain("topk");
    expect(search(doc, "router.weight")).toEqual([]); // parameters are not drawn
  });
  it("collapsing a group collapses what is inside it", () => {
    const ex = toggleGroup("blocks.0", new Set(["blocks.0", "blocks.0.ffn", "wte"]));
    expect([...ex]).toEqual(["wte"]);
  });
});

describe("openTree", () => {
  it("nests drawn items in the open groups that hold them", () => {
    const ex = new Set(["blocks.0", "blocks.0.ffn"]);
    const g = fold(doc, ex);
    const t = openTree(g, ex);
    expect(t.open).toEqual(["blocks.0", "blocks.0.ffn"]);
    expect(t.parent.get("group:blocks.0.ffn.router")).toBe("open:blocks.0.ffn");
    expect(t.parent.get("open:blocks.0.ffn")).toBe("open:blocks.0");
    expect(t.parent.get("open:blocks.0")).toBe("");
    expect(t.parent.get("idx")).toBe("");
    expect(openTree(fold(doc, new Set()), new Set()).open).toEqual([]);
  });
});
