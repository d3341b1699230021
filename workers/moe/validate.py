"""Validate a job config without running it (the hub does the same before queueing):

    python -m workers.moe.validate --kind train --config FILE     exit 0 valid, 2 invalid
    python -m workers.moe.validate --kind train --schema          the JSON Schema
    python -m workers.moe.validate --kind train --defaults        the default config

Prints one JSON object: {"valid": bool, "errors": [{"path": ..., "message": ...}, ...]}.
"""

from __future__ import annotations

import argparse
import json
import sys

from workers.moe.config import KINDS, ConfigError, config_json_schema, default_config, load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workers.moe.validate")
    p.add_argument("--kind", choices=KINDS, required=True)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="the JSON config file to check")
    what.add_argument("--schema", action="store_true", help="print the JSON Schema")
    what.add_argument("--defaults", action="store_true", help="print the default config")
    args = p.parse_args(argv)
    if args.schema:
        print(json.dumps(config_json_schema(args.kind), indent=2, ensure_ascii=False))
        return 0
    if args.defaults:
        print(json.dumps(default_config(args.kind), indent=2))
        return 0
    try:
        load_config(args.kind, args.config)
    except ConfigError as exc:
        print(json.dumps({"valid": False, "errors": exc.errors}, ensure_ascii=False))
        return 2
    print(json.dumps({"valid": True, "errors": []}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
