"""auditor.language.expectations: one registry and one meaning of "worst", shared by message and reports."""

from __future__ import annotations

import math

import pytest

from auditor.core.model import Expectation
from auditor.language import expectations as ex
from auditor.report import filters
from tests.helpers import access, outcome


def test_every_expectation_kind_of_the_model_is_registered():
    assert set(ex.KINDS) == {"count", "distinct", "ratio"}
    for name in ex.KINDS:
        Expectation(name)  # the model accepts every registered kind


@pytest.mark.parametrize(("kind", "args", "value"), [
    ("count", (3,), 3), ("distinct", (3, 2), 2), ("ratio", (4, 0, 1), 0.25), ("ratio", (0, 0, 0), None),
])
def test_measure(kind, args, value):
    assert ex.KINDS[kind].measure(*args) == value


def test_labels():
    assert ex.KINDS["count"].label(None) == "count"
    assert ex.KINDS["distinct"].label("ip_address") == "distinct ip_address"
    assert ex.KINDS["distinct"].label("ip_address", compact=True) == "distinct(ip_address)"


@pytest.mark.parametrize(("value", "low", "high", "ok"), [
    (None, 1, 2, True), (1, 1, 2, True), (2, 1, 2, True), (0, 1, None, False), (3, None, 2, False),
])
def test_check(value, low, high, ok):
    assert ex.check(value, low, high) is ok


def test_pressure_is_relative_to_the_bound():
    assert ex.pressure(8, None, 5) == pytest.approx(0.6)
    assert ex.pressure(3, None, 1) == pytest.approx(2.0)
    assert ex.pressure(3, None, 0) == 3  # a zero bound: absolute
    assert ex.pressure(0, 4, None) == 1
    assert ex.pressure(4, None, 5) < 0  # passing: how close, negative
    assert ex.pressure(None, None, 5) == -math.inf


def test_worst_prefers_failing_then_pressure_then_first():
    ms = [(True, 4, None, 5), (False, 8, None, 5), (False, 3, None, 1), (False, 3, None, 1)]
    assert ex.worst(ms, lambda m: m) is ms[2]
    passing = [(True, 1, None, 5), (True, 4, None, 5)]
    assert ex.worst(passing, lambda m: m) is passing[1]
    assert ex.worst([], lambda m: m) is None


@pytest.mark.parametrize(("value", "text"), [(None, "n/a"), (5, "5"), (5.0, "5"), (0.31234, "0.3123"), ("x", "x")])
def test_format_number(value, text):
    assert ex.format_number(value) == text
    assert filters.format_number(value) == text  # the report filter is the same function


def test_bounds_text():
    assert ex.bounds_text(1, 5) == "min 1, max 5"
    assert ex.bounds_text(None, 0.2) == "max 0.2"
    assert ex.bounds_text(None, None) == ""


def test_message_and_headline_name_the_same_worst_measurement(tmp_path):
    """count max 5 and distinct max 1: a@x.com is furthest past in absolute terms (count 9, 4 over), b@x.com
    relative to the bound (distinct 3, three times the bound). Message and headline must agree."""
    records = ([access(user_email="a@x.com", ip_address=f"192.0.2.{i % 2}") for i in range(9)]
               + [access(user_email="b@x.com", ip_address=f"192.0.2.{i}") for i in range(3)])
    result = outcome(tmp_path, records, group_by="user_email",
                     expect={"count": {"max": 5}, "distinct": {"field": "ip_address", "max": 1}})
    assert result.status == "fail" and result.violations == 2
    assert "b@x.com" in result.message and "a@x.com" not in result.message
    document = {"measurements": [m.to_json() for m in result.measurements], "violations": result.violations}
    assert filters.headline(document) == "distinct(ip_address) 3 > max 1 (user_email=b@x.com) +1 more group"
    # The worst group comes first: its measurements, then its evidence.
    assert result.measurements[0].group == {"user_email": "b@x.com"}


def test_group_label_is_shared_by_message_and_reports(tmp_path):
    """A null group value reads `null` in the result message as in the reports (was `None` in messages)."""
    assert ex.group_label({"country": None, "user_email": "a@x.com"}) == "country=null, user_email=a@x.com"
    assert ex.group_label(None) == "" and filters.group_label is ex.group_label
    records = [access(user_email="a@x.com", country=None)] * 2
    result = outcome(tmp_path, records, group_by=["country", "user_email"], expect={"count": {"max": 1}})
    assert result.message.endswith("for country=null, user_email=a@x.com")
