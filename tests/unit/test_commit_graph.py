import pytest

from hub.registry.selectors import CommitGraph

pytestmark = pytest.mark.unit


def graph(edges: dict[str, list[str]]) -> CommitGraph:
    gen: dict[str, int] = {}

    def g(s):
        if s not in gen:
            gen[s] = 1 + max((g(p) for p in edges[s]), default=0)
        return gen[s]

    for s in edges:
        g(s)
    return CommitGraph(edges, gen, {s: i for i, s in enumerate(edges)}, dict.fromkeys(edges, 0))


#   a - b - c - f (merge of c and e)
#        \     /
#         d - e
G = graph({"a": [], "b": ["a"], "c": ["b"], "d": ["b"], "e": ["d"], "f": ["c", "e"], "x": []})


def test_ancestry():
    assert G.is_ancestor("a", "f") and G.is_ancestor("e", "f") and G.is_ancestor("f", "f")
    assert not G.is_ancestor("c", "e") and not G.is_ancestor("f", "c")


def test_merge_base_is_the_fork_point():
    assert G.merge_bases("c", "e") == ["b"]
    assert G.merge_bases("f", "e") == ["e"]
    assert G.merge_bases("a", "x") == []


def test_walks():
    assert list(G.walk("f", first_parent=True)) == ["f", "c", "b", "a"]
    full = list(G.walk("f"))
    assert set(full) == {"a", "b", "c", "d", "e", "f"} and full[0] == "f" and full[-1] == "a"
    assert full.index("e") < full.index("d") < full.index("b")


#   criss-cross: x1 and y1 fork from r; x2 merges y1, y2 merges x1
#   r - x1 - x2
#     \    X
#       y1 - y2
CC = graph(
    {
        "r": [],
        "x1": ["r"],
        "y1": ["r"],
        "x2": ["x1", "y1"],
        "y2": ["y1", "x1"],
        "x3": ["x2"],
        "y3": ["y2"],
    }
)


def test_merge_bases_lists_every_best_common_ancestor():
    assert sorted(CC.merge_bases("x3", "y3")) == ["x1", "y1"]
    assert CC.merge_bases("x1", "y1") == ["r"]
    assert CC.merge_bases("x3", "x1") == ["x1"]
    assert G.merge_bases("a", "x") == []


def test_merge_bases_drops_a_common_ancestor_reachable_from_another():
    # r is common to x3 and y3 but is an ancestor of both x1 and y1: not a best one.
    assert "r" not in CC.merge_bases("x3", "y3")
