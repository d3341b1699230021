import { Suspense } from "react";
import { Link, NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { useLogout, useWhoAmI } from "../api/hooks";
import { NAV } from "../nav";
import { ErrorBoundary } from "./ErrorBoundary";
import { Loading } from "./States";

function Logo() {
  return (
    <svg viewBox="0 0 16 16" aria-hidden="true">
      <rect width="16" height="16" rx="3" fill="var(--accent)" />
      <path d="M4 12V4l4 5 4-5v8" stroke="var(--panel)" strokeWidth="1.6" fill="none" />
    </svg>
  );
}

export function Layout() {
  const me = useWhoAmI();
  const logout = useLogout();
  const navigate = useNavigate();
  const loc = useLocation();
  return (
    <>
      <a href="#main" className="skip-link">Skip to content</a>
      <header className="topbar">
        <Link to="/" className="brand">
          <Logo />
          MoE Hub
        </Link>
        <nav className="topnav" aria-label="Sections">
          {NAV.map((n) => (
            <NavLink key={n.to} to={n.to}>
              {n.label}
            </NavLink>
          ))}
        </nav>
        <div className="spacer" />
        <a href="/api/docs" className="muted small">API</a>
        {me.data && (
          <>
            <NavLink to="/settings/tokens" className="small">Tokens</NavLink>
            <span className="muted small" aria-label="Signed in as">{me.data.username}</span>
            <button
              type="button"
              className="small"
              onClick={() => logout.mutate(undefined, { onSettled: () => navigate("/login") })}
            >
              Sign out
            </button>
          </>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        <ErrorBoundary resetKey={loc.pathname}>
          <Suspense fallback={<Loading />}>
            <Outlet />
          </Suspense>
        </ErrorBoundary>
      </main>
    </>
  );
}
