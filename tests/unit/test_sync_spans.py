"""What `auditor sync` asks of each log: resumes an hour before the lake's end, never before the API's retention
nor after now; SCIM only with configured IdPs, and never for another set than the lake holds."""

from __future__ import annotations

import pytest

from auditor.core.model import Config
from auditor.core.timeutil import US, parse_time
from auditor.run.sync import OVERLAP_US, SyncError, spans
from auditor.sources.lake import LakeLog

NOW = parse_time("2026-11-16T00:00:00Z")
DAY = 86400 * US
CONFIG = Config(scim_idp_ids=("idp-b", "idp-a"))


def by_source(*args, **kwargs):
    return {s.source: s for s in spans(*args, **kwargs)}


def test_an_empty_lake_reads_everything_the_api_keeps():
    got = by_source({}, CONFIG, NOW, None, None, retention_days=30)
    assert (got["access_requests"].since_us, got["access_requests"].until_us) == (NOW - 30 * DAY, NOW)
    assert got["scim_updates"].fetch.filters[0].params == (("idp_id", "idp-a"), ("idp_id", "idp-b"))


def test_a_lake_resumes_an_hour_before_its_end_but_never_before_retention():
    held = {"access_requests": LakeLog(((NOW - 40 * DAY, NOW - 2 * DAY),)),
            "scim_updates": LakeLog(((NOW - 90 * DAY, NOW - 60 * DAY),), idp_ids=("idp-a", "idp-b"))}
    got = by_source(held, CONFIG, NOW, None, None, retention_days=30)
    assert got["access_requests"].since_us == NOW - 2 * DAY - OVERLAP_US
    assert got["scim_updates"].since_us == NOW - 30 * DAY  # the lake's end is gone from the API: a gap stays


def test_since_and_until_bound_it_within_what_the_api_keeps():
    got = by_source({}, CONFIG, NOW, NOW - 90 * DAY, NOW + DAY, retention_days=30)["access_requests"]
    assert (got.since_us, got.until_us) == (NOW - 30 * DAY, NOW)
    current = by_source({"access_requests": LakeLog(((NOW - DAY, NOW),))}, CONFIG, NOW, None, NOW - 2 * DAY)
    assert current["access_requests"].fetch is None and "nothing to read" in current["access_requests"].note


def test_scim_needs_idp_ids_and_the_lakes_own_set():
    assert "scim_idp_ids" in by_source({}, Config(), NOW, None, None)["scim_updates"].note
    with pytest.raises(SyncError, match="new lake"):
        spans({"scim_updates": LakeLog(((0, 1),), idp_ids=("idp-z",))}, CONFIG, NOW, None, None)
