"""Name rules shared by the domains: namespaces, repos, git ref names and file paths."""

from __future__ import annotations

import re

from hub.common.errors import InvalidInput

_SLUG = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
MAX_PATH = 1024
MAX_REF = 255


def validate_slug(value: str, *, what: str) -> str:
    if not isinstance(value, str) or not _SLUG.match(value) or ".." in value:
        raise InvalidInput(
            f"Invalid {what} {value!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit.",
            code=f"invalid_{what.replace(' ', '_')}",
        )
    return value


def validate_ref_name(name: str) -> str:
    """git check-ref-format rules (as for ``refs/heads/<name>``)."""
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
        if "@{" in name or name == "@":
            problems.append("must not contain '@{' or be '@'")
        if name.startswith("/") or name.endswith("/") or "//" in name:
            problems.append("must not start or end with '/' or contain '//'")
        if name.endswith("."):
            problems.append("must not end with '.'")
        if any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
            problems.append("no component may start with '.' or end with '.lock'")
        if name.startswith("-"):
            problems.append("must not start with '-'")
    if problems:
        raise InvalidInput(f"Invalid ref name {name!r}: " + "; ".join(problems), code="invalid_ref_name")
    return name


def validate_path(path: str) -> str:
    """A repository-relative POSIX path: no absolute paths, no '..' or '.', no NUL, no
    backslashes, bounded length. A bad path is a 400, never a file outside the store."""
    problems = []
    if not isinstance(path, str) or not path:
        problems.append("must not be empty")
    else:
        if len(path.encode()) > MAX_PATH:
            problems.append(f"must be at most {MAX_PATH} bytes")
        if "\x00" in path or any(ord(c) < 32 for c in path):
            problems.append("must not contain NUL or control characters")
        if path.startswith("/"):
            problems.append("must be relative")
        if "\\" in path:
            problems.append("must use '/' as separator")
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            problems.append("must not contain empty, '.' or '..' components")
        if any(len(p.encode()) > 255 for p in parts):
            problems.append("components must be at most 255 bytes")
    if problems:
        raise InvalidInput(f"Invalid path {path!r}: " + "; ".join(problems), code="invalid_path")
    return path
