/** The Inspector's "Memory" tab: the tensor lifetimes of the commit's newest finished profile
 * (the profile page's memory view), with links to the whole profile and to a diff with another
 * profile or commit; without a profile, "Profile this commit" launches one (default config)
 * and shows it when it finishes. */
import { useState } from "react";
import { Link } from "react-router";
import { useJobs } from "../../api/hooks";
import { Empty, ErrorMessage, Loading } from "../../components/States";
import { MemoryLifetimes } from "./MemoryLifetimes";
import { CompareByRef, ProfileThisCommit } from "./ProfileByRef";

export default function MemoryTab({ target }: { target: { ns: string; name: string; sha: string } }) {
  const jobs = useJobs({ project: "", status: ["succeeded"], kind: "profile", page: 1, size: 100 });
  const [made, setMade] = useState("");
  if (jobs.error) return <ErrorMessage error={jobs.error} title="Could not list profile jobs" />;
  if (!jobs.data) return <Loading label="Finding this commit's profiles…" />;
  const repo = `${target.ns}/${target.name}`;
  const spec = `${repo}@${target.sha}`;
  const mine = jobs.data.results.filter((j) => j.base && j.base.repo === repo && j.base.commit === target.sha);
  const jobId = made || mine[0]?.id;
  if (!jobId)
    return (
      <>
        <Empty>
          No finished profile of this commit. Profile it here, or launch one with other settings (<Link to={`/jobs/new?kind=profile&base=${encodeURIComponent(spec)}`}>profile job</Link>, or{" "}
          <code>hub jobs launch profile --base {repo}@{target.sha.slice(0, 12)} --project …</code>); <code>hub profile diff {repo}@A {repo}@B</code> profiles two commits and compares them.
        </Empty>
        <ProfileThisCommit spec={spec} onDone={setMade} />
        <CompareByRef a={spec} repo={repo} />
      </>
    );
  return (
    <>
      <p className="small">
        Profile <Link className="mono" to={`/profiles/${jobId}`}>{jobId}</Link> of this commit
        {!made && mine.length > 1 && ` (the newest of ${mine.length})`} · <Link to={`/profiles/${jobId}?compare=`}>compare with…</Link>
      </p>
      <CompareByRef a={spec} repo={repo} />
      <MemoryLifetimes jobId={jobId} />
    </>
  );
}
