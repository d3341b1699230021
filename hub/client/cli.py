"""The ``hub`` command line, over the SDK.

Exit codes a script can rely on: 0 success; 1 any other error; 2 bad usage or invalid
input (4xx validation); 3 not found; 4 conflict (branch moved, merge conflict, exists);
5 authentication or permission; 6 the hub is unreachable; 141 the reader of standard output
went away (``hub runs list | head -1``: the command stops quietly, as a shell tool killed by
SIGPIPE would). With ``--json`` an error is one JSON object on standard error,
``{"error": {"code": ..., "message": ...}}`` (plus ``details`` when the hub gave some).

``hub serve`` and ``hub admin`` run the server itself and need ``pip install 'moe-hub[server]'``;
every other command needs only the client (``pip install moe-hub``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from hub.client import config
from hub.client.errors import HubClientError, HubUnreachable  # noqa: F401 (re-exported errors)

EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_AUTH, EXIT_UNREACHABLE = (
    1,
    2,
    3,
    4,
    5,
    6,
)
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool its pipe reader left

# What `hub serve` and `hub admin` import (the [server] extra); the client needs none of them.
SERVER_MODULES = ("django", "rest_framework", "drf_spectacular", "celery", "redis", "gunicorn")


class MissingExtra(RuntimeError):
    """A command that needs an optional part of the package (``moe-hub[server]``)."""


def _require_server(command: str) -> None:
    from importlib.util import find_spec

    missing = [m for m in SERVER_MODULES if find_spec(m) is None]
    if missing:
        raise MissingExtra(
            f"{command} runs the hub itself, which this installation lacks (missing: "
            f"{', '.join(missing)}): install it with  pip install 'moe-hub[server]'"
        )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("moe-hub")
    except PackageNotFoundError:  # running from a source tree that was never installed
        from hub import __version__

        return __version__


def _client(args):
    from hub.client.api import Client

    return Client(url=args.url, token=args.token)


def _print(obj: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2, default=str))
    elif isinstance(obj, str):
        print(obj)
    else:
        print(json.dumps(obj, indent=2, default=str))


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


# --- commands ---------------------------------------------------------------------------------


def cmd_login(args) -> int:
    """Saves the URL and token only once the hub has accepted the token (its whoami): an
    empty, malformed or refused token leaves the saved login as it was."""
    from hub.client.api import Client

    token = args.token_value if args.token_value is not None else args.token
    if token is None:
        token = os.environ.get("HUB_TOKEN") or _read_secret("Token: ")
    token = (token or "").strip()
    if not token:
        raise ValueError("no token given (the saved login is unchanged)")
    if not _TOKEN_CHARS.fullmatch(token):
        raise ValueError(
            "that is not an API token: a token is printable ASCII without spaces, at most "
            "4096 characters (the saved login is unchanged)"
        )
    url = (args.url or config.resolve()[0]).rstrip("/")
    try:
        me = Client(url=url, token=token).whoami()
    except HubUnreachable:
        raise
    except HubClientError as e:
        if e.status in {401, 403}:
            raise HubClientError(
                e.status,
                e.code,
                f"{url} refused this token: {e.message} (the saved login is unchanged)",
                e.details,
            ) from None
        raise
    path = config.save(url=url, token=token)
    if args.json:
        _print({"url": url, "username": me["username"], "config": str(path)}, True)
    else:
        print(f"Logged in to {url} as {me['username']} (token saved to {path})")
    return 0


_TOKEN_CHARS = re.compile(r"[!-~]{1,4096}")


def _read_secret(prompt: str) -> str:
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    return getpass.getpass(prompt)


def cmd_whoami(args) -> int:
    me = _client(args).whoami()
    if args.json:
        _print(me, True)
    else:
        print(me["username"] + (" (site admin)" if me["is_admin"] else ""))
        for ns in me["namespaces"]:
            print(f"  {ns['name']:<24} {ns['kind']:<5} {ns['role']}")
    return 0


def cmd_repo(args) -> int:
    c = _client(args)
    if args.action == "create":
        r = c.create_repo(
            args.repo,
            private=args.private,
            description=args.description or "",
            exist_ok=args.exist_ok,
        )
        if args.json:
            _print(r, True)
            return 0
        print(
            f"Created {r['id']} ({'private' if r['private'] else 'public'}), default branch {r['default_branch']}"
        )
    elif args.action == "list":
        repos = c.list_repos(args.namespace)
        if args.json:
            _print(repos, True)
        for r in [] if args.json else repos:
            print(
                f"{r['id']:<40} {'private' if r['private'] else 'public':<8} {r['description'][:60]}"
            )
    elif args.action == "info":
        info = c.repo_info(args.repo)
        if args.json:
            _print(info, True)
        else:
            print(
                f"{info['id']}  ({'private' if info['private'] else 'public'}, {info['commits']} commits)"
            )
            for r in info["refs"]:
                flag = " [protected]" if r.get("protected") else ""
                print(f"  {r['kind']:<6} {r['name']:<32} {r['commit'][:12]}{flag}")
    elif args.action == "delete":
        c.delete_repo(args.repo)
        _print({"deleted": args.repo}, True) if args.json else print(f"Deleted {args.repo}")
    return 0


def cmd_push(args) -> int:
    c = _client(args)
    res = c.push(
        args.path,
        repo=args.repo,
        branch=args.branch,
        message=args.message,
        path_in_repo=args.path_in_repo,
        expected_head=args.expected_head,
        delete_missing=args.delete_missing,
        progress=not args.quiet,
        metadata=json.loads(args.metadata) if args.metadata else None,
    )
    if args.json:
        _print(res.__dict__, True)
    elif res.commit is None:
        print("Nothing to commit: every file is already there.")
    else:
        print(
            f"{res.commit['sha'][:12]} {args.repo}@{res.branch}: {res.changed_files} of {res.files} "
            f"file(s) changed; uploaded {res.uploaded_chunks} of {res.chunks} chunk(s), {_human(res.uploaded_bytes)} "
            f"of {_human(res.total_bytes)} in {res.seconds:.1f}s"
        )
    return 0


def cmd_pull(args) -> int:
    from hub.client.api import split_repo_ref

    c = _client(args)
    repo, ref = split_repo_ref(args.spec)
    dest = args.dest or repo.split("/")[-1]
    res = c.pull(args.spec, dest, progress=not args.quiet)
    if args.json:
        _print(res, True)
    else:
        print(
            f"{repo}@{ref or 'default'} = {res['commit'][:12]}: {res['downloaded']} file(s) downloaded "
            f"({_human(res['bytes'])}), {res['skipped']} already up to date, in {dest}"
        )
    return 0


def cmd_branch(args) -> int:
    c = _client(args)
    if args.action == "create":
        b = c.create_branch(args.repo, args.name, args.from_ref)
        if args.json:
            _print(b, True)
            return 0
        print(f"Created branch {b['name']} at {b['commit'][:12]}")
    elif args.action == "list":
        branches = c.list_branches(args.repo)
        if args.json:
            _print(branches, True)
        for b in [] if args.json else branches:
            print(f"{b['name']:<40} {b['commit'][:12]}{'  [protected]' if b['protected'] else ''}")
    elif args.action == "delete":
        c.delete_branch(args.repo, args.name)
        _print({"deleted": args.name}, True) if args.json else print(f"Deleted branch {args.name}")
    elif args.action in {"protect", "unprotect"}:
        c.protect_branch(args.repo, args.name, args.action == "protect")
        if args.json:
            _print({"branch": args.name, "protected": args.action == "protect"}, True)
            return 0
        print(
            f"Branch {args.name} is {'now' if args.action == 'protect' else 'no longer'} protected"
        )
    return 0


def cmd_tag(args) -> int:
    c = _client(args)
    if args.action == "create":
        t = c.create_tag(args.repo, args.name, args.ref, args.message or "")
        if args.json:
            _print(t, True)
            return 0
        print(f"Tagged {t['commit'][:12]} as {t['name']}")
    elif args.action == "list":
        tags = c.list_tags(args.repo)
        if args.json:
            _print(tags, True)
        for t in [] if args.json else tags:
            print(f"{t['name']:<40} {t['commit'][:12]} {t.get('message', '')[:50]}")
    elif args.action == "delete":
        c.delete_tag(args.repo, args.name)
        _print({"deleted": args.name}, True) if args.json else print(f"Deleted tag {args.name}")
    return 0


def cmd_log(args) -> int:
    from hub.client.api import split_repo_ref

    repo, ref = split_repo_ref(args.spec)
    commits = _client(args).log(repo, ref, first_parent=args.first_parent, limit=args.limit)
    if args.json:
        _print(commits, True)
        return 0
    for cm in commits:
        merge = " (merge)" if len(cm["parents"]) > 1 else ""
        lineage = "".join(f" {k}={cm[k]}" for k in ("job_id", "run_id") if cm.get(k))
        print(
            f"{cm['sha'][:12]} {str(cm['created_at'])[:19]} {cm['author']:<12} {cm['message'].splitlines()[0]}{merge}{lineage}"
        )
    return 0


def cmd_show(args) -> int:
    from hub.client.api import split_repo_ref

    repo, ref = split_repo_ref(args.spec)
    c = _client(args)
    sha = ref or c.repo_info(repo)["default_branch"]
    if len(sha) < 40:
        sha = c.list_files(repo, sha)["commit"]
    info = c.commit_info(repo, sha)
    if args.json:
        _print(info, True)
        return 0
    print(
        f"commit {info['sha']}\nparents {' '.join(info['parents']) or '-'}\nauthor {info['author']}\n"
        f"date   {info['created_at']}\n\n    {info['message']}\n"
    )
    for f in info["files"]:
        print(f"  {f['kind']:<11} {_human(f['size']):>10}  {f['path']}")
    return 0


def cmd_ls(args) -> int:
    from hub.client.api import split_repo_ref

    repo, ref = split_repo_ref(args.spec)
    listing = _client(args).list_files(repo, ref, args.prefix or "")
    if args.json:
        _print(listing, True)
        return 0
    for f in listing["files"]:
        print(f"{_human(f['size']):>10}  {f['oid'][:12]}  {f['path']}")
    return 0


def cmd_diff(args) -> int:
    d = _client(args).diff(
        args.repo, args.a, args.b, tensors=not args.files_only, filter=args.filter
    )
    if args.json:
        _print(d, True)
        return 0
    print(f"{args.a} ({d['a']['commit'][:12]}) → {args.b} ({d['b']['commit'][:12]})")
    if not d["files"]:
        print("  no differences")
    for f in d["files"]:
        print(f"  {f['status']:<8} {f['path']}")
        for t in f.get("tensors", []):
            if t["status"] != "changed":
                print(f"      {t['status']:<8} {t['name']}")
                continue
            shape = f" shape {t['a']['shape']}→{t['b']['shape']}" if t["shape_changed"] else ""
            dtype = f" dtype {t['a']['dtype']}→{t['b']['dtype']}" if t["dtype_changed"] else ""
            stats = (
                f" ‖Δ‖={t['l2_delta']:.4g} rel={t['rel_change']:.3%} cos={t['cosine']:.6f}"
                if "l2_delta" in t
                else ""
            )
            print(f"      changed  {t['name']}{shape}{dtype}{stats}")
        if "unchanged_tensors" in f:
            print(f"      ({f['unchanged_tensors']} tensor(s) unchanged)")
    return 0


def cmd_merge(args) -> int:
    c = _client(args)
    try:
        res = c.merge(
            args.repo,
            args.source,
            args.into,
            strategy=args.strategy,
            weight=args.weight,
            message=args.message,
            no_ff=args.no_ff,
        )
    except HubClientError as e:
        if e.code == "merge_conflict" and not args.json:
            print(f"error: {e.message}", file=sys.stderr)
            for cf in e.details["conflicts"]:
                where = f"{cf['path']}:{cf['tensor']}" if cf.get("tensor") else cf["path"]
                o, t = cf["ours"], cf["theirs"]
                print(
                    f"  CONFLICT {where}\n    ours   {_side(o)}\n    theirs {_side(t)}",
                    file=sys.stderr,
                )
            return EXIT_CONFLICT
        raise
    if args.json:
        _print(res, True)
    elif res["result"] == "up_to_date":
        print(f"Already up to date: {args.into} contains {args.source}")
    elif res["result"] == "fast_forward":
        print(f"Fast-forward {args.into} to {res['commit']['sha'][:12]}")
        if res.get("note"):
            print(f"note: {res['note']}", file=sys.stderr)
    else:
        print(
            f"Merged {args.source} into {args.into}: {res['commit']['sha'][:12]}"
            + (
                f" ({len(res['resolved'])} conflict(s) resolved by {args.strategy})"
                if res["resolved"]
                else ""
            )
        )
    return 0


def _side(s: dict) -> str:
    if s.get("status") == "deleted":
        return "deleted"
    bits = [s.get("status", "")]
    if "shape" in s:
        bits.append(f"{s['dtype']}{s['shape']}")
    if "rel_change" in s:
        bits.append(f"rel change {s['rel_change']:.3%} vs base, cos {s['cosine']:.5f}")
    return ", ".join(bits)


def cmd_gc(args) -> int:
    report = _client(args).gc(dry_run=not args.execute, grace_seconds=args.grace_seconds)
    if args.json:
        _print(report, True)
    else:
        verb = "Would free" if report["dry_run"] else "Freed"
        freed = report.get("freed_bytes", report["reclaimable_bytes"])
        print(
            f"{verb} {_human(freed)}: {report['chunks']} chunk(s), {report['files']} file(s), "
            f"{report['trees']} tree(s), {report['commits']} unreachable commit(s)"
        )
    return 0


def cmd_token(args) -> int:
    c = _client(args)
    if args.action == "create":
        t = c.create_token(args.name, args.scope)
        _print(t, True) if args.json else print(t["token"])
    elif args.action == "list":
        tokens = c.list_tokens()
        if args.json:
            _print(tokens, True)
            return 0
        for t in tokens:
            state = "revoked" if t["revoked_at"] else "active"
            print(f"{t['id']:>5} {t['prefix']}…  {t['scope']:<5} {state:<8} {t['name']}")
    elif args.action == "revoke":
        c.revoke_token(args.id)
        _print({"revoked": args.id}, True) if args.json else print(f"Revoked token {args.id}")
    return 0


def _run_cell(r: dict, key: str) -> str:
    """A run's value for a column: ``params.X`` or ``summary.KEY[.last|.min|.max]``."""
    if key.startswith("params."):
        v = r["params"].get(key[7:])
        return "" if v is None else str(v)
    metric, stat = _summary_key(key)
    v = r["summary"].get(metric, {}).get(stat)
    return "" if v is None else f"{v:.4g}"


def _summary_key(key: str) -> tuple[str, str]:
    metric, _, stat = key.removeprefix("summary.").rpartition(".")
    if stat not in {"last", "min", "max"}:
        metric, stat = key.removeprefix("summary."), "last"
    return metric, stat


def _unknown_run_keys(runs: list[dict], columns: list[str], sort: list[str]) -> list[str]:
    """One message per column or sort key that none of ``runs`` has, naming the key and the
    closest keys that do exist (nothing to say about an empty page)."""
    import difflib

    if not runs:
        return []
    params = {f"params.{k}" for r in runs for k in r.get("params", {})}
    metrics = {k for r in runs for k in r.get("summary", {})}
    known = sorted(params | {f"summary.{m}" for m in metrics})
    out = []
    for what, keys in (("column", columns), ("sort key", sort)):
        for key in dict.fromkeys(keys):
            if key.startswith("params.") and key in params:
                continue
            if key.startswith("summary.") and _summary_key(key)[0] in metrics:
                continue
            if not key.startswith(("params.", "summary.")) and what == "sort key":
                continue  # name, status, started_at, ...: fields every run has
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            out.append(
                f"no run here has the {what} {key!r}"
                + (f"; did you mean {', '.join(close)}?" if close else "")
                + (
                    ""
                    if key.startswith(("params.", "summary."))
                    else " (use params.X or summary.KEY)"
                )
            )
    return out


def _print_table(
    header: list[str], rows: list[list[str]], *, right: set[int] = frozenset()
) -> None:
    """Columns as wide as their widest cell or header: a header is never cut."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header))
    for row in rows:
        print(line(row))


def cmd_runs(args) -> int:
    c = _client(args)
    if args.action in {"list", "search"}:
        res = c.search_runs(
            args.project,
            getattr(args, "query", "") or "",
            sort=args.sort,
            page_size=args.limit,
            facets=args.facets.split(",") if args.facets else None,
        )
        if args.json:
            _print(res, True)
            return 0
        keys = [k.strip() for k in args.columns.split(",") if k.strip()] if args.columns else []
        sort_keys = [k.strip().lstrip("-+") for k in (args.sort or "").split(",") if k.strip()]
        for problem in _unknown_run_keys(res["results"], keys, sort_keys):
            print(f"warning: {problem}", file=sys.stderr)
        print(f"{res['total']} run(s)  (engine {res['took_ms']} ms)")
        rows = [
            [r["id"], r.get("name", ""), r.get("status", "")] + [_run_cell(r, k) for k in keys]
            for r in res["results"]
        ]
        _print_table(["id", "name", "status", *keys], rows, right=set(range(3, 3 + len(keys))))
        for name, buckets in res.get("facets", {}).items():
            print(f"  {name}: " + ", ".join(f"{b['value']} ({b['count']})" for b in buckets))
    elif args.action == "show":
        r = c.get_run(args.run)
        if args.json:
            _print(r, True)
            return 0
        print(f"{r['id']}  {r['name']}  [{r['status']}]  {r['project']}  started {r['started_at']}")
        if r.get("commit"):
            print(f"  commit {r['commit']['repo']}@{r['commit']['sha'][:12]}")
        if r.get("job_id"):
            print(f"  job    {r['job_id']}")
        if r["tags"]:
            print("  tags   " + ", ".join(r["tags"]))
        for k, v in sorted(r["params"].items()):
            print(f"  param  {k} = {v}")
        for k, s in sorted(r["summary"].items()):
            print(
                f"  metric {k:<28} last {s['last']:.5g} @ {s['last_step']}  min {s['min']:.5g}  max {s['max']:.5g}"
            )
    elif args.action == "alerts":
        res = c.run_alerts(args.run, kind=args.kind)
        if args.json:
            _print(res, True)
            return 0
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(res["kinds"].items()))
        print(f"{res['count']} alert(s) on run {res['run']}" + (f": {kinds}" if kinds else ""))
        rows = [[str(a["step"]), a["kind"], a["action"], a["message"]] for a in res["results"]]
        if rows:
            _print_table(["step", "kind", "action", "message"], rows, right={0})
    elif args.action == "compare":
        fmt = "json" if args.json else ("markdown" if args.format == "markdown" else args.format)
        commits = [r for r in args.runs if "@" in r]
        if commits and len(commits) != len(args.runs):
            raise ValueError("compare either run ids or model commits (ns/repo@ref), not a mix")
        out = c.compare_runs(
            None if commits else args.runs,
            commits=commits or None,
            baseline=args.baseline,
            target=args.target,
            goal=args.goal,
            kind=args.kind,
            format=fmt,
        )
        if args.output:
            from pathlib import Path

            Path(args.output).write_text(
                out if isinstance(out, str) else json.dumps(out, indent=2, default=str)
            )
            print(f"Wrote {args.output}")
        else:
            _print(out, args.json)
    return 0


def cmd_jobs(args) -> int:
    c = _client(args)
    if args.action == "launch":
        config = json.loads(open(args.config).read()) if args.config else {}
        resources = {
            k: v
            for k, v in (
                ("gpus", args.gpus),
                ("cpus", args.cpus),
                ("memory_mb", args.memory_mb),
                ("disk_mb", args.disk_mb),
                ("time_limit_s", args.time_limit),
            )
            if v is not None
        }
        try:
            job = c._json(
                "POST",
                "/jobs",
                json={
                    "project": args.project,
                    "kind": args.kind,
                    "config": config,
                    "base": args.base or "",
                    "target": args.target or "",
                    "resources": resources,
                },
            )
        except HubClientError as e:
            if e.code == "invalid_config" and not args.json:
                print(f"error: {e.message}", file=sys.stderr)
                for problem in e.details["errors"]:
                    print(
                        f"  {problem['path'] or '(config)'}: {problem['message']}", file=sys.stderr
                    )
                return EXIT_USAGE
            raise
        if args.json:
            _print(job, True)
        else:
            base = (
                f" from {job['base']['repo']}@{job['base']['commit'][:12]}" if job["base"] else ""
            )
            print(
                f"Launched {job['kind']} job {job['id']}{base} ({job['status']}); follow: hub jobs logs -f {job['id']}"
            )
    elif args.action == "list":
        params = {"page_size": args.limit}
        if args.project:
            params["project"] = args.project
        if args.status:
            params["status"] = args.status
        jobs = c._json("GET", "/jobs", params=params)["results"]
        if args.json:
            _print(jobs, True)
            return 0
        for j in jobs:
            dur = f"{j['duration_s']:.0f}s" if j["duration_s"] is not None else "-"
            prog = j["progress"] or {}
            step = f"{prog.get('step')}/{prog.get('total')}" if prog.get("total") else ""
            print(
                f"{j['id']:<14} {j['kind']:<9} {j['status']:<10} {dur:>7} {step:>11}  {j['project']}  {j['reason'][:60]}"
            )
    elif args.action == "show":
        j = c._json("GET", f"/jobs/{args.job}")
        if args.json:
            _print(j, True)
            return 0
        print(f"{j['id']}  {j['kind']}  [{j['status']}] {j['reason']}")
        for t in j["transitions"]:
            print(f"  {str(t['at'])[:19]}  {t['from'] or '-':>9} → {t['to']:<9} {t['reason']}")
        if j["run_id"]:
            print(f"  run    {j['run_id']}")
        if j["result"]:
            print(
                f"  commit {j['target']['repo']}@{j['result']['commit'][:12]} on {j['result']['branch']}"
            )
        for a in j["artifacts"]:
            print(f"  artifact {a['path']} ({_human(a['size'])})")
    elif args.action == "logs":
        return _job_logs(c, args)
    elif args.action == "cancel":
        j = c._json("POST", f"/jobs/{args.job}/cancel")
        if args.json:
            _print(j, True)
            return 0
        print(
            f"Job {j['id']}: {j['status']}" + (" (cancelling)" if j["status"] == "running" else "")
        )
    elif args.action == "relaunch":
        j = c._json("POST", f"/jobs/{args.job}/relaunch")
        _print(j, True) if args.json else print(f"Relaunched as {j['id']}")
    return 0


def _job_logs(c, args) -> int:
    lines = c._json("GET", f"/jobs/{args.job}/logs", params={"tail": args.tail})
    last = -1
    for line in lines["lines"]:
        print(json.dumps(line) if args.json else f"[{line['stream']}] {line['line']}")
        last = line["seq"]
    if not args.follow:
        return 0
    params = {"after_seq": last} if last >= 0 else {}
    with c._http.stream(
        "GET", f"/jobs/{args.job}/logs/stream", params=params, timeout=None
    ) as resp:
        event = None
        for raw in resp.iter_lines():
            if raw.startswith("event: "):
                event = raw[7:]
            elif raw.startswith("data: "):
                data = json.loads(raw[6:])
                if event == "end":
                    print(json.dumps({"end": data}) if args.json else f"-- job {data['status']}")
                    return 0
                text = json.dumps(data) if args.json else f"[{data['stream']}] {data['line']}"
                print(text, flush=True)
    return 0


def cmd_search(args) -> int:
    """Models matching a query and filters, best match first (``--json``: the API's page)."""
    res = _client(args).search_models(
        " ".join(args.query),
        tag=args.tag,
        license=args.license,
        base_model=args.base_model,
        metric=args.metric,
        page_size=args.limit,
    )
    if args.json:
        _print(res, True)
        return 0
    for m in res["results"]:
        tags = ",".join(m["tags"][:5])
        print(f"{m['id']:<40} {m['license'] or '-':<14} {tags:<30} {m['description'][:40]}")
    print(f"{len(res['results'])} of {res['total']} model(s)", file=sys.stderr)
    return 0


def cmd_generate(args) -> int:
    """Stream a commit's generated text to stdout as it arrives (stats on stderr); ``--json``:
    one object at the end with the text, every token with its routing, and the stats."""
    c = _client(args)
    events = c.generate(
        args.spec,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop=args.stop,
        watermark=False if args.no_watermark else None,
    )
    start: dict = {}
    tokens: list[dict] = []
    for ev in events:
        kind = ev["type"]
        if kind == "start":
            start = ev
        elif kind in ("token", "text"):
            if kind == "token":
                tokens.append({k: ev[k] for k in ("index", "id", "text", "routing")})
            if not args.json and ev.get("text"):
                sys.stdout.write(ev["text"])
                sys.stdout.flush()
        elif kind == "error":
            if not args.json:
                print(file=sys.stdout)
            raise HubClientError(502, ev.get("code", "inference_failed"), ev.get("message", ""))
        elif kind == "done":
            if args.json:
                done = {k: v for k, v in ev.items() if k not in ("type", "tokens")}
                _print(
                    {"start": start, **done, "token_count": ev["tokens"], "tokens": tokens}, True
                )
                return 0
            print()
            rate = ev.get("tokens_per_s")
            ttft = ev.get("time_to_first_token_s")
            print(
                f"[{start.get('repo', '')}@{str(start.get('commit', ''))[:12]}: {ev['tokens']} "
                f"token(s), {ev['finish_reason']}; first token after "
                f"{'-' if ttft is None else f'{ttft * 1000:.0f} ms'}"
                f" ({'warm' if not start.get('cold') else 'cold'}), "
                f"{'-' if rate is None else f'{rate:.1f}'} tokens/s"
                + (", watermarked" if ev.get("watermark") else "")
                + "]",
                file=sys.stderr,
            )
            return 0
    return EXIT_ERROR


def cmd_inspect(args) -> int:
    from hub.client.inspect_cli import cmd_inspect as run

    return run(args, _client(args))


def cmd_profile(args) -> int:
    from hub.client.profile_cli import cmd_profile as run

    return run(args, _client(args))


def cmd_watermark(args) -> int:
    """``hub watermark verify [--repo ns/name] FILE|-``: does a text carry a repo's watermark?
    Exit 0 when detected, 1 when not (``--json``: the API's answer)."""
    c = _client(args)
    if args.action == "verify":
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8", errors="replace") as f:
                text = f.read()
        res = c.watermark_verify(text, repo=args.repo)
        if args.json:
            _print(res, True)
        elif res["keys_tested"] == 0:
            print("No watermark key to test against (no readable repo has one).")
        else:
            m = res["match"]
            print(
                ("DETECTED" if res["detected"] else "not detected")
                + (f": {m['repo']} key {m['key_id']}" if m else "")
                + f"  z={res['z_score']:.2f}  p={res['p_value']:.3g}"
                + (
                    f"  (Bonferroni over {res['keys_tested']} keys: {res['p_value_corrected']:.3g})"
                    if res["keys_tested"] > 1
                    else ""
                )
                + f"  tokens scored {res['tokens_scored']}, green {res['green_tokens']}"
            )
        return 0 if res["detected"] else 1
    res = (
        c.watermark_setting(args.repo)
        if args.action == "show"
        else c.watermark_set(
            args.repo, enabled={"on": True, "off": False}[args.action], strength=args.strength
        )
    )
    if args.json:
        _print(res, True)
    else:
        keys = ", ".join(k["key_id"] for k in res["keys"]) or "none yet"
        print(
            f"{args.repo}: watermark {'on' if res['enabled'] else 'off'}, strength "
            f"{res['strength']} (delta {res['delta']:g}); keys: {keys}"
        )
    return 0


def cmd_sync(args) -> int:
    res = _client(args).sync()
    if args.json:
        _print(res, True)
    else:
        print(
            f"Sent {res['sent_points']} spooled point(s); {res['runs_left']} run(s) still waiting for the hub"
        )
    return 0 if not res["runs_left"] else EXIT_UNREACHABLE


def cmd_admin(args) -> int:
    """Runs on the hub's machine, against its database (needs the server's settings)."""
    _require_server("hub admin")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    import django
    from django.core.management import call_command

    django.setup()
    argv = [args.action]
    if args.action in {"create-user", "create-token", "deactivate-user"}:
        argv += ["--user", args.user]
    if args.action == "create-worker-credential":
        argv += ["--name", args.name]
    if args.action == "create-token":
        argv += ["--scope", args.scope, "--name", args.name]
    if args.action == "set-password":
        argv += ["--user", args.user] + (["--password", args.password] if args.password else [])
    if args.action == "create-user":
        if args.password:
            argv += ["--password", args.password]
        if args.site_admin:
            argv.append("--admin")
    if args.action == "set-password":
        import io

        out = io.StringIO()
        call_command("hub_admin", *argv, stdout=out)
        if args.password:
            print(f"password for {args.user} set")
        else:
            print(f"password for {args.user}: {out.getvalue().strip()}")
        return 0
    call_command("hub_admin", *argv)
    return 0


def cmd_serve(args) -> int:
    _require_server("hub serve")
    from hub.serve import serve

    return serve(host=args.host, port=args.port, data_dir=args.data_dir, demo=args.demo)


# --- parser -----------------------------------------------------------------------------------


class _UsageError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser, self.message = parser, message


class _Parser(argparse.ArgumentParser):
    """Raises usage errors to :func:`main` (which answers them as text, or as JSON with
    ``--json``) instead of printing and exiting here. Subcommand parsers are this class too."""

    def error(self, message: str):
        raise _UsageError(self, message)


# One example per command, shown at the end of its `-h` (`hub repo -h` lists its subcommands').
# tests/unit/test_cli_help.py checks that every command has one and every option a help text.
_EXAMPLES = {
    "login": 'echo "$TOKEN" | hub login --url https://hub.example.com',
    "whoami": "hub whoami --json",
    "repo create": 'hub repo create alice/moe-small --private --description "8-expert MoE"',
    "repo list": "hub repo list --namespace alice",
    "repo info": "hub repo info alice/moe-small",
    "repo delete": "hub repo delete alice/old-experiment",
    "push": 'hub push out/ --repo alice/moe-small -b main -m "weights at step 2000"',
    "pull": "hub pull alice/moe-small@v1 ./moe-small",
    "branch create": "hub branch create alice/moe-small finetune --from main",
    "branch list": "hub branch list alice/moe-small",
    "branch delete": "hub branch delete alice/moe-small finetune",
    "branch protect": "hub branch protect alice/moe-small main",
    "branch unprotect": "hub branch unprotect alice/moe-small main",
    "tag create": 'hub tag create alice/moe-small v1 main -m "first release"',
    "tag list": "hub tag list alice/moe-small",
    "tag delete": "hub tag delete alice/moe-small v1",
    "log": "hub log alice/moe-small@main -n 5 --first-parent",
    "show": "hub show alice/moe-small@v1",
    "ls": "hub ls alice/moe-small@main --prefix experts/",
    "diff": "hub diff main finetune --repo alice/moe-small --filter experts",
    "merge": "hub merge finetune --into main --repo alice/moe-small --strategy average --weight 0.3",
    "gc": "hub gc --execute --grace-seconds 3600",
    "token create": "hub token create ci --scope read",
    "token list": "hub token list",
    "token revoke": "hub token revoke 12",
    "runs list": "hub runs list alice/moe --sort=-summary.val/loss.min "
    "--columns params.model.top_k,summary.val/loss.min -n 10",
    "runs search": "hub runs search alice/moe 'params.model.top_k:4 AND tags:baseline'",
    "watermark verify": "hub watermark verify --repo alice/moe-small sample.txt",
    "watermark on": "hub watermark on alice/moe-small --strength 0.3",
    "watermark show": "hub watermark show alice/moe-small",
    "watermark off": "hub watermark off alice/moe-small",
    "profile memory": "hub profile memory 5d2e91c0a7f3 -n 10",
    "profile diff": "hub profile diff alice/moe-small@top2 alice/moe-small@top4 --project alice/moe",
    "search": "hub search router --tag moe --license apache-2.0 --metric 'val_loss<2.0'",
    "runs show": "hub runs show 3f9c2a71d04e8b65",
    "runs alerts": "hub runs alerts 3f9c2a71d04e8b65 --kind collapse",
    "runs compare": "hub runs compare alice/moe-small@top2 alice/moe-small@top4 -o report.md",
    "jobs launch": "hub jobs launch train --project alice/moe --config train.json "
    "--target alice/moe-small@top2 --gpus 1 --time-limit 3600",
    "jobs list": "hub jobs list --project alice/moe --status running",
    "jobs show": "hub jobs show 5d2e91c0a7f3",
    "jobs cancel": "hub jobs cancel 5d2e91c0a7f3",
    "jobs relaunch": "hub jobs relaunch 5d2e91c0a7f3",
    "jobs logs": "hub jobs logs -f 5d2e91c0a7f3 --tail 20",
    "generate": 'hub generate alice/moe-small@v1 "Once upon a time" --max-new-tokens 32 --seed 0',
    "sync": "hub sync",
    "inspect routing": "hub inspect routing alice/moe-small@top2 alice/moe-small@top4",
    "inspect attention": 'hub inspect attention alice/moe-small@v1 "def main("',
    "inspect graph": "hub inspect graph alice/moe-small@v1 --project alice/exp --wait",
    "inspect diff": "hub inspect diff alice/moe-small@top2 alice/moe-small@top4",
    "admin create-user": "hub admin create-user --user alice --site-admin",
    "admin create-token": "hub admin create-token --user alice --scope write --name laptop",
    "admin set-password": "hub admin set-password --user alice",
    "admin create-worker-credential": "hub admin create-worker-credential --name gpu-box-1",
    "admin deactivate-user": "hub admin deactivate-user --user mallory",
    "admin list-users": "hub admin list-users",
    "serve": "hub serve --port 8000 --data-dir /srv/moe-hub --demo",
}


def _add_examples(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """Gives each command without an epilog its example from ``_EXAMPLES`` (a command with
    subcommands: theirs), kept as written (RawDescriptionHelpFormatter). Returns the
    examples of ``parser`` and below."""
    found: list[str] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, child in action.choices.items():
            path = f"{prefix} {name}".strip()
            if child.description is None and helps.get(name):
                child.description = helps[name][0].upper() + helps[name][1:] + "."
            below = _add_examples(child, path)
            mine = [_EXAMPLES[path]] if path in _EXAMPLES else below
            if child.epilog is None and mine:
                child.epilog = ("examples:\n  " if len(mine) > 1 else "example:\n  ") + (
                    "\n  ".join(mine)
                )
            child.formatter_class = argparse.RawDescriptionHelpFormatter
            found += mine
    return found


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=None, help="hub URL (default: $HUB_URL or the saved login)"
    )
    common.add_argument(
        "--token", default=None, help="API token (default: $HUB_TOKEN or the saved login)"
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")

    p = _Parser(
        prog="hub",
        description="MoE Hub: model registry and experiment tracker.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  hub login --url http://127.0.0.1:8000\n"
        '  hub push out/ --repo alice/moe-small -m "first weights"\n'
        "  hub runs list alice/moe | head -5\n\n"
        "`hub COMMAND -h` shows a command's options and an example. Exit codes: 0 ok, 1 error,\n"
        "2 bad usage or input, 3 not found, 4 conflict, 5 auth, 6 hub unreachable.",
    )
    p.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "login", parents=[common], help="check a token against the hub and save it with the URL"
    )
    s.add_argument(
        "token_value",
        nargs="?",
        metavar="TOKEN",
        help="API token (default: --token, $HUB_TOKEN, else read from the prompt or stdin)",
    )
    s.set_defaults(fn=cmd_login)
    sub.add_parser("whoami", parents=[common], help="who the token belongs to").set_defaults(
        fn=cmd_whoami
    )

    s = sub.add_parser("repo", parents=[common], help="create, list, inspect or delete repos")
    rs = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = rs.add_parser("create", parents=[common], help="create a repo")
    x.add_argument("repo", help="namespace/name")
    x.add_argument("--private", action="store_true", help="only its namespace's members see it")
    x.add_argument("--description", help="one line shown in listings")
    x.add_argument("--exist-ok", action="store_true", help="succeed if the repo already exists")
    x = rs.add_parser("list", parents=[common], help="list the repos you can see")
    x.add_argument("--namespace", help="only this user's or organisation's repos")
    x = rs.add_parser("info", parents=[common], help="a repo's visibility, commits and refs")
    x.add_argument("repo", help="namespace/name")
    x = rs.add_parser("delete", parents=[common], help="delete a repo and its refs")
    x.add_argument("repo", help="namespace/name")
    s.set_defaults(fn=cmd_repo)

    s = sub.add_parser("push", parents=[common], help="commit a file or directory")
    s.add_argument("path", help="the file or directory to commit")
    s.add_argument("--repo", required=True, help="namespace/name")
    s.add_argument("--branch", "-b", help="the branch to commit to (default: the repo's default)")
    s.add_argument("-m", "--message", required=True, help="the commit message")
    s.add_argument(
        "--path-in-repo", default="", help="where PATH goes in the repo (default: its root)"
    )
    s.add_argument(
        "--expected-head", help="fail with a conflict unless the branch is still at this commit"
    )
    s.add_argument("--metadata", help="JSON object stored with the commit")
    s.add_argument(
        "--delete-missing", action="store_true", help="also delete remote files absent locally"
    )
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_push)

    s = sub.add_parser("pull", parents=[common], help="download a ref into a directory")
    s.add_argument("spec", help="namespace/name[@ref]: a branch, tag or commit (default branch)")
    s.add_argument("dest", nargs="?", help="the directory to write (default: ./NAME)")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_pull)

    s = sub.add_parser("branch", parents=[common], help="create, list, delete or protect branches")
    bs = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = bs.add_parser("create", parents=[common], help="create a branch")
    x.add_argument("repo", help="namespace/name")
    x.add_argument("name", help="the new branch")
    x.add_argument("--from", dest="from_ref", help="branch, tag or commit (default: default)")
    x = bs.add_parser("list", parents=[common], help="list a repo's branches")
    x.add_argument("repo", help="namespace/name")
    for action, what in (
        ("delete", "delete a branch (its commits stay until gc)"),
        ("protect", "refuse pushes that rewrite or delete the branch"),
        ("unprotect", "lift a branch's protection"),
    ):
        x = bs.add_parser(action, parents=[common], help=what)
        x.add_argument("repo", help="namespace/name")
        x.add_argument("name", help="the branch")
    s.set_defaults(fn=cmd_branch)

    s = sub.add_parser("tag", parents=[common], help="create, list or delete tags")
    ts = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = ts.add_parser("create", parents=[common], help="tag a commit")
    x.add_argument("repo", help="namespace/name")
    x.add_argument("name", help="the new tag")
    x.add_argument("ref", help="the branch, tag or commit to tag")
    x.add_argument("-m", "--message", help="the tag's message")
    x = ts.add_parser("list", parents=[common], help="list a repo's tags")
    x.add_argument("repo", help="namespace/name")
    x = ts.add_parser("delete", parents=[common], help="delete a tag")
    x.add_argument("repo", help="namespace/name")
    x.add_argument("name", help="the tag")
    s.set_defaults(fn=cmd_tag)

    s = sub.add_parser("log", parents=[common], help="a ref's history, newest first")
    s.add_argument("spec", help="namespace/name[@ref] (default: the default branch)")
    s.add_argument("--first-parent", action="store_true", help="follow only first parents")
    s.add_argument("-n", "--limit", type=int, default=20, help="at most this many commits")
    s.set_defaults(fn=cmd_log)

    s = sub.add_parser("show", parents=[common], help="a commit: message, parents, files")
    s.add_argument("spec", help="namespace/name[@ref]: a branch, tag or commit")
    s.set_defaults(fn=cmd_show)

    s = sub.add_parser("ls", parents=[common], help="the files at a ref")
    s.add_argument("spec", help="namespace/name[@ref]: a branch, tag or commit")
    s.add_argument("--prefix", help="only paths that start with this")
    s.set_defaults(fn=cmd_ls)

    s = sub.add_parser(
        "diff", parents=[common], help="what changed between two refs, tensor by tensor"
    )
    s.add_argument("a", help="the old side: a branch, tag or commit")
    s.add_argument("b", help="the new side: a branch, tag or commit")
    s.add_argument("--repo", required=True, help="namespace/name")
    s.add_argument("--files-only", action="store_true", help="files only, no tensor statistics")
    s.add_argument("--filter", help="only tensors whose name contains this")
    s.set_defaults(fn=cmd_diff)

    s = sub.add_parser(
        "merge", parents=[common], help="merge a branch, tag or commit into a branch"
    )
    s.add_argument("source", help="the branch, tag or commit to merge")
    s.add_argument("--into", required=True, help="the branch that receives the merge")
    s.add_argument("--repo", required=True, help="namespace/name")
    s.add_argument(
        "--strategy",
        choices=["ours", "theirs", "average"],
        help="how to resolve tensors both sides changed (default: stop at a conflict)",
    )
    s.add_argument("--weight", type=float, default=0.5, help="average: weight of SRC (0..1)")
    s.add_argument("-m", "--message", help="the merge commit's message")
    s.add_argument(
        "--no-ff", action="store_true", help="make a merge commit even where a fast-forward does"
    )
    s.set_defaults(fn=cmd_merge)

    s = sub.add_parser("gc", parents=[common], help="garbage-collect (dry run unless --execute)")
    s.add_argument("--execute", action="store_true", help="delete (default: only report)")
    s.add_argument(
        "--grace-seconds", type=int, help="spare what is younger than this (default: the hub's)"
    )
    s.set_defaults(fn=cmd_gc)

    s = sub.add_parser("token", parents=[common], help="create, list or revoke your API tokens")
    ks = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = ks.add_parser("create", parents=[common], help="create a token and print it (once)")
    x.add_argument("name", help="a name to recognise it by")
    x.add_argument(
        "--scope", choices=["read", "write"], default="write", help="what it may do (write)"
    )
    ks.add_parser("list", parents=[common], help="list your tokens (never their secret)")
    x = ks.add_parser("revoke", parents=[common], help="revoke a token")
    x.add_argument("id", type=int, help="the token's id (hub token list)")
    s.set_defaults(fn=cmd_token)

    s = sub.add_parser("runs", parents=[common], help="list, search, show or compare tracked runs")
    us = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, what in (
        ("list", "a project's runs as a table"),
        ("search", "a project's runs that match a query"),
    ):
        x = us.add_parser(action, parents=[common], help=what)
        x.add_argument("project", help="namespace/project")
        if action == "search":
            x.add_argument(
                "query",
                help="e.g. 'params.model.top_k:4 AND summary.val/loss:<2.1 AND tags:baseline'",
            )
        x.add_argument(
            "--sort",
            help="comma list, '-' for descending (--sort=-KEY), e.g. summary.val/loss.min",
        )
        x.add_argument("--columns", help="comma list of params.X / summary.KEY[.min|.max] to show")
        x.add_argument("--facets", help="comma list, e.g. tags,status")
        x.add_argument("-n", "--limit", type=int, default=50, help="at most this many runs")
    x = us.add_parser("show", parents=[common], help="a run's params, tags and metric summary")
    x.add_argument("run", help="the run id")
    x = us.add_parser(
        "alerts", parents=[common], help="a run's MoE health alerts (collapse, dead experts, ...)"
    )
    x.add_argument("run", help="the run id")
    x.add_argument(
        "--kind",
        choices=["dead_expert", "collapse", "dropped_tokens", "nonfinite_loss", "divergence"],
        help="only alerts of this kind",
    )
    x = us.add_parser(
        "compare",
        parents=[common],
        help="compare run ids, or model commits (ns/repo@ref: a commit id, branch or tag) "
        "through their linked runs",
    )
    x.add_argument(
        "runs", nargs="+", metavar="RUN_OR_COMMIT", help="run ids, or ns/repo@ref model commits"
    )
    x.add_argument("--baseline", help="the run (or commit) the others are compared to")
    x.add_argument("--target", help="metric that decides 'best' (default: a val loss)")
    x.add_argument(
        "--goal",
        choices=["min", "max", "none"],
        help="the target's direction (default: the project's metric_directions, then its name)",
    )
    x.add_argument(
        "--kind",
        choices=["train", "finetune", "evaluate", "profile", "run"],
        help="with commits: compare runs of this kind (default: the kind every commit has)",
    )
    x.add_argument(
        "--format",
        choices=["markdown", "html", "json"],
        default="markdown",
        help="the report's format (markdown)",
    )
    x.add_argument("-o", "--output", help="write the report to this file (default: stdout)")
    s.set_defaults(fn=cmd_runs)

    s = sub.add_parser("jobs", parents=[common], help="launch, list, show, follow or cancel jobs")
    js = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = js.add_parser("launch", parents=[common], help="queue a job on the hub's workers")
    x.add_argument(
        "kind",
        choices=["train", "evaluate", "profile", "finetune", "quantize", "inspect"],
        help="what the job does",
    )
    x.add_argument("--project", required=True, help="namespace/project for the job's run")
    x.add_argument("--config", help="JSON config file (workload defaults when omitted)")
    x.add_argument("--base", help="namespace/repo@ref of the base model (pinned to its commit)")
    x.add_argument("--target", help="namespace/repo@branch that receives the weights")
    x.add_argument("--gpus", type=int, help="GPUs to reserve (default: the hub's)")
    x.add_argument("--cpus", type=float, help="CPU cores to reserve (default: the hub's)")
    x.add_argument("--memory-mb", type=int, help="memory limit in MiB (default: the hub's)")
    x.add_argument(
        "--disk-mb", type=int, help="disk quota for the job's folder, /tmp and /dev/shm (each)"
    )
    x.add_argument("--time-limit", type=int, help="seconds")
    x = js.add_parser("list", parents=[common], help="list jobs, newest first")
    x.add_argument("--project", help="only this namespace/project's jobs")
    x.add_argument("--status", help="only jobs in this state (queued, running, succeeded, ...)")
    x.add_argument("-n", "--limit", type=int, default=50, help="at most this many jobs")
    for action, what in (
        ("show", "a job's state history, run, commit and artifacts"),
        ("cancel", "stop a queued or running job"),
        ("relaunch", "launch a job again with the same inputs"),
    ):
        x = js.add_parser(action, parents=[common], help=what)
        x.add_argument("job", help="the job id")
    x = js.add_parser("logs", parents=[common], help="a job's output")
    x.add_argument("job", help="the job id")
    x.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    x.add_argument("--tail", type=int, default=100, help="start with the last N lines")
    s.set_defaults(fn=cmd_jobs)

    s = sub.add_parser(
        "generate",
        parents=[common],
        help='prompt a commit in the inference sandbox: hub generate ns/name@ref "prompt"',
    )
    s.add_argument("spec", help="ns/name[@ref] (default: the default branch's head)")
    s.add_argument("prompt", help="the text to continue")
    s.add_argument(
        "--max-new-tokens", type=int, default=64, help="stop after this many tokens (64)"
    )
    s.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    s.add_argument("--top-k", type=int, default=0, help="0: off")
    s.add_argument("--top-p", type=float, default=1.0, help="1: off")
    s.add_argument("--seed", type=int, default=None, help="same seed, same text")
    s.add_argument("--stop", action="append", help="stop string (repeat for several)")
    s.add_argument("--no-watermark", action="store_true", help="turn the repo's text watermark off")
    s.set_defaults(fn=cmd_generate)

    from hub.client.inspect_cli import add_parser as _inspect_parser

    _inspect_parser(sub, common)
    sub.choices["inspect"].set_defaults(fn=cmd_inspect)

    from hub.client.profile_cli import add_parser as _profile_parser

    _profile_parser(sub, common)
    sub.choices["profile"].set_defaults(fn=cmd_profile)

    sub.add_parser(
        "sync", parents=[common], help="send metrics spooled while the hub was unreachable"
    ).set_defaults(fn=cmd_sync)

    s = sub.add_parser(
        "watermark", parents=[common], help="verify a text's watermark; a repo's watermark switch"
    )
    ws = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = ws.add_parser("verify", parents=[common], help="does a text carry a repo's watermark?")
    x.add_argument("file", help="a text file, or - for stdin")
    x.add_argument("--repo", help="ns/name: test that repo's keys (default: every readable key)")
    for action, what in (
        ("show", "a repo's watermark setting and key ids"),
        ("on", "watermark the repo's generations by default (admins)"),
        ("off", "stop watermarking them by default (admins)"),
    ):
        x = ws.add_parser(action, parents=[common], help=what)
        x.add_argument("repo", help="ns/name")
        if action == "on":
            x.add_argument("--strength", type=float, help="0 < s <= 1; delta = 10 * s")
        else:
            x.set_defaults(strength=None)
    s.set_defaults(fn=cmd_watermark)

    s = sub.add_parser(
        "search", parents=[common], help="find models by name, card fields, text and metrics"
    )
    s.add_argument(
        "query",
        nargs="*",
        help="words and terms: tag:, license:, base_model:, dataset:, metric:val_loss<2.0",
    )
    s.add_argument("--tag", action="append", help="card tag (repeat: all must match)")
    s.add_argument("--license", action="append", help="card license, e.g. apache-2.0")
    s.add_argument("--base-model", action="append", help="card base_model, e.g. alice/base")
    s.add_argument(
        "--metric", action="append", help="a producing run's metric: 'val_loss<2.0', 'acc.max>0.9'"
    )
    s.add_argument("-n", "--limit", type=int, default=20, help="at most this many (1-100)")
    s.set_defaults(fn=cmd_search)

    s = sub.add_parser(
        "admin", help="server-side administration (runs against the hub's DB; moe-hub[server])"
    )
    a = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    x = a.add_parser("create-user", help="create a user (and their namespace)")
    x.add_argument("--user", required=True, help="the username")
    x.add_argument("--password", help="a dashboard password (default: none, tokens only)")
    x.add_argument("--site-admin", action="store_true", help="make the user a site admin")
    x = a.add_parser("create-token", help="print a new API token for a user")
    x.add_argument("--user", required=True, help="the username")
    x.add_argument(
        "--scope", choices=["read", "write"], default="write", help="what it may do (write)"
    )
    x.add_argument("--name", default="cli", help="a name to recognise it by (cli)")
    x = a.add_parser(
        "set-password", help="set a dashboard password (generated and printed if omitted)"
    )
    x.add_argument("--user", required=True, help="the username")
    x.add_argument("--password", help="the new password (default: generate and print one)")
    x = a.add_parser(
        "create-worker-credential",
        help="print a service credential for workers (HUB_WORKER_TOKEN): it only claims jobs",
    )
    x.add_argument("--name", default="worker", help="a name to recognise it by (worker)")
    x = a.add_parser(
        "deactivate-user", help="revoke every API token of a user and disable their sign-in"
    )
    x.add_argument("--user", required=True, help="the username")
    a.add_parser("list-users", help="list users, their roles and whether they are active")
    s.set_defaults(fn=cmd_admin)

    s = sub.add_parser(
        "serve", help="run the hub and its services in the foreground (moe-hub[server])"
    )
    s.add_argument("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="the port to listen on (8000)")
    s.add_argument(
        "--data-dir",
        default=None,
        help="where the hub keeps its data (default: $HUB_DATA_DIR, else .hub-data)",
    )
    s.add_argument(
        "--demo",
        action="store_true",
        help="create an admin, a token and a demo repo on first start",
    )
    s.set_defaults(fn=cmd_serve)
    _add_examples(p)
    return p


def _fail(
    as_json: bool, exit_code: int, code: str, message: str, details: Any = None, *, tag=False
) -> int:
    """Reports an error on stderr: one JSON object with ``--json``, else ``error: MESSAGE``
    (with ``[code]`` when ``tag``: the hub's error code)."""
    if as_json:
        err: dict[str, Any] = {"code": code, "message": message}
        if details:
            err["details"] = details
        print(json.dumps({"error": err}, default=str), file=sys.stderr)
    else:
        print(f"error: {message}" + (f" [{code}]" if tag else ""), file=sys.stderr)
        if details and code not in {"merge_conflict"}:
            print(json.dumps(details, indent=2, default=str)[:4000], file=sys.stderr)
    return exit_code


def _closed_pipe() -> int:
    """Standard output's reader went away (``hub runs list | head -1``): stop quietly. Python
    ignores SIGPIPE, so a write raises BrokenPipeError, and the interpreter would complain
    again when it flushes stdout at exit; pointing stdout at /dev/null silences that (the
    pattern of https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_CLOSED_PIPE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        if "--json" in argv:
            return _fail(True, EXIT_USAGE, "usage", e.message)
        e.parser.print_usage(sys.stderr)
        print(f"{e.parser.prog}: error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    as_json = bool(getattr(args, "json", False))
    try:
        code = args.fn(args)
        sys.stdout.flush()  # a closed pipe shows here when the output fit in the buffer
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except HubUnreachable as e:
        return _fail(as_json, EXIT_UNREACHABLE, e.code, e.message)
    except HubClientError as e:
        if e.status == 404:
            exit_code = EXIT_NOT_FOUND
        elif e.status == 409:
            exit_code = EXIT_CONFLICT
        elif e.status in {401, 403}:
            exit_code = EXIT_AUTH
        elif 400 <= e.status < 500:
            exit_code = EXIT_USAGE
        else:
            exit_code = EXIT_ERROR
        return _fail(as_json, exit_code, e.code, e.message, e.details, tag=True)
    except MissingExtra as e:
        return _fail(as_json, EXIT_ERROR, "missing_extra", str(e))
    except FileNotFoundError as e:
        return _fail(as_json, EXIT_USAGE, "not_found", str(e))
    except ValueError as e:
        return _fail(as_json, EXIT_USAGE, "invalid_input", str(e))
    except KeyboardInterrupt:
        if not as_json:
            print("interrupted", file=sys.stderr)
            return 130
        return _fail(True, 130, "interrupted", "interrupted")
    except Exception as e:  # a bug: a traceback for a person, still JSON for a script
        if not as_json:
            raise
        return _fail(True, EXIT_ERROR, "internal_error", f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    sys.exit(main())
