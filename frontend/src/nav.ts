/** Top-level sections. Jobs (list, launch form, live log, cancel) and Profiles (flame graph,
 * operator table, memory timeline) slot in here and in App's routes when their APIs ship:
 *   { to: "/jobs", label: "Jobs" }, { to: "/profiles", label: "Profiles" }
 * Run pages already show a run's job id where the Jobs page will link. */
export interface NavItem {
  to: string;
  label: string;
}

export const NAV: NavItem[] = [
  { to: "/projects", label: "Projects" },
  { to: "/models", label: "Models" },
];
