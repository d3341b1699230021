import pytest

from hub.common.errors import InvalidInput
from hub.common.validation import validate_path, validate_ref_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "name", ["main", "feature/x", "ft/moe-top4", "v1.0", "a_b", "job-12/result"]
)
def test_good_ref_names(name):
    assert validate_ref_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a..b",
        "a b",
        "a~b",
        "a^b",
        "a:b",
        "a?b",
        "a*b",
        "a[b",
        "a\\b",
        "/a",
        "a/",
        "a//b",
        ".a",
        "a/.b",
        "a.lock",
        "a.",
        "@",
        "a@{b",
        "-x",
        "x" * 256,
        "a\x00b",
        "a\x7fb",
    ],
)
def test_bad_ref_names(name):
    with pytest.raises(InvalidInput) as e:
        validate_ref_name(name)
    assert e.value.code == "invalid_ref_name"


@pytest.mark.parametrize(
    "path", ["model.safetensors", "a/b/c.json", "weights/layer.0.bin", "ü/名前.txt"]
)
def test_good_paths(path):
    assert validate_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a/./b",
        "a//b",
        "a/",
        "a\\b",
        "a\x00b",
        "x" * 1025,
        "a/" + "b" * 256,
        "..",
        ".",
        "a\nb",
    ],
)
def test_bad_paths(path):
    with pytest.raises(InvalidInput) as e:
        validate_path(path)
    assert e.value.code == "invalid_path"
