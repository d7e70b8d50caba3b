"""A list request's query string -> which records, in which order, which page (400 on a bad value).

Written independently of auditor's compiler, so that the client's pushdown is tested against a
second reading of the API rather than against itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from auditor.core.timeutil import parse_time
from auditor.testing.errors import bad_parameter

MAX_PER_PAGE = 1000
Params = dict[str, list[str]]  # parse_qs: every value of every key, in order

# The API's record fields (for `fields=`), and the value/Op filter pairs -> (record field, is boolean).
ACCESS_FIELDS = frozenset({
    "action", "allowed", "app_domain", "app_type", "app_uid", "connection", "country", "created_at",
    "ip_address", "ray_id", "user_email",
})
ACCESS_PAIRS: dict[str, tuple[str, bool]] = {
    "allowed": ("allowed", True),
    "app_type": ("app_type", False),
    "app_uid": ("app_uid", False),
    "country_code": ("country", False),
    "idp": ("connection", False),
    "non_identity": ("non_identity", True),
    "ray_id": ("ray_id", False),
}
SCIM_ENUMS: dict[str, frozenset[str] | None] = {
    "idp_id": None,
    "status": frozenset({"FAILURE", "SUCCESS"}),
    "resource_type": frozenset({"USER", "GROUP"}),
    "request_method": frozenset({"DELETE", "PATCH", "POST", "PUT"}),
    "resource_user_email": None,
    "resource_group_name": None,
    "cf_resource_id": None,
    "idp_resource_id": None,
}

# What the published schema declares (strict mode answers anything else with a 400).
DECLARED_PARAMS = {
    "access_requests": frozenset({
        "limit", "direction", "since", "until", "page", "per_page", "email", "email_exact", "emailOp", "fields",
        "allowedOp", "country_codeOp", "app_typeOp", "app_uidOp", "ray_idOp", "idpOp", "non_identityOp", "user_id",
    }),
    "scim_updates": frozenset({
        "idp_id", "status", "resource_type", "request_method", "resource_user_email", "resource_group_name",
        "cf_resource_id", "idp_resource_id", "limit", "direction", "since", "until", "page", "per_page",
    }),
}
DECLARED_ACCESS_FIELDS = frozenset({
    "action", "allowed", "app_domain", "app_uid", "connection", "created_at", "ip_address", "ray_id", "user_email",
})
SCIM_DEFAULT_LIMIT = 20  # documented; the lenient working model reads a missing limit as "all"

Test = Callable[[dict], bool]


@dataclass(frozen=True)
class Query:
    """A parsed list request: which records, in which order, which page."""

    since: int | None
    until: int | None
    direction: str
    limit: int | None
    page: int
    per_page: int
    fields: tuple[str, ...] | None
    tests: tuple[Test, ...]


def parse_query(source: str, params: Params, strict: bool = False) -> Query:
    """The query of one list request to `source` (access_requests or scim_updates); `strict` answers like
    the published schema: a 400 for any parameter or `fields` name it does not declare."""
    if strict:
        undeclared = sorted(set(params) - DECLARED_PARAMS[source])
        if undeclared:
            raise bad_parameter(f"{undeclared[0]}: unknown query parameter")
    return access_query(params, strict) if source == "access_requests" else scim_query(params, strict)


def access_query(params: Params, strict: bool = False) -> Query:
    """An access_requests query: e-mail, value/Op pairs and `fields`.

    Lenient: `email` is a substring unless `email_exact=true`, `emailOp` one of eq, neq, contains.
    Strict follows the older schema, read the unforgiving way: `emailOp` is eq (default) or neq, and eq
    means equal, so a client sending a substring as a bare `email=` gets nothing back.
    """
    tests: list[Test] = []
    email = _one(params, "email")
    exact = _bool(params, "email_exact") or False
    email_op = _choice(params, "emailOp", ("eq", "neq") if strict else ("eq", "neq", "contains"), "eq")
    if email is not None:
        exact = strict or (exact and email_op != "contains")
        tests.append(_email_test(email, exact, email_op == "neq"))
    for name, (record_field, is_bool) in ACCESS_PAIRS.items():
        op = _choice(params, f"{name}Op", ("eq", "neq"), "eq")
        if name not in params:
            continue
        value: Any = _bool(params, name) if is_bool else _one(params, name)
        # non_identity is absent on ordinary (identity) logins.
        tests.append(_pair_test(record_field, value, op == "neq", False if name == "non_identity" else None))
    fields = None
    text = _one(params, "fields")
    if text is not None:
        fields = tuple(f for f in (part.strip() for part in text.split(",")) if f)
        unknown = [f for f in fields if f not in (DECLARED_ACCESS_FIELDS if strict else ACCESS_FIELDS)]
        if unknown:
            raise bad_parameter(f"fields: unknown field {unknown[0]!r}")
    return Query(**_common(params, 25, 25), fields=fields, tests=tuple(tests))


def scim_query(params: Params, strict: bool = False) -> Query:
    """A scim/updates query: `idp_id` (required) and the array filters; strict: `limit` defaults to 20."""
    if not any(params.get("idp_id", [])):
        raise bad_parameter("idp_id: required (the id of an IdP with SCIM enabled)")
    tests = []
    for name, allowed in SCIM_ENUMS.items():
        values = params.get(name)
        if not values:
            continue
        if allowed is not None:
            wrong = [v for v in values if v not in allowed]
            if wrong:
                raise bad_parameter(f"{name}: {wrong[0]!r} must be one of {', '.join(sorted(allowed))}")
        tests.append(_one_of_test(name, frozenset(values)))
    return Query(**_common(params, SCIM_DEFAULT_LIMIT if strict else None, 20), fields=None, tests=tuple(tests))


# --- filters ------------------------------------------------------------------------------------------

def _email_test(value: str, exact: bool, negate: bool) -> Test:
    def test(record: dict) -> bool:
        email = record.get("user_email")
        hit = isinstance(email, str) and (email == value if exact else value in email)
        return hit != negate

    return test


def _pair_test(record_field: str, value: Any, negate: bool, absent: Any) -> Test:
    def test(record: dict) -> bool:
        got = record.get(record_field, absent)
        # `is` for booleans: 1 == True must not match.
        hit = got is value if isinstance(value, bool) else (isinstance(got, str) and got == value)
        return hit != negate

    return test


def _one_of_test(record_field: str, values: frozenset[str]) -> Test:
    def test(record: dict) -> bool:
        got = record.get(record_field)
        return isinstance(got, str) and got in values

    return test


# --- values: each helper raises a 400 on a malformed value ----------------------------------------------

def _one(params: Params, name: str) -> str | None:
    # A parameter given twice (other than the scim arrays) uses its first value.
    values = params.get(name)
    return values[0] if values else None


def _time(params: Params, name: str) -> int | None:
    text = _one(params, name)
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise bad_parameter(f"{name}: {text!r} is not an RFC 3339 date-time") from None


def _int(params: Params, name: str, default: int | None, low: int, high: int | None = None) -> Any:
    text = _one(params, name)
    if text is None:
        return default
    if not text.isdigit() or not text.isascii():
        raise bad_parameter(f"{name}: {text!r} is not a whole number")
    value = int(text)
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_parameter(f"{name}: {value} must be {span}")
    return value


def _bool(params: Params, name: str) -> bool | None:
    text = _one(params, name)
    if text is None:
        return None
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise bad_parameter(f"{name}: {text!r} is not a boolean (true or false)")
    return lowered == "true"


def _choice(params: Params, name: str, choices: tuple[str, ...], default: str) -> str:
    text = _one(params, name)
    if text is None:
        return default
    if text not in choices:
        raise bad_parameter(f"{name}: {text!r} must be one of {', '.join(choices)}")
    return text


def _common(params: Params, limit: int | None, per_page: int) -> dict[str, Any]:
    return {
        "since": _time(params, "since"),
        "until": _time(params, "until"),
        "direction": _choice(params, "direction", ("desc", "asc"), "desc"),
        "limit": _int(params, "limit", limit, 1),
        "page": _int(params, "page", 1, 1),
        "per_page": _int(params, "per_page", per_page, 1, MAX_PER_PAGE),
    }

