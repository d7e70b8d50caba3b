"""Spark engine tests: one Spark session for the whole test session, started in the background as soon as a
Spark test is collected (tests/conftest.py) so the JVM's start-up overlaps the tests before them."""

from __future__ import annotations

import threading
from typing import Any

MASTER = "local[2]"
_state: dict[str, Any] = {}


def begin() -> None:
    """Start the session in a background thread (once)."""
    if "thread" in _state:
        return

    def start() -> None:
        from auditor.run.spark import EngineUnavailable, session

        try:
            _state["session"] = session(MASTER)
        except EngineUnavailable as exc:
            _state["unavailable"] = str(exc)

    _state["thread"] = threading.Thread(target=start, name="spark-start", daemon=True)
    _state["thread"].start()


def wait() -> tuple[Any, str | None]:
    """The session once started (None and why when Spark cannot start here)."""
    begin()
    _state["thread"].join()
    return _state.get("session"), _state.get("unavailable")
