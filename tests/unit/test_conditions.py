"""The operator table: every operator, missing-field semantics, types, and agreement with schema and fields."""

from __future__ import annotations

import json

import pytest

from auditor.core import resources
from auditor.core.fields import SOURCES, FieldType
from auditor.language.codegen import compile_all
from auditor.language.conditions import OPERATORS, compile_condition, parse_networks
from tests.helpers import ABSENT, access, outcome, scim


def holds(field: str, op: str, operand, record: dict) -> bool:
    return compile_condition(field, op, operand)(record)


@pytest.mark.parametrize(
    ("op", "operand", "value", "expected"),
    [
        ("eq", "alice@example.com", "alice@example.com", True),
        ("eq", "alice@example.com", "Alice@example.com", False),  # case-sensitive
        ("neq", "alice@example.com", "bob@example.com", True),
        ("neq", "alice@example.com", "alice@example.com", False),
        ("in", ["a@x.com", "b@x.com"], "b@x.com", True),
        ("in", ["a@x.com", "b@x.com"], "c@x.com", False),
        ("not_in", ["a@x.com", "b@x.com"], "c@x.com", True),
        ("not_in", ["a@x.com", "b@x.com"], "a@x.com", False),
        ("contains", "@svc.", "bot@svc.example.com", True),
        ("contains", "@svc.", "bot@example.com", False),
        ("contains", "@SVC.", "bot@svc.example.com", False),  # case-sensitive
        ("not_contains", "@svc.", "bot@example.com", True),
        ("not_contains", "@svc.", "bot@svc.example.com", False),
        ("matches", r"^adm(in)?@", "admin@example.com", True),
        ("matches", r"example\.org$", "admin@example.com", False),
        ("matches", r"ADMIN", "admin@example.com", False),
        ("matches", r"(?i)ADMIN", "admin@example.com", True),
        ("matches", r"min@", "admin@example.com", True),  # re.search, not re.match
        ("not_matches", r"^adm", "admin@example.com", False),
        ("not_matches", r"^adm", "user@example.com", True),
        ("exists", True, "x", True),
        ("exists", False, "x", False),
    ],
)
def test_operator_on_present_string(op, operand, value, expected):
    assert holds("user_email", op, operand, {"user_email": value}) is expected


@pytest.mark.parametrize(
    ("operand", "ip", "expected"),
    [
        ("203.0.113.0/24", "203.0.113.9", True),
        ("203.0.113.0/24", "203.0.114.9", False),
        ("203.0.113.7", "203.0.113.7", True),  # a bare address is a /32
        ("2001:db8::/32", "2001:db8:1::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        (["10.0.0.0/8", "2001:db8::/32"], "10.1.2.3", True),
        (["10.0.0.0/8", "2001:db8::/32"], "2001:db8::1", True),
        (["10.0.0.0/8", "2001:db8::/32"], "192.168.1.1", False),
        ("10.0.0.0/8", "2001:db8::1", False),  # v6 address vs v4 network
        ("10.0.0.0/8", "::ffff:10.0.0.1", True),  # IPv4-mapped IPv6
        ("10.0.0.0/8", "not-an-ip", False),
        ("10.0.0.0/8", "", False),
    ],
)
def test_cidr_and_not_cidr(operand, ip, expected):
    record = {"ip_address": ip}
    assert holds("ip_address", "cidr", operand, record) is expected
    assert holds("ip_address", "not_cidr", operand, record) is (not expected)


def test_parse_networks_rejects_bad_cidr():
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/33")
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.0/8", "nope"])
    assert [str(n) for n in parse_networks("10.1.2.3/8")] == ["10.0.0.0/8"]  # host bits tolerated


MISSING_SATISFIES = {"exists:false", "neq", "not_in", "not_contains", "not_matches", "not_cidr"}


@pytest.mark.parametrize(
    ("op", "operand"),
    [
        ("eq", "x"), ("neq", "x"), ("in", ["x"]), ("not_in", ["x"]), ("contains", "x"), ("not_contains", "x"),
        ("matches", "x"), ("not_matches", "x"), ("cidr", "10.0.0.0/8"), ("not_cidr", "10.0.0.0/8"),
        ("exists", True), ("exists", False),
    ],
)
@pytest.mark.parametrize("record", [{}, {"ip_address": None}], ids=["absent", "null"])
def test_missing_field_satisfies_only_the_negative_operators(op, operand, record):
    name = f"exists:{str(operand).lower()}" if op == "exists" else op
    assert holds("ip_address", op, operand, record) is (name in MISSING_SATISFIES)


def test_missing_semantics_match_the_table():
    negative = {name for name, op in OPERATORS.items() if op.when_missing}
    assert negative == {"neq", "not_in", "not_contains", "not_matches", "not_cidr"}


@pytest.mark.parametrize(
    ("op", "operand", "value", "expected"),
    [
        ("eq", False, False, True),
        ("eq", False, True, False),
        ("eq", True, "true", False),  # a string is not a boolean
        ("eq", "true", True, False),
        ("eq", 1, True, False),  # True == 1 in Python; not here
        ("eq", True, 1, False),
        ("neq", False, True, True),
        ("neq", True, "true", True),
        ("in", [True], True, True),
        ("in", [1], True, False),
        ("in", [True], 1, False),
        ("not_in", [False], True, True),
        ("not_in", [False], False, False),
    ],
)
def test_booleans_are_not_strings_or_numbers(op, operand, value, expected):
    assert holds("allowed", op, operand, {"allowed": value}) is expected


def test_in_survives_unhashable_record_values():
    assert holds("user_email", "in", ["a"], {"user_email": ["a"]}) is False
    assert holds("user_email", "not_in", ["a"], {"user_email": {"x": 1}}) is True


def test_text_operators_on_non_text_values_do_not_match():
    assert holds("user_email", "contains", "1", {"user_email": 1}) is False
    assert holds("user_email", "matches", "1", {"user_email": 1}) is False
    assert holds("user_email", "not_contains", "1", {"user_email": 1}) is True


def test_compile_all_requires_every_condition():
    pred = compile_all([("user_email", "contains", "@example.com"), ("user_email", "not_in", ["a@example.com"])])
    assert pred({"user_email": "b@example.com"})
    assert not pred({"user_email": "a@example.com"})
    assert not pred({"user_email": "b@example.org"})
    assert compile_all([])({}) is True
    three = compile_all([("allowed", "eq", False), ("country", "eq", "US"), ("ip_address", "cidr", "10.0.0.0/8")])
    assert three({"allowed": False, "country": "US", "ip_address": "10.0.0.1"})
    assert not three({"allowed": False, "country": "US", "ip_address": "11.0.0.1"})


# --- the same through the rule language (scalar = eq, list = in, several operators in one mapping) ----------


def _count(tmp_path, records, filter_, source="access_requests") -> int:
    if source == "scim_updates":
        filter_ = {**filter_, "idp_id": "idp-1"}
    result = outcome(tmp_path, records, source=source, filter=filter_, expect={"count": {"max": 1000}})
    return int(result.measurements[0].value)


RECORDS = [
    access(user_email="alice@example.com", allowed=True, country="US", ip_address="10.0.0.1"),
    access(user_email="bob@example.com", allowed=False, country="GB", ip_address="2001:db8::1"),
    access(user_email="bot@svc.example.com", allowed=False, country=ABSENT, ip_address="192.0.2.1"),
    access(user_email="Carol@Example.com", allowed=False, ip_address="198.51.100.1"),
]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"allowed": False}, 3),  # scalar means eq
        ({"allowed": True}, 1),
        ({"country": ["US", "GB"]}, 2),  # list means in
        ({"country": "US"}, 1),
        ({"country": {"neq": "US"}}, 3),  # the record without a country satisfies neq
        ({"country": {"not_in": ["US", "GB"]}}, 2),
        ({"country": {"exists": False}}, 2),
        ({"country": {"exists": True}}, 2),
        ({"user_email": {"contains": "@example.com"}}, 2),
        ({"user_email": {"contains": "@example.com", "not_in": ["alice@example.com"]}}, 1),
        ({"user_email": {"matches": "(?i)@example\\.com$"}}, 3),  # Carol@Example.com counts
        ({"user_email": {"not_matches": "^bot@"}}, 3),
        ({"user_email": {"not_contains": "@svc."}}, 3),
        ({"ip_address": {"cidr": ["10.0.0.0/8", "2001:db8::/32"]}}, 2),
        ({"ip_address": {"not_cidr": "10.0.0.0/8"}}, 3),
        ({"ip_address": {"cidr": "2001:db8::/32"}}, 1),
        ({"allowed": False, "user_email": {"not_contains": "@svc."}}, 2),
        ({"app_type": {"neq": "self_hosted"}}, 4),  # optional field absent everywhere
        ({"app_type": "self_hosted"}, 0),
    ],
)
def test_filters_through_the_rule_language(tmp_path, filter_, expected):
    assert _count(tmp_path, RECORDS, filter_) == expected


def test_scim_enum_filters(tmp_path):
    records = [scim(request_method="DELETE", status="FAILURE"), scim(request_method="POST"), scim()]
    assert _count(tmp_path, records, {"request_method": ["DELETE", "POST"]}, "scim_updates") == 2
    assert _count(tmp_path, records, {"status": "FAILURE"}, "scim_updates") == 1
    assert _count(tmp_path, records, {"error_description": {"exists": True}}, "scim_updates") == 0


# --- one table, read by everything ---------------------------------------------------------------------------


def test_schema_operators_match_the_table():
    schema = json.loads(resources.schema_path("rules").read_text())
    assert set(schema["$defs"]["operators"]["properties"]) == set(OPERATORS)


def test_schema_sources_match_the_fields_table():
    schema = json.loads(resources.schema_path("rules").read_text())
    assert set(schema["$defs"]["rule"]["properties"]["source"]["enum"]) == set(SOURCES) | {"correlation"}
    assert set(schema["$defs"]["correlation_side"]["properties"]["source"]["enum"]) == set(SOURCES)


def test_cidr_only_fits_ip_fields_and_text_ops_not_booleans():
    assert OPERATORS["cidr"].types == {FieldType.IP}
    assert FieldType.BOOL not in OPERATORS["contains"].types
    assert FieldType.BOOL not in OPERATORS["matches"].types
    assert FieldType.BOOL in OPERATORS["eq"].types
