/** MoE health alerts of a run (GET /runs/{id}/alerts; the rules: hub/shared/moe_health.py):
 * a banner listing them on the run and job pages, and a badge for the runs table. */
import { useQuery } from "@tanstack/react-query";
import { get } from "../api/client";
import { ErrorMessage } from "./States";
import "./RunAlerts.css";

export type AlertKind = "dead_expert" | "collapse" | "dropped_tokens" | "nonfinite_loss" | "divergence";

export interface AlertCounts {
  count: number;
  kinds: Partial<Record<AlertKind, number>>;
}

export interface RunAlert {
  kind: AlertKind;
  key: string;
  step: number;
  time: string;
  message: string;
  details: Record<string, unknown>;
  action: "none" | "stop" | "checkpoint_stop";
}

export interface RunAlerts extends AlertCounts {
  run: string;
  results: RunAlert[];
}

export const ALERT_LABELS: Record<AlertKind, string> = {
  dead_expert: "Dead expert",
  collapse: "Routing collapse",
  dropped_tokens: "Dropped tokens",
  nonfinite_loss: "Non-finite loss",
  divergence: "Loss divergence",
};

const ACTION_LABELS: Record<RunAlert["action"], string> = {
  none: "recorded",
  stop: "job stopped",
  checkpoint_stop: "checkpoint, then stopped",
};

export function useRunAlerts(runId: string | null | undefined, live = false) {
  return useQuery({
    queryKey: ["run-alerts", runId],
    queryFn: ({ signal }) => get<RunAlerts>(`/runs/${encodeURIComponent(runId ?? "")}/alerts`, signal),
    enabled: !!runId,
    refetchInterval: live ? 5000 : false,
  });
}

function kindsText(kinds: AlertCounts["kinds"]): string {
  return Object.entries(kinds)
    .map(([k, n]) => `${ALERT_LABELS[k as AlertKind] ?? k}: ${n}`)
    .join(", ");
}

/** The banner: nothing while a run has no alert. ``live`` polls (a running job). */
export function RunAlertsBanner({ runId, live = false }: { runId: string | null | undefined; live?: boolean }) {
  const q = useRunAlerts(runId, live);
  if (q.isError) return <ErrorMessage error={q.error} title="Could not read the run's alerts" />;
  const data = q.data;
  if (!data?.count || !Array.isArray(data.results)) return null;
  return (
    <section className="alert-banner" aria-label="MoE health alerts">
      <h2>
        <span aria-hidden="true">⚠ </span>
        {data.count} MoE health alert{data.count === 1 ? "" : "s"}
        <span className="small muted"> · {kindsText(data.kinds)}</span>
      </h2>
      <div className="table-wrap" style={{ maxHeight: 240 }}>
        <table className="data" aria-label="Alerts">
          <thead>
            <tr>
              <th scope="col" className="num">Step</th>
              <th scope="col">Alert</th>
              <th scope="col">What happened</th>
              <th scope="col">Action</th>
            </tr>
          </thead>
          <tbody>
            {data.results.map((a) => (
              <tr key={`${a.key}@${a.step}`} data-alert={a.kind}>
                <td className="num">{a.step.toLocaleString()}</td>
                <td><span className={`badge alert ${a.kind}`}>{ALERT_LABELS[a.kind] ?? a.kind}</span></td>
                <td className="wrap">{a.message}</td>
                <td className={a.action === "none" ? "muted" : undefined}>{ACTION_LABELS[a.action] ?? a.action}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/** The runs table's cell: how many alerts and of which kinds, or a dash. */
export function AlertBadge({ alerts }: { alerts?: AlertCounts }) {
  if (!alerts || alerts.count === 0) return <span className="muted" aria-label="no alerts">—</span>;
  const text = kindsText(alerts.kinds);
  return (
    <span className="badge alert" title={text} aria-label={`${alerts.count} alert${alerts.count === 1 ? "" : "s"}: ${text}`}>
      ⚠ {alerts.count}
    </span>
  );
}
