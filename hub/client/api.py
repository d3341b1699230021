"""The SDK: a thin, typed layer over the REST API, with transfers done right.

Transfers: ``push`` chunks locally (safetensors per tensor, other files by content-defined
chunking), asks the hub which chunks it lacks, uploads only those (in parallel, with a
progress bar), then creates the commit. An interrupted push re-run uploads only what is
still missing. ``pull`` pins the ref to a commit id first, so a branch moving mid-download
cannot mix two versions, verifies every chunk's hash as it streams, resumes partial files
with HTTP Range, and renames each file into place only once it is complete and verified.
"""

from __future__ import annotations

import os
import random
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import blake3

try:  # metric series are mostly floats: orjson parses them ~5x faster than json
    from orjson import loads as _loads
except ImportError:  # the SDK works without it
    from json import loads as _loads
import httpx

from hub.client import config
from hub.client.errors import HubClientError, HubUnreachable
from hub.shared.chunking import FileManifest, chunk_file
from hub.shared.paths import PathRefused, check_path, check_tree, is_git_dir_name

RETRY_STATUSES = {502, 503, 504}
NEGOTIATE_BATCH = 10_000


def _split_repo(repo: str) -> tuple[str, str]:
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"repo must be 'namespace/name', got {repo!r}")
    return parts[0], parts[1]


def split_repo_ref(spec: str) -> tuple[str, str | None]:
    """``ns/name@ref`` → (``ns/name``, ``ref``); the ref may itself contain '/' (ref names
    cannot contain '@'). The SDK never interprets the ref: the hub resolves it with its one
    rule (a full commit id always means that commit; see hub.registry.selectors.resolve)."""
    repo, _, ref = spec.partition("@")
    return repo, (ref or None)


@dataclass
class PushResult:
    commit: dict | None
    files: int
    changed_files: int
    chunks: int
    uploaded_chunks: int
    uploaded_bytes: int
    total_bytes: int
    seconds: float
    branch: str = ""


class _Progress:
    """tqdm when asked for and available; silent otherwise."""

    def __init__(self, enabled: bool, total: int, desc: str):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=True
                )
            except ImportError:  # pragma: no cover
                self.bar = None
        self.lock = threading.Lock()

    def update(self, n: int) -> None:
        if self.bar is not None:
            with self.lock:
                self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Client:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
        workers: int = 4,
    ):
        self.url, self.token = config.resolve(url, token)
        self.retries, self.backoff, self.workers = retries, backoff, workers
        headers = {"User-Agent": "moe-hub-client/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._http = httpx.Client(
            base_url=self.url + "/api/v1",
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- HTTP ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        retries: int | None = None,
        **kw,
    ) -> httpx.Response:
        """One call with retries: connection failures and 502/503/504 are retried with
        exponential backoff and jitter (honouring Retry-After) when the call is safe to repeat.
        Non-idempotent calls are retried only when the request never reached the hub."""
        if idempotent is None:
            idempotent = method in {"GET", "HEAD", "PUT", "DELETE"}
        max_retries = self.retries if retries is None else retries
        attempt = 0
        while True:
            try:
                resp = self._http.request(method, path, **kw)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                err: Exception = e  # the request never left: always safe to repeat
                resp = None
            except httpx.TransportError as e:  # read/write errors and timeouts, protocol errors
                if not idempotent:
                    raise HubUnreachable(
                        f"{method} {path}: connection lost mid-request ({e})"
                    ) from e
                err, resp = e, None
            if resp is not None and not (
                resp.status_code in RETRY_STATUSES and (idempotent or resp.status_code == 503)
            ):
                if resp.status_code >= 400:
                    raise self._error(resp)
                return resp
            attempt += 1
            if attempt > max_retries:
                if resp is not None:
                    raise self._error(resp)
                raise HubUnreachable(f"cannot reach the hub at {self.url}: {err}") from err
            delay = self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())
            if resp is not None and resp.headers.get("Retry-After", "").isdigit():
                delay = max(delay, float(resp.headers["Retry-After"]))
            time.sleep(min(delay, 30.0))

    @staticmethod
    def _error(resp: httpx.Response) -> HubClientError:
        try:
            err = resp.json()["error"]
            return HubClientError(
                resp.status_code,
                err.get("code", "error"),
                err.get("message", ""),
                err.get("details"),
            )
        except Exception:
            return HubClientError(resp.status_code, f"http_{resp.status_code}", resp.text[:500])

    def _json(self, method: str, path: str, **kw) -> Any:
        resp = self.request(method, path, **kw)
        return _loads(resp.content) if resp.content else None

    def _paged(self, path: str, params: dict | None = None, limit: int | None = None) -> list[dict]:
        out: list[dict] = []
        page = 1
        while True:
            data = self._json(
                "GET", path, params={**(params or {}), "page": page, "page_size": 500}
            )
            out.extend(data["results"])
            if limit is not None and len(out) >= limit:
                return out[:limit]
            if not data.get("next"):
                return out
            page += 1

    @staticmethod
    def _r(repo: str) -> str:
        ns, name = _split_repo(repo)
        return f"/repos/{quote(ns)}/{quote(name)}"

    # --- accounts ----------------------------------------------------------------------------

    def whoami(self) -> dict:
        return self._json("GET", "/whoami")

    def create_token(self, name: str, scope: str = "write") -> dict:
        return self._json("POST", "/tokens", json={"name": name, "scope": scope})

    def list_tokens(self) -> list[dict]:
        return self._paged("/tokens")

    def revoke_token(self, token_id: int) -> dict:
        return self._json("DELETE", f"/tokens/{token_id}")

    def create_org(self, name: str) -> dict:
        return self._json("POST", "/orgs", json={"name": name})

    def set_member(self, namespace: str, username: str, role: str) -> dict:
        return self._json(
            "PUT", f"/namespaces/{quote(namespace)}/members/{quote(username)}", json={"role": role}
        )

    # --- repos and refs ----------------------------------------------------------------------

    def create_repo(
        self, repo: str, *, private: bool = False, description: str = "", exist_ok: bool = False
    ) -> dict:
        ns, name = _split_repo(repo)
        try:
            return self._json(
                "POST",
                "/repos",
                json={
                    "namespace": ns,
                    "name": name,
                    "private": private,
                    "description": description,
                },
            )
        except HubClientError as e:
            if exist_ok and e.code == "repo_exists":
                return self.repo_info(repo)
            raise

    def repo_info(self, repo: str) -> dict:
        return self._json("GET", self._r(repo))

    def list_repos(self, namespace: str | None = None) -> list[dict]:
        return self._paged("/repos", {"namespace": namespace} if namespace else None)

    def search_models(
        self,
        q: str = "",
        *,
        tag: str | list[str] | None = None,
        license: str | list[str] | None = None,
        base_model: str | list[str] | None = None,
        metric: str | list[str] | None = None,
        page_size: int = 20,
        offset: int = 0,
    ) -> dict:
        """Models (default-branch heads) matching ``q`` and the filters: ``{results, total,
        facets}``. ``q`` takes words, ``tag:``, ``license:``, ``base_model:``, ``dataset:``
        and ``metric:val_loss<2.0`` terms; each filter may be given several times (all must
        hold). Only models the token may read come back."""
        params: dict[str, Any] = {"q": q, "page_size": page_size, "offset": offset}
        for key, value in (
            ("tag", tag),
            ("license", license),
            ("base_model", base_model),
            ("metric", metric),
        ):
            if value:
                params[key] = [value] if isinstance(value, str) else list(value)
        return self._json("GET", "/models/search", params=params)

    def model_card(self, repo: str, ref: str | None = None) -> dict:
        """A ref's model card: its README.md rendered (``html``) with its front matter, or
        one generated from the lineage (``source: "generated"``, Markdown in ``markdown``)."""
        return self._json("GET", f"{self._r(repo)}/card", params={"ref": ref} if ref else None)

    def delete_repo(self, repo: str) -> None:
        self.request("DELETE", self._r(repo))

    def update_repo(self, repo: str, **fields) -> dict:
        return self._json("PATCH", self._r(repo), json=fields)

    def create_branch(self, repo: str, name: str, from_ref: str | None = None) -> dict:
        return self._json(
            "POST", f"{self._r(repo)}/branches", json={"name": name, "from_ref": from_ref}
        )

    def list_branches(self, repo: str) -> list[dict]:
        return self._paged(f"{self._r(repo)}/branches")

    def branch_info(self, repo: str, name: str) -> dict:
        return self._json("GET", f"{self._r(repo)}/branches/{quote(name)}")

    def delete_branch(self, repo: str, name: str) -> None:
        self.request("DELETE", f"{self._r(repo)}/branches/{quote(name)}")

    def protect_branch(self, repo: str, name: str, protected: bool = True) -> dict:
        return self._json(
            "PATCH", f"{self._r(repo)}/branches/{quote(name)}", json={"protected": protected}
        )

    def create_tag(self, repo: str, name: str, ref: str, message: str = "") -> dict:
        return self._json(
            "POST", f"{self._r(repo)}/tags", json={"name": name, "ref": ref, "message": message}
        )

    def list_tags(self, repo: str) -> list[dict]:
        return self._paged(f"{self._r(repo)}/tags")

    def delete_tag(self, repo: str, name: str) -> None:
        self.request("DELETE", f"{self._r(repo)}/tags/{quote(name)}")

    def log(
        self, repo: str, ref: str | None = None, *, first_parent: bool = False, limit: int = 50
    ) -> list[dict]:
        out: list[dict] = []
        page = 1
        while len(out) < limit:
            params = {
                "page": page,
                "page_size": min(1000, limit),
                "first_parent": int(first_parent),
            }
            if ref:
                params["ref"] = ref
            data = self._json("GET", f"{self._r(repo)}/commits", params=params)
            out.extend(data["results"])
            if not data["has_more"]:
                break
            page += 1
        return out[:limit]

    def commit_info(self, repo: str, sha: str) -> dict:
        return self._json("GET", f"{self._r(repo)}/commits/{sha}")

    def list_files(
        self, repo: str, ref: str | None = None, prefix: str = "", *, page_size: int | None = None
    ) -> dict:
        """``{"commit", "files"}``: every file of ``ref`` (all pages, each of the same commit)."""
        params: dict = {"prefix": prefix}
        if page_size:
            params["page_size"] = page_size
        if ref:
            params["ref"] = ref
        out = self._json("GET", f"{self._r(repo)}/tree", params=params)
        files, page = list(out["files"]), 1
        while out.get("next"):
            page += 1
            out = self._json(
                "GET",
                f"{self._r(repo)}/tree",
                params={**params, "ref": out["commit"], "page": page},
            )
            files += out["files"]
        return {"commit": out["commit"], "files": files}

    def file_info(self, repo: str, path: str, ref: str | None = None) -> dict:
        return self._json(
            "GET", f"{self._r(repo)}/info/{quote(path)}", params={"ref": ref} if ref else None
        )

    def diff(
        self, repo: str, a: str, b: str, *, tensors: bool = True, filter: str | None = None
    ) -> dict:
        params = {"a": a, "b": b, "tensors": int(tensors)}
        if filter:
            params["filter"] = filter
        return self._json("GET", f"{self._r(repo)}/diff", params=params)

    def merge(
        self,
        repo: str,
        source: str,
        into: str,
        *,
        strategy: str | None = None,
        weight: float = 0.5,
        message: str | None = None,
        no_ff: bool = False,
    ) -> dict:
        return self._json(
            "POST",
            f"{self._r(repo)}/merge",
            json={
                "source": source,
                "target": into,
                "strategy": strategy,
                "weight": weight,
                "message": message,
                "no_ff": no_ff,
            },
            idempotent=False,
        )

    # --- text watermarks ---------------------------------------------------------------------

    def watermark_verify(self, text: str, *, repo: str | None = None) -> dict:
        """Does ``text`` carry a repo's watermark? ``{detected, z_score, p_value,
        p_value_corrected, tokens_scored, keys_tested, match: {repo, key_id} | None, ...}``.
        Without ``repo``, every key the caller may read is tried (Bonferroni-corrected)."""
        body: dict = {"text": text}
        if repo:
            ns, name = _split_repo(repo)
            body["repo"] = f"{ns}/{name}"
        return self._json("POST", "/watermark/verify", json=body)

    def watermark_setting(self, repo: str) -> dict:
        """The repo's watermark switch, strength and key ids (never the keys)."""
        return self._json("GET", f"{self._r(repo)}/watermark")

    def watermark_set(
        self, repo: str, *, enabled: bool | None = None, strength: float | None = None
    ) -> dict:
        """Switch watermarking of the repo's generations (admins); strength in (0, 1]."""
        body = {k: v for k, v in (("enabled", enabled), ("strength", strength)) if v is not None}
        return self._json("PATCH", f"{self._r(repo)}/watermark", json=body)

    def generate(
        self,
        spec: str,
        prompt: str,
        *,
        ref: str | None = None,
        max_new_tokens: int = 64,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: list[str] | None = None,
        watermark: bool | None = None,
    ) -> Iterator[dict]:
        """Prompt ``repo@ref`` in the hub's inference sandbox; yields its events as they
        stream: ``{"type": "start", "commit", "cold", ...}``, one ``{"type": "token", "id",
        "text", "routing": [{"layer", "experts", "weights"}]}`` per token, then ``{"type":
        "done", "text", "tokens", "tokens_per_s", "time_to_first_token_s", ...}`` (or
        ``{"type": "error", "code", "message"}``). A refusal before the first token (404,
        429 rate limit, 503 no worker) raises :class:`HubClientError`."""
        repo, spec_ref = split_repo_ref(spec)
        body = {
            "ref": ref or spec_ref or "HEAD",
            "prompt": prompt,
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_k": top_k,
            "top_p": top_p,
            "seed": seed,
            "stop": list(stop or []),
            "watermark": watermark,
            "stream": True,
        }
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        with self._http.stream(
            "POST", f"{self._r(repo)}/generate", json=body, timeout=timeout
        ) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise self._error(resp)
            kind = None
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    yield {"type": kind, **_loads(line[6:].encode())}
                    if kind in ("done", "error"):
                        return

    def attention(self, spec: str, prompt: str, *, retries: int | None = None) -> dict:
        """Attention weights per layer and head over ``prompt``'s byte tokens and the routing
        per token, computed in the inference sandbox for ``repo@ref`` (see
        ``hub.inference.inspect``)."""
        repo, ref = split_repo_ref(spec)
        timeout = httpx.Timeout(self._http.timeout.connect, read=600)
        body = {"ref": ref or "HEAD", "prompt": prompt}
        return self._json(
            "POST", f"{self._r(repo)}/attention", json=body, timeout=timeout, retries=retries
        )

    def routing_diff(self, spec_a: str, spec_b: str, *, retries: int | None = None) -> dict:
        """The routing of ``ns/name@A`` and ``ns/name@B`` on the probe set, compared per layer:
        same top-1 share, load change, entropy, swapped experts (``hub.shared.routing_diff``)."""
        repo_a, ref_a = split_repo_ref(spec_a)
        repo_b, ref_b = split_repo_ref(spec_b)
        body = {"a": ref_a or "HEAD", "b": ref_b or "HEAD", "b_repo": repo_b}
        timeout = httpx.Timeout(self._http.timeout.connect, read=600)
        return self._json(
            "POST", f"{self._r(repo_a)}/routing-diff", json=body, timeout=timeout, retries=retries
        )

    def profile_memory(self, job_id: str) -> dict:
        """A profile job's memory by category over time, its peak and tensor lifetimes."""
        return self._json("GET", f"/jobs/{job_id}/profile/memory")

    def profile_diff_prepare(
        self,
        a: str,
        b: str,
        *,
        config: dict | None = None,
        project: str = "",
        resources: dict | None = None,
    ) -> dict:
        """Pair two profiles of identical settings: ``a``/``b`` are profile job ids or
        ``ns/repo@ref``; for a ref the hub reuses that commit's profile with those settings or
        launches one (in ``project``). Returns both jobs and whether they have finished."""
        body: dict[str, Any] = {"a": a, "b": b, "project": project, "resources": resources or {}}
        if config is not None:
            body["config"] = config
        return self._json("POST", "/jobs/profile-diff", json=body)

    def profile_diff(self, job_a: str, job_b: str) -> dict:
        """Per-op self time / memory ratios (B/A) and the differential flame graph of two
        finished profile jobs (``hub.shared.profile_diff``)."""
        return self._json("GET", "/jobs/profile-diff", params={"a": job_a, "b": job_b})

    def gc(self, *, dry_run: bool = True, grace_seconds: int | None = None) -> dict:
        body: dict[str, Any] = {"dry_run": dry_run}
        if grace_seconds is not None:
            body["grace_seconds"] = grace_seconds
        return self._json("POST", "/admin/gc", json=body, idempotent=False)

    # --- experiment tracking ------------------------------------------------------------------

    def init_run(
        self,
        project: str,
        *,
        name: str | None = None,
        params: dict | None = None,
        tags: list[str] | None = None,
        group: str = "",
        notes: str = "",
        run_id: str | None = None,
        commit: str | None = None,
        job_id: str = "",
        create_project: bool = True,
        **run_options,
    ):
        """Start (or, with the same ``run_id``, resume) a run in ``namespace/project``.

        Returns a :class:`hub.client.run.Run`; ``run.log({...}, step=...)`` never blocks.

        If the hub cannot be reached (or answers 408/429/5xx), the run starts offline,
        "pending creation" under a client-chosen id: the creation request is spooled with
        its points and sent first, idempotently, once the hub answers (or by ``hub sync``).
        Any other refusal (auth, a bad project name, a param conflict) raises here."""
        import warnings

        from hub.client.run import Run, new_run_id
        from hub.client.spool import create_run, is_transient

        ns, proj = _split_repo(project)
        create = {
            "project": f"{ns}/{proj}",
            "create_project": create_project,
            "name": name,
            "group": group,
            "params": params or {},
            "tags": tags or [],
            "notes": notes,
            "run_id": run_id or new_run_id(),
            "commit": commit or "",
            "job_id": job_id,
        }
        # Bounded: the sender keeps retrying in the background, so a few short tries are enough
        # before starting offline (a dropped SYN would otherwise cost a full timeout per try).
        t = self._http.timeout
        timeout = httpx.Timeout(
            connect=min(t.connect or 10.0, 10.0), read=t.read, write=t.write, pool=t.pool
        )
        try:
            data = create_run(self, create, retries=min(self.retries, 2), timeout=timeout)
        except Exception as e:
            if not is_transient(e):
                raise
            run = Run(
                self,
                {
                    "id": create["run_id"],
                    "name": name or create["run_id"],
                    "group": group,
                    "params": dict(create["params"]),
                    "tags": list(create["tags"]),
                    "notes": notes,
                    "status": "running",
                    "started_at": datetime.now(UTC).isoformat(),
                },
                create=create,
                **run_options,
            )
            warnings.warn(
                f"run {run.id}: cannot reach the hub at {self.url} ({getattr(e, 'message', e)}); training "
                f"goes on offline: the run will be created when the hub answers (its creation and points "
                f"are spooled in {run.spool}; `hub sync` sends them otherwise)",
                stacklevel=2,
            )
            return run
        return Run(self, data, **run_options)

    def get_run(self, run_id: str) -> dict:
        return self._json("GET", f"/runs/{run_id}")

    def run_alerts(self, run_id: str, *, kind: str | None = None) -> dict:
        """A run's MoE health alerts in step order: ``{run, count, kinds, results}``."""
        return self._json("GET", f"/runs/{run_id}/alerts", params={"kind": kind} if kind else None)

    def search_runs(
        self,
        project: str,
        q: str = "",
        *,
        sort: str | list[str] | None = None,
        page_size: int = 50,
        cursor: list | None = None,
        facets: list[str] | None = None,
    ) -> dict:
        ns, proj = _split_repo(project)
        params: dict[str, Any] = {"q": q, "page_size": page_size}
        if sort:
            params["sort"] = sort if isinstance(sort, str) else ",".join(sort)
        if cursor:
            import json

            params["cursor"] = json.dumps(cursor)
        if facets:
            params["facets"] = ",".join(facets)
        return self._json("GET", f"/projects/{quote(ns)}/{quote(proj)}/runs", params=params)

    def series(
        self,
        runs: list[str],
        keys: list[str],
        *,
        x: str = "step",
        buckets: int | None = None,
        x_min: float | None = None,
        x_max: float | None = None,
    ) -> list[dict]:
        params: dict[str, Any] = {"runs": ",".join(runs), "keys": ",".join(keys), "x": x}
        for k, v in (("buckets", buckets), ("min", x_min), ("max", x_max)):
            if v is not None:
                params[k] = v
        return self._json("GET", "/metrics/series", params=params)["series"]

    def compare_runs(
        self,
        runs: list[str] | None = None,
        *,
        commits: list[str] | None = None,
        baseline: str | None = None,
        target: str | None = None,
        goal: str | None = None,
        kind: str | None = None,
        format: str = "json",
    ):
        """A comparison report of runs (ids), or of model commits (``ns/repo@ref``: a commit
        id, a branch or a tag, resolved by the hub) through the runs linked to them, one run of
        one kind per commit (``kind``: train, finetune, evaluate, profile or run; by default
        the kind all commits have; the report's ``kind`` says which); ``baseline`` is one of
        the runs or commits."""
        if bool(runs) == bool(commits):
            raise ValueError("pass runs or commits (not both)")
        params = {"runs": ",".join(runs)} if runs else {"commits": ",".join(commits or [])}
        params["render"] = format
        for k, v in (("baseline", baseline), ("target", target), ("goal", goal), ("kind", kind)):
            if v:
                params[k] = v
        resp = self.request("GET", "/runs/compare", params=params)
        return resp.json() if format == "json" else resp.text

    def sync(self) -> dict:
        """Send metric batches spooled while the hub was unreachable."""
        from hub.client.spool import sync_spool

        return sync_spool(self)

    # --- push --------------------------------------------------------------------------------

    def missing_chunks(self, repo: str, hashes: list[str]) -> set[str]:
        missing: set[str] = set()
        for i in range(0, len(hashes), NEGOTIATE_BATCH):
            data = self._json(
                "POST",
                f"{self._r(repo)}/chunks/missing",
                json={"chunks": hashes[i : i + NEGOTIATE_BATCH]},
                idempotent=True,
            )
            missing |= set(data["missing"])
        return missing

    def upload_chunk(self, repo: str, digest: str, data: bytes) -> None:
        self.request(
            "PUT",
            f"{self._r(repo)}/chunks/{digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def push(
        self,
        path: str | os.PathLike,
        *,
        repo: str,
        branch: str | None = None,
        message: str,
        path_in_repo: str = "",
        expected_head: str | None = None,
        metadata: dict | None = None,
        delete_missing: bool = False,
        progress: bool = False,
        job_id: str = "",
        run_id: str = "",
        on_chunked: Callable[[list[FileManifest]], None] | None = None,
    ) -> PushResult:
        """Commit a file or a directory to ``repo``'s ``branch`` (default: the repo's default).

        Only changed files become operations, and only chunks the hub lacks are sent.
        ``expected_head`` pins the parent (409 ``branch_conflict`` if the branch moved);
        by default it is the head read before uploading, so a concurrent push is never
        overwritten. ``delete_missing`` also removes files under ``path_in_repo`` that are
        not in ``path`` (a sync)."""
        started = time.perf_counter()
        local = Path(path)
        if not local.exists():
            raise FileNotFoundError(f"{local}: no such file or directory")
        info = self.repo_info(repo)
        branch = branch or info["default_branch"]
        head = expected_head or self.branch_info(repo, branch)["commit"]
        prefix = path_in_repo.strip("/")
        if local.is_file():
            pairs = [(local, "/".join(filter(None, [prefix, local.name])))]
        else:
            pairs = sorted(
                (p, "/".join(filter(None, [prefix, p.relative_to(local).as_posix()])))
                for p in local.rglob("*")
                if p.is_file()
                and ".hub-partial" not in p.parts
                and not any(
                    is_git_dir_name(part) for part in p.relative_to(local).parts
                )  # a checkout's .git
            )
        # The hub's path rule, before anything is chunked or sent: names go up in NFC (as
        # macOS may spell them otherwise), and a name the hub would refuse fails here.
        pairs = [(p, unicodedata.normalize("NFC", name)) for p, name in pairs]
        try:
            for _, name in pairs:
                check_path(name)
            check_tree(name for _, name in pairs)
        except PathRefused as e:
            raise HubClientError(0, e.code, e.message, e.details) from None
        manifests: list[tuple[Path, FileManifest]] = []
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for src, m in zip(
                [p for p, _ in pairs],
                pool.map(lambda pr: chunk_file(pr[0], name=pr[1]), pairs),
                strict=True,
            ):
                manifests.append((src, m))
        if on_chunked:
            on_chunked([m for _, m in manifests])
        remote = {f["path"]: f["oid"] for f in self.list_files(repo, head)["files"]}
        changed = [(src, m) for src, m in manifests if remote.get(m.path) != m.oid]
        ops: list[dict] = [m.as_operation() for _, m in changed]
        if delete_missing:
            local_paths = {m.path for _, m in manifests}
            ops += [
                {"op": "delete", "path": p}
                for p in remote
                if p not in local_paths and (not prefix or p.startswith(prefix + "/"))
            ]
        all_chunks: dict[str, tuple[Path, int, int]] = {}
        for src, m in changed:
            for c in m.chunks:
                all_chunks.setdefault(c.hash, (src, c.offset, c.size))
        total = sum(m.size for _, m in manifests)
        if not ops:
            return PushResult(
                None,
                len(manifests),
                0,
                len(all_chunks),
                0,
                0,
                total,
                time.perf_counter() - started,
                branch,
            )
        missing = self.missing_chunks(repo, list(all_chunks))
        todo = [(h, *all_chunks[h]) for h in all_chunks if h in missing]
        up_bytes = sum(size for _, _, _, size in todo)
        bar = _Progress(progress, up_bytes, f"push {repo}@{branch}")

        def send(item):
            digest, src, offset, size = item
            with open(src, "rb") as f:
                f.seek(offset)
                data = f.read(size)
            # No second hash here: the hub hashes every chunk and refuses one that changed
            # since chunking (chunk_hash_mismatch), which also says "push again".
            self.upload_chunk(repo, digest, data)
            bar.update(size)

        try:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                list(pool.map(send, todo))
        finally:
            bar.close()
        body = {
            "branch": branch,
            "message": message,
            "operations": ops,
            "expected_head": head,
            "metadata": metadata or {},
            "created_at": datetime.now(UTC).isoformat(),
            "job_id": job_id,
            "run_id": run_id,
        }
        # Retrying is safe: the same body yields the same commit id, which the hub recognises.
        commit = self._json("POST", f"{self._r(repo)}/commits", json=body, idempotent=True)
        return PushResult(
            commit,
            len(manifests),
            len(changed),
            len(all_chunks),
            len(todo),
            up_bytes,
            total,
            time.perf_counter() - started,
            branch,
        )

    # --- pull --------------------------------------------------------------------------------

    def download_file(
        self,
        repo: str,
        path: str,
        dest: str | os.PathLike,
        *,
        ref: str | None = None,
        manifest: dict | None = None,
        progress: _Progress | None = None,
        root: str | os.PathLike | None = None,
    ) -> Path:
        """Download one file, verifying each chunk's BLAKE3 hash as it streams; resumes a
        partial download (``<dest>.part``) with an HTTP Range request. With ``root``, the
        file's folder must resolve inside ``root`` (checked before and after creating it).
        A link where the ``.part`` file goes is removed, never written through."""
        dest = Path(dest)
        manifest = manifest or self.file_info(repo, path, ref)
        ref = manifest.get("commit") or ref
        part = dest.with_name(dest.name + ".part")
        _check_inside(root, dest, path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _check_inside(root, dest, path)
        if part.is_symlink():
            part.unlink()
        chunks = manifest["chunks"]
        have = part.stat().st_size if part.exists() else 0
        # Resume only at a chunk boundary we can re-verify: drop a torn trailing chunk.
        boundary, verified = 0, 0
        if have:
            with _open_part(part, "rb") as f:
                for digest, size in chunks:
                    if boundary + size > have:
                        break
                    if blake3.blake3(f.read(size)).hexdigest() != digest:
                        break
                    boundary += size
                    verified += 1
            with _open_part(part, "r+b") as f:
                f.truncate(boundary)
        if progress:
            progress.update(boundary)
        headers = {"Range": f"bytes={boundary}-"} if boundary else {}
        if boundary < manifest["size"]:
            attempt = 0
            while True:
                try:
                    self._stream_into(
                        repo, path, ref, part, chunks, verified, boundary, headers, progress
                    )
                    break
                except (httpx.TransportError, HubUnreachable):
                    attempt += 1
                    if attempt > self.retries:
                        raise
                    boundary = part.stat().st_size
                    verified = _count_full_chunks(chunks, boundary)
                    with _open_part(part, "r+b") as f:
                        f.truncate(_chunk_start(chunks, verified))
                    boundary = _chunk_start(chunks, verified)
                    headers = {"Range": f"bytes={boundary}-"}
                    time.sleep(self.backoff * attempt)
        else:
            _open_part(part, "ab").close()
        os.replace(part, dest)
        return dest

    def _stream_into(
        self, repo, path, ref, part: Path, chunks, index: int, offset: int, headers, progress
    ) -> None:
        url = f"{self._r(repo)}/files/{quote(path)}"
        params = {"ref": ref} if ref else None
        # A large file may be answered with a redirect to the blob store's presigned URL;
        # httpx drops the Authorization header when it follows one to another origin.
        with self._http.stream(
            "GET", url, params=params, headers=headers, follow_redirects=True
        ) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise self._error(resp)
            if offset and resp.status_code != 206:
                raise HubClientError(
                    resp.status_code, "range_not_honoured", "the hub ignored a Range request"
                )
            with _open_part(part, "ab") as f:
                buf = bytearray()
                # As the bytes arrive (no fixed-size re-chunking): when the hub drops the
                # connection mid-file, every whole chunk received so far is verified and kept,
                # so the retry resumes after it instead of from the start.
                for piece in resp.iter_bytes():
                    buf += piece
                    while index < len(chunks) and len(buf) >= chunks[index][1]:
                        digest, size = chunks[index]
                        data = bytes(buf[:size])
                        if blake3.blake3(data).hexdigest() != digest:
                            raise HubClientError(
                                0, "corrupt_download", f"{path}: chunk {index} failed verification"
                            )
                        f.write(data)
                        del buf[:size]
                        index += 1
                        if progress:
                            progress.update(size)
                if index != len(chunks) or buf:
                    raise httpx.ReadError(f"{path}: stream ended early")

    def pull(
        self,
        spec: str,
        dest: str | os.PathLike,
        *,
        ref: str | None = None,
        progress: bool = False,
        include: Iterable[str] | None = None,
    ) -> dict:
        """Download every file of ``repo@ref`` into ``dest``. The ref is resolved to a commit
        id once; files already present with the same content are skipped."""
        repo, spec_ref = split_repo_ref(spec)
        ref = ref or spec_ref
        listing = self.list_files(repo, ref)
        sha = listing["commit"]
        dest = Path(dest)
        files = listing["files"]
        # Paths come from the server: every one of the tree must follow the hub's path rule
        # and land inside dest, and no two may be one file on a case-insensitive disk, or
        # nothing is written (whatever ``include`` picks: a bad tree is not pulled from).
        targets = {f["path"]: safe_target(dest, f["path"]) for f in files}
        safe_tree(f["path"] for f in files)
        if include:
            wanted = tuple(include)
            files = [f for f in files if f["path"].startswith(wanted)]
        todo = []
        skipped = 0
        for f in files:
            target = targets[f["path"]]
            if target.exists() and target.stat().st_size == f["size"]:
                try:
                    if chunk_file(target, name=f["path"]).oid == f["oid"]:
                        skipped += 1
                        continue
                except Exception:
                    pass
            todo.append(f)
        bar = _Progress(progress, sum(f["size"] for f in todo), f"pull {repo}@{sha[:10]}")
        try:
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                list(
                    pool.map(
                        lambda f: self.download_file(
                            repo,
                            f["path"],
                            targets[f["path"]],
                            manifest=self.file_info(repo, f["path"], sha),
                            progress=bar,
                            root=dest,
                        ),
                        todo,
                    )
                )
        finally:
            bar.close()
        return {
            "commit": sha,
            "files": len(files),
            "downloaded": len(todo),
            "skipped": skipped,
            "bytes": sum(f["size"] for f in todo),
        }


def safe_target(dest: Path, path) -> Path:
    """Where a repo path goes under ``dest``, refusing what a hub (or anyone in the middle)
    could use to write elsewhere or into git's own files: any path the hub's path rule
    refuses (:mod:`hub.shared.paths`: absolute, '..', '.git' in any spelling, control or
    bidi characters, not NFC, ...), and any path that resolves outside ``dest`` (through a
    symlink already there, or a drive on Windows)."""
    problem, reason = None, "invalid_path"
    try:
        check_path(path)
    except PathRefused as e:
        problem = e.message
    else:
        root = dest.resolve()
        target = (dest / path).resolve()
        if target == root or not target.is_relative_to(root):
            problem, reason = f"it resolves outside {dest}", "outside_dest"
    if problem:
        raise HubClientError(
            0,
            "unsafe_path",
            f"the hub sent the file path {str(path)[:200]!r}: {problem}; "
            "refusing to write it (nothing was downloaded)",
            {"path": str(path)[:1000], "reason": reason},
        )
    return dest / path


def safe_tree(paths: Iterable[str]) -> None:
    """Refuse a tree two of whose paths (or a file and a directory) a case-insensitive or
    normalising disk (macOS, Windows) would write as one: one would overwrite the other."""
    try:
        check_tree(paths)
    except PathRefused as e:
        raise HubClientError(
            0,
            "unsafe_path",
            f"{e.message} Refusing to pull (nothing was downloaded).",
            {"reason": e.code, "paths": e.details["paths"]},
        ) from None


def _check_inside(root: str | os.PathLike | None, dest: Path, path: str) -> None:
    if root is None:
        return
    base = Path(root).resolve()
    if not dest.parent.resolve().is_relative_to(base):
        raise HubClientError(
            0,
            "unsafe_path",
            f"{path}: its folder resolves outside {root} (through a link); refusing to write it",
            {"path": path, "reason": "outside_dest"},
        )


def _open_part(part: Path, mode: str):
    """Open a download's staging file without following a link put in its place."""
    flags = {"rb": os.O_RDONLY, "r+b": os.O_RDWR, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT}[
        mode
    ]
    fd = os.open(part, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o644)
    return os.fdopen(fd, mode)


def _chunk_start(chunks, index: int) -> int:
    return sum(size for _, size in chunks[:index])


def _count_full_chunks(chunks, size: int) -> int:
    pos = 0
    for i, (_, s) in enumerate(chunks):
        if pos + s > size:
            return i
        pos += s
    return len(chunks)
