"""Name rules shared by the domains: namespaces, repos, git ref names and file paths."""

from __future__ import annotations

import re
from collections.abc import Iterable

from hub.common.errors import InvalidInput
from hub.shared.paths import PathRefused, check_path, check_tree

_SLUG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
MAX_REF = 255


def validate_slug(value: str, *, what: str) -> str:
    if not isinstance(value, str) or not _SLUG.match(value) or ".." in value:
        raise InvalidInput(
            f"Invalid {what} {value!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit.",
            code=f"invalid_{what.replace(' ', '_')}",
        )
    return value


_LOOKS_LIKE_COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")


def validate_ref_name(name: str) -> str:
    """A name a new branch or tag may take: git check-ref-format rules (as for
    ``refs/heads/<name>``), and nothing the ref resolver could read as something else.

    Refused with their own codes, because a ref that shadows another would let a writer swap
    what a pinned id means (see ``hub.registry.selectors.resolve``):

    - ``ref_name_looks_like_commit``: 7 to 40 hex digits (any case), i.e. a commit id or
      an abbreviation of one;
    - ``ref_name_reserved``: ``HEAD`` (any case) or anything under ``refs/``, the explicit
      forms ``refs/heads/<branch>`` and ``refs/tags/<tag>``;
    - ``invalid_ref_name``: the syntax rules, ``@`` included (``ns/repo@ref`` splits on it).

    Whether the name is already taken by a ref of the other kind needs the repo: the
    registry's services check that (``ref_name_taken``)."""
    problems = []
    if not isinstance(name, str) or not name:
        problems.append("must not be empty")
    else:
        if len(name) > MAX_REF:
            problems.append(f"must be at most {MAX_REF} characters")
        if _REF_FORBIDDEN.search(name):
            problems.append("must not contain spaces, control characters or any of ~ ^ : ? * [ \\")
        if ".." in name:
            problems.append("must not contain '..'")
        if "@" in name:
            problems.append("must not contain '@' (it separates repo and ref in 'ns/repo@ref')")
        if name.startswith("/") or name.endswith("/") or "//" in name:
            problems.append("must not start or end with '/' or contain '//'")
        if name.endswith("."):
            problems.append("must not end with '.'")
        if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
            problems.append("no component may start with '.' or end with '.lock'")
        if name.startswith("-"):
            problems.append("must not start with '-'")
    if problems:
        raise InvalidInput(
            f"Invalid ref name {name!r}: " + "; ".join(problems), code="invalid_ref_name"
        )
    if _LOOKS_LIKE_COMMIT.match(name):
        raise InvalidInput(
            f"Invalid ref name {name!r}: 7 to 40 hex digits read as a commit id; "
            "choose a name with at least one other character.",
            code="ref_name_looks_like_commit",
        )
    if name.upper() == "HEAD" or name.startswith("refs/"):
        raise InvalidInput(
            f"Invalid ref name {name!r}: 'HEAD' and names under 'refs/' are reserved for "
            "'refs/heads/<branch>' and 'refs/tags/<tag>'.",
            code="ref_name_reserved",
        )
    return name


def validate_path(path: str) -> str:
    """A path entering a tree, by the one path rule (:mod:`hub.shared.paths`, shared with
    the SDK and the supervisor): 400 ``invalid_path`` with every reason."""
    try:
        return check_path(path)
    except PathRefused as e:
        raise InvalidInput(e.message, code=e.code, details=e.details) from None


def validate_tree_paths(paths: Iterable[str], *, new: Iterable[str] | None = None) -> None:
    """400 ``path_collision`` when two paths of one tree (or a file and a directory) are
    equal after NFC and case folding; with ``new``, only collisions involving a new path."""
    try:
        check_tree(paths, new=new)
    except PathRefused as e:
        raise InvalidInput(e.message, code=e.code, details=e.details) from None
