"""The routing probe set: a fixed, versioned set of text windows every routing diff runs.

Version 1 is 16 windows of at most 128 bytes, cut from the kinds of text the default corpus
holds (Python source, docstrings, Markdown and English prose), written out here so every
worker and every release routes exactly the same bytes. A change of the texts is a new
version (``PROBE_SET_VERSION``): diffs made with different versions are not comparable, and
the hub shows the version beside every diff.
"""

from __future__ import annotations

PROBE_SET_VERSION = 1

PROBE_WINDOWS: tuple[str, ...] = (
    "def main(argv=None):\n    parser = argparse.ArgumentParser(prog='hub')\n"
    "    args = parser.parse_args(argv)\n    return run(args)\n",
    "import os\nimport sys\nfrom pathlib import Path\n\nROOT = Path(__file__).resolve().parent\n",
    "class Cache:\n    def __init__(self, size: int) -> None:\n        self.size = size\n"
    "        self.items = {}\n",
    "    for i, line in enumerate(lines):\n        if not line.strip():\n            continue\n"
    "        yield i, line.rstrip()\n",
    '"""Return the mean of the values, or None when there are none."""\n'
    "    return sum(values) / len(values) if values else None\n",
    "try:\n    data = json.loads(raw)\nexcept ValueError as e:\n"
    "    raise InputError(f'not JSON: {e}') from None\n",
    "with open(path, 'rb') as f:\n    header = f.read(8)\n    n = int.from_bytes(header, 'little')\n",
    "    @property\n    def name(self) -> str:\n        return self._name.lower()\n",
    "# Installation\n\nRun `pip install -e .` in a fresh virtual environment, then `make test`.\n",
    "## Usage\n\n```bash\nhub login\nhub push ./weights --repo alice/lm\n```\n",
    "The mixture-of-experts layer sends each token to a few of its experts, chosen by a "
    "small router.",
    "A model that is too large for one device is split across several; each holds a share "
    "of the weights.",
    "Training stopped early because the validation loss had not improved for three "
    "evaluations in a row.",
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.",
    "x = [1, 2, 3]\ny = {k: v * 2 for k, v in zip('abc', x)}\nprint(sorted(y.items()))\n",
    "if __name__ == '__main__':\n    logging.basicConfig(level=logging.INFO)\n    sys.exit(main())\n",
)

assert all(0 < len(w.encode()) <= 128 for w in PROBE_WINDOWS)
