"""Byte-level tokenizer and the memory-mapped token dataset.

Tokenizer: a token is a UTF-8 byte (0-255) or one of three specials, so nothing is downloaded
and any text round-trips exactly. Bits per byte follow directly from the loss:
bpb = CE (nats per byte token) / ln 2.

Dataset: a list of text files and directories becomes two flat token files, ``train.bin`` and
``val.bin`` (uint16, memory-mapped), each document followed by ``<|endoftext|>``. A document is
a file; documents are walked in the order of a hash of their relative path and held out for
validation while they fit in ``val_fraction`` of the bytes, so the split is by document,
deterministic, and close to the asked fraction. The default corpus is the Python
standard library's own ``.py`` sources (``sysconfig.get_paths()["stdlib"]``), tens of MB that
exist on every machine with Python.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.moe.config import InputError

FORMAT_VERSION = 1


class ByteTokenizer:
    """UTF-8 bytes plus <|endoftext|> (256), <|bos|> (257) and <|pad|> (258)."""

    EOT = 256
    BOS = 257
    PAD = 258
    SPECIALS = {"<|endoftext|>": EOT, "<|bos|>": BOS, "<|pad|>": PAD}
    vocab_size = 259

    def encode(self, text: str, *, bos: bool = False, eot: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        return ([self.BOS] if bos else []) + ids + ([self.EOT] if eot else [])

    def decode(self, ids: list[int] | torch.Tensor | np.ndarray) -> str:
        """Bytes decode as UTF-8 (invalid sequences become U+FFFD); specials as their names."""
        names = {v: k for k, v in self.SPECIALS.items()}
        out: list[str] = []
        run = bytearray()
        for i in ids.tolist() if hasattr(ids, "tolist") else ids:
            if i < 256:
                run.append(i)
                continue
            out.append(run.decode("utf-8", errors="replace"))
            run = bytearray()
            out.append(names.get(i, f"<|{i}|>"))
        out.append(run.decode("utf-8", errors="replace"))
        return "".join(out)


class CorpusError(InputError):
    """The corpus cannot be used (nothing readable, split too small, ...)."""


def default_corpus_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


@dataclass
class Document:
    path: Path
    key: str  # relative path: what the order and split hashes see
    size: int


def _hash01(salt: str, key: str) -> float:
    digest = hashlib.blake2b(f"{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def collect_documents(
    paths: list[str] | None, extensions: list[str] | None
) -> tuple[list[Document], list[str]]:
    """Every candidate file under ``paths`` (or the stdlib), and problems found on the way.

    Directories are walked in sorted order; site-packages and __pycache__ are skipped."""
    problems: list[str] = []
    if paths is None:
        roots = [default_corpus_root()]
        exts = [".py"] if extensions is None else extensions
    else:
        roots = [Path(p).expanduser() for p in paths]
        exts = extensions
    docs: list[Document] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.exists():
            problems.append(f"{root}: no such file or directory")
            continue
        if root.is_file():
            files = [(root, root.name)]
        else:
            files = []
            for dirpath, dirnames, filenames in os.walk(
                root,
                onerror=lambda e: problems.append(
                    f"{e.filename}: cannot list directory ({e.strerror})"
                ),
            ):
                dirnames[:] = sorted(
                    d
                    for d in dirnames
                    if d not in ("site-packages", "dist-packages", "__pycache__")
                    and not d.startswith(".")
                )
                for name in sorted(filenames):
                    if exts is not None and not name.endswith(tuple(exts)):
                        continue
                    full = Path(dirpath, name)
                    files.append((full, full.relative_to(root).as_posix()))
        for full, key in files:
            try:
                real = full.resolve()
                if real in seen or not full.is_file():
                    continue
                seen.add(real)
                docs.append(Document(full, key, full.stat().st_size))
            except OSError as exc:
                problems.append(f"{full}: {exc.strerror or exc}")
    return docs, problems


@dataclass
class CorpusInfo:
    """What a built corpus holds; stored as meta.json next to the token files."""

    dir: Path
    train_tokens: int
    val_tokens: int
    train_docs: int
    val_docs: int
    bytes: int
    skipped: dict[str, int]

    @property
    def train_path(self) -> Path:
        return self.dir / "train.bin"

    @property
    def val_path(self) -> Path:
        return self.dir / "val.bin"


def build_corpus(
    paths: list[str] | None,
    cache_dir: str | Path,
    *,
    max_bytes: int | None = None,
    val_fraction: float = 0.05,
    extensions: list[str] | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CorpusInfo:
    """Tokenize a corpus into ``cache_dir/corpus-<key>/{train,val}.bin``, or reuse it.

    The key hashes the file list (paths, sizes, mtimes) and the options, so a changed corpus
    is rebuilt and an unchanged one is read back. Files that are empty, unreadable or not
    UTF-8 text (binary) are skipped and reported through ``log``; when nothing usable is
    left the error says why file by file. Built in a temporary directory and renamed into
    place, so a concurrent or interrupted build never leaves a half-written corpus behind.
    """
    say = log or (lambda msg: None)
    docs, problems = collect_documents(paths, extensions)
    where = "the Python standard library" if paths is None else ", ".join(paths)
    if not docs:
        detail = "; ".join(problems[:10]) or "no files matched"
        raise CorpusError(f"no text files found in {where}: {detail}", {"problems": problems})
    # Deterministic pseudo-random order, so a max_bytes cap samples the whole corpus.
    docs.sort(key=lambda d: (_hash01("order", d.key), d.key))
    fingerprint = json.dumps(
        {
            "v": FORMAT_VERSION,
            "files": [(str(d.path), d.size, _mtime(d.path)) for d in docs],
            "max_bytes": max_bytes,
            "val_fraction": val_fraction,
            "extensions": extensions,
        }
    )
    key = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    final = Path(cache_dir) / f"corpus-{key}"
    if (final / "meta.json").exists():
        info = _read_meta(final)
        say(
            f"corpus: reusing {final} ({info.train_tokens:,} train / {info.val_tokens:,} val "
            "tokens)"
        )
        return info
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_dir))
    try:
        info = _tokenize(docs, tmp, max_bytes, val_fraction, problems, say, progress)
        info_dict = {k: v for k, v in info.__dict__.items() if k != "dir"}
        (tmp / "meta.json").write_text(
            json.dumps({"version": FORMAT_VERSION, **info_dict, "source": where}, indent=1)
        )
        try:
            os.replace(tmp, final)
        except OSError:  # another process built the same corpus first
            shutil.rmtree(tmp, ignore_errors=True)
        return _read_meta(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return 0


def _tokenize(
    docs: list[Document],
    out: Path,
    max_bytes: int | None,
    val_fraction: float,
    problems: list[str],
    say: Callable[[str], None],
    progress: Callable[[int, int], None] | None,
) -> CorpusInfo:
    skipped = {"empty": 0, "binary": 0, "unreadable": 0}
    examples: list[str] = []
    total = sum(d.size for d in docs)
    if max_bytes is not None:
        total = min(total, max_bytes)
    used = 0
    n_docs = {"train": 0, "val": 0}
    kept: list[tuple[Document, bytes]] = []
    for d in docs:
        if max_bytes is not None and used >= max_bytes:
            break
        try:
            raw = d.path.read_bytes()
        except OSError as exc:
            skipped["unreadable"] += 1
            examples.append(f"{d.path}: unreadable ({exc.strerror or exc})")
            continue
        if not raw:
            skipped["empty"] += 1
            continue
        if b"\x00" in raw[:8192] or not _is_utf8(raw):
            skipped["binary"] += 1
            examples.append(f"{d.path}: not UTF-8 text")
            continue
        if max_bytes is not None:
            raw = raw[: max_bytes - used]
        used += len(raw)
        kept.append((d, raw))
        if progress is not None:
            progress(used, total)
    problems = problems + examples
    if not kept:
        detail = "; ".join(problems[:10])
        raise CorpusError(
            f"no usable text in the corpus ({_count_text(skipped)}): {detail}",
            {"skipped": skipped, "problems": problems},
        )
    if any(skipped.values()) or problems:
        say(
            f"corpus: skipped {_count_text(skipped)}"
            + (f"; e.g. {'; '.join(problems[:3])}" if problems else "")
        )
    is_val = _choose_validation(kept, val_fraction)
    sizes = {"train": 0, "val": 0}
    with open(out / "train.bin", "wb") as ftrain, open(out / "val.bin", "wb") as fval:
        for (_, raw), val in zip(kept, is_val, strict=True):
            tokens = np.frombuffer(raw, dtype=np.uint8).astype(np.uint16)
            tokens = np.append(tokens, np.uint16(ByteTokenizer.EOT))
            if len(kept) == 1:  # one document: split it by position instead
                cut = int(len(tokens) * (1 - val_fraction))
                ftrain.write(tokens[:cut].tobytes())
                fval.write(tokens[cut:].tobytes())
                sizes["train"] += cut
                sizes["val"] += len(tokens) - cut
                n_docs = {"train": 1, "val": 1}
                continue
            split = "val" if val else "train"
            (fval if val else ftrain).write(tokens.tobytes())
            sizes[split] += len(tokens)
            n_docs[split] += 1
    say(
        f"corpus: {len(kept):,} documents, {used / 1e6:.2f} MB → {sizes['train']:,} train / "
        f"{sizes['val']:,} val tokens"
    )
    return CorpusInfo(
        out, sizes["train"], sizes["val"], n_docs["train"], n_docs["val"], used, skipped
    )


def _choose_validation(kept: list[tuple[Document, bytes]], val_fraction: float) -> list[bool]:
    """Documents for validation: walk them in split-hash order and take each one that still
    fits in val_fraction of the bytes. By document, deterministic, and close to the asked
    fraction even when a few large files dominate a small corpus."""
    total = sum(len(raw) for _, raw in kept)
    target = val_fraction * total
    is_val = [False] * len(kept)
    if len(kept) < 2:
        return is_val
    taken = 0
    order = sorted(
        range(len(kept)), key=lambda i: (_hash01("split", kept[i][0].key), kept[i][0].key)
    )
    for i in order:
        if taken + len(kept[i][1]) <= target:
            is_val[i] = True
            taken += len(kept[i][1])
    if not any(is_val):  # every document is bigger than the target: hold out the smallest
        is_val[min(range(len(kept)), key=lambda i: (len(kept[i][1]), kept[i][0].key))] = True
    return is_val


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _count_text(skipped: dict[str, int]) -> str:
    parts = [f"{n} {k}" for k, n in skipped.items() if n]
    return ", ".join(parts) + " file(s)" if parts else "no files"


def _read_meta(d: Path) -> CorpusInfo:
    m = json.loads((d / "meta.json").read_text())
    return CorpusInfo(
        d,
        m["train_tokens"],
        m["val_tokens"],
        m["train_docs"],
        m["val_docs"],
        m["bytes"],
        m["skipped"],
    )


class TokenData:
    """Batches from a built corpus. Training batches are a pure function of (seed, step,
    micro-step), which is what makes a resumed run see exactly the data it would have seen."""

    def __init__(self, info: CorpusInfo, block_size: int) -> None:
        self.info = info
        self.block_size = block_size
        self.train = np.memmap(info.train_path, dtype=np.uint16, mode="r")
        self.val = np.memmap(info.val_path, dtype=np.uint16, mode="r")
        for name, arr in (("train", self.train), ("validation", self.val)):
            if len(arr) < block_size + 1:
                raise CorpusError(
                    f"the {name} split has {len(arr):,} tokens but block_size {block_size} "
                    f"needs at least {block_size + 1}: use a larger corpus (data.max_bytes), "
                    "a different data.val_fraction or a smaller model.block_size"
                )

    def train_batch(
        self, batch_size: int, seed: int, step: int, micro: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y (B, T) int64: random windows of the train split, y shifted by one."""
        g = np.random.default_rng([seed, step, micro])
        starts = g.integers(0, len(self.train) - self.block_size, size=batch_size)
        return self._windows(self.train, starts)

    def _windows(self, arr: np.ndarray, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.block_size
        buf = np.stack([arr[s : s + T + 1] for s in starts]).astype(np.int64)  # (B, T+1)
        t = torch.from_numpy(buf)
        return t[:, :-1], t[:, 1:]

    def val_batches(
        self, batch_size: int, max_tokens: int | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive non-overlapping windows of the validation split, in order."""
        T = self.block_size
        n_windows = (len(self.val) - 1) // T
        if max_tokens is not None:
            n_windows = max(1, min(n_windows, max_tokens // T))
        starts = np.arange(n_windows) * T
        for i in range(0, n_windows, batch_size):
            yield self._windows(self.val, starts[i : i + batch_size])


def load_corpus(
    data_cfg: Any,
    out_dir: Path,
    block_size: int,
    log: Callable[[str], None] | None = None,
) -> TokenData:
    """Build (or reuse) the corpus a config names and open it, logging progress every ~10%."""
    say = log or (lambda msg: None)
    last = [-1.0, time.monotonic()]

    def progress(done: int, total: int) -> None:
        frac = done / max(total, 1)
        if frac - last[0] >= 0.1 or time.monotonic() - last[1] > 10:
            last[0], last[1] = frac, time.monotonic()
            say(f"corpus: tokenizing {done / 1e6:.1f} / {total / 1e6:.1f} MB ({frac:.0%})")

    cache = Path(data_cfg.cache_dir) if data_cfg.cache_dir else out_dir / "data"
    info = build_corpus(
        data_cfg.paths,
        cache,
        max_bytes=data_cfg.max_bytes,
        val_fraction=data_cfg.val_fraction,
        extensions=data_cfg.extensions,
        log=say,
        progress=progress,
    )
    return TokenData(info, block_size)
