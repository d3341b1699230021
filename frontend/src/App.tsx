import { lazy, useEffect, useState, type ReactNode } from "react";
import { QueryClient, QueryClientProvider, useQueryClient } from "@tanstack/react-query";
import { runQuery, runSearchQuery } from "./api/hooks";
import { parseRunsState } from "./lib/runsQuery";
import RunsPage from "./pages/Runs";
import { BrowserRouter, Navigate, Route, Routes, useLocation, useNavigate } from "react-router";
import { ApiError, onUnauthorized } from "./api/client";
import { useWhoAmI } from "./api/hooks";
import { Layout } from "./components/Layout";
import { ErrorMessage } from "./components/States";
import { SignInPage } from "./pages/SignIn";
import { NotFoundPage } from "./pages/NotFound";
import { ProjectsPage } from "./pages/Projects";
import { ModelsPage } from "./pages/Models";
import { TokensPage } from "./pages/Tokens";

// Heavy pages (charts, graphs) are split out of the first load; the runs table, the page most
// visits start on, is in it.
const HomePage = lazy(() => import("./pages/Home"));
const RunPage = lazy(() => import("./pages/Run"));
const ComparePage = lazy(() => import("./pages/Compare"));
const RepoPage = lazy(() => import("./pages/Repo"));
const CommitPage = lazy(() => import("./pages/Commit"));
const DiffPage = lazy(() => import("./pages/Diff"));
const PlaygroundPage = lazy(() => import("./pages/Playground"));
const JobsPage = lazy(() => import("./pages/jobs/JobsPage"));
const JobLaunchPage = lazy(() => import("./pages/jobs/JobLaunchPage"));
const JobPage = lazy(() => import("./pages/jobs/JobPage"));
const ProfilePage = lazy(() => import("./pages/jobs/ProfilePage"));
const ProfileDiffPage = lazy(() => import("./pages/jobs/ProfileDiffPage"));
const InspectorPage = lazy(() => import("./pages/inspector/Inspector"));

function makeClient() {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 30_000,
        refetchOnWindowFocus: false,
        retry: (n, e) => !(e instanceof ApiError && e.status >= 400 && e.status < 500) && n < 2,
      },
    },
  });
}

/** Start the first page's main request while the app boots (as a route loader would), so it
 * runs in parallel with rendering and the lazy page chunk. Keys match the pages' queries. */
export function prefetchForLocation(qc: QueryClient, pathname: string, search: string): void {
  const runs = /^\/projects\/([^/]+)\/([^/]+)\/?$/.exec(pathname);
  if (runs) {
    const st = parseRunsState(new URLSearchParams(search));
    const a = { ns: decodeURIComponent(runs[1]), name: decodeURIComponent(runs[2]), q: st.q, sort: st.sort, offset: st.offset, size: st.size };
    void qc.prefetchQuery(runSearchQuery(a));
    return;
  }
  const run = /^\/runs\/([^/]+)\/?$/.exec(pathname);
  if (run) {
    void qc.prefetchQuery(runQuery(decodeURIComponent(run[1])));
    void import("./pages/Run"); // the page's chunk, in parallel with the run
  }
}

/** Pages behind sign-in: an expired session (any 401) sends the user to sign in and back. */
function RequireAuth({ children }: { children: ReactNode }) {
  const me = useWhoAmI();
  const loc = useLocation();
  const navigate = useNavigate();
  const qc = useQueryClient();
  useEffect(
    () =>
      onUnauthorized(() => {
        qc.removeQueries({ queryKey: ["whoami"] });
        navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
      }),
    [navigate, qc],
  );
  // While whoami is in flight the page renders and starts its own requests (one round trip
  // saved); a 401 from any of them redirects to sign-in.
  if (me.error instanceof ApiError && me.error.status === 401) {
    return <Navigate to={`/login?next=${encodeURIComponent(loc.pathname + loc.search)}`} replace />;
  }
  if (me.error) return <main><ErrorMessage error={me.error} title="Cannot reach the hub" retry={() => void me.refetch()} /></main>;
  return <>{children}</>;
}

export function AppRoutes() {
  return (
    <Routes>
      <Route path="/login" element={<SignInPage />} />
      <Route element={<RequireAuth><Layout /></RequireAuth>}>
        <Route index element={<HomePage />} />
        <Route path="projects" element={<ProjectsPage />} />
        <Route path="projects/:ns/:name" element={<RunsPage />} />
        <Route path="projects/:ns/:name/compare" element={<ComparePage />} />
        <Route path="runs/:id" element={<RunPage />} />
        <Route path="models" element={<ModelsPage />} />
        <Route path="models/:ns/:name" element={<RepoPage />} />
        <Route path="models/:ns/:name/commit/:sha" element={<CommitPage />} />
        <Route path="models/:ns/:name/commit/:sha/inspect" element={<InspectorPage />} />
        <Route path="models/:ns/:name/diff" element={<DiffPage />} />
        <Route path="models/:ns/:name/playground" element={<PlaygroundPage />} />
        <Route path="settings/tokens" element={<TokensPage />} />
        <Route path="jobs" element={<JobsPage />} />
        <Route path="jobs/new" element={<JobLaunchPage />} />
        <Route path="jobs/:id" element={<JobPage />} />
        <Route path="profiles" element={<JobsPage fixedKind="profile" />} />
        <Route path="profiles/diff" element={<ProfileDiffPage />} />
        <Route path="profiles/:id" element={<ProfilePage />} />
        <Route path="*" element={<NotFoundPage />} />
      </Route>
    </Routes>
  );
}

export function App() {
  const [client] = useState(() => {
    const qc = makeClient();
    prefetchForLocation(qc, location.pathname, location.search);
    return qc;
  });
  return (
    <QueryClientProvider client={client}>
      <BrowserRouter>
        <AppRoutes />
      </BrowserRouter>
    </QueryClientProvider>
  );
}
