import { useCallback, useState } from "react";

/** Local state that follows `source` (a value read from the URL) but answers input at once.
 * React Router applies URL changes in a transition, so a checkbox, range or select bound
 * straight to the URL would flick back until the navigation lands; bound to the mirror it
 * does not. When `source` changes (the navigation landed, or back/forward), the mirror
 * takes its value. */
export function useMirror<T>(source: T): [T, (v: T) => void] {
  const key = JSON.stringify(source);
  const [state, setState] = useState({ key, value: source });
  let value = state.value;
  if (state.key !== key) {
    setState({ key, value: source });
    value = source;
  }
  const set = useCallback((v: T) => setState((s) => ({ key: s.key, value: v })), []);
  return [value, set];
}
