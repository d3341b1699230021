import { useState, type FormEvent } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { setCsrfToken } from "../api/client";
import { useLogin } from "../api/hooks";
import { ErrorMessage } from "../components/States";
import { useTitle } from "../lib/useTitle";

/** Only same-site paths are followed after sign-in. The URL parser decides, not string
 * prefixes: it reads "/\evil.example" and "/\t/evil.example" as "//evil.example". */
export function safeNext(next: string | null): string {
  const fallback = "/projects";
  if (!next || !next.startsWith("/")) return fallback;
  const here = "http://hub.invalid";
  let u: URL;
  try {
    u = new URL(next, here);
  } catch {
    return fallback;
  }
  if (u.origin !== here || u.pathname === "/login" || u.pathname.startsWith("/login/")) return fallback;
  return u.pathname + u.search + u.hash;
}

export function SignInPage() {
  useTitle("Sign in");
  const [params] = useSearchParams();
  const next = safeNext(params.get("next"));
  const login = useLogin();
  const navigate = useNavigate();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");

  const submit = (e: FormEvent) => {
    e.preventDefault();
    login.mutate(
      { username, password },
      {
        onSuccess: (r) => {
          setCsrfToken(r.csrf_token);
          navigate(next, { replace: true });
        },
      },
    );
  };
  return (
    <main className="signin" id="main">
      <div className="panel">
        <h1>Sign in to MoE Hub</h1>
        <p className="muted">Use your hub account. Scripts and the SDK use API tokens instead; create them after signing in.</p>
        <form onSubmit={submit} aria-describedby={login.error ? "signin-error" : undefined}>
          <div className="field">
            <label htmlFor="username">Username</label>
            <input id="username" type="text" autoComplete="username" required autoFocus value={username} onChange={(e) => setUsername(e.target.value)} />
          </div>
          <div className="field">
            <label htmlFor="password">Password</label>
            <input id="password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
          </div>
          <div id="signin-error" aria-live="assertive">
            {login.error && <ErrorMessage error={login.error} title="Could not sign in" />}
          </div>
          <button type="submit" className="primary" disabled={login.isPending}>
            {login.isPending ? "Signing in…" : "Sign in"}
          </button>
        </form>
      </div>
    </main>
  );
}
