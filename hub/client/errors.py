from __future__ import annotations

from typing import Any


class HubClientError(Exception):
    """An error answer from the hub: ``status``, ``code``, ``message``, ``details``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


class HubUnreachable(HubClientError):
    """The hub could not be reached (after retries)."""

    def __init__(self, message: str):
        super().__init__(0, "unreachable", message)
