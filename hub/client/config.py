"""Where the SDK and CLI find the hub: explicit arguments, then ``HUB_URL``/``HUB_TOKEN``,
then the file ``hub login`` writes (``$HUB_CONFIG_DIR/config.json``, default
``~/.config/moe-hub/config.json``, mode 600). The one place the client reads the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    base = os.environ.get("HUB_CONFIG_DIR") or os.path.join(
        os.path.expanduser("~"), ".config", "moe-hub"
    )
    return Path(base) / "config.json"


def load() -> dict:
    try:
        return json.loads(config_path().read_text())
    except (FileNotFoundError, ValueError):
        return {}


def save(*, url: str, token: str | None) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token}, f)
    os.replace(tmp, path)
    return path


def resolve(url: str | None = None, token: str | None = None) -> tuple[str, str | None]:
    saved = load()
    url = url or os.environ.get("HUB_URL") or saved.get("url") or DEFAULT_URL
    token = token or os.environ.get("HUB_TOKEN") or saved.get("token")
    return url.rstrip("/"), token


def spool_dir() -> Path:
    return config_path().parent / "spool"
