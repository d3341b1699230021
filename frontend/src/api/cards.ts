/** Model cards and model search (GET /repos/{ns}/{name}/card, GET /models/search). */
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { get, post, qs, repoPath } from "./client";
import type { components } from "./schema";

type S = components["schemas"];

/** The card's known front-matter fields (the schema types them as a free object). */
export type CardFields = Partial<Record<"tags" | "base_model" | "datasets" | "metrics" | "language", string[]>> &
  Partial<Record<"license" | "pipeline_tag" | "library_name", string>>;

/** `html` is rendered and sanitised by the hub (markdown-it-py + nh3): safe to insert as HTML;
 * `markdown` is the generated README.md (source "generated" only). */
export type ModelCard = Omit<S["CardOut"], "fields"> & { fields: CardFields };

export type ModelHit = Omit<S["ModelHitOut"], "metrics"> & {
  /** {metric: {last|min|max|last_step: one value per producing run}} */
  metrics: Record<string, Record<string, number[]>>;
};

export type FacetCount = S["FacetCountOut"];

export type ModelSearchPage = Omit<S["ModelSearchOut"], "results"> & { results: ModelHit[] };

export interface ModelFilters {
  q: string;
  tag: string[];
  license: string[];
  base_model: string[];
}

export function useModelCard(ns: string, name: string, ref: string) {
  return useQuery({
    queryKey: ["card", ns, name, ref],
    queryFn: ({ signal }) => get<ModelCard>(`${repoPath(ns, name)}/card${qs({ ref })}`, signal),
  });
}

export function modelSearchPath(f: ModelFilters, pageSize = 50): string {
  const parts = [qs({ q: f.q, page_size: pageSize }).replace(/^\?/, "")];
  for (const key of ["tag", "license", "base_model"] as const) {
    for (const v of f[key]) parts.push(`${key}=${encodeURIComponent(v)}`);
  }
  return `/models/search?${parts.filter(Boolean).join("&")}`;
}

export function useModelSearch(f: ModelFilters) {
  return useQuery({
    queryKey: ["models", "search", f],
    queryFn: ({ signal }) => get<ModelSearchPage>(modelSearchPath(f), signal),
    placeholderData: (prev) => prev,
  });
}

/** The "add this card" action: commits the generated card as README.md on a branch. */
export function useAddCard(ns: string, name: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: { branch: string; expected_head: string }) =>
      post<{ commit: string; branch: string }>(`${repoPath(ns, name)}/card`, body),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: ["card", ns, name] });
      void client.invalidateQueries({ queryKey: ["repo", ns, name] });
      void client.invalidateQueries({ queryKey: ["tree", ns, name] });
    },
  });
}
