/** Top-level sections: Jobs (list, launch form, live log, cancel) and Profiles (profile jobs:
 * flame graph, operator table, memory timeline, comparison). */
export interface NavItem {
  to: string;
  label: string;
}

export const NAV: NavItem[] = [
  { to: "/projects", label: "Projects" },
  { to: "/models", label: "Models" },
  { to: "/jobs", label: "Jobs" },
  { to: "/profiles", label: "Profiles" },
];
