"""Hypothesis settings for the property, fuzz and soak tests: few examples per test in CI, many more on demand.

    AUDITOR_PROPERTY_EXAMPLES=500 python -m pytest tests/property     # a long local search

In CI (`CI` set) the search is derandomized, so a run is reproducible and a red build is a real bug; the
example database is off, so no `.hypothesis/` folder appears in the working tree.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

settings.register_profile(
    "auditor",
    max_examples=int(os.environ.get("AUDITOR_PROPERTY_EXAMPLES", "25")),
    deadline=None,  # loopback HTTP and thread pools: timing varies with the machine's load
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    # No `explain` phase: it writes patch files under .hypothesis/ and imports tools that warn.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
settings.load_profile("auditor")
