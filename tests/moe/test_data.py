"""Tokenizer and corpus builder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workers.moe.data import (
    ByteTokenizer,
    CorpusError,
    TokenData,
    build_corpus,
    collect_documents,
)

pytestmark = pytest.mark.unit


def write_docs(root: Path, n: int = 30) -> None:
    for i in range(n):
        sub = root / f"pkg{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"mod{i}.py").write_text(
            f"# module {i}\n" + f"def f{i}(x):\n    return x * {i}\n" * 40
        )


def test_tokenizer_round_trips_any_text_and_names_its_specials():
    tok = ByteTokenizer()
    text = "def f(x):\n    return 'héllo ✓ 世界'\n"
    ids = tok.encode(text, bos=True, eot=True)
    assert ids[0] == tok.BOS and ids[-1] == tok.EOT and max(ids[1:-1]) < 256
    assert tok.decode(ids) == "<|bos|>" + text + "<|endoftext|>"
    assert tok.vocab_size == 259
    assert tok.decode([0xE2, 0x9C]) == "\ufffd"  # a cut-off character never raises


def test_default_corpus_is_the_standard_library_python_sources():
    docs, problems = collect_documents(None, None)
    keys = {d.key for d in docs}
    assert "json/decoder.py" in keys and all(k.endswith(".py") for k in keys)
    assert not any("site-packages" in k for k in keys)
    assert sum(d.size for d in docs) > 5_000_000


def test_build_is_deterministic_and_split_by_document(tmp_path):
    write_docs(tmp_path / "src")
    a = build_corpus([str(tmp_path / "src")], tmp_path / "c1", val_fraction=0.2)
    b = build_corpus([str(tmp_path / "src")], tmp_path / "c2", val_fraction=0.2)
    assert a.train_path.read_bytes() == b.train_path.read_bytes()
    assert a.val_path.read_bytes() == b.val_path.read_bytes()
    assert a.val_docs >= 1 and a.train_docs >= 1 and a.train_docs + a.val_docs == 30
    val = np.fromfile(a.val_path, dtype=np.uint16)
    train = np.fromfile(a.train_path, dtype=np.uint16)

    def docs(arr: np.ndarray) -> set[bytes]:
        cuts = np.where(arr == ByteTokenizer.EOT)[0] + 1
        return {bytes(d.astype(np.uint8)) for d in np.split(arr, cuts) if len(d)}

    assert not docs(val) & docs(train)  # no document on both sides
    assert 0.1 < len(val) / (len(val) + len(train)) <= 0.2


def test_built_corpus_is_reused_from_the_cache(tmp_path):
    write_docs(tmp_path / "src", 5)
    logs: list[str] = []
    first = build_corpus([str(tmp_path / "src")], tmp_path / "cache", log=logs.append)
    again = build_corpus([str(tmp_path / "src")], tmp_path / "cache", log=logs.append)
    assert first.dir == again.dir and any("reusing" in m for m in logs)
    assert not list((tmp_path / "cache").glob(".building-*"))


def test_max_bytes_caps_the_corpus(tmp_path):
    write_docs(tmp_path / "src")
    info = build_corpus([str(tmp_path / "src")], tmp_path / "c", max_bytes=5000)
    assert info.bytes == 5000
    assert info.train_tokens + info.val_tokens == 5000 + info.train_docs + info.val_docs


def test_empty_directory_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no text files found"):
        build_corpus([str(tmp_path / "empty")], tmp_path / "c")


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="no such file or directory"):
        build_corpus([str(tmp_path / "nope")], tmp_path / "c")


def test_binary_files_are_skipped_and_only_binary_is_an_error(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    (d / "blob.dat").write_bytes(bytes(range(256)) * 10)
    (d / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8 text") as err:
        build_corpus([str(d)], tmp_path / "c")
    assert err.value.details["skipped"]["binary"] == 2
    (d / "ok.txt").write_text("hello world\n" * 100)
    logs: list[str] = []
    info = build_corpus([str(d)], tmp_path / "c", log=logs.append)
    assert info.bytes == 1200  # only ok.txt
    assert any("2 binary" in m for m in logs)


def test_unreadable_files_are_skipped_with_a_message(tmp_path, monkeypatch):
    write_docs(tmp_path / "src", 4)
    bad = tmp_path / "src" / "pkg0" / "mod0.py"
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == bad:
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    logs: list[str] = []
    info = build_corpus([str(tmp_path / "src")], tmp_path / "c", log=logs.append)
    assert info.skipped["unreadable"] == 1
    assert any("Permission denied" in m for m in logs)


def test_a_single_document_is_split_by_position(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("abcdefghij" * 1000)
    info = build_corpus([str(f)], tmp_path / "c", val_fraction=0.1)
    assert info.val_tokens == pytest.approx(1000, abs=2)


def test_split_too_small_for_the_block_is_a_clear_error(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("x" * 2000)
    info = build_corpus([str(f)], tmp_path / "c", val_fraction=0.05)
    with pytest.raises(CorpusError, match="validation split has"):
        TokenData(info, block_size=256)


def test_training_batches_are_a_function_of_seed_and_step(tmp_path):
    write_docs(tmp_path / "src")
    data = TokenData(build_corpus([str(tmp_path / "src")], tmp_path / "c"), block_size=32)
    x1, y1 = data.train_batch(4, seed=1, step=7)
    x2, y2 = data.train_batch(4, seed=1, step=7)
    x3, _ = data.train_batch(4, seed=1, step=8)
    assert x1.equal(x2) and y1.equal(y2) and not x1.equal(x3)
    assert x1.shape == (4, 32) and x1[:, 1:].equal(y1[:, :-1])
    batches = list(data.val_batches(3, max_tokens=32 * 5))
    assert sum(b[0].shape[0] for b in batches) == 5
