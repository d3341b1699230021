"""Model cards: a repo's ``README.md`` with YAML front matter, as on the Hugging Face Hub.

A card is Markdown whose first lines may hold a YAML block between two ``---`` lines::

    ---
    license: apache-2.0
    tags: [moe, text-generation]
    base_model: alice/moe-base
    datasets: [tinystories]
    metrics: [perplexity]
    ---
    # My model ...

Three things happen to it here:

- **Parsing** (:func:`parse_card`): the front matter goes through ``yaml.safe_load`` (no
  Python objects, no code), within bounds: the README is read up to ``HUB_MAX_CARD_BYTES``,
  the front matter up to ``HUB_MAX_CARD_METADATA_BYTES``, and the loaded value is copied to
  JSON with a node budget, so an alias bomb (a few lines whose aliases expand to billions of
  nodes) stops at :data:`MAX_METADATA_NODES`. Malformed or oversized front matter never fails
  the request: the card comes back with ``metadata_error`` set and its body still rendered.
  Known fields (:data:`LIST_FIELDS`, :data:`TEXT_FIELDS`) are normalised for search; a field
  of the wrong type is dropped with a warning.
- **Rendering** (:func:`render_markdown`): server-side, with markdown-it-py (CommonMark, raw
  HTML off: ``<script>`` in a card is shown as text) and then nh3 (the Ammonia sanitizer) over
  its output with an allow-list of tags, attributes and URL schemes (http, https, mailto), so
  neither a ``javascript:`` link nor an ``onerror`` attribute survives even if the Markdown
  renderer let one through. Server-side rather than marked + DOMPurify in the browser: the
  API then serves HTML that every client (dashboard, CLI, scripts) can use as it is, and the
  sanitizer runs once, in one place, under test.
- **Generating** (:func:`generated_card`): a repo without a README gets a card built from
  its lineage -- the commit's config, the run that produced it (metrics), its first-parent
  history and its job. It is only shown and offered (download, or :func:`card_commit` on an
  explicit request); nothing is committed on its own. Run and job details appear only when
  the caller may read their project.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import nh3
import yaml
from django.conf import settings
from markdown_it import MarkdownIt

from hub.common.errors import Conflict
from hub.registry.models import Commit, FileObject, Repo

CARD_PATH = "README.md"
#: Nodes (mappings, lists, scalars) the front matter may expand to once aliases are resolved.
MAX_METADATA_NODES = 10_000
#: Nesting of flow collections (``[...]``, ``{...}``) the front matter may have.
MAX_FLOW_DEPTH = 64
#: Values kept per list field, and characters per value, in the normalised fields.
MAX_FIELD_VALUES = 100
MAX_FIELD_CHARS = 200
#: Parent commits listed in a generated card, and commits walked to find the producing run.
LINEAGE_DEPTH = 10
#: Characters of config JSON a generated card shows.
MAX_CONFIG_CHARS = 20_000

#: Front-matter fields that are a list of strings (a single string is taken as a list of one).
LIST_FIELDS = ("tags", "base_model", "datasets", "metrics", "language")
#: Front-matter fields that are one string.
TEXT_FIELDS = ("license", "pipeline_tag", "library_name")

_FENCE = re.compile(r"\A\ufeff?---[ \t]*\r?\n")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE)


@dataclass
class Card:
    """A parsed card. ``fields`` holds the normalised known fields (lists and strings only);
    ``metadata`` the whole front matter as JSON; ``body`` the Markdown after it."""

    body: str
    metadata: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    metadata_error: str | None = None
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False


class _TooComplex(ValueError):
    pass


def _to_json(value: Any, budget: list[int]) -> Any:
    """A safe_load result -> JSON types, charging one node per value against ``budget``."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooComplex
    if isinstance(value, dict):
        return {str(k): _to_json(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_to_json(v, budget) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes):  # !!binary
        return f"<{len(value)} bytes>"
    return str(value)


def _normalise(meta: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in LIST_FIELDS:
        value = meta.get(name)
        if value is None:
            continue
        items = [value] if isinstance(value, str | int | float) else value
        if not isinstance(items, list) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in items
        ):
            warnings.append(f"'{name}' should be a string or a list of strings; ignored.")
            continue
        values = [str(v).strip()[:MAX_FIELD_CHARS] for v in items[:MAX_FIELD_VALUES]]
        out[name] = [v for v in dict.fromkeys(values) if v]
    for name in TEXT_FIELDS:
        value = meta.get(name)
        if value is None:
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            warnings.append(f"'{name}' should be a string; ignored.")
            continue
        if str(value).strip():
            out[name] = str(value).strip()[:MAX_FIELD_CHARS]
    return out


def _flow_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` (brackets inside quotes count too: an upper
    bound). PyYAML parses deep flow collections recursively and slowly (seconds for 30,000
    levels), so they are refused before parsing."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest


def parse_card(data: bytes) -> Card:
    """Split and parse a README's bytes; never raises for bad content (see module doc)."""
    limit = int(settings.HUB_MAX_CARD_BYTES)
    truncated = len(data) > limit
    text = data[:limit].decode("utf-8", errors="replace")
    match = _FENCE.match(text)
    if not match:
        return Card(body=text, truncated=truncated)
    close = _CLOSE.search(text, match.end())
    if close is None:
        return Card(
            body=text,
            metadata_error="The front matter has no closing '---' line.",
            truncated=truncated,
        )
    raw = text[match.end() : close.start()]
    body = text[close.end() :].lstrip("\r\n")
    card = Card(body=body, truncated=truncated)
    meta_limit = int(settings.HUB_MAX_CARD_METADATA_BYTES)
    if len(raw.encode()) > meta_limit:
        card.metadata_error = f"The front matter is larger than {meta_limit} bytes; not read."
        return card
    if _flow_depth(raw) > MAX_FLOW_DEPTH:
        card.metadata_error = "The front matter is nested too deeply."
        return card
    try:
        loaded = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        card.metadata_error = f"The front matter is not valid YAML{where}: {problem}."
        return card
    except RecursionError:
        card.metadata_error = "The front matter is nested too deeply."
        return card
    if loaded is None:
        return card
    if not isinstance(loaded, dict):
        card.metadata_error = "The front matter must be a YAML mapping (key: value lines)."
        return card
    try:
        card.metadata = _to_json(loaded, [MAX_METADATA_NODES])
    except (_TooComplex, RecursionError):
        card.metadata_error = (
            f"The front matter expands to more than {MAX_METADATA_NODES} values; not read."
        )
        return card
    card.fields = _normalise(card.metadata, card.warnings)
    return card


# --- rendering --------------------------------------------------------------------------------

# html=False: raw HTML in the Markdown is escaped, not passed through.
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
    "code": {"class"},
}


def render_markdown(text: str) -> str:
    """Markdown -> sanitised HTML (see the module docstring for the two layers)."""
    return sanitize_html(_md.render(text))


def sanitize_html(html: str) -> str:
    """The allow-list: tags, attributes and URL schemes a card may use; the rest is dropped
    (``<script>``, ``<style>`` and ``<iframe>`` with their content)."""
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )


# --- reading a commit's card --------------------------------------------------------------------


def read_card(*, commit: Commit) -> Card | None:
    """The parsed ``README.md`` of ``commit``, or None when it has none. Reads at most
    ``HUB_MAX_CARD_BYTES`` (+1, to know it was cut) of the file."""
    from hub.registry.selectors import file_iter

    oid = commit.tree.entries.get(CARD_PATH)
    if oid is None:
        return None
    f = FileObject.objects.get(oid=oid)
    limit = int(settings.HUB_MAX_CARD_BYTES)
    data = b"".join(file_iter(file=f, end=min(f.size, limit + 1)))
    return parse_card(data)


def _can_read_project(user, project) -> bool:
    from hub.accounts.selectors import role_in

    return not project.private or role_in(user=user, namespace=project.namespace) is not None


def _lineage(commit: Commit) -> list[Commit]:
    """``commit`` and its first-parent ancestors, newest first, at most LINEAGE_DEPTH + 1."""
    chain = [commit]
    while len(chain) <= LINEAGE_DEPTH and chain[-1].parents:
        parent = Commit.objects.filter(repo_id=commit.repo_id, sha=chain[-1].parents[0]).first()
        if parent is None:
            break
        chain.append(parent)
    return chain


def _producer(chain: list[Commit]) -> Commit | None:
    """The newest commit of the chain that a run or a job produced."""
    return next((c for c in chain if c.run_id or c.job_id), None)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _md_text(value: Any) -> str:
    """User text inside generated Markdown: one line, Markdown and HTML punctuation escaped."""
    text = " ".join(str(value).split())
    return re.sub(r"([\\`*_{}\[\]()#+!|<>~])", r"\\\1", text)


def _config_of(commit: Commit) -> dict | None:
    from hub.registry.selectors import file_iter

    oid = commit.tree.entries.get("config.json")
    if oid is None:
        return None
    f = FileObject.objects.get(oid=oid)
    if f.size > 1_000_000:
        return None
    try:
        value = json.loads(b"".join(file_iter(file=f)))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def generated_card(*, repo: Repo, commit: Commit, user) -> str:
    """A README.md for ``commit`` built from its lineage (config, run metrics, parents, job).
    Deterministic for a given commit and caller; details of a run or job appear only if
    ``user`` may read its project."""
    from hub.jobs.models import Job
    from hub.tracking.models import Run

    chain = _lineage(commit)
    producer = _producer(chain)
    run = job = None
    if producer is not None:
        if producer.run_id:
            run = Run.objects.select_related("project__namespace").filter(pk=producer.run_id)
            run = run.first()
            if run is not None and not _can_read_project(user, run.project):
                run = None
        if producer.job_id:
            job = Job.objects.select_related("project__namespace").filter(pk=producer.job_id)
            job = job.first()
            if job is not None and not _can_read_project(user, job.project):
                job = None
    config = _config_of(commit)
    if config is None and job is not None and isinstance(job.config, dict):
        config = job.config

    meta: dict[str, Any] = {"tags": ["moe-hub"]}
    model = (config or {}).get("model") if isinstance(config, dict) else None
    if isinstance(model, dict) and model.get("n_experts"):
        meta["tags"].append("mixture-of-experts")
    if job is not None and job.base_repo:
        meta["base_model"] = job.base_repo
    if run is not None and run.summary:
        meta["metrics"] = sorted(run.summary)[:MAX_FIELD_VALUES]

    lines = ["---", yaml.safe_dump(meta, sort_keys=True).rstrip(), "---", ""]
    lines += [f"# {_md_text(repo.full_name)}", ""]
    if repo.description:
        lines += [_md_text(repo.description), ""]
    lines += [
        "*This card was generated by MoE Hub from the model's lineage. Review it, then commit "
        f"it as `{CARD_PATH}` to replace it with your own.*",
        "",
        "## Commit",
        "",
        f"- Commit: `{commit.sha}`",
        f"- Message: {_md_text(commit.message)}",
        f"- Author: {_md_text(commit.author_name)}",
        f"- Created: {commit.created_at.isoformat()}",
        "",
    ]
    if job is not None:
        lines += ["## Job", ""]
        lines += [f"- Job: `{job.pk}` ({job.kind}, {job.status})"]
        if job.base_repo:
            base = f"{job.base_repo}@{job.base_commit[:12] or job.base_ref}"
            lines += [f"- Base model: `{_md_text(base)}`"]
        if job.target_branch:
            lines += [f"- Target branch: `{_md_text(job.target_branch)}`"]
        lines += [""]
    if run is not None:
        lines += ["## Training run", ""]
        lines += [
            f"- Run: `{run.pk}` {_md_text(run.name)} in project `{run.project.full_name}` "
            f"({run.status})",
            "",
        ]
        if run.summary:
            lines += [
                "| metric | last | min | max | step |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for key in sorted(run.summary)[:200]:
                s = run.summary[key] if isinstance(run.summary[key], dict) else {}
                cells = [_fmt(s.get(k, "")) for k in ("last", "min", "max", "last_step")]
                lines.append(f"| {_md_text(key)} | " + " | ".join(cells) + " |")
            lines.append("")
    evals = commit.metadata.get("eval") if isinstance(commit.metadata, dict) else None
    if isinstance(evals, dict) and evals:
        lines += ["## Evaluation", "", "| suite | metric | value |", "| --- | --- | ---: |"]
        for suite, metrics in sorted(evals.items()):
            if isinstance(metrics, dict):
                for key, value in sorted(metrics.items()):
                    lines.append(f"| {_md_text(suite)} | {_md_text(key)} | {_fmt(value)} |")
        lines.append("")
    if config:
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        if len(text) > MAX_CONFIG_CHARS:
            text = text[:MAX_CONFIG_CHARS] + "\n... (truncated)"
        lines += ["## Configuration", "", "```json", text.replace("```", "` ` `"), "```", ""]
    if len(chain) > 1:
        lines += ["## Parent commits", ""]
        for c in chain[1:]:
            origin = f" (job `{c.job_id}`)" if c.job_id else ""
            lines.append(f"- `{c.sha[:12]}` {_md_text(c.message.splitlines()[0])}{origin}")
        lines.append("")
    files = sorted(commit.tree.entries)
    if files:
        lines += ["## Files", ""]
        lines += [f"- `{_md_text(p)}`" for p in files[:50]]
        if len(files) > 50:
            lines.append(f"- ... and {len(files) - 50} more")
        lines.append("")
    return "\n".join(lines)


def card_view(*, repo: Repo, commit: Commit, user) -> dict[str, Any]:
    """What the card endpoint answers for ``commit``: its README rendered, or a generated card
    (``source: "generated"``, with its ``markdown`` to download or commit)."""
    card = read_card(commit=commit)
    generated = None
    if card is None:
        generated = generated_card(repo=repo, commit=commit, user=user)
        card = parse_card(generated.encode())
    return {
        "commit": commit.sha,
        "source": "generated" if generated is not None else "readme",
        "path": CARD_PATH,
        "metadata": card.metadata,
        "fields": card.fields,
        "metadata_error": card.metadata_error,
        "warnings": card.warnings,
        "truncated": card.truncated,
        "html": render_markdown(card.body),
        "markdown": generated,
    }


# --- search fields ------------------------------------------------------------------------------


def _visible_with_repo(project, repo: Repo) -> bool:
    """Whether everyone who may read ``repo`` may read ``project``: a public project, or a
    private repo in the project's own namespace."""
    return not project.private or (repo.private and project.namespace_id == repo.namespace_id)


def _lineage_job(commit: Commit):
    from hub.jobs.models import Job

    producer = next((c for c in _lineage(commit) if c.job_id), None)
    if producer is None:
        return None
    return Job.objects.select_related("project").filter(pk=producer.job_id).first()


def search_fields(*, commit: Commit) -> dict[str, Any]:
    """What a commit's search document holds about its model: the repo's name, visibility and
    description, whether the commit heads the default branch, the card's fields and text, and
    the summary metrics of the runs that produced the repo's commits.

    Metrics of a run count only where every reader of the repo may read the run's project
    (a public project, or a private repo in the project's own namespace), so a metric filter
    cannot reveal a private project's results through a public repo."""
    from hub.registry.models import Ref
    from hub.tracking.models import Run

    repo = commit.repo
    head = (
        Ref.objects.filter(repo=repo, kind=Ref.Kind.BRANCH, name=repo.default_branch)
        .values_list("commit_id", flat=True)
        .first()
    )
    out: dict[str, Any] = {
        "namespace": repo.namespace.name,
        "repo_name": repo.name,
        "private": repo.private,
        "description": repo.description,
        "default_head": head == commit.pk,
    }
    try:
        card = read_card(commit=commit)
    except Exception:  # an unreadable blob leaves the card out; the rest is still indexed
        card = None
    if card is not None:
        out["card"] = "invalid" if card.metadata_error else "readme"
        out["card_text"] = card.body[:100_000]
        for name in (*LIST_FIELDS, *TEXT_FIELDS):
            if name in card.fields:
                out[f"card_{name}"] = card.fields[name]
    else:
        out["card"] = "none"
    if out["default_head"] and card is None:
        # The generated card's base model (the job that produced the head, or its nearest
        # first-parent ancestor): a fine-tune is found by its base without a README.
        job = _lineage_job(commit)
        if job is not None and job.base_repo and _visible_with_repo(job.project, repo):
            out["card_base_model"] = [job.base_repo]
    if out["default_head"]:
        run_ids = set(
            Commit.objects.filter(repo=repo).exclude(run_id="").values_list("run_id", flat=True)
        )
        metrics: dict[str, list[dict[str, float]]] = {}
        runs = Run.objects.select_related("project").filter(pk__in=run_ids)
        for run in runs:
            if not _visible_with_repo(run.project, repo):
                continue
            for key, stats in (run.summary or {}).items():
                if isinstance(stats, dict):
                    metrics.setdefault(key, []).append(stats)
        out["metrics"] = metrics
    return out


# --- committing a generated card ------------------------------------------------------------------


def card_commit(*, repo: Repo, branch: str, user, expected_head: str | None = None) -> Commit:
    """Commit the generated card of ``branch``'s head as ``README.md`` (the "add this card"
    action). Refuses (409 ``card_exists``) when the head already has a README. The bytes go
    through the same chunk and commit services as any push."""
    from hub.registry import selectors, services
    from hub.shared.chunking import chunk_bytes

    ref = selectors.branch_get(repo=repo, name=branch)
    head = selectors.commit_get(repo=repo, sha=expected_head) if expected_head else ref.commit
    if CARD_PATH in head.tree.entries:
        raise Conflict(
            f"{CARD_PATH} already exists at {head.sha[:12]}: edit it instead.",
            code="card_exists",
        )
    data = generated_card(repo=repo, commit=head, user=user).encode()
    manifest = chunk_bytes(data, name=CARD_PATH)
    for c in manifest.chunks:
        services.chunk_upload(digest=c.hash, parts=[data[c.offset : c.offset + c.size]])
    commit, _ = services.commit_create(
        repo=repo,
        branch=ref.name,
        operations=[manifest.as_operation()],
        message=f"Add the generated model card ({CARD_PATH})",
        user=user,
        expected_head=head.sha,
    )
    return commit
