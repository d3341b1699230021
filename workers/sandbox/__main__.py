"""``python -m workers.sandbox``: print what this host offers (the probe) as JSON; exit 1 when
a mandatory layer is missing. Operators run it when setting up a worker host."""

from __future__ import annotations

import json
import sys

from workers.sandbox.probe import probe


def main() -> int:
    r = probe()
    json.dump(r, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if r["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
