"""Fixtures shared by the integration tests."""

from __future__ import annotations

import threading
import time

import pytest

from auditor.evaluate import parallel
from tests.integration.apitools import VirtualClock, clean_env, use_virtual_clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Retries and rate limits cost no real time in this test."""
    return use_virtual_clock(monkeypatch)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Cloudflare settings or GitHub summary file leak in from the machine running the tests."""
    clean_env(monkeypatch)


@pytest.fixture
def helped(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every file unit gets a helper (AUDITOR_WORKERS=2: the sample data is far below MIN_BYTES) and small
    blocks, so the helper takes many of them; returns the blocks each helper was handed.

    A helper is only forked while no other thread runs: threads of earlier tests (closed emulators' and
    clients') are given a moment to end first."""
    deadline = time.monotonic() + 5
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    monkeypatch.setattr(parallel, "BLOCK_BYTES", 1 << 14)
    monkeypatch.setenv(parallel.ENV, "2")  # whatever the size and the machine's load
    handed: list[int] = []
    original = parallel.Helper.result

    def counting(self: parallel.Helper, timeout: float = 3600.0) -> object:
        handed.append(self.handed)
        return original(self, timeout)

    monkeypatch.setattr(parallel.Helper, "result", counting)
    return handed
