/** Which projects the signed-in user can write to. The projects API lists every project the
 * user can see (public ones too) without saying whether they may write; whoami lists the
 * namespaces the user belongs to with their role, and writing takes `write` or `admin`. */
import type { Project, WhoAmI } from "../api/types";

const WRITE_ROLES = new Set(["write", "admin"]);

export function writableProjects(projects: Project[], me: WhoAmI): Project[] {
  if (me.token_scope === "read") return [];
  const can = new Set(me.namespaces.filter((n) => WRITE_ROLES.has(n.role)).map((n) => n.name));
  const mine = projects.filter((p) => p.namespace === me.username && can.has(p.namespace));
  const member = projects.filter((p) => p.namespace !== me.username && can.has(p.namespace));
  return [...mine, ...member];
}

/** The launch form's default project: the first writable project the user owns, else one of a
 * namespace they write to, else a new `jobs` project in their own namespace (created on launch). */
export function defaultProject(projects: Project[], me: WhoAmI): string {
  const p = writableProjects(projects, me)[0];
  return p ? `${p.namespace}/${p.name}` : `${me.username}/jobs`;
}
