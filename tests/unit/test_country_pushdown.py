"""country_code is sent in the letter case the account serves (an API profile's finding); never when it serves
both cases. Rules and records use upper case (auditor.sources.records.upper_country)."""

from __future__ import annotations

from auditor.compile.pushdown import api_target
from auditor.core.fields import ACCESS_REQUESTS
from auditor.core.model import Condition, PushdownScope
from auditor.load.profile import UNDECLARED_PUSHDOWNS, ApiProfile
from auditor.sources.records import upper_country

COUNTRY = ACCESS_REQUESTS.fields["country"]


def _profile(case: str | None) -> ApiProfile:
    return ApiProfile(account_id="a" * 32, api_base="http://127.0.0.1", measured_at="2026-11-16T00:00:00Z",
                      endpoints={}, pushdowns=dict.fromkeys(UNDECLARED_PUSHDOWNS, True), country_present=True,
                      country_case=case)


def test_country_code_is_sent_in_the_case_the_profile_saw():
    cond = Condition("country", "eq", "DE")
    upper = api_target(PushdownScope.DOCUMENTED, _profile("upper")).express(COUNTRY, cond)
    lower = api_target(PushdownScope.DOCUMENTED, _profile("lower")).express(COUNTRY, cond)
    assert upper is not None and ("country_code", "DE") in upper.params
    assert lower is not None and ("country_code", "de") in lower.params
    assert api_target(PushdownScope.ALL).express(COUNTRY, cond).params[0] == ("country_code", "DE")  # no profile


def test_a_profile_that_saw_both_cases_never_sends_country_code():
    mixed = _profile("mixed")
    assert "country_code" in mixed.refused() and "country_code" not in mixed.proven()
    assert api_target(PushdownScope.ALL, mixed).express(COUNTRY, Condition("country", "eq", "DE")) is None


def test_upper_country_copies_only_a_record_it_changes():
    kept = {"country": "US"}
    assert upper_country(kept) is kept and upper_country({}) == {}
    given = {"country": "us", "ray_id": "r"}
    assert upper_country(given) == {"country": "US", "ray_id": "r"} and given["country"] == "us"
    assert upper_country({"country": 5}) == {"country": 5}  # a wrong type is reported elsewhere, not changed
