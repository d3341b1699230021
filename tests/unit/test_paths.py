"""The one path rule (hub.shared.paths), shared by the hub, the SDK and the supervisor."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

import pytest

from hub.shared.paths import (
    PathRefused,
    check_path,
    check_tree,
    path_key,
    path_problems,
    tree_collisions,
)

pytestmark = pytest.mark.unit

NFC_CAFE = unicodedata.normalize("NFC", "café")
NFD_CAFE = unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize(
    "path",
    [
        "model.safetensors",
        "a/b/c.json",
        "weights/layer.0.bin",
        "ü/名前.txt",
        NFC_CAFE,
        ".gitignore",
        ".gitattributes",
        "git/config",
        "my.git/x",
        ".github/workflows/ci.yml",
        "a/.hidden",
        "..dots..x",
        "weird name:with colon",
        " leading space",
        "emoji\u200d👩\u200d💻.txt",
    ],
)
def test_ordinary_paths_are_accepted(path):
    assert path_problems(path) == []
    assert check_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".GIT/config",
        ".Git/hooks/pre-commit",
        "a/.git/config",
        ".git",
        "sub/.git",
        ".git./config",
        ".git /config",
        ".git. . /config",
        "GIT~1/config",
        "git~1/config",
        ".g\u200cit/config",
        "\ufeff.git/config",
        ".git\u200d/config",
        ".git::$INDEX_ALLOCATION/config",
    ],
)
def test_a_git_directory_component_is_refused_in_any_spelling(path):
    with pytest.raises(PathRefused) as e:
        check_path(path)
    assert e.value.code == "invalid_path"
    assert ".git" in e.value.message


@pytest.mark.parametrize(
    "char",
    [
        "\x00",
        "\x01",
        "\x1b",
        "\x1f",
        "\x7f",
        "\x80",
        "\x85",
        "\x9f",
        "\u2028",
        "\u2029",
    ],
)
def test_control_characters_are_refused(char):
    with pytest.raises(PathRefused) as e:
        check_path(f"a{char}b.txt")
    assert e.value.code == "invalid_path" and "control" in e.value.message


@pytest.mark.parametrize(
    "char",
    [
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u200e",
        "\u200f",
        "\u061c",
    ],
)
def test_bidirectional_override_characters_are_refused(char):
    with pytest.raises(PathRefused) as e:
        check_path(f"invoice{char}fdp.exe")
    assert e.value.code == "invalid_path" and "bidirectional" in e.value.message
    assert char not in e.value.message  # the message shows the name escaped, never reordered


@pytest.mark.parametrize(
    "path", [" ", "a/ /b", "\t", "a/\u3000/b", "a/b.", "a./b", "a/b ", "dir /f", "x\u00a0"]
)
def test_whitespace_only_and_trailing_dot_or_space_components_are_refused(path):
    with pytest.raises(PathRefused) as e:
        check_path(path)
    assert e.value.code == "invalid_path"


def test_a_name_not_in_nfc_is_refused_with_a_clear_message():
    assert path_problems(NFC_CAFE) == []
    with pytest.raises(PathRefused) as e:
        check_path(f"dir/{NFD_CAFE}.txt")
    assert e.value.code == "invalid_path" and "NFC" in e.value.message


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
        "x" * 1025,
        "a/" + "b" * 256,
        "..",
        ".",
        "a\ud800b",
    ],
)
def test_traversal_empty_and_oversized_paths_are_refused(path):
    with pytest.raises(PathRefused) as e:
        check_path(path)
    assert e.value.code == "invalid_path"


@pytest.mark.parametrize("path", [None, 3, b"a.txt", ["a"]])
def test_a_path_that_is_not_a_string_is_refused(path):
    with pytest.raises(PathRefused) as e:
        check_path(path)
    assert e.value.code == "invalid_path"


def test_path_key_folds_case_and_normalisation():
    assert (
        path_key("Dir/CAFÉ.txt")
        == path_key(f"dir/{NFC_CAFE}.txt")
        == path_key(f"DIR/{NFD_CAFE}.TXT")
    )
    assert path_key("Straße") == path_key("STRASSE")


@pytest.mark.parametrize(
    "paths",
    [
        ["README.md", "readme.md"],
        [f"{NFC_CAFE}.txt", f"{NFD_CAFE}.txt"],
        ["a/b", "A/b/c"],
        ["a/b/c", "A/B"],
        ["Models/x.bin", "models/y.bin"],
        ["straße.txt", "STRASSE.txt"],
    ],
)
def test_paths_equal_after_case_folding_and_nfc_collide(paths):
    assert tree_collisions(paths)
    with pytest.raises(PathRefused) as e:
        check_tree(paths)
    assert e.value.code == "path_collision"
    assert set(e.value.details["paths"]) <= set(paths) and len(e.value.details["paths"]) == 2


def test_a_file_and_a_directory_of_the_same_name_collide():
    with pytest.raises(PathRefused) as e:
        check_tree(["a/b", "a/b/c"])
    assert e.value.code == "path_collision"


def test_distinct_paths_do_not_collide():
    check_tree(
        ["a/b", "a/c", "A.txt", "b/a.txt", "b/c/d", "models/x", "models/y", "x.bin", "x.bin.json"]
    )


def test_only_collisions_touching_new_paths_are_reported():
    legacy = ["A.txt", "a.txt", "kept.bin"]
    check_tree(
        legacy + ["new.bin"], new={"new.bin"}
    )  # an old collision does not block an unrelated commit
    with pytest.raises(PathRefused) as e:
        check_tree(legacy + ["KEPT.bin"], new={"KEPT.bin"})
    assert sorted(e.value.details["paths"]) == ["KEPT.bin", "kept.bin"]


def test_the_rule_imports_without_django():
    code = "import sys, hub.shared.paths, hub.client; assert 'django' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
