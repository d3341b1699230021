/** The Inspector: one place to look inside a commit's model. Tabs live in the URL (?tab=);
 * each tab is one component in TABS below (add a view by adding an entry). The commit comes
 * from the route (/models/:ns/:name/commit/:sha/inspect); ?job= pins an inspect job. */
import { lazy, Suspense, type ReactNode } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import { Tabs } from "../../components/Tabs";
import { Loading } from "../../components/States";
import { shortSha } from "../../lib/format";
import { useTitle } from "../../lib/useTitle";
import "./inspector.css";

const GraphTab = lazy(() => import("./GraphTab"));
const AttentionTab = lazy(() => import("./AttentionTab"));
const RoutingDiffTab = lazy(() => import("./RoutingDiffTab"));
const MemoryTab = lazy(() => import("../jobs/MemoryTab"));

export interface InspectorTarget {
  ns: string;
  name: string;
  sha: string;
  /** An inspect job the URL pins (?job=), else the commit's latest one. */
  job: string | null;
}

interface TabDef {
  value: string;
  label: string;
  render: (t: InspectorTarget) => ReactNode;
}

export const TABS: TabDef[] = [
  { value: "graph", label: "Graph", render: (t) => <GraphTab target={t} /> },
  { value: "attention", label: "Attention", render: (t) => <AttentionTab target={t} /> },
  { value: "routing", label: "Routing diff", render: (t) => <RoutingDiffTab target={t} /> },
  { value: "memory", label: "Memory", render: (t) => <MemoryTab target={t} /> },
];

export default function Inspector() {
  const { ns = "", name = "", sha = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const tab = TABS.find((t) => t.value === params.get("tab")) ?? TABS[0];
  const target: InspectorTarget = { ns, name, sha, job: params.get("job") };
  useTitle(`Inspect ${ns}/${name}@${shortSha(sha)}`);
  return (
    <div className="inspector">
      <h1>
        Inspector: <Link to={`/models/${ns}/${name}`}>{ns}/{name}</Link>
        {" @ "}
        <Link to={`/models/${ns}/${name}/commit/${sha}`}><code>{shortSha(sha)}</code></Link>
      </h1>
      <Tabs
        id="inspector"
        label="Inspector views"
        tabs={TABS.map((t) => ({ value: t.value, label: t.label }))}
        value={tab.value}
        onChange={(v) => {
          const next = new URLSearchParams(params);
          next.set("tab", v);
          setParams(next);
        }}
      />
      <div role="tabpanel" id="inspector-panel" aria-labelledby={`inspector-tab-${tab.value}`}>
        <Suspense fallback={<Loading />}>{tab.render(target)}</Suspense>
      </div>
    </div>
  );
}
