"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.apitools import VirtualClock, clean_env, use_virtual_clock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Retries and rate limits cost no real time in this test."""
    return use_virtual_clock(monkeypatch)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Cloudflare settings or GitHub summary file leak in from the machine running the tests."""
    clean_env(monkeypatch)
