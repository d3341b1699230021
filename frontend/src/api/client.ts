/** The one way the dashboard talks to the hub: same-origin fetch with the session cookie,
 * the CSRF header on writes, and every failure turned into an ApiError carrying the hub's
 * `{"error": {code, message, details}}` body. */

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const API = "/api/v1";

export function getCookie(name: string): string | null {
  for (const part of document.cookie.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return null;
}

let csrfToken: string | null = null;

/** Remember the token /auth/login returned (the cookie carries it too). */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

async function ensureCsrf(): Promise<string> {
  const fromCookie = getCookie("csrftoken");
  if (fromCookie) return fromCookie;
  if (csrfToken) return csrfToken;
  const r = await fetch(`${API}/auth/csrf`, { credentials: "same-origin" });
  const body = (await r.json()) as { csrf_token: string };
  csrfToken = body.csrf_token;
  return csrfToken;
}

/** Query string from an object; undefined/null/"" values are left out. */
export function qs(params: Record<string, string | number | boolean | null | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : "";
}

export async function errorFrom(resp: Response): Promise<ApiError> {
  let code = `http_${resp.status}`;
  let message = resp.statusText || `HTTP ${resp.status}`;
  let details: unknown;
  try {
    const body = (await resp.json()) as { error?: { code?: string; message?: string; details?: unknown } };
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      details = body.error.details;
    }
  } catch {
    // not JSON (a proxy's error page): keep the status line
  }
  return new ApiError(resp.status, code, message, details);
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();
/** Called when any request answers 401 (the session expired): the app goes to sign-in. */
export function onUnauthorized(fn: Listener): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

export interface RequestOptions {
  method?: "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
  body?: unknown;
  signal?: AbortSignal;
  /** Do not broadcast a 401 (sign-in itself, whoami on start). */
  quiet401?: boolean;
}

export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const method = opts.method ?? "GET";
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = await ensureCsrf();
  let resp: Response;
  try {
    resp = await fetch(`${API}${path}`, {
      method,
      headers,
      credentials: "same-origin",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
    });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "network_error", "The hub is unreachable. Check your connection and retry.");
  }
  if (!resp.ok) {
    const err = await errorFrom(resp);
    if (resp.status === 401 && !opts.quiet401) unauthorizedListeners.forEach((fn) => fn());
    throw err;
  }
  if (resp.status === 204) return undefined as T;
  const type = resp.headers.get("Content-Type") ?? "";
  if (type.includes("application/json")) return (await resp.json()) as T;
  return (await resp.text()) as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => request<T>(path, { signal });
export const post = <T>(path: string, body?: unknown) => request<T>(path, { method: "POST", body: body ?? {} });
export const patch = <T>(path: string, body: unknown) => request<T>(path, { method: "PATCH", body });
export const del = <T>(path: string) => request<T>(path, { method: "DELETE" });

/** "ns/name" path segments, each encoded. */
export function repoPath(ns: string, name: string): string {
  return `/repos/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
}

/** A file path inside a repo: keep the slashes, encode each segment. */
export function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}
