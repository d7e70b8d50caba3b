"""Test doubles for the API source: a virtual clock, and an environment without Cloudflare settings."""

from __future__ import annotations

import threading
import time

import pytest

from auditor.sources.cloudflare import client as api
from auditor.sources.cloudflare.ratelimit import Clock


class VirtualClock(Clock):
    """A clock whose sleeps only move time forward: retries and rate limits cost no real time."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()
        super().__init__(monotonic=self._now, sleep=self._sleep)

    def _now(self) -> float:
        return time.monotonic() + self.offset

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.offset += max(0.0, seconds)


def use_virtual_clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Make every ApiClient created from now on use a virtual clock and a fixed jitter."""
    fake = VirtualClock()
    monkeypatch.setattr(api, "DEFAULT_TIMING", api.Timing(clock=fake, random=lambda: 0.5))
    return fake


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Cloudflare settings leak in from the machine running the tests."""
    for name in ("CLOUDFLARE_API_TOKEN", "CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "CLOUDFLARE_ACCOUNT_ID",
                 "CLOUDFLARE_BASE_URL", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
