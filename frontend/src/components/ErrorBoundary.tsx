import { Component, type ErrorInfo, type ReactNode } from "react";

/** A page that throws while rendering shows a message, never a blank screen. `resetKey`
 * (the location) clears the error when the user navigates away. */
export class ErrorBoundary extends Component<{ children: ReactNode; resetKey: string }, { error: Error | null; key: string }> {
  state = { error: null as Error | null, key: this.props.resetKey };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  static getDerivedStateFromProps(props: { resetKey: string }, state: { error: Error | null; key: string }) {
    return props.resetKey !== state.key ? { error: null, key: props.resetKey } : null;
  }

  componentDidCatch(error: Error, info: ErrorInfo) {
    console.warn("page crashed", error, info.componentStack);
  }

  render() {
    const { error } = this.state;
    if (!error) return this.props.children;
    const stale = /dynamically imported module|Failed to fetch|Importing a module script failed/i.test(error.message);
    return (
      <div className="error" role="alert">
        <strong>{stale ? "The dashboard was updated" : "This page hit an error"}</strong>
        <div>{stale ? "Reload to get the new version." : error.message}</div>
        <button type="button" className="small" style={{ marginTop: 6 }} onClick={() => location.reload()}>
          Reload
        </button>
      </div>
    );
  }
}
