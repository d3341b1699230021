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
    assert G.merge_base("c", "e") == "b"
    assert G.merge_base("f", "e") == "e"
    assert G.merge_base("a", "x") is None


def test_walks():
    assert list(G.walk("f", first_parent=True)) == ["f", "c", "b", "a"]
    full = list(G.walk("f"))
    assert set(full) == {"a", "b", "c", "d", "e", "f"} and full[0] == "f" and full[-1] == "a"
    assert full.index("e") < full.index("d") < full.index("b")
