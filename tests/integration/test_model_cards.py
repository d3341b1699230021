"""Model cards: README.md front matter parsed within bounds, Markdown rendered and sanitised,
a card generated from lineage when there is none, and the "add this card" commit."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from hub.registry.cards import parse_card, render_markdown, sanitize_html
from tests.conftest import client_for
from tests.helpers import head, push, upload

pytestmark = [pytest.mark.integration]

CARD = b"""---
license: apache-2.0
tags: [moe, text-generation]
base_model: alice/moe-base
datasets:
  - tinystories
metrics: [perplexity]
language: en
pipeline_tag: text-generation
model-index:
  - name: moe-small
    results: []
---
# MoE small

A **sparse** model with 8 experts.
"""


# --- parsing ------------------------------------------------------------------------------------


def test_front_matter_fields_are_parsed_and_normalised(settings):
    card = parse_card(CARD)
    assert card.metadata_error is None
    assert card.fields == {
        "license": "apache-2.0",
        "tags": ["moe", "text-generation"],
        "base_model": ["alice/moe-base"],
        "datasets": ["tinystories"],
        "metrics": ["perplexity"],
        "language": ["en"],
        "pipeline_tag": "text-generation",
    }
    assert card.metadata["model-index"] == [{"name": "moe-small", "results": []}]
    assert card.body.startswith("# MoE small")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b"---\nlicense: [unclosed\n---\nbody\n", "not valid YAML"),
        (b"---\n- just\n- a list\n---\nbody\n", "must be a YAML mapping"),
        (b"---\nlicense: mit\nbody without a closing line\n", "no closing '---'"),
        (b"---\n!!python/object/apply:os.system ['true']\n---\nbody\n", "not valid YAML"),
    ],
)
def test_malformed_front_matter_is_a_note_not_a_failure(settings, text, error):
    card = parse_card(text)
    assert error in card.metadata_error
    assert card.metadata == {} and card.fields == {}
    assert "body" in card.body


def test_an_alias_bomb_stops_at_the_node_budget(settings):
    lines = ["---", 'a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):  # 10**9 nodes once expanded
        prev = chr(ord("a") + i - 1)
        name = chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 10)}]")
    lines += ["---", "body"]
    card = parse_card("\n".join(lines).encode())
    assert "more than 10000 values" in card.metadata_error
    assert card.body == "body"


@pytest.mark.parametrize(
    "nested", [b"[" * 30_000 + b"]" * 30_000, b"{x: " * 10_000 + b"1" + b"}" * 10_000]
)
def test_deeply_nested_front_matter_is_refused_before_parsing(settings, nested, monkeypatch):
    import yaml

    def never(*a, **kw):
        raise AssertionError("parsed")

    monkeypatch.setattr(yaml, "safe_load", never)
    card = parse_card(b"---\na: " + nested + b"\n---\nbody")
    assert card.metadata_error == "The front matter is nested too deeply."
    assert card.body == "body"


def test_size_limits_are_settings(settings):
    settings.HUB_MAX_CARD_METADATA_BYTES = 100
    card = parse_card(b"---\ndescription: " + b"x" * 200 + b"\n---\nbody\n")
    assert "larger than 100 bytes" in card.metadata_error
    settings.HUB_MAX_CARD_BYTES = 50
    card = parse_card(b"# title\n\n" + b"y" * 500)
    assert card.truncated and len(card.body) == 50


def test_wrong_field_types_are_dropped_with_a_warning(settings):
    card = parse_card(b"---\nlicense: {a: 1}\ntags: [ok, {no: 1}]\nbase_model: x\n---\n")
    assert card.metadata_error is None
    assert card.fields == {"base_model": ["x"]}
    assert len(card.warnings) == 2


# --- sanitising ---------------------------------------------------------------------------------

XSS = [
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "<img src=x onerror=alert(1)>",
    '![x](x" onerror="alert(1))',
    '<a href="javascript:alert(1)">raw</a>',
    "<iframe src=https://evil.example></iframe>",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(1)>",
    '<svg onload="alert(1)"></svg>',
    "<style>body{display:none}</style>",
]


class _Elements(HTMLParser):
    """Every element and attribute a browser would build from the HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def _elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize("payload", XSS)
def test_xss_payloads_are_neutralised(payload):
    _assert_safe(render_markdown(f"# t\n\n{payload}\n"))


def _assert_safe(html: str) -> None:
    elements = _elements(html)
    assert ("h1", {}) in elements
    for tag, attrs in elements:
        assert tag not in {"script", "iframe", "svg", "style", "object", "embed"}, html
        assert not any(name.startswith("on") for name in attrs), html
        for name in ("href", "src"):
            url = attrs.get(name, "").strip().lower()
            assert not url.startswith(("javascript:", "data:", "vbscript:")), html


@pytest.mark.parametrize("payload", XSS)
def test_the_sanitizer_alone_also_neutralises_raw_html(payload):
    """The second layer: even HTML that the Markdown renderer let through is cleaned."""
    _assert_safe(sanitize_html(f"<h1>t</h1>{payload}"))


def test_raw_html_is_shown_as_text_and_markdown_still_renders():
    html = render_markdown("**bold** <b>raw</b>\n\n| a | b |\n| - | - |\n| 1 | 2 |\n")
    assert "<strong>bold</strong>" in html
    assert "&lt;b&gt;raw&lt;/b&gt;" in html
    assert "<table>" in html and "<td>1</td>" in html


def test_links_get_rel_nofollow_and_keep_http():
    html = render_markdown("[site](https://example.com/x)")
    assert 'href="https://example.com/x"' in html and "nofollow" in html


# --- the card endpoint ----------------------------------------------------------------------------


@pytest.fixture
def repo(api):
    client, _ = api
    assert client.post("/api/v1/repos", {"name": "m"}, format="json").status_code == 201
    return client


@pytest.mark.django_db
def test_repo_page_card_is_the_readme_rendered(repo):
    push(repo, "alice/m", {"README.md": CARD + b"\n<script>alert(1)</script>\n"})
    r = repo.get("/api/v1/repos/alice/m/card")
    assert r.status_code == 200, r.content
    card = r.json()
    assert card["source"] == "readme" and card["markdown"] is None
    assert card["fields"]["license"] == "apache-2.0"
    assert "<strong>sparse</strong>" in card["html"]
    assert "<script" not in card["html"] and "&lt;script&gt;" in card["html"]
    assert card["commit"] == head(repo, "alice/m")


@pytest.mark.django_db
def test_the_commit_page_shows_that_commits_card(repo):
    push(repo, "alice/m", {"README.md": b"# first version\n"})
    first = head(repo, "alice/m")
    push(repo, "alice/m", {"README.md": b"# second version\n"})
    card = repo.get("/api/v1/repos/alice/m/card", {"ref": first}).json()
    assert card["commit"] == first and "first version" in card["html"]
    assert "second version" in repo.get("/api/v1/repos/alice/m/card").json()["html"]


@pytest.mark.django_db
def test_malformed_front_matter_is_a_200_with_a_note(repo):
    push(repo, "alice/m", {"README.md": b"---\ntags: [a\n---\n# still shown\n"})
    r = repo.get("/api/v1/repos/alice/m/card")
    assert r.status_code == 200
    assert "not valid YAML" in r.json()["metadata_error"]
    assert "still shown" in r.json()["html"]


@pytest.mark.django_db
def test_a_private_repos_card_is_a_404_to_others(api, make_user):
    client, _ = api
    client.post("/api/v1/repos", {"name": "secret", "private": True}, format="json")
    push(client, "alice/secret", {"README.md": CARD})
    _, bob = make_user("bob")
    for other in (client_for(bob), client_for(None)):
        r = other.get("/api/v1/repos/alice/secret/card")
        assert r.status_code == 404 and r.json()["error"]["code"] == "repo_not_found"
        assert other.post("/api/v1/repos/alice/secret/card", {}, format="json").status_code == 404


@pytest.mark.django_db
def test_an_unknown_ref_is_a_404(repo):
    r = repo.get("/api/v1/repos/alice/m/card", {"ref": "nope"})
    assert r.status_code == 404


# --- generated cards -------------------------------------------------------------------------------


@pytest.fixture
def lineage(repo, settings, chdb_path, monkeypatch):
    """alice/m with a base commit, then a commit with config.json produced by a run that
    logged val_loss; returns (client, run id, base sha, head sha)."""
    from hub.stores.metrics import metrics_store_from_url
    from tests.fixtures_services import unique_name

    store = metrics_store_from_url(f"chdb://{chdb_path}?database={unique_name('t')}")
    store.ensure_schema()
    import hub.tracking.selectors as sel
    import hub.tracking.services as svc

    monkeypatch.setattr(svc, "get_metrics_store", lambda: store)
    monkeypatch.setattr(sel, "get_metrics_store", lambda: store)
    settings.HUB_ELASTICSEARCH_URL = ""
    client = repo
    assert client.post("/api/v1/projects", {"name": "exp"}, format="json").status_code == 201
    run = client.post(
        "/api/v1/projects/alice/exp/runs",
        {"name": "moe-top2", "params": {"lr": 0.001}},
        format="json",
    ).json()
    r = client.post(
        f"/api/v1/runs/{run['id']}/metrics",
        {"key": "val_loss", "step": [0, 100], "value": [4.5, 1.75]},
        format="json",
    )
    assert r.status_code in (200, 201, 202), r.content
    client.patch(f"/api/v1/runs/{run['id']}", {"status": "finished"}, format="json")
    push(client, "alice/m", {"weights.bin": b"w" * 64}, message="base weights")
    base = head(client, "alice/m")
    config = {"model": {"n_experts": 8, "top_k": 2}, "train": {"steps": 100}}
    ops_body = {
        "branch": "main",
        "message": "trained 100 steps",
        "run_id": run["id"],
    }

    ops = upload(client, "alice/m", {"config.json": json.dumps(config).encode()})
    r = client.post("/api/v1/repos/alice/m/commits", {**ops_body, "operations": ops}, format="json")
    assert r.status_code == 201, r.content
    yield client, run["id"], base, r.json()["sha"]
    store.drop_database()


@pytest.mark.django_db(transaction=True)
def test_a_repo_without_readme_gets_a_card_from_its_lineage(lineage):
    client, run_id, base, sha = lineage
    card = client.get("/api/v1/repos/alice/m/card").json()
    assert card["source"] == "generated"
    md = card["markdown"]
    assert f"`{sha}`" in md and "trained 100 steps" in md
    assert f"`{run_id}`" in md and "moe-top2" in md
    assert "| val\\_loss | 1.75 | 1.75 | 4.5 | 100 |" in md
    assert '"n_experts": 8' in md  # the commit's config.json
    assert f"`{base[:12]}` base weights" in md  # parent commits
    assert card["fields"]["tags"] == ["moe-hub", "mixture-of-experts"]
    assert card["fields"]["metrics"] == ["val_loss"]
    assert "<table>" in card["html"] and "1.75" in card["html"]
    # nothing was committed: the head still has no README
    assert head(client, "alice/m") == sha


@pytest.mark.django_db(transaction=True)
def test_a_generated_card_leaves_out_runs_of_a_project_the_reader_cannot_see(lineage, make_user):
    client, run_id, _, _ = lineage
    from hub.tracking.models import Project

    # the project API cannot change visibility after creation: set it as a private one has it
    Project.objects.filter(namespace__name="alice", name="exp").update(private=True)
    _, bob = make_user("bob")
    md = client_for(bob).get("/api/v1/repos/alice/m/card").json()["markdown"]
    assert run_id not in md and "val\\_loss" not in md and "1.75" not in md
    assert run_id in client.get("/api/v1/repos/alice/m/card").json()["markdown"]


@pytest.mark.django_db(transaction=True)
def test_add_this_card_commits_the_generated_readme_once(lineage, make_user):
    client, run_id, _, sha = lineage
    _, reader = make_user("carol", scope="read")
    assert client_for(reader).post("/api/v1/repos/alice/m/card", {}, format="json").status_code in (
        403,
        404,
    )
    generated = client.get("/api/v1/repos/alice/m/card").json()["markdown"]
    r = client.post("/api/v1/repos/alice/m/card", {"expected_head": sha}, format="json")
    assert r.status_code == 201, r.content
    new = r.json()["commit"]
    assert head(client, "alice/m") == new
    readme = client.get("/api/v1/repos/alice/m/files/README.md")
    assert b"".join(readme.streaming_content).decode() == generated
    card = client.get("/api/v1/repos/alice/m/card").json()
    assert card["source"] == "readme" and run_id in card["html"]
    again = client.post("/api/v1/repos/alice/m/card", {}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "card_exists"


def _job(*, base_repo: str, base_commit: str):
    """A finished fine-tune job record as the jobs service leaves it (its worker's commit is
    made through the commit API below, with the job's id)."""
    from hub.jobs.models import Job
    from hub.tracking.models import Project

    return Job.objects.create(
        id="5d2e91c0a7f3",
        project=Project.objects.get(namespace__name="alice", name="exp"),
        kind=Job.Kind.FINETUNE,
        config={"train": {"steps": 5, "lr": 0.0003}},
        base_repo=base_repo,
        base_ref="main",
        base_commit=base_commit,
        target_repo="alice/m",
        target_branch="main",
        status=Job.Status.SUCCEEDED,
    )


@pytest.mark.django_db(transaction=True)
def test_a_generated_card_names_the_job_and_its_base_model(lineage):
    client, _, base, _ = lineage
    job = _job(base_repo="alice/base", base_commit=base)
    ops = upload(client, "alice/m", {"adapter.bin": b"a" * 32})
    r = client.post(
        "/api/v1/repos/alice/m/commits",
        {"branch": "main", "message": "fine-tune", "operations": ops, "job_id": job.pk},
        format="json",
    )
    assert r.status_code == 201, r.content
    card = client.get("/api/v1/repos/alice/m/card").json()
    md = card["markdown"]
    assert f"- Job: `{job.pk}` (finetune, succeeded)" in md
    assert f"- Base model: `alice/base@{base[:12]}`" in md
    assert card["fields"]["base_model"] == ["alice/base"]
    # the commit made by the run is now a parent, listed with the config it carried
    assert "trained 100 steps" in md and '"n_experts": 8' in md
