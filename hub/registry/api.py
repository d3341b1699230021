"""Registry REST API: thin views over services and selectors."""

from __future__ import annotations

import re
import tarfile

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.accounts import selectors as accounts
from hub.accounts.models import Role
from hub.common.errors import Forbidden, InvalidInput, NotAuthenticated, error_body
from hub.common.openapi import errors, page_of
from hub.common.pagination import Pagination, paginate
from hub.registry import gc, merge, selectors, services
from hub.registry.models import Commit, Ref, Repo

# --- serialization ---------------------------------------------------------------------------


def repo_out(repo: Repo) -> dict:
    return {
        "id": repo.full_name,
        "namespace": repo.namespace.name,
        "name": repo.name,
        "private": repo.private,
        "description": repo.description,
        "default_branch": repo.default_branch,
        "created_at": repo.created_at,
        # The last move of a branch head (selectors._with_updated_at); a repo just created by
        # this request has not been read back with it and has moved nothing yet.
        "updated_at": getattr(repo, "updated_at", None) or repo.created_at,
    }


def commit_out(c: Commit) -> dict:
    return {
        "sha": c.sha,
        "parents": c.parents,
        "author": c.author_name,
        "message": c.message,
        "metadata": c.metadata,
        "created_at": c.created_at,
        "tree": c.tree_id,
        "generation": c.generation,
        "job_id": c.job_id or None,
        "run_id": c.run_id or None,
    }


def ref_out(r: Ref) -> dict:
    out = {"name": r.name, "kind": r.kind, "commit": r.commit.sha, "updated_at": r.updated_at}
    if r.kind == Ref.Kind.BRANCH:
        out["protected"] = r.protected
    else:
        out["message"] = r.message
    return out


class RepoOut(serializers.Serializer):
    id = serializers.CharField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    private = serializers.BooleanField()
    description = serializers.CharField()
    default_branch = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(help_text="last time a branch head moved")


class CommitStatsOut(serializers.Serializer):
    files = serializers.IntegerField()
    bytes = serializers.IntegerField(help_text="sum of the file sizes, path by path")
    new_bytes = serializers.IntegerField(
        help_text="bytes of the distinct chunks of this commit that no parent's tree references"
    )
    reused_bytes = serializers.IntegerField(
        help_text="bytes of the distinct chunks of this commit that a parent's tree (any parent "
        "of a merge) already references; new_bytes + reused_bytes <= bytes, as a chunk repeated "
        "inside the commit counts once"
    )


class RepoStatsOut(serializers.Serializer):
    head_bytes = serializers.IntegerField(help_text="size of the default branch head's files")
    logical_bytes = serializers.IntegerField(
        help_text="sum of file sizes over every distinct (path, content) of every commit "
        "reachable from a branch or tag: each version of each file once"
    )
    stored_bytes = serializers.IntegerField(
        help_text="bytes of the distinct chunks those files reference"
    )
    dedupe_ratio = serializers.FloatField(
        allow_null=True,
        help_text="logical_bytes / stored_bytes (null when nothing is stored); "
        "dedupe saves 1 - stored/logical",
    )
    commits = serializers.IntegerField(help_text="commits reachable from a branch or tag")


class CommitOut(serializers.Serializer):
    sha = serializers.CharField()
    parents = serializers.ListField(child=serializers.CharField())
    author = serializers.CharField()
    message = serializers.CharField()
    metadata = serializers.DictField()
    created_at = serializers.DateTimeField()
    tree = serializers.CharField()
    generation = serializers.IntegerField()
    job_id = serializers.CharField(allow_null=True)
    run_id = serializers.CharField(allow_null=True)


class RefOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Ref.Kind.choices)
    commit = serializers.CharField()
    updated_at = serializers.DateTimeField()
    protected = serializers.BooleanField(required=False, help_text="branches only")
    message = serializers.CharField(required=False, allow_blank=True, help_text="tags only")


class RepoDetailOut(RepoOut):
    refs = RefOut(many=True)
    commits = serializers.IntegerField(help_text="commits of the repo")


class TreeFileOut(serializers.Serializer):
    path = serializers.CharField()
    oid = serializers.CharField()
    size = serializers.IntegerField()
    kind = serializers.CharField()


class CommitDetailOut(CommitOut):
    files = TreeFileOut(many=True)
    stats = CommitStatsOut()


class CommitLogOut(serializers.Serializer):
    results = CommitOut(many=True)
    page = serializers.IntegerField()
    has_more = serializers.BooleanField()
    next = serializers.IntegerField(allow_null=True)


class TreeOut(serializers.Serializer):
    commit = serializers.CharField()
    files = TreeFileOut(many=True)
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class TensorInfoOut(serializers.Serializer):
    dtype = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField())
    begin = serializers.IntegerField()
    end = serializers.IntegerField()


class FileInfoOut(serializers.Serializer):
    path = serializers.CharField()
    commit = serializers.CharField()
    oid = serializers.CharField()
    size = serializers.IntegerField()
    kind = serializers.CharField()
    chunks = serializers.ListField(child=serializers.JSONField())
    tensors = serializers.DictField(child=TensorInfoOut(), allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField(), allow_null=True)


class ChunksMissingOut(serializers.Serializer):
    missing = serializers.ListField(child=serializers.CharField())


class ChunkOut(serializers.Serializer):
    hash = serializers.CharField()
    size = serializers.IntegerField()
    created = serializers.BooleanField(help_text="false: the hub already had it")


class DiffSideOut(serializers.Serializer):
    ref = serializers.CharField()
    commit = serializers.CharField()


class TensorSideOut(serializers.Serializer):
    dtype = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField())
    bytes = serializers.IntegerField()


_DIFF_STATUS = ["added", "removed", "changed"]


class TensorDiffOut(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=_DIFF_STATUS)
    a = TensorSideOut(required=False)
    b = TensorSideOut(required=False)
    shape_changed = serializers.BooleanField(required=False)
    dtype_changed = serializers.BooleanField(required=False)
    l2_delta = serializers.FloatField(required=False, allow_null=True)
    max_abs_delta = serializers.FloatField(required=False, allow_null=True)
    rel_change = serializers.FloatField(required=False, allow_null=True)
    cosine = serializers.FloatField(required=False, allow_null=True)
    norm_a = serializers.FloatField(required=False, allow_null=True)
    norm_b = serializers.FloatField(required=False, allow_null=True)


class FileDiffOut(serializers.Serializer):
    path = serializers.CharField()
    status = serializers.ChoiceField(choices=_DIFF_STATUS)
    size_a = serializers.IntegerField(required=False)
    size_b = serializers.IntegerField(required=False)
    oid_a = serializers.CharField(required=False)
    oid_b = serializers.CharField(required=False)
    tensors = TensorDiffOut(many=True, required=False)
    unchanged_tensors = serializers.IntegerField(required=False)


class DiffOut(serializers.Serializer):
    a = DiffSideOut()
    b = DiffSideOut()
    files = FileDiffOut(many=True)


class MergeResolvedOut(serializers.Serializer):
    path = serializers.CharField()
    tensor = serializers.CharField(required=False, allow_null=True)
    strategy = serializers.ChoiceField(choices=["ours", "theirs", "average"])
    weight = serializers.FloatField(required=False)


class MergeOut(serializers.Serializer):
    result = serializers.ChoiceField(choices=["up_to_date", "fast_forward", "merge"])
    commit = CommitOut()
    base = serializers.CharField(allow_null=True)
    bases = serializers.ListField(child=serializers.CharField())
    merged_files = serializers.IntegerField()
    resolved = MergeResolvedOut(many=True)
    note = serializers.CharField(allow_null=True)


class GcOut(serializers.Serializer):
    dry_run = serializers.BooleanField()
    grace_seconds = serializers.IntegerField()
    commits = serializers.IntegerField()
    trees = serializers.IntegerField()
    files = serializers.IntegerField()
    chunks = serializers.IntegerField()
    reclaimable_bytes = serializers.IntegerField()
    freed_bytes = serializers.IntegerField(required=False, help_text="not on a dry run")
    orphan_blobs = serializers.IntegerField(required=False, help_text="not on a dry run")
    staged_swept = serializers.IntegerField(required=False, help_text="not on a dry run")
    seconds = serializers.FloatField()


def _bool(value, default=False) -> bool:
    if value is None:
        return default
    return str(value).lower() in {"1", "true", "yes", "on"}


# --- repos -----------------------------------------------------------------------------------


class RepoListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        namespace = serializers.CharField(
            required=False, help_text="defaults to your own namespace"
        )
        name = serializers.CharField(max_length=64)
        private = serializers.BooleanField(default=False)
        description = serializers.CharField(default="", allow_blank=True, max_length=10_000)
        default_branch = serializers.CharField(default="main", max_length=255)

    @extend_schema(
        operation_id="repos_list",
        responses=page_of(RepoOut),
        summary="List repos you can see",
        parameters=[
            OpenApiParameter("namespace", str),
            OpenApiParameter("search", str),
            OpenApiParameter(
                "sort",
                str,
                enum=list(selectors.REPO_SORTS),
                description="default: name; -updated_at lists recently updated models first",
            ),
        ],
    )
    def get(self, request):
        qs = selectors.repo_list(
            user=request.user,
            namespace=request.query_params.get("namespace"),
            search=request.query_params.get("search"),
            sort=request.query_params.get("sort"),
        )
        return paginate(self, qs, repo_out)

    @extend_schema(
        operation_id="repos_create",
        request=InputSerializer,
        responses={201: RepoOut, **errors(404, 409)},
        summary="Create a repo",
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        if not request.user.is_authenticated:
            raise NotAuthenticated("Authentication required: pass 'Authorization: Bearer <token>'.")
        ns = accounts.namespace_get(name=d.get("namespace") or request.user.username)
        accounts.require_role(request, namespace=ns, role=Role.WRITE)
        repo = services.repo_create(
            namespace=ns,
            name=d["name"],
            user=request.user,
            private=d["private"],
            description=d["description"],
            default_branch=d["default_branch"],
        )
        return Response(repo_out(repo), status=201)


class RepoDetailApi(APIView):
    class PatchSerializer(serializers.Serializer):
        private = serializers.BooleanField(required=False)
        description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)

    @extend_schema(
        operation_id="repos_get",
        responses=RepoDetailOut,
        summary="A repo, with its branches and tags",
    )
    def get(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        out = repo_out(repo)
        out["refs"] = [ref_out(r) for r in selectors.refs_list(repo=repo)]
        out["commits"] = selectors.commit_children_count(repo=repo)
        return Response(out)

    @extend_schema(
        operation_id="repos_update",
        request=PatchSerializer,
        responses=RepoOut,
        summary="Change visibility or description (admins)",
    )
    def patch(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.ADMIN)
        data = self.PatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(repo_out(services.repo_update(repo=repo, **data.validated_data)))

    @extend_schema(
        operation_id="repos_delete",
        request=None,
        responses={204: None},
        summary="Delete a repo (admins); run GC to free its bytes",
    )
    def delete(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.ADMIN)
        services.repo_delete(repo=repo)
        return Response(status=204)


# --- refs ------------------------------------------------------------------------------------


class BranchListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=255)
        from_ref = serializers.CharField(
            required=False,
            allow_null=True,
            help_text="branch, tag or commit; default branch if omitted",
        )

    @extend_schema(
        operation_id="repos_branches_list", responses=page_of(RefOut), summary="List branches"
    )
    def get(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        return paginate(self, selectors.refs_list(repo=repo, kind=Ref.Kind.BRANCH), ref_out)

    @extend_schema(
        operation_id="repos_branches_create",
        request=InputSerializer,
        responses={201: RefOut, **errors(409)},
        summary="Create a branch from any ref (O(1))",
    )
    def post(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ref = services.branch_create(
            repo=repo,
            name=data.validated_data["name"],
            from_ref=data.validated_data.get("from_ref"),
            user=request.user,
        )
        return Response(ref_out(ref), status=201)


class BranchDetailApi(APIView):
    class PatchSerializer(serializers.Serializer):
        protected = serializers.BooleanField()

    @extend_schema(operation_id="repos_branches_get", responses=RefOut, summary="A branch")
    def get(self, request, namespace, name, branch):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        return Response(ref_out(selectors.branch_get(repo=repo, name=branch)))

    @extend_schema(
        operation_id="repos_branches_update",
        request=PatchSerializer,
        responses=RefOut,
        summary="Protect or unprotect a branch (admins)",
    )
    def patch(self, request, namespace, name, branch):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.ADMIN)
        data = self.PatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            ref_out(services.branch_set_protected(repo=repo, name=branch, **data.validated_data))
        )

    @extend_schema(
        operation_id="repos_branches_delete",
        request=None,
        responses={204: None, **errors(409)},
        summary="Delete a branch",
    )
    def delete(self, request, namespace, name, branch):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        services.branch_delete(repo=repo, name=branch)
        return Response(status=204)


class TagListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=255)
        ref = serializers.CharField()
        message = serializers.CharField(default="", allow_blank=True, max_length=10_000)

    @extend_schema(operation_id="repos_tags_list", responses=page_of(RefOut), summary="List tags")
    def get(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        return paginate(self, selectors.refs_list(repo=repo, kind=Ref.Kind.TAG), ref_out)

    @extend_schema(
        operation_id="repos_tags_create",
        request=InputSerializer,
        responses={201: RefOut, **errors(409)},
        summary="Create an immutable tag",
    )
    def post(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tag = services.tag_create(repo=repo, user=request.user, **data.validated_data)
        return Response(ref_out(tag), status=201)


class TagDetailApi(APIView):
    @extend_schema(
        operation_id="repos_tags_delete",
        request=None,
        responses={204: None},
        summary="Delete a tag (admins)",
    )
    def delete(self, request, namespace, name, tag):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.ADMIN)
        services.tag_delete(repo=repo, name=tag)
        return Response(status=204)


# --- upload ----------------------------------------------------------------------------------


class ChunksMissingApi(APIView):
    class InputSerializer(serializers.Serializer):
        chunks = serializers.ListField(child=serializers.CharField(), max_length=200_000)

    @extend_schema(
        operation_id="repos_chunks_missing",
        request=InputSerializer,
        responses=ChunksMissingOut,
        summary="Upload negotiation: which chunks must be sent?",
    )
    def post(self, request, namespace, name):
        selectors.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"missing": services.chunks_missing(hashes=data.validated_data["chunks"])})


class _RawParser(BaseParser):
    """Leaves the body unread: the view streams it."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


def _body_parts(django_request, size: int = 4 << 20):
    while True:
        part = django_request.read(size)
        if not part:
            return
        yield part


class ChunkUploadApi(APIView):
    parser_classes = [_RawParser]

    @extend_schema(
        operation_id="repos_chunks_upload",
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={200: ChunkOut, 201: ChunkOut},
        summary="Upload one chunk; its bytes must hash (BLAKE3) to the id in the URL",
    )
    def put(self, request, namespace, name, digest):
        selectors.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        size, created = services.chunk_upload(digest=digest, parts=_body_parts(request._request))
        return Response(
            {"hash": digest, "size": size, "created": created}, status=201 if created else 200
        )


# --- commits ---------------------------------------------------------------------------------


class CommitListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        branch = serializers.CharField()
        message = serializers.CharField(max_length=65_536)
        operations = serializers.ListField(
            child=serializers.DictField(), max_length=services.MAX_OPERATIONS
        )
        expected_head = serializers.CharField(
            required=False,
            allow_null=True,
            help_text="the head you built on; 409 branch_conflict if it moved",
        )
        metadata = serializers.DictField(required=False, default=dict)
        created_at = serializers.CharField(
            required=False, allow_null=True, help_text="ISO time; set it to make retries idempotent"
        )
        job_id = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)
        run_id = serializers.CharField(required=False, default="", allow_blank=True, max_length=64)

    @extend_schema(
        operation_id="repos_commits_list",
        responses=CommitLogOut,
        summary="History (newest first)",
        parameters=[
            OpenApiParameter("ref", str),
            OpenApiParameter("first_parent", bool),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
    )
    def get(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        try:
            page = max(1, int(request.query_params.get("page", 1)))
            page_size = min(1000, max(1, int(request.query_params.get("page_size", 50))))
        except ValueError as e:
            raise InvalidInput("page and page_size must be integers.", code="invalid_page") from e
        commits, more = selectors.commit_log(
            repo=repo,
            ref=request.query_params.get("ref") or repo.default_branch,
            first_parent=_bool(request.query_params.get("first_parent")),
            offset=(page - 1) * page_size,
            limit=page_size,
        )
        return Response(
            {
                "results": [commit_out(c) for c in commits],
                "page": page,
                "has_more": more,
                "next": page + 1 if more else None,
            }
        )

    @extend_schema(
        operation_id="repos_commits_create",
        request=InputSerializer,
        responses={200: CommitOut, 201: CommitOut, **errors(409)},
        summary="Create a commit (200: an identical retry of one already made)",
    )
    def post(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        commit, created = services.commit_create(
            repo=repo, user=request.user, **data.validated_data
        )
        return Response(commit_out(commit), status=201 if created else 200)


class CommitDetailApi(APIView):
    @extend_schema(
        operation_id="repos_commits_get",
        responses=CommitDetailOut,
        summary="One commit, with its files and stats: {files, bytes, new_bytes, reused_bytes} "
        "(new: bytes of chunks no parent's tree references; reused: bytes of chunks a parent's "
        "tree already references)",
    )
    def get(self, request, namespace, name, sha):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        commit = selectors.commit_get(repo=repo, sha=sha)
        out = commit_out(commit)
        out["files"] = selectors.tree_files(commit=commit)
        out["stats"] = CommitStatsOut(selectors.commit_stats(commit=commit)).data
        return Response(out)


class RepoStatsApi(APIView):
    @extend_schema(
        operation_id="repos_stats",
        responses=RepoStatsOut,
        summary="What dedupe saves: the head's size, the logical size of all versions, the "
        "bytes stored, their ratio, and the reachable commits",
    )
    def get(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        return Response(RepoStatsOut(selectors.repo_stats(repo=repo)).data)


class TreePagination(Pagination):
    # A model repo rarely has more than a few hundred files: one page for almost all of them.
    page_size = 1000


class TreeApi(APIView):
    @extend_schema(
        operation_id="repos_tree",
        responses=TreeOut,
        summary="Files of a ref, sorted by path, paginated (page_size up to 1000, the default); "
        "fetch later pages with ref=<commit> so that every page is of one commit",
        parameters=[
            OpenApiParameter("ref", str),
            OpenApiParameter("prefix", str),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
    )
    def get(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        commit = selectors.resolve(
            repo=repo, ref=request.query_params.get("ref") or repo.default_branch
        )
        files = selectors.tree_files(commit=commit, prefix=request.query_params.get("prefix", ""))
        paginator = TreePagination()
        page = paginator.paginate_queryset(files, request, view=self)
        return Response(
            {
                "commit": commit.sha,
                "files": page,
                "count": paginator.page.paginator.count,
                "next": paginator.get_next_link(),
                "previous": paginator.get_previous_link(),
            }
        )


class FileInfoApi(APIView):
    @extend_schema(
        operation_id="repos_files_info",
        responses=FileInfoOut,
        summary="A file's manifest: size, chunks, and for safetensors its tensors",
        parameters=[OpenApiParameter("ref", str)],
    )
    def get(self, request, namespace, name, path):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        commit = selectors.resolve(
            repo=repo, ref=request.query_params.get("ref") or repo.default_branch
        )
        f = selectors.file_get(commit=commit, path=path)
        return Response(
            {
                "path": path,
                "commit": commit.sha,
                "oid": f.oid,
                "size": f.size,
                "kind": f.kind,
                "chunks": f.chunks,
                "tensors": f.tensors,
                "metadata": f.header_metadata,
            }
        )


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class FileDownloadApi(APIView):
    @extend_schema(
        operation_id="repos_files_download",
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            (206, "application/octet-stream"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="a presigned object-store URL (Location)"),
            304: OpenApiResponse(description="If-None-Match matched the ETag"),
            **errors(416, 503),
        },
        summary="Download a file of any ref (HTTP Range, ETag = content id)",
        parameters=[OpenApiParameter("ref", str)],
    )
    def get(self, request, namespace, name, path):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        commit = selectors.resolve(
            repo=repo, ref=request.query_params.get("ref") or repo.default_branch
        )
        f = selectors.file_get(commit=commit, path=path)
        etag = f'"{f.oid}"'
        if request.headers.get("If-None-Match") == etag:
            return HttpResponse(status=304, headers={"ETag": etag})
        start, end, status = 0, f.size, 200
        rng = request.headers.get("Range")
        if not rng:  # a whole large file may come straight from the object store
            url = selectors.file_presigned_url(file=f, filename=path.rsplit("/", 1)[-1])
            if url:
                return HttpResponse(
                    status=302, headers={"Location": url, "ETag": etag, "X-Hub-Commit": commit.sha}
                )
        if rng and (not request.headers.get("If-Range") or request.headers.get("If-Range") == etag):
            m = _RANGE.match(rng.strip())
            if m and (m.group(1) or m.group(2)):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(f.size, int(m.group(2)) + 1) if m.group(2) else f.size
                else:
                    start = max(0, f.size - int(m.group(2)))
                if start >= f.size or start >= end:
                    return Response(
                        error_body(
                            "range_not_satisfiable",
                            f"The range {rng.strip()[:80]!r} is outside the file's {f.size} bytes.",
                        ),
                        status=416,
                        headers={"Content-Range": f"bytes */{f.size}"},
                    )
                status = 206
        body = selectors.file_stream(
            file=f, start=start, end=end, path=path
        )  # 503 corrupt_chunk before any byte
        resp = StreamingHttpResponse(body, status=status, content_type="application/octet-stream")
        resp["Content-Length"] = str(end - start)
        resp["ETag"] = etag
        resp["Accept-Ranges"] = "bytes"
        resp["X-Hub-Commit"] = commit.sha
        resp["Content-Disposition"] = f'attachment; filename="{path.rsplit("/", 1)[-1]}"'
        if status == 206:
            resp["Content-Range"] = f"bytes {start}-{end - 1}/{f.size}"
        return resp


class ArchiveApi(APIView):
    @extend_schema(
        operation_id="repos_archive",
        responses={(200, "application/x-tar"): OpenApiTypes.BINARY, **errors(503)},
        summary="Download a whole ref as a tar stream",
        parameters=[OpenApiParameter("ref", str)],
    )
    def get(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        commit = selectors.resolve(
            repo=repo, ref=request.query_params.get("ref") or repo.default_branch
        )
        files = selectors.tree_files(commit=commit)
        from hub.registry.models import FileObject

        objs = {o.oid: o for o in FileObject.objects.filter(oid__in={x["oid"] for x in files})}
        mtime = int(commit.created_at.timestamp())
        # The first file's first chunk is verified before answering (503 corrupt_chunk); a
        # later bad chunk aborts the stream, and the tar is left without its end blocks.
        first = (
            selectors.file_stream(file=objs[files[0]["oid"]], path=files[0]["path"])
            if files
            else iter(())
        )

        def stream():
            for i, entry in enumerate(files):
                info = tarfile.TarInfo(f"{repo.name}/{entry['path']}")
                info.size, info.mtime, info.mode = entry["size"], mtime, 0o644
                yield info.tobuf(format=tarfile.PAX_FORMAT)
                yield from first if i == 0 else selectors.file_iter(file=objs[entry["oid"]])
                if entry["size"] % 512:
                    yield b"\0" * (512 - entry["size"] % 512)
            yield b"\0" * 1024

        resp = StreamingHttpResponse(stream(), content_type="application/x-tar")
        resp["Content-Disposition"] = f'attachment; filename="{repo.name}-{commit.sha[:12]}.tar"'
        resp["X-Hub-Commit"] = commit.sha
        return resp


# --- diff, merge, gc -------------------------------------------------------------------------


class DiffApi(APIView):
    @extend_schema(
        operation_id="repos_diff",
        responses={200: DiffOut, **errors(503)},
        summary="Diff two refs (files, and tensors of safetensors files)",
        parameters=[
            OpenApiParameter("a", str, required=True),
            OpenApiParameter("b", str, required=True),
            OpenApiParameter("tensors", bool),
            OpenApiParameter("filter", str),
        ],
    )
    def get(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name)
        a, b = request.query_params.get("a"), request.query_params.get("b")
        if not a or not b:
            raise InvalidInput("Pass both refs: ?a=REF&b=REF.", code="invalid_ref")
        return Response(
            selectors.diff(
                repo=repo,
                a=a,
                b=b,
                tensors=_bool(request.query_params.get("tensors"), True),
                tensor_filter=request.query_params.get("filter"),
            )
        )


class MergeApi(APIView):
    class InputSerializer(serializers.Serializer):
        source = serializers.CharField()
        target = serializers.CharField()
        strategy = serializers.ChoiceField(
            choices=["ours", "theirs", "average"], required=False, allow_null=True
        )
        weight = serializers.FloatField(
            default=0.5,
            min_value=0.0,
            max_value=1.0,
            help_text="average: weight of the source; result = (1-w)·target + w·source",
        )
        message = serializers.CharField(required=False, allow_null=True, max_length=65_536)
        no_ff = serializers.BooleanField(default=False)

    @extend_schema(
        operation_id="repos_merge",
        request=InputSerializer,
        responses={200: MergeOut, 201: MergeOut, **errors(409, 503)},
        summary="Merge a ref into a branch (201: a merge commit; 200: up to date or fast-forward)",
    )
    def post(self, request, namespace, name):
        repo = selectors.repo_for(request, namespace=namespace, name=name, role=Role.WRITE)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        target = selectors.branch_get(repo=repo, name=d["target"])
        is_admin = accounts.role_in(user=request.user, namespace=repo.namespace) == Role.ADMIN
        if target.protected and not is_admin:
            raise Forbidden(
                f"Branch {d['target']!r} is protected: only admins can merge into it.",
                code="branch_protected",
            )
        outcome = merge.merge(
            repo=repo,
            source=d["source"],
            target=d["target"],
            user=request.user,
            strategy=d.get("strategy"),
            weight=d["weight"],
            message=d.get("message"),
            allow_fast_forward=not d["no_ff"],
            allow_protected=is_admin,
        )
        return Response(
            {
                "result": outcome.kind,
                "commit": commit_out(outcome.commit),
                "base": outcome.base,
                "bases": outcome.bases,
                "merged_files": outcome.merged_tensors,
                "resolved": outcome.resolved,
                "note": outcome.note,
            },
            status=201 if outcome.kind == "merge" else 200,
        )


class GcApi(APIView):
    class InputSerializer(serializers.Serializer):
        dry_run = serializers.BooleanField(default=True)
        grace_seconds = serializers.IntegerField(required=False, min_value=0)

    @extend_schema(
        operation_id="admin_gc",
        request=InputSerializer,
        responses={200: GcOut, **errors(503)},
        summary="Garbage-collect unreferenced data (site admins)",
    )
    def post(self, request):
        if not request.user.is_authenticated:
            raise NotAuthenticated("Authentication required.")
        if not request.user.is_superuser:
            raise Forbidden("Only site administrators can run GC.", code="insufficient_role")
        if accounts.token_scope(request) == "read" and not request.data.get("dry_run", True):
            raise Forbidden("This token is read-only.", code="token_read_only")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(gc.gc(**data.validated_data))
