"""Branch and tag names may not be read as something else: a commit id, the ``@`` of
``ns/repo@ref``, ``HEAD`` or an explicit ``refs/...`` form."""

import pytest

from hub.common.errors import InvalidInput
from hub.common.validation import validate_ref_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["abcdef1", "0123456789", "DEADBEEF", "a" * 40, "f" * 39])
def test_names_that_look_like_a_commit_id_are_refused(name):
    with pytest.raises(InvalidInput) as e:
        validate_ref_name(name)
    assert e.value.code == "ref_name_looks_like_commit"


@pytest.mark.parametrize("name", ["HEAD", "head", "refs/heads/main", "refs/tags/v1", "refs/x"])
def test_reserved_names_are_refused(name):
    with pytest.raises(InvalidInput) as e:
        validate_ref_name(name)
    assert e.value.code == "ref_name_reserved"


@pytest.mark.parametrize("name", ["a@b", "x@", "@main", "ns/repo@v1"])
def test_names_with_an_at_sign_are_refused(name):
    with pytest.raises(InvalidInput) as e:
        validate_ref_name(name)
    assert e.value.code == "invalid_ref_name" and "@" in e.value.message


@pytest.mark.parametrize(
    "name", ["abcdef", "a" * 41, "v1234567", "cafe/1234567", "feature-abcdef12", "heads"]
)
def test_names_near_the_rules_are_fine(name):
    assert validate_ref_name(name) == name
