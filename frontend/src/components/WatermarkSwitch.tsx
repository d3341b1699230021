/** The repo's text-watermark switch (hub/provenance): readers see whether generations from
 * this repo are watermarked by default; admins switch it. The key itself never reaches here. */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { get, patch, repoPath } from "../api/client";

export type WatermarkSetting = {
  enabled: boolean;
  strength: number;
  delta: number;
  can_edit: boolean;
  keys: { key_id: string; gamma: number; context_width: number; active: boolean; created_at: string }[];
};

export function WatermarkSwitch({ ns, name }: { ns: string; name: string }) {
  const path = `${repoPath(ns, name)}/watermark`;
  const client = useQueryClient();
  const setting = useQuery({
    queryKey: ["watermark", ns, name],
    queryFn: ({ signal }) => get<WatermarkSetting>(path, signal),
  });
  const update = useMutation({
    mutationFn: (enabled: boolean) => patch<WatermarkSetting>(path, { enabled }),
    onSuccess: (data) => client.setQueryData(["watermark", ns, name], data),
  });
  const s = setting.data;
  if (!s) return null;
  const title =
    `Green-list watermark (strength ${s.strength}, δ = ${s.delta}); ` +
    `verify text with hub watermark verify --repo ${ns}/${name} FILE`;
  return (
    <p className="muted" title={title} data-testid="watermark-switch">
      <label>
        <input
          type="checkbox"
          checked={s.enabled}
          disabled={!s.can_edit || update.isPending}
          onChange={(e) => update.mutate(e.target.checked)}
          aria-label="Watermark generated text by default"
        />{" "}
        Watermark generated text {s.enabled ? `(on, strength ${s.strength})` : "(off)"}
      </label>
      {update.error && <span role="alert"> · could not save: {(update.error as Error).message}</span>}
    </p>
  );
}
