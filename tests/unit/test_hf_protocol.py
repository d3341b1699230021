"""The Hugging Face layer's wire helpers: byte ranges, the raw path, dates, error headers."""

from datetime import UTC, datetime

import pytest
from django.test import RequestFactory

from hub.common.errors import Forbidden, NotFound
from hub.compat.hf.protocol import (
    EntryNotFound,
    byte_range,
    exception_handler,
    hf_date,
    raw_segments,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (None, None),
        ("bytes=0-", (0, 10)),
        ("bytes=3-5", (3, 6)),
        ("bytes=3-99", (3, 10)),
        ("bytes=-4", (6, 10)),
        ("bytes=-40", (0, 10)),
        ("bytes=10-", False),
        ("bytes=5-2", False),
        ("bytes=-", None),
        ("bytes=1-2,4-5", None),  # several ranges: the whole file
        ("items=1-2", None),
    ],
)
def test_byte_range(header, want):
    assert byte_range(header, 10) == want


def test_raw_segments_keep_a_quoted_slash_inside_its_segment():
    r = RequestFactory().get("/a/m/resolve/feat/x/f.txt")
    assert raw_segments(r, after=3) is None  # no raw URI: the caller splits by refs
    r.META["RAW_URI"] = "/a/m/resolve/feat%2Fx/dir/f%20g.txt?download=1"
    assert raw_segments(r, after=3) == ["feat/x", "dir", "f g.txt"]
    r.META = {"REQUEST_URI": "http://h:1/a/m/resolve/main/f.txt"}
    assert raw_segments(r, after=3) == ["main", "f.txt"]


def test_dates_have_milliseconds_and_a_z():
    t = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert hf_date(t) == "2026-01-02T03:04:05.678Z"


def test_errors_carry_the_clients_codes_and_a_one_line_ascii_message():
    r = exception_handler(NotFound("Repo a/b not found.", code="repo_not_found"), {})
    assert (r.status_code, r["X-Error-Code"]) == (404, "RepoNotFound")
    r = exception_handler(NotFound("No branch 'x'\nin a/b", code="ref_not_found"), {})
    assert (
        r["X-Error-Code"] == "RevisionNotFound" and r["X-Error-Message"] == "No branch 'x' in a/b"
    )
    r = exception_handler(EntryNotFound("caf\u00e9.txt does not exist", commit="c" * 40), {})
    assert r["X-Error-Code"] == "EntryNotFound" and r["X-Repo-Commit"] == "c" * 40
    assert r["X-Error-Message"] == "caf\\xe9.txt does not exist"
    r = exception_handler(Forbidden("no"), {})
    assert r.status_code == 403 and not r.has_header("X-Error-Code")
