"""Loads the shared hypothesis profile (tests/property/profile.py)."""

import tests.property.profile  # noqa: F401
