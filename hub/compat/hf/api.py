"""The Hugging Face Hub HTTP API over the registry: thin views that authorise like the hub's
own API (:func:`hub.registry.selectors.repo_for`), resolve refs with the one resolver, stream
bytes with the registry's verified file stream, and answer in the shapes and headers the
unmodified ``huggingface_hub`` client expects (:mod:`hub.compat.hf.protocol`).

These views follow the Hugging Face contract, not the hub's: ``schema = None`` keeps them out
of the hub's OpenAPI schema (``/api/schema`` describes ``/api/v1`` only).
"""

from __future__ import annotations

from urllib.parse import quote

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from rest_framework.parsers import BaseParser
from rest_framework.views import APIView

from hub.accounts import selectors as accounts
from hub.accounts.models import Role
from hub.common.errors import (
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
)
from hub.common.limits import limit
from hub.compat.hf import protocol, selectors, services
from hub.registry import cards
from hub.registry import selectors as registry
from hub.registry import services as registry_services

TREE_PAGE = 1000  # entries per tree page (the Hub's own page size without expand)
COMMITS_PAGE = 100  # commits per history page


def _flag(value) -> bool:
    return str(value).lower() in {"1", "true", "yes"}


class HfView(APIView):
    schema = None  # the Hugging Face contract: not part of the hub's OpenAPI schema

    def get_exception_handler(self):
        return protocol.exception_handler


class _RawParser(BaseParser):
    """Leaves the body unread: the commit view streams it line by line."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


# --- files ----------------------------------------------------------------------------------


class ResolveApi(HfView):
    """``HEAD|GET /{ns}/{name}/resolve/{revision}/{path}``. HEAD gives what the client caches
    by: ``X-Repo-Commit`` (the commit the revision resolved to), the ETag (the file's content
    id) and ``X-Linked-Size``; GET streams the bytes, honouring ``Range`` (206, so an
    interrupted download resumes). A file the blob store may hand out directly (S3 with
    ``HUB_S3_PRESIGN_MIN_BYTES``) is a 302 to a presigned URL, which the client follows
    without its token."""

    def _file(self, request, namespace, name, rest):
        repo = registry.repo_for(request, namespace=namespace, name=name)
        raw = protocol.raw_segments(request, after=3)
        rev, path = selectors.split_revision(
            repo=repo,
            segments=raw if raw is not None else rest.split("/"),
            raw=raw is not None,
            need_path=True,
        )
        commit = registry.resolve(repo=repo, ref=rev)
        return commit, selectors.file_at(commit=commit, path=path), path

    @staticmethod
    def _headers(resp, commit, f, path):
        etag = f'"{f.oid}"'
        resp["ETag"] = etag
        resp["X-Linked-Etag"] = etag
        resp["X-Linked-Size"] = str(f.size)
        resp["X-Repo-Commit"] = commit.sha
        resp["Accept-Ranges"] = "bytes"
        resp["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1], safe='')}"
        )
        return resp

    def _redirect(self, commit, f, path):
        url = registry.file_presigned_url(file=f, filename=path.rsplit("/", 1)[-1])
        if not url:
            return None
        resp = HttpResponse(status=302)
        resp["Location"] = url
        return self._headers(resp, commit, f, path)

    def head(self, request, namespace, name, rest):
        commit, f, path = self._file(request, namespace, name, rest)
        resp = self._redirect(commit, f, path) or HttpResponse(
            status=200, content_type="application/octet-stream"
        )
        if resp.status_code == 200:
            resp["Content-Length"] = str(f.size)
        return self._headers(resp, commit, f, path)

    def get(self, request, namespace, name, rest):
        commit, f, path = self._file(request, namespace, name, rest)
        etag = f'"{f.oid}"'
        if_range = request.headers.get("If-Range")
        span = protocol.byte_range(request.headers.get("Range"), f.size)
        if if_range and if_range != etag:
            span = None  # the client holds another version: send it all
        if span is False:
            resp = HttpResponse(status=416)
            resp["Content-Range"] = f"bytes */{f.size}"
            return self._headers(resp, commit, f, path)
        if span is None:
            redirect = self._redirect(commit, f, path)
            if redirect is not None:
                return redirect
        start, end = span or (0, f.size)
        body = registry.file_stream(file=f, start=start, end=end, path=path)
        resp = StreamingHttpResponse(
            body, status=206 if span else 200, content_type="application/octet-stream"
        )
        resp["Content-Length"] = str(end - start)
        if span:
            resp["Content-Range"] = f"bytes {start}-{end - 1}/{f.size}"
        return self._headers(resp, commit, f, path)


# --- repo info, tree, refs, history ---------------------------------------------------------


class ModelInfoApi(HfView):
    """``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``
    (``?blobs=true`` adds each file's size and id)."""

    def get(self, request, namespace, name, rev=None):
        repo = registry.repo_for(request, namespace=namespace, name=name)
        commit = registry.resolve(repo=repo, ref=rev or repo.default_branch)
        return JsonResponse(
            selectors.model_info(repo=repo, commit=commit, blobs=_flag(request.GET.get("blobs")))
        )


class TreeApi(HfView):
    """``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=&cursor=``, paginated by a
    ``Link: <…>; rel="next"`` header, ``TREE_PAGE`` entries a page. ``expand`` is accepted but
    adds nothing (no ``lastCommit``)."""

    def get(self, request, namespace, name, rest):
        repo = registry.repo_for(request, namespace=namespace, name=name)
        raw = protocol.raw_segments(request, after=5)
        rev, path = selectors.split_revision(
            repo=repo,
            segments=raw if raw is not None else rest.split("/"),
            raw=raw is not None,
            need_path=False,
        )
        commit = registry.resolve(repo=repo, ref=rev)
        entries = selectors.tree(
            commit=commit, path=path, recursive=_flag(request.GET.get("recursive"))
        )
        try:
            cursor = max(0, int(request.GET.get("cursor") or 0))
        except ValueError as e:
            raise InvalidInput("cursor must be an integer.", code="invalid_page") from e
        resp = JsonResponse(entries[cursor : cursor + TREE_PAGE], safe=False)
        if cursor + TREE_PAGE < len(entries):
            resp["Link"] = protocol.next_link(request, cursor=cursor + TREE_PAGE)
        return resp


class RefsApi(HfView):
    """``GET /api/models/{repo}/refs[?include_prs=1]``."""

    def get(self, request, namespace, name):
        repo = registry.repo_for(request, namespace=namespace, name=name)
        return JsonResponse(
            selectors.refs(repo=repo, include_prs=_flag(request.GET.get("include_prs")))
        )


class CommitsApi(HfView):
    """``GET /api/models/{repo}/commits/{rev}[?p=N]``: history newest first, ``COMMITS_PAGE``
    a page, the next page in a ``Link`` header."""

    def get(self, request, namespace, name, rev):
        repo = registry.repo_for(request, namespace=namespace, name=name)
        try:
            page = max(0, int(request.GET.get("p") or 0))
        except ValueError as e:
            raise InvalidInput("p must be an integer.", code="invalid_page") from e
        items, more = selectors.commits(repo=repo, rev=rev, page=page, page_size=COMMITS_PAGE)
        resp = JsonResponse(items, safe=False)
        if more:
            resp["Link"] = protocol.next_link(request, p=page + 1)
        return resp


# --- uploads --------------------------------------------------------------------------------


def _no_pull_requests(request) -> None:
    if _flag(request.GET.get("create_pr")):
        raise InvalidInput("This hub has no pull requests: commit to a branch.", code="no_prs")


class PreuploadApi(HfView):
    """``POST /api/models/{repo}/preupload/{rev}``: every file is ``regular`` (sent inline in
    the commit, never by LFS or Xet); ``oid`` is the git SHA-1 of the file now at that path
    when it has the same size, so the client drops unchanged files from its commit."""

    def post(self, request, namespace, name, rev):
        repo = registry.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        _no_pull_requests(request)
        files = request.data.get("files") if isinstance(request.data, dict) else None
        if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("path"), str) for f in files
        ):
            raise InvalidInput('Expected {"files": [{"path", "size", "sample"}, ...]}.')
        if len(files) > 1000:
            raise PayloadTooLarge("At most 1000 files per preupload.", code="too_many_files")
        services.inline_file_check(files=files)
        commit = registry.resolve(repo=repo, ref=rev)
        oids = selectors.remote_oids(
            commit=commit, files=files, budget=limit("HUB_HF_MAX_COMMIT_BYTES")
        )
        return JsonResponse(
            {
                "files": [
                    {
                        "path": f["path"],
                        "uploadMode": "regular",
                        "shouldIgnore": False,
                        "oid": oids.get(f["path"]),
                    }
                    for f in files
                ]
            }
        )


def _body_lines(request, *, max_line: int, max_total: int):
    """The request body as lines, each at most ``max_line`` bytes, ``max_total`` in all."""
    total = 0
    while True:
        line = request.readline(max_line + 1)
        if not line:
            return
        total += len(line)
        if total > max_total:
            raise PayloadTooLarge(
                f"A commit body may be at most {max_total} bytes (HUB_HF_MAX_COMMIT_BYTES).",
                code="request_too_large",
            )
        if len(line) > max_line:
            raise PayloadTooLarge(
                "A file in this commit is larger than HUB_HF_MAX_INLINE_FILE_BYTES "
                f"({limit('HUB_HF_MAX_INLINE_FILE_BYTES')} bytes); push it with `hub push`.",
                code="file_too_large",
            )
        yield line


class CommitApi(HfView):
    """``POST /api/models/{repo}/commit/{branch}`` with an NDJSON body
    (:func:`hub.compat.hf.services.commit_from_ndjson`), read line by line."""

    parser_classes = [_RawParser]

    def post(self, request, namespace, name, rev):
        repo = registry.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        _no_pull_requests(request)
        max_total = limit("HUB_HF_MAX_COMMIT_BYTES")
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > max_total:
            raise PayloadTooLarge(
                f"A commit body may be at most {max_total} bytes (HUB_HF_MAX_COMMIT_BYTES).",
                code="request_too_large",
            )
        max_line = (limit("HUB_HF_MAX_INLINE_FILE_BYTES") + 2) // 3 * 4 + 64 * 1024
        commit = services.commit_from_ndjson(
            repo=repo,
            branch=rev,
            lines=_body_lines(request._request, max_line=max_line, max_total=max_total),
            user=request.user,
        )
        base = request.build_absolute_uri("/").rstrip("/")
        return JsonResponse(
            {
                "success": True,
                "commitUrl": f"{base}/{repo.full_name}/commit/{commit.sha}",
                "commitOid": commit.sha,
                "pullRequestUrl": None,
            }
        )


# --- repos, branches, tags, whoami ------------------------------------------------------------


class CreateRepoApi(HfView):
    """``POST /api/repos/create`` ``{"name", "organization"?, "type"?, "visibility"?|"private"?}``
    (``create_repo``): a model repo in the caller's namespace or ``organization``, with the
    hub's own rule (the write role there); 409 when it exists (``exist_ok=True`` accepts it)."""

    def post(self, request):
        d = request.data if isinstance(request.data, dict) else {}
        if d.get("type") not in (None, "model"):
            raise InvalidInput("This hub holds model repos only.", code="model_repos_only")
        if not request.user.is_authenticated:
            raise NotAuthenticated("Authentication required: pass 'Authorization: Bearer <token>'.")
        ns = accounts.namespace_get(name=d.get("organization") or request.user.username)
        accounts.require_role(request, namespace=ns, role=Role.WRITE)
        private = d.get("visibility") == "private" or d.get("private") is True
        name = str(d.get("name") or "")
        url = f"{request.build_absolute_uri('/').rstrip('/')}/{ns.name}/{name}"
        try:
            repo = registry_services.repo_create(
                namespace=ns, name=name, user=request.user, private=private
            )
        except Conflict as e:
            if e.code != "repo_exists":
                raise
            # The client's exist_ok reads the repo's URL from the 409 (the caller may write here).
            return protocol.error_response(409, e.message, body={"url": url})
        return JsonResponse({"url": url, "name": repo.full_name})


class BranchApi(HfView):
    """``POST /api/models/{repo}/branch/{branch}`` ``{"startingPoint"?}`` (``create_branch``,
    409 when it exists) and ``DELETE`` (``delete_branch``): the write role, as in the hub."""

    def post(self, request, namespace, name, branch):
        repo = registry.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        start = request.data.get("startingPoint") if isinstance(request.data, dict) else None
        registry_services.branch_create(repo=repo, name=branch, from_ref=start, user=request.user)
        return JsonResponse({})

    def delete(self, request, namespace, name, branch):
        repo = registry.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        registry_services.branch_delete(repo=repo, name=branch)
        return JsonResponse({})


class TagApi(HfView):
    """``POST /api/models/{repo}/tag/{revision}`` ``{"tag", "message"?}`` (``create_tag``: the
    write role; tags never move, so an existing one is 409) and ``DELETE …/tag/{tag}``
    (``delete_tag``: the admin role, as in the hub)."""

    def post(self, request, namespace, name, ref):
        repo = registry.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        d = request.data if isinstance(request.data, dict) else {}
        registry_services.tag_create(
            repo=repo,
            name=str(d.get("tag") or ""),
            ref=ref,
            user=request.user,
            message=str(d.get("message") or ""),
        )
        return JsonResponse({})

    def delete(self, request, namespace, name, ref):
        repo = registry.repo_for(request, namespace=namespace, name=name, role=Role.ADMIN)
        registry_services.tag_delete(repo=repo, name=ref)
        return JsonResponse({})


class WhoamiApi(HfView):
    """``GET /api/whoami-v2``: the token's user, its namespaces as ``orgs``, and the token's
    scope as its role (``read`` or ``write``)."""

    def get(self, request):
        if not request.user.is_authenticated:
            raise NotAuthenticated("Authentication required: pass 'Authorization: Bearer <token>'.")
        scope = accounts.token_scope(request) or "write"
        return JsonResponse(
            {
                "type": "user",
                "id": str(request.user.pk),
                "name": request.user.username,
                "fullname": request.user.get_full_name() or request.user.username,
                "orgs": [
                    {"type": "org", "name": ns.name}
                    for ns in accounts.namespaces_for(user=request.user)
                    if ns.name != request.user.username
                ],
                "auth": {"type": "access_token", "accessToken": {"role": scope}},
            }
        )


class ValidateYamlApi(HfView):
    """``POST /api/validate-yaml`` ``{"content", "repoType"}``, which the client calls before
    committing a README.md: its front matter parsed as the hub parses cards
    (:func:`hub.registry.cards.parse_card`). Unreadable YAML is a 400 with ``errors`` (the
    client then refuses to commit); what the hub only notes comes back as ``warnings``."""

    def post(self, request):
        content = request.data.get("content") if isinstance(request.data, dict) else None
        if not isinstance(content, str):
            raise InvalidInput('Expected {"content": "<README.md text>"}.')
        card = cards.parse_card(content.encode())
        warnings = [{"message": w} for w in card.warnings]
        if card.metadata_error:
            return JsonResponse(
                {"errors": [{"message": card.metadata_error}], "warnings": warnings}, status=400
            )
        return JsonResponse({"errors": [], "warnings": warnings})


class NotAModelRepoApi(HfView):
    """Datasets and Spaces: this hub holds model repos only."""

    def _missing(self, request, *args, **kwargs):
        raise NotFound(
            "This hub holds model repos only (no datasets or Spaces).", code="repo_not_found"
        )

    get = head = post = put = delete = _missing
