"""Merges with several merge bases (criss-cross histories) give git's answer or refuse: never
a silently lost change. The reference is real ``git merge`` run on the same history."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load

from hub.registry import merge, services
from hub.registry.models import Repo
from tests.helpers import download, head, model, push, st_bytes, store_state

pytestmark = [pytest.mark.integration, pytest.mark.pg]

R = "alice/cc"


@pytest.fixture
def repo(api):
    client, _ = api
    assert client.post("/api/v1/repos", {"name": "cc"}, format="json").status_code == 201
    return R


def _branch(client, name, at="main"):
    r = client.post(f"/api/v1/repos/{R}/branches", {"name": name, "from_ref": at}, format="json")
    assert r.status_code == 201, r.content


def _merge(client, source, target, **kw):
    return client.post(
        f"/api/v1/repos/{R}/merge", {"source": source, "target": target, **kw}, format="json"
    )


def test_criss_cross_merge_keeps_a_revert_made_on_the_source(api, repo):
    """git: the virtual base (merge of both bases) has f=y, the source reverted it to x, the
    target kept y, so the merge takes the revert. Picking the base that has x loses it."""
    client, _ = api
    assert push(client, R, {"f.txt": b"x"}, message="B0").status_code == 201
    _branch(client, "a")
    _branch(client, "b")
    assert push(client, R, {"f.txt": b"y"}, branch="a", message="A1").status_code == 201
    a1 = head(client, R, "a")
    assert push(client, R, {"g.txt": b"1"}, branch="b", message="B1").status_code == 201
    b1 = head(client, R, "b")
    # criss-cross: each side merges the other's first commit
    _branch(client, "a1", at=a1)
    _branch(client, "b1", at=b1)
    assert _merge(client, "b1", "a", no_ff=True).status_code == 201
    assert _merge(client, "a1", "b", no_ff=True).status_code == 201
    # the source reverts f
    assert push(client, R, {"f.txt": b"x"}, branch="b", message="revert f").status_code == 201
    r = _merge(client, "b", "a")
    assert r.status_code in (201, 409), r.content
    if r.status_code == 409:  # refusing is allowed; a silent wrong result is not
        assert r.json()["error"]["code"] == "multiple_merge_bases"
        assert sorted(r.json()["error"]["details"]["bases"]) == sorted([a1, b1])
        return
    assert download(client, R, "f.txt", ref="a")[1] == b"x"
    assert download(client, R, "g.txt", ref="a")[1] == b"1"
    assert sorted(r.json()["bases"]) == sorted([a1, b1])


def _criss_cross_tensors(client, a1_tensors, b1_tensors, **merge_kw):
    """main → a (A1), main → b (B1); a merges B1 and b merges A1 (no fast-forward)."""
    _branch(client, "a")
    _branch(client, "b")
    assert push(client, R, {"m.safetensors": st_bytes(a1_tensors)}, branch="a").status_code == 201
    assert push(client, R, {"m.safetensors": st_bytes(b1_tensors)}, branch="b").status_code == 201
    a1, b1 = head(client, R, "a"), head(client, R, "b")
    _branch(client, "a1", at=a1)
    _branch(client, "b1", at=b1)
    assert _merge(client, "b1", "a", no_ff=True, **merge_kw).status_code == 201
    assert _merge(client, "a1", "b", no_ff=True, **merge_kw).status_code == 201
    return a1, b1


def test_criss_cross_merge_keeps_a_tensor_revert_made_on_the_source(api, repo):
    client, _ = api
    base = model(seed=3, n=2)
    assert push(client, R, {"m.safetensors": st_bytes(base)}).status_code == 201
    a1_t, b1_t = dict(base), dict(base)
    a1_t["layers.0.w"] = base["layers.0.w"] * 2
    b1_t["layers.1.w"] = base["layers.1.w"] * 3
    a1, b1 = _criss_cross_tensors(client, a1_t, b1_t)
    reverted = {"layers.0.w": base["layers.0.w"], "layers.1.w": b1_t["layers.1.w"]}
    assert (
        push(
            client, R, {"m.safetensors": st_bytes(reverted)}, branch="b", message="revert"
        ).status_code
        == 201
    )
    r = _merge(client, "b", "a")
    assert r.status_code == 201, r.content
    out = load(download(client, R, "m.safetensors", ref="a")[1])
    assert np.array_equal(out["layers.0.w"], base["layers.0.w"])  # the revert, not a1's change
    assert np.array_equal(out["layers.1.w"], b1_t["layers.1.w"])
    assert sorted(r.json()["bases"]) == sorted([a1, b1])


def test_a_tensor_the_merge_bases_disagree_on_refuses_the_merge(api, repo):
    """Both bases changed one tensor differently: the virtual base has no version of it to
    merge against, so the merge refuses (409 multiple_merge_bases) and writes nothing."""
    client, _ = api
    base = model(seed=4, n=2)
    assert push(client, R, {"m.safetensors": st_bytes(base)}).status_code == 201
    a1_t, b1_t = dict(base), dict(base)
    a1_t["layers.0.w"] = base["layers.0.w"] * 2
    b1_t["layers.0.w"] = base["layers.0.w"] * 3
    a1, b1 = _criss_cross_tensors(client, a1_t, b1_t, strategy="ours")
    before = store_state()
    r = _merge(client, "b", "a", strategy="theirs")
    assert r.status_code == 409, r.content
    err = r.json()["error"]
    assert err["code"] == "multiple_merge_bases" and sorted(err["details"]["bases"]) == sorted(
        [a1, b1]
    )
    assert "m.safetensors" in err["message"]
    assert store_state()[4] == before[4]  # no ref moved


# --- property: the hub agrees with git ------------------------------------------------------
# Whole-file granularity: single-line files whose content is one token, so git's line merge
# and the hub's file merge agree; rename detection off (the hub has no renames).

FILES = ("p", "q")
TOKENS = ("A", "B", "C")
BRANCHES = ("b1", "b2", "b3")  # all start at main; main itself is never touched

op = st.one_of(
    st.tuples(
        st.just("set"), st.sampled_from(BRANCHES), st.sampled_from(FILES), st.sampled_from(TOKENS)
    ),
    st.tuples(st.just("del"), st.sampled_from(BRANCHES), st.sampled_from(FILES)),
    st.tuples(st.just("merge"), st.sampled_from(BRANCHES), st.sampled_from(BRANCHES)),
    st.tuples(st.just("merge"), st.sampled_from(BRANCHES), st.sampled_from(BRANCHES)),
    # point a branch at another's head: keeps an old head around, which makes criss-crosses
    st.tuples(st.just("copy"), st.sampled_from(BRANCHES), st.sampled_from(BRANCHES)),
)


def _git(cwd, *args, check=True):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check
    )


class Twin:
    """One history played on the hub (through its services) and on a real git repository.
    A step the hub refuses (a conflict) is skipped on both; merges that conflict are undone."""

    def __init__(self, repo: Repo, user, workdir: Path):
        self.repo, self.user, self.dir = repo, user, workdir
        _git(workdir, "init", "-q", "-b", "main")
        _git(workdir, "config", "merge.renames", "false")
        _git(workdir, "commit", "-q", "--allow-empty", "-m", "init")
        self.files = {b: {} for b in BRANCHES}
        for b in BRANCHES:
            services.branch_create(repo=repo, name=b, from_ref="main", user=user)
            _git(workdir, "branch", b)
        self.n = 0

    def _hub_commit(self, branch, ops):
        from hub.shared.chunking import chunk_bytes

        operations = []
        for path, data in ops:
            if data is None:
                operations.append({"op": "delete", "path": path})
            else:
                m = chunk_bytes(data, name=path)
                for c in m.chunks:
                    services.chunk_upload(digest=c.hash, parts=[data[c.offset : c.offset + c.size]])
                operations.append(m.as_operation())
        self.n += 1
        services.commit_create(
            repo=self.repo,
            branch=branch,
            operations=operations,
            message=f"c{self.n}",
            user=self.user,
        )

    def set(self, branch, path, token):
        if self.files[branch].get(path) == token:
            return
        self._hub_commit(branch, [(path, token.encode() + b"\n")])
        _git(self.dir, "checkout", "-q", branch)
        (self.dir / path).write_text(token + "\n")
        _git(self.dir, "add", path)
        _git(self.dir, "commit", "-q", "-m", f"c{self.n}")
        self.files[branch][path] = token

    def delete(self, branch, path):
        if path not in self.files[branch]:
            return
        self._hub_commit(branch, [(path, None)])
        _git(self.dir, "checkout", "-q", branch)
        _git(self.dir, "rm", "-q", path)
        _git(self.dir, "commit", "-q", "-m", f"c{self.n}")
        del self.files[branch][path]

    def copy(self, source, target):
        services.branch_delete(repo=self.repo, name=target)
        services.branch_create(repo=self.repo, name=target, from_ref=source, user=self.user)
        _git(self.dir, "checkout", "-q", "main")
        _git(self.dir, "branch", "-f", target, source)
        self.files[target] = dict(self.files[source])

    def merge(self, source, target):
        """Merge on both; returns (hub outcome, git outcome) where an outcome is "refused",
        ("conflict", paths) or ("clean", files)."""
        from hub.common.errors import HubError

        _git(self.dir, "checkout", "-q", target)
        g = _git(
            self.dir,
            "merge",
            "-q",
            "--no-ff",
            "--no-edit",
            "-s",
            "recursive",
            "-X",
            "no-renames",
            source,
            check=False,
        )
        if g.returncode == 0:
            git_out = ("clean", self._git_files())
        else:
            unmerged = _git(self.dir, "diff", "--name-only", "--diff-filter=U").stdout.split()
            assert unmerged, g.stdout + g.stderr
            git_out = ("conflict", sorted(unmerged))
            _git(self.dir, "merge", "--abort")
        try:
            merge.merge(
                repo=self.repo,
                source=source,
                target=target,
                user=self.user,
                allow_fast_forward=False,
            )
        except HubError as e:
            if e.code == "multiple_merge_bases":
                hub_out = "refused"
            else:
                assert e.code == "merge_conflict", (e.code, e.message)
                hub_out = ("conflict", sorted({c["path"] for c in e.details["conflicts"]}))
        else:
            hub_out = ("clean", self._hub_files(target))
        if git_out[0] == "clean" and (hub_out == "refused" or hub_out[0] != "clean"):
            _git(self.dir, "reset", "-q", "--hard", "HEAD~1")  # keep the two histories the same
        elif git_out[0] == "clean":
            self.files[target] = hub_out[1]
        return hub_out, git_out

    def up_to_date(self, source, target) -> bool:
        return (
            _git(self.dir, "merge-base", "--is-ancestor", source, target, check=False).returncode
            == 0
        )

    def _git_files(self):
        out = {}
        for p in FILES:
            f = self.dir / p
            if f.exists():
                out[p] = f.read_text().strip()
        return out

    def _hub_files(self, branch):
        from hub.registry import selectors

        commit = selectors.resolve(repo=self.repo, ref=branch)
        out = {}
        for p in commit.tree.entries:
            data = b"".join(selectors.file_iter(file=selectors.file_get(commit=commit, path=p)))
            out[p] = data.decode().strip()
        return out


_COUNTER = iter(range(10**9))


# b3 keeps b1's old head; b1 and b2 then merge each other's old heads: a criss-cross, whose
# two merge bases disagree whenever the random edits before it touched the same files.
CRISS_CROSS = [("copy", "b1", "b3"), ("merge", "b2", "b1"), ("merge", "b3", "b2")]
history = st.builds(
    lambda a, b, c: a + CRISS_CROSS + b + c,
    st.lists(op, max_size=8),
    st.lists(op, max_size=6),
    st.lists(
        st.tuples(st.just("merge"), st.sampled_from(BRANCHES), st.sampled_from(BRANCHES)),
        min_size=1,
        max_size=3,
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(history)
# Found by this test before the fix: b2 keeps p, b1 deletes it after the criss-cross; the
# newest merge base still had p, so the hub kept it where git deletes it.
@example(
    ops=[
        ("set", "b1", "p", "A"),
        ("del", "b1", "p"),
        ("set", "b2", "p", "A"),
        *CRISS_CROSS,
        ("del", "b1", "p"),
        ("merge", "b1", "b2"),
    ]
)
# The finding itself: a revert on the source after a criss-cross.
@example(
    ops=[
        ("set", "b1", "p", "A"),
        ("copy", "b1", "b2"),
        ("set", "b1", "p", "B"),
        ("set", "b2", "q", "C"),
        *CRISS_CROSS,
        ("set", "b2", "p", "A"),
        ("merge", "b2", "b1"),
    ]
)
def test_merges_agree_with_git_on_random_criss_cross_histories(api, ops):
    _, user = api
    from hub.accounts.models import Namespace

    repo = services.repo_create(
        namespace=Namespace.objects.get(name=user.username), name=f"prop{next(_COUNTER)}", user=user
    )
    work = Path(tempfile.mkdtemp(prefix="merge-prop-"))
    try:
        twin = Twin(repo, user, work)
        for o in ops:
            if o[0] == "set":
                twin.set(o[1], o[2], o[3])
            elif o[0] == "del":
                twin.delete(o[1], o[2])
            elif o[0] == "copy":
                if o[1] != o[2]:
                    twin.copy(o[1], o[2])
            else:
                source, target = o[1], o[2]
                if source == target or twin.up_to_date(source, target):
                    continue
                hub_out, git_out = twin.merge(source, target)
                if hub_out == "refused":
                    continue
                assert hub_out == git_out, (ops, o)
    finally:
        shutil.rmtree(work, ignore_errors=True)
