"""Concurrent writers against the real database (SQLite file in WAL mode, and PostgreSQL)."""

import threading

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.accounts import services as accounts
from hub.common.errors import Conflict
from hub.registry import merge, selectors, services
from hub.registry.models import Commit, Ref
from hub.shared.chunking import chunk_hash

pytestmark = [pytest.mark.integration, pytest.mark.pg]


@pytest.mark.django_db(transaction=True)
def test_16_concurrent_committers_on_one_parent_exactly_one_wins(blob_dir):
    user = accounts.user_create(username="racer")
    repo = services.repo_create(namespace=user.memberships.get().namespace, name="race", user=user)
    parent = selectors.branch_get(repo=repo, name="main").commit.sha
    barrier = threading.Barrier(16)
    results: list[tuple[str, str]] = []
    lock = threading.Lock()

    def commit(i: int):
        try:
            data = f"{i}".encode()
            services.chunk_upload(digest=chunk_hash(data), parts=[data])
            barrier.wait()
            c, _ = services.commit_create(
                repo=repo,
                branch="main",
                user=user,
                message=f"writer {i}",
                expected_head=parent,
                operations=[
                    {"op": "add", "path": f"w{i}.txt", "chunks": [[chunk_hash(data), len(data)]]}
                ],
            )
            outcome = ("ok", c.sha)
        except Conflict as e:
            outcome = (e.code, e.details["current_head"])
        except Exception as e:  # noqa: BLE001 - any other failure must fail the test
            outcome = ("error", repr(e))
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [sha for kind, sha in results if kind == "ok"]
    losers = [r for r in results if r[0] != "ok"]
    assert len(winners) == 1, results
    assert all(kind == "branch_conflict" for kind, _ in losers), results
    assert all(current == winners[0] for _, current in losers)
    head = Ref.objects.get(repo=repo, name="main").commit.sha
    assert head == winners[0]
    # nothing lost, nothing orphaned: the repo holds the initial commit and the winner only
    assert set(Commit.objects.filter(repo=repo).values_list("sha", flat=True)) == {parent, head}


@pytest.mark.django_db(transaction=True)
def test_concurrent_branch_creation_of_one_name_creates_one_branch(blob_dir):
    user = accounts.user_create(username="brancher")
    repo = services.repo_create(namespace=user.memberships.get().namespace, name="b", user=user)
    barrier = threading.Barrier(8)
    codes: list[str] = []

    def create():
        try:
            barrier.wait()
            services.branch_create(repo=repo, name="same", from_ref="main", user=user)
            codes.append("ok")
        except Conflict as e:
            codes.append(e.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == ["ok"] + ["ref_exists"] * 7


OPS = st.lists(
    st.tuples(
        st.sampled_from(["commit", "merge"]),
        st.sampled_from(["main", "x", "y"]),
        st.sampled_from(["main", "x", "y"]),
    ),
    min_size=1,
    max_size=10,
)


@pytest.mark.django_db
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(OPS)
def test_merge_outcome_follows_ancestry(blob_dir, ops):
    """Fast-forward iff the target is an ancestor of the source; up to date iff the source is
    an ancestor of the target (merging a branch into itself included); else a merge commit
    with both heads as parents."""
    from hub.accounts.models import User

    user = User.objects.filter(username="prop").first() or accounts.user_create(username="prop")
    ns = user.memberships.get().namespace
    repo = services.repo_create(namespace=ns, name=f"p{Commit.objects.count()}", user=user)
    for b in ("x", "y"):
        services.branch_create(repo=repo, name=b, from_ref="main", user=user)
    n = 0
    for kind, a, b in ops:
        if kind == "commit":
            n += 1
            data = f"{a}-{n}".encode()
            services.chunk_upload(digest=chunk_hash(data), parts=[data])
            services.commit_create(
                repo=repo,
                branch=a,
                user=user,
                message=f"c{n}",
                operations=[
                    {"op": "add", "path": f"{a}.txt", "chunks": [[chunk_hash(data), len(data)]]}
                ],
            )
            continue
        src = selectors.resolve(repo=repo, ref=a).sha
        dst = selectors.resolve(repo=repo, ref=b).sha
        graph = selectors.commit_graph(repo=repo)
        out = merge.merge(repo=repo, source=a, target=b, user=user)
        if graph.is_ancestor(src, dst):
            assert out.kind == "up_to_date" and selectors.resolve(repo=repo, ref=b).sha == dst
        elif graph.is_ancestor(dst, src):
            assert out.kind == "fast_forward" and selectors.resolve(repo=repo, ref=b).sha == src
        else:
            assert out.kind == "merge" and out.commit.parents == [dst, src]
            assert selectors.resolve(repo=repo, ref=b).sha == out.commit.sha
