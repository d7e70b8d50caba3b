"""The one Spark session of the test session (tests/spark/__init__.py)."""

from __future__ import annotations

import os

import pytest

from tests.spark import wait


@pytest.fixture(scope="session")
def spark():
    """The Spark session on local[2]; the tests skip where PySpark is not installed (CI installs it, and fails
    when it cannot start: AUDITOR_REQUIRE_SPARK)."""
    session, unavailable = wait()
    if session is None:
        if os.environ.get("AUDITOR_REQUIRE_SPARK"):
            pytest.fail(f"Spark is required here: {unavailable}")
        pytest.skip(unavailable or "Spark did not start")
    return session
