// @vitest-environment happy-dom
import { act, cleanup, render, screen } from "@testing-library/react";
import { useState } from "react";
import { afterEach, describe, expect, it } from "vitest";
import { useMirror } from "./useMirror";

afterEach(cleanup);

let setSource: (v: number) => void = () => undefined;
let setLocal: (v: number) => void = () => undefined;
function Probe() {
  const [source, s] = useState(1);
  setSource = s;
  const [value, set] = useMirror(source);
  setLocal = set;
  return <p data-testid="v">{value}</p>;
}

describe("useMirror", () => {
  it("answers local changes at once and follows the source when it moves", () => {
    render(<Probe />);
    expect(screen.getByTestId("v").textContent).toBe("1");
    act(() => setLocal(2));
    expect(screen.getByTestId("v").textContent).toBe("2");
    act(() => setSource(2));
    expect(screen.getByTestId("v").textContent).toBe("2");
    act(() => setSource(5));
    expect(screen.getByTestId("v").textContent).toBe("5");
  });
});
