"""The one rule for file paths in a repository tree, shared by the hub (every path that enters
a tree), the SDK (every path it writes on pull, and pushes) and the job supervisor (every
artifact a job names). Pure Python, no Django: the SDK imports it.

A path is a '/'-separated relative name that every platform a model is pulled onto writes
as itself, and that a pull into a git checkout cannot turn into git's own files:

* a non-empty string of at most :data:`MAX_PATH` UTF-8 bytes, each component at most
  :data:`MAX_COMPONENT`; no leading '/', no backslash, no empty, '.' or '..' component;
* no control character (C0, DEL, C1, U+2028/U+2029), no bidirectional mark or override
  (U+061C, U+200E/F, U+202A-E, U+2066-9: they make a name display as another), valid Unicode;
* no component that is whitespace only or ends with '.' or whitespace (Windows drops those,
  so ``a.`` and ``a`` would be one file there);
* no component naming git's directory, as git's ``verify_path`` sees it on every platform:
  ``.git`` in any case, also after dropping the characters HFS+ ignores, an NTFS stream
  suffix (``:...``) and trailing dots and spaces, and the NTFS short name ``git~1``;
* Unicode normalisation form C. A name in another form is *refused*, not normalised, so
  the stored name is byte for byte the name that was sent and one name has one spelling.
  (The SDK normalises local file names to NFC when it pushes.)

Within one tree (:func:`check_tree`), no two paths -- and no file and directory -- may be
equal after NFC and case folding (``str.casefold``): macOS and Windows would write them
as one file, so a pull there would silently lose one or write one into the other.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_PATH = 1024  # bytes of UTF-8, the whole path
MAX_COMPONENT = 255  # bytes of UTF-8, one name (the limit of every common file system)

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# The code points HFS+ ignores when it compares names (git's utf8.c, next_hfs_char).
_HFS_IGNORABLE = dict.fromkeys(
    [
        0x200C,
        0x200D,
        0x200E,
        0x200F,
        0x202A,
        0x202B,
        0x202C,
        0x202D,
        0x202E,
        0x206A,
        0x206B,
        0x206C,
        0x206D,
        0x206E,
        0x206F,
        0xFEFF,
    ]
)
_GIT_NAMES = {".git", "git~1"}


class PathRefused(ValueError):
    """A path (``code="invalid_path"``) or a set of paths (``code="path_collision"``) that
    the rule refuses; ``message`` says why, ``details`` names the paths."""

    def __init__(self, message: str, *, code: str, details: dict):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details


def _show(path: object) -> str:
    """A path as a message may show it: escaped (``repr`` escapes control and bidi
    characters, so the message cannot be reordered or forged by them) and bounded."""
    text = repr(path)
    return text if len(text) <= 200 else text[:197] + "..."


def is_git_dir_name(component: str) -> bool:
    """Whether a file system could take this one name for git's ``.git`` directory."""
    name = component.translate(_HFS_IGNORABLE).casefold()
    name = name.split(":", 1)[0]  # NTFS: ".git::$INDEX_ALLOCATION" is the directory itself
    return name.rstrip(". ") in _GIT_NAMES


def path_problems(path: object) -> list[str]:
    """Every reason ``path`` breaks the rule (an empty list when it is fine)."""
    if not isinstance(path, str) or not path:
        return ["must be a non-empty string"]
    if _SURROGATE.search(path):
        return ["must be valid Unicode (it contains a lone surrogate)"]
    problems: list[str] = []
    if len(path.encode()) > MAX_PATH:
        problems.append(f"must be at most {MAX_PATH} bytes")
    if _CONTROL.search(path):
        problems.append("must not contain control characters")
    if _BIDI.search(path):
        problems.append("must not contain bidirectional override or mark characters")
    if not unicodedata.is_normalized("NFC", path):
        problems.append(
            "must be in Unicode normalisation form NFC (normalise the name and push it again)"
        )
    if path.startswith("/"):
        problems.append("must be relative")
    if "\\" in path:
        problems.append("must use '/' as separator")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        problems.append("must not contain empty, '.' or '..' components")
    if any(len(p.encode()) > MAX_COMPONENT for p in parts):
        problems.append(f"components must be at most {MAX_COMPONENT} bytes")
    if any(p and not p.strip() for p in parts):
        problems.append("components must not be whitespace only")
    if any(
        p not in ("", ".", "..") and p.strip() and (p.endswith(".") or p[-1].isspace())
        for p in parts
    ):
        problems.append("components must not end with '.' or whitespace")
    if any(is_git_dir_name(p) for p in parts):
        problems.append("must not contain a '.git' component (in any case or spelling)")
    return problems


def check_path(path: object) -> str:
    """``path`` itself when it follows the rule; otherwise :class:`PathRefused` (``invalid_path``)."""
    problems = path_problems(path)
    if problems:
        raise PathRefused(
            f"Invalid path {_show(path)}: " + "; ".join(problems),
            code="invalid_path",
            details={"path": path if isinstance(path, str) else None, "problems": problems},
        )
    return path  # type: ignore[return-value]


def path_key(path: str) -> str:
    """The name a case-insensitive, normalising file system (macOS, Windows) sees."""
    folded = unicodedata.normalize("NFC", path).translate(_HFS_IGNORABLE).casefold()
    return unicodedata.normalize("NFC", folded)


def tree_collisions(
    paths: Iterable[str], *, new: Iterable[str] | None = None, limit: int = 20
) -> list[tuple[str, str]]:
    """Pairs of paths of one tree that collide after NFC and case folding: two files, a file
    and a directory, or two spellings of one directory. With ``new``, only pairs where at
    least one side is in ``new`` (an old collision does not block an unrelated change)."""
    fresh = set(new) if new is not None else None
    seen: dict[
        str, tuple[str, bool, str]
    ] = {}  # key of a prefix -> (its spelling, is a file, a path using it)
    found: list[tuple[str, str]] = []
    keys: dict[str, str] = {}  # component -> its key (folder names repeat across a tree)
    for path in paths:
        parts = path.split("/")
        key = ""
        for i, part in enumerate(parts):
            k = keys.get(part)
            if k is None:
                k = keys[part] = path_key(part)
            key = f"{key}/{k}" if i else k
            spelling = "/".join(parts[: i + 1])
            is_file = i == len(parts) - 1
            prev = seen.get(key)
            if prev is None:
                seen[key] = (spelling, is_file, path)
                continue
            if prev[0] == spelling and not prev[1] and not is_file:
                continue  # the same directory
            if fresh is None or path in fresh or prev[2] in fresh:
                found.append((prev[2], path))
                if len(found) >= limit:
                    return found
            break
    return found


def check_tree(paths: Iterable[str], *, new: Iterable[str] | None = None) -> None:
    """:class:`PathRefused` (``path_collision``) when :func:`tree_collisions` finds any."""
    found = tree_collisions(paths, new=new)
    if found:
        a, b = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise PathRefused(
            f"Paths {_show(a)} and {_show(b)} collide: they differ only by case or Unicode normalisation, or one "
            f"is a file where the other needs a directory, so macOS and Windows would write them as one{more}. "
            "Rename or delete one of them.",
            code="path_collision",
            details={"paths": [a, b], "collisions": [list(p) for p in found]},
        )
