/** The Inspector's "Memory" tab: the tensor lifetimes of the commit's newest finished profile
 * (the profile page's memory view), with links to the whole profile and to a diff with another
 * profile; without a profile it says how to take one. */
import { Link } from "react-router";
import { useJobs } from "../../api/hooks";
import { Empty, ErrorMessage, Loading } from "../../components/States";
import { MemoryLifetimes } from "./MemoryLifetimes";

export default function MemoryTab({ target }: { target: { ns: string; name: string; sha: string } }) {
  const jobs = useJobs({ project: "", status: ["succeeded"], kind: "profile", page: 1, size: 100 });
  if (jobs.error) return <ErrorMessage error={jobs.error} title="Could not list profile jobs" />;
  if (!jobs.data) return <Loading label="Finding this commit's profiles…" />;
  const repo = `${target.ns}/${target.name}`;
  const mine = jobs.data.results.filter((j) => j.base && j.base.repo === repo && j.base.commit === target.sha);
  if (!mine.length)
    return (
      <Empty>
        No finished profile of this commit. Launch one (<Link to={`/jobs/new?kind=profile&base=${encodeURIComponent(`${repo}@${target.sha}`)}`}>profile job</Link>, or{" "}
        <code>hub jobs launch profile --base {repo}@{target.sha.slice(0, 12)} --project …</code>); <code>hub profile diff {repo}@A {repo}@B</code> profiles two commits and compares them.
      </Empty>
    );
  const job = mine[0];
  return (
    <>
      <p className="small">
        Profile <Link className="mono" to={`/profiles/${job.id}`}>{job.id}</Link> of this commit
        {mine.length > 1 && ` (the newest of ${mine.length})`} · <Link to={`/profiles/${job.id}?compare=`}>compare with…</Link>
      </p>
      <MemoryLifetimes jobId={job.id} />
    </>
  );
}
