"""The emulator over real loopback HTTP: every parameter, pagination, errors and each fault."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from auditor.core.timeutil import format_time, parse_time
from auditor.sources.files import DataError
from auditor.testing.emulator import Emulator, EmulatorSettings, Faults, is_loopback, parse_fail_pages, serve
from auditor.testing.httpserver import HANDLER_THREAD, ApiServer

ACCOUNT = "acc-1"
ACCESS_PATH = f"/accounts/{ACCOUNT}/access/logs/access_requests"
SCIM_PATH = f"/accounts/{ACCOUNT}/access/logs/scim/updates"
T0 = parse_time("2026-11-01T00:00:00Z")
MINUTE = 60_000_000


def at(i: int) -> str:
    return format_time(T0 + i * MINUTE)


def access(i: int) -> dict:
    rec = {
        "action": "login",
        "allowed": i % 3 != 0,
        "app_domain": f"app{i % 2}.example.com",
        "app_uid": f"uid-{i % 2}",
        "connection": "okta" if i % 4 == 0 else "saml",
        "created_at": at(i),
        "ip_address": f"198.51.100.{i}",
        "ray_id": f"ray{i:04d}",
        "user_email": f"user{i % 5}@{'svc.' if i % 5 == 4 else ''}example.com",
        "app_type": "ssh" if i % 6 == 0 else "self_hosted",
    }
    if i % 7:
        rec["country"] = "de" if i % 2 else "us"  # some records lack the optional field
    if i % 10 == 0:
        rec["non_identity"] = True
    return rec


def scim(i: int) -> dict:
    return {
        "cf_resource_id": f"cf-{i % 3}",
        "error_description": "bad" if i % 4 == 0 else None,
        "idp_id": f"idp-{i % 2}",
        "idp_resource_id": f"r-{i % 3}",
        "logged_at": at(i),
        "request_body": "{}",
        "request_method": ("DELETE", "PATCH", "POST", "PUT")[i % 4],
        "resource_group_name": f"group-{i % 2}",
        "resource_type": "USER" if i % 2 else "GROUP",
        "resource_user_email": f"u{i % 3}@example.com",
        "status": "FAILURE" if i % 4 == 0 else "SUCCESS",
    }


ACCESS = [access(i) for i in range(60)]
SCIM = [scim(i) for i in range(30)]
DATA = {"access_requests": ACCESS, "scim_updates": SCIM}


@pytest.fixture
def emu(emulator):
    return emulator(DATA, account_id=ACCOUNT)


@pytest.fixture
def client(emu):
    with httpx.Client(base_url=emu.base_url, timeout=5) as c:
        yield c


def ok(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    return body["result"]


def rays(records: list[dict]) -> list[str]:
    return [r["ray_id"] for r in records]


def asc(pred) -> list[str]:
    return [r["ray_id"] for r in ACCESS if pred(r)]


def get_all(client, params: dict) -> list[dict]:
    return ok(client.get(ACCESS_PATH, params={"direction": "asc", "limit": 1000, "per_page": 1000, **params}))


def assert_error(response: httpx.Response, status: int, code: int, text: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    assert body["errors"][0]["code"] == code
    assert text in body["errors"][0]["message"]


# --- access_requests ---------------------------------------------------------------------------------

def test_defaults_desc_limit_25_no_result_info(client):
    response = client.get(ACCESS_PATH)
    body = response.json()
    assert response.headers["content-type"].startswith("application/json")
    assert "result_info" not in body
    assert rays(ok(response)) == [r["ray_id"] for r in reversed(ACCESS)][:25]
    assert ok(client.get(ACCESS_PATH, params={"page": 2})) == []  # limit 25 == one default page of 25


def test_direction_and_inclusive_bounds(client):
    params = {"since": at(10), "until": at(20), "limit": 100}
    assert rays(ok(client.get(ACCESS_PATH, params={**params, "direction": "asc"}))) == rays(ACCESS[10:21])
    assert rays(ok(client.get(ACCESS_PATH, params=params))) == rays(ACCESS[20:9:-1])
    # Offsets and fractions are understood.
    shifted = {"since": "2026-11-01T01:10:00.000+01:00", "until": "2026-11-01T00:10:30Z", "direction": "asc"}
    assert rays(ok(client.get(ACCESS_PATH, params=shifted))) == ["ray0010"]
    assert ok(client.get(ACCESS_PATH, params={"since": at(30), "until": at(20)})) == []


def test_limit_caps_entries_across_pages(client):
    base = {"direction": "asc", "limit": 45, "per_page": 20}
    pages = [rays(ok(client.get(ACCESS_PATH, params={**base, "page": p}))) for p in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [20, 20, 5, 0]
    assert [r for page in pages for r in page] == rays(ACCESS[:45])
    assert len(ok(client.get(ACCESS_PATH, params={"limit": 1000, "per_page": 1000}))) == 60


def test_email_filters(client):
    assert rays(get_all(client, {"email": "@svc."})) == asc(lambda r: "@svc." in r["user_email"])
    assert rays(get_all(client, {"email": "user1@example.com", "email_exact": "true"})) == \
        asc(lambda r: r["user_email"] == "user1@example.com")
    assert get_all(client, {"email": "user1@example", "email_exact": "true"}) == []
    assert rays(get_all(client, {"email": "user1@example", "email_exact": "true", "emailOp": "contains"})) == \
        asc(lambda r: r["user_email"] == "user1@example.com")
    assert rays(get_all(client, {"email": "@svc.", "emailOp": "neq"})) == \
        asc(lambda r: "@svc." not in r["user_email"])
    assert get_all(client, {"email": "USER1@"}) == []  # case-sensitive, like the API


PAIRS = [
    ("allowed", "false", lambda r: r["allowed"] is False),
    ("app_type", "ssh", lambda r: r.get("app_type") == "ssh"),
    ("app_uid", "uid-1", lambda r: r["app_uid"] == "uid-1"),
    ("country_code", "de", lambda r: r.get("country") == "de"),
    ("idp", "okta", lambda r: r["connection"] == "okta"),
    ("non_identity", "true", lambda r: r.get("non_identity", False) is True),
    ("ray_id", "ray0042", lambda r: r["ray_id"] == "ray0042"),
]


@pytest.mark.parametrize(("name", "value", "pred"), PAIRS, ids=[p[0] for p in PAIRS])
def test_value_op_pairs(client, name, value, pred):
    eq = rays(get_all(client, {name: value}))
    assert eq == asc(pred) and eq
    assert rays(get_all(client, {name: value, f"{name}Op": "eq"})) == eq
    neq = rays(get_all(client, {name: value, f"{name}Op": "neq"}))
    assert neq == asc(lambda r: not pred(r))  # neq keeps records lacking the field


def test_pairs_combine_and_an_op_alone_is_no_filter(client):
    got = rays(get_all(client, {"allowed": "TRUE", "idp": "saml", "country_code": "us", "country_codeOp": "neq"}))
    assert got == asc(lambda r: r["allowed"] and r["connection"] == "saml" and r.get("country") != "us")
    assert len(get_all(client, {"allowedOp": "neq"})) == 60


def test_ignored_parameters(client):
    assert len(get_all(client, {"user_id": "u-1", "user_idOp": "bogus", "frobnicate": "1"})) == 60


def test_fields_projection(client):
    got = get_all(client, {"fields": "ray_id, allowed,country", "limit": 8})
    assert got[:2] == [{"ray_id": "ray0000", "allowed": False}, {"ray_id": "ray0001", "allowed": True,
                                                                 "country": "de"}]
    assert all(set(r) <= {"ray_id", "allowed", "country"} for r in got)
    assert_error(client.get(ACCESS_PATH, params={"fields": "ray_id,rayid"}), 400, 10001, "'rayid'")


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-11-01T00:00:00"}, "until"),  # no offset
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"page": "0"}, "page"),
        ({"page": "-1"}, "page"),
        ({"per_page": "1001"}, "per_page: 1001 must be between 1 and 1000"),
        ({"direction": "up"}, "direction"),
        ({"allowed": "yes"}, "allowed"),
        ({"email_exact": "1"}, "email_exact"),
        ({"emailOp": "like"}, "emailOp"),
        ({"ray_idOp": "contains"}, "ray_idOp"),
        ({"non_identity": ""}, "non_identity"),
    ],
)
def test_malformed_parameters_are_400(client, params, text):
    assert_error(client.get(ACCESS_PATH, params=params), 400, 10001, text)


# --- strict mode: the published schema -----------------------------------------------------------------

@pytest.fixture
def strict(emulator):
    emu = emulator(DATA, account_id=ACCOUNT, strict=True)
    with httpx.Client(base_url=emu.base_url, timeout=5) as c:
        yield c


@pytest.mark.parametrize("name", ["allowed", "country_code", "app_uid", "ray_id", "app_type", "idp", "non_identity",
                                  "user_idOp", "frobnicate"])
def test_strict_refuses_undeclared_parameters(strict, name):
    assert_error(strict.get(ACCESS_PATH, params={name: "x"}), 400, 10001, f"{name}: unknown query parameter")


def test_strict_accepts_every_declared_parameter(strict):
    params = {"limit": 1000, "direction": "asc", "since": at(0), "until": at(59), "page": 1, "per_page": 1000,
              "email": "user1@example.com", "email_exact": "true", "emailOp": "eq", "fields": "ray_id,user_email",
              "allowedOp": "eq", "country_codeOp": "neq", "app_typeOp": "eq", "app_uidOp": "eq", "ray_idOp": "eq",
              "idpOp": "eq", "non_identityOp": "eq", "user_id": "ignored"}
    got = ok(strict.get(ACCESS_PATH, params=params))
    assert got == [{"ray_id": r["ray_id"], "user_email": r["user_email"]} for r in ACCESS
                   if r["user_email"] == "user1@example.com"]
    scim_params = {"idp_id": "idp-0", "status": "SUCCESS", "resource_type": "GROUP", "request_method": "PATCH",
                   "resource_user_email": "u1@example.com", "resource_group_name": "group-0", "cf_resource_id": "cf-1",
                   "idp_resource_id": "r-1", "limit": 5, "direction": "asc", "since": at(0), "until": at(29), "page": 1,
                   "per_page": 5}
    assert strict.get(SCIM_PATH, params=scim_params).status_code == 200


def test_strict_fields_are_the_nine_declared(strict):
    declared = "action,allowed,app_domain,app_uid,connection,created_at,ip_address,ray_id,user_email"
    got = ok(strict.get(ACCESS_PATH, params={"fields": declared, "limit": 3}))
    assert [set(r) for r in got] == [set(declared.split(","))] * 3
    for extra in ("country", "app_type"):
        assert_error(strict.get(ACCESS_PATH, params={"fields": f"ray_id,{extra}"}), 400, 10001, repr(extra))
    # Without `fields` every stored field comes back, country included.
    assert any("country" in r for r in ok(strict.get(ACCESS_PATH)))


def test_strict_email_is_eq_or_neq_and_eq_is_equal(strict):
    exact = lambda r: r["user_email"] == "user1@example.com"  # noqa: E731
    assert rays(get_all(strict, {"email": "user1@example.com"})) == asc(exact)
    assert get_all(strict, {"email": "@svc."}) is None  # a substring sent as a bare email= finds nothing (null)
    assert rays(get_all(strict, {"email": "user1@example.com", "emailOp": "neq"})) == asc(lambda r: not exact(r))
    assert_error(strict.get(ACCESS_PATH, params={"email": "@svc.", "emailOp": "contains"}), 400, 10001, "emailOp")


def test_strict_scim_limit_defaults_to_20_and_empty_pages_are_null(strict):
    records, info = scim_ok(strict.get(SCIM_PATH, params={"idp_id": ["idp-0", "idp-1"], "per_page": 1000}))
    assert len(records) == 20 and info["total_count"] == 20
    records, _ = scim_ok(strict.get(SCIM_PATH, params={"idp_id": ["idp-0", "idp-1"], "per_page": 1000, "limit": 100}))
    assert len(records) == 30
    for path, params in ((SCIM_PATH, {"idp_id": "nobody"}), (ACCESS_PATH, {"page": 9})):
        body = strict.get(path, params=params).json()
        assert body["success"] is True and body["result"] is None
    assert "result_info" not in strict.get(ACCESS_PATH).json()


# --- scim/updates ------------------------------------------------------------------------------------

def scim_ok(response: httpx.Response) -> tuple[list[dict], dict]:
    records = ok(response)
    return records, response.json()["result_info"]


def test_scim_requires_idp_id(client):
    assert_error(client.get(SCIM_PATH), 400, 10001, "idp_id")
    assert_error(client.get(SCIM_PATH, params={"idp_id": ""}), 400, 10001, "idp_id")


def test_scim_defaults_and_result_info(client):
    records, info = scim_ok(client.get(SCIM_PATH, params={"idp_id": ["idp-0", "idp-1"]}))
    assert [r["logged_at"] for r in records] == [r["logged_at"] for r in reversed(SCIM)][:20]
    assert info == {"count": 20, "page": 1, "per_page": 20, "total_count": 30, "total_pages": 2}
    records, info = scim_ok(client.get(SCIM_PATH, params={"idp_id": ["idp-0", "idp-1"], "page": 2}))
    assert len(records) == 10 and info["count"] == 10 and info["page"] == 2


def test_scim_single_and_repeated_idp_id(client):
    records, info = scim_ok(client.get(SCIM_PATH, params={"idp_id": "idp-1", "direction": "asc"}))
    assert records == [r for r in SCIM if r["idp_id"] == "idp-1"] and info["total_count"] == 15
    records, _ = scim_ok(client.get(f"{SCIM_PATH}?idp_id=idp-0&idp_id=idp-1&direction=asc&per_page=100"))
    assert records == SCIM


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("status", ["FAILURE"]),
        ("resource_type", ["USER"]),
        ("request_method", ["DELETE", "PUT"]),
        ("resource_user_email", ["u1@example.com"]),
        ("resource_group_name", ["group-0"]),
        ("cf_resource_id", ["cf-2", "cf-0"]),
        ("idp_resource_id", ["r-1"]),
    ],
)
def test_scim_array_filters(client, name, values):
    params = {"idp_id": ["idp-0", "idp-1"], name: values, "direction": "asc", "per_page": 1000}
    records, info = scim_ok(client.get(SCIM_PATH, params=params))
    expected = [r for r in SCIM if r[name] in values]
    assert records == expected and expected and info["total_count"] == len(expected)


@pytest.mark.parametrize(("name", "value"), [("status", "failure"), ("resource_type", "ROLE"),
                                             ("request_method", "GET")])
def test_scim_enum_values_are_validated(client, name, value):
    assert_error(client.get(SCIM_PATH, params={"idp_id": "idp-0", name: value}), 400, 10001, name)


def test_scim_limit_time_range_and_pages(client):
    params = {"idp_id": ["idp-0", "idp-1"], "since": at(5), "until": at(24), "limit": 15, "per_page": 4,
              "direction": "asc"}
    pages = []
    for page in (1, 2, 3, 4, 5):
        records, info = scim_ok(client.get(SCIM_PATH, params={**params, "page": page}))
        assert (info["total_count"], info["total_pages"], info["per_page"]) == (15, 4, 4)
        pages.append(records)
    assert [len(p) for p in pages] == [4, 4, 4, 3, 0]
    assert [r for page in pages for r in page] == SCIM[5:20]
    assert_error(client.get(SCIM_PATH, params={"idp_id": "x", "per_page": "5000"}), 400, 10001, "per_page")
    assert_error(client.get(SCIM_PATH, params={"idp_id": "x", "until": "soon"}), 400, 10001, "until")


# --- auth, routes, accounts ----------------------------------------------------------------------------

def test_bearer_token(emulator):
    emu = emulator(DATA, token="s3cret")
    url = emu.base_url + ACCESS_PATH
    assert_error(httpx.get(url), 401, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
    assert_error(httpx.get(url, headers={"Authorization": "Bearer nope"}), 401, 10000, "Authentication error")
    assert_error(httpx.get(url, headers={"X-Auth-Email": "a@b", "X-Auth-Key": "k"}), 401, 10000)
    assert len(ok(httpx.get(url, headers={"Authorization": "Bearer s3cret"}))) == 25
    assert all("s3cret" not in json.dumps(r) for r in emu.requests)


def test_email_and_api_key(emulator):
    emu = emulator(DATA, email="me@example.com", api_key="k1")
    url = emu.base_url + ACCESS_PATH
    assert_error(httpx.get(url, headers={"X-Auth-Email": "me@example.com"}), 401, 9106)
    assert_error(httpx.get(url, headers={"X-Auth-Email": "me@example.com", "X-Auth-Key": "k2"}), 401, 10000)
    assert_error(httpx.get(url, headers={"Authorization": "Bearer k1"}), 401, 10000)
    assert ok(httpx.get(url, headers={"X-Auth-Email": "me@example.com", "X-Auth-Key": "k1"}))


def test_routes_and_accounts(client, emulator):
    assert_error(client.get("/accounts/other/access/logs/access_requests"), 404, 7003, "Could not route to")
    assert_error(client.get(f"/accounts/{ACCOUNT}/access/logs/nope"), 404, 7000, "No route")
    assert_error(client.get("/zones"), 404, 7000)
    assert_error(client.post(ACCESS_PATH, json={"a": 1}), 405, 7001)
    assert ok(client.get(ACCESS_PATH + "/"))  # a trailing slash is the same route
    # Without a configured account every account id is served.
    any_account = emulator(DATA)
    assert ok(httpx.get(any_account.base_url + "/accounts/whatever/access/logs/access_requests"))


# --- faults ----------------------------------------------------------------------------------------------

def test_latency(emulator):
    emu = emulator(DATA, latency=0.2)
    started = time.monotonic()
    ok(httpx.get(emu.base_url + ACCESS_PATH))
    assert time.monotonic() - started >= 0.2


def test_rate_limit_first(emulator):
    emu = emulator(DATA, rate_limit_first=2, retry_after=7)
    url = emu.base_url + ACCESS_PATH
    for _ in range(2):
        response = httpx.get(url)
        assert_error(response, 429, 971, "throttling")
        assert response.headers["Retry-After"] == "7"
    assert ok(httpx.get(url))
    assert [r.status for r in emu.requests] == [429, 429, 200]


def test_fail_pages_html_and_json(emulator):
    emu = emulator(DATA, fail_pages={2: 2}, fail_status=502)
    url = emu.base_url + ACCESS_PATH
    assert ok(httpx.get(url, params={"page": 1}))
    for _ in range(2):
        response = httpx.get(url, params={"page": 2})
        assert response.status_code == 502 and "<title>502 Bad Gateway</title>" in response.text
        assert response.headers["content-type"].startswith("text/html")
    assert httpx.get(url, params={"page": 2}).status_code == 200
    emu = emulator(DATA, faults=Faults(fail_pages={1: 1}, fail_status=500))
    assert_error(httpx.get(emu.base_url + ACCESS_PATH), 500, 10002)
    assert httpx.get(emu.base_url + ACCESS_PATH).status_code == 200


def test_malformed_first(emulator):
    emu = emulator(DATA, malformed_first=1)
    url = emu.base_url + ACCESS_PATH
    response = httpx.get(url)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert len(ok(httpx.get(url))) == 25


def test_cap_per_page_is_silent(emulator):
    emu = emulator(DATA, cap_per_page=7, result_info_access=True)
    base = emu.base_url
    params = {"limit": 1000, "per_page": 50, "direction": "asc"}
    response = httpx.get(base + ACCESS_PATH, params=params)
    assert rays(ok(response)) == rays(ACCESS[:7])
    assert response.json()["result_info"] == {"count": 7, "page": 1, "per_page": 50, "total_count": 60,
                                              "total_pages": 9}
    page9 = httpx.get(base + ACCESS_PATH, params={**params, "page": 9})
    assert rays(ok(page9)) == rays(ACCESS[56:])
    _, info = scim_ok(httpx.get(base + SCIM_PATH, params={"idp_id": ["idp-0", "idp-1"], "per_page": 1000}))
    assert (info["count"], info["per_page"], info["total_pages"]) == (7, 1000, 5)


@pytest.mark.parametrize("cap", [1, 20, 45])
def test_cap_limit_of_any_size_is_silent(emulator, cap):
    emu = emulator(DATA, cap_limit=cap)
    base = emu.base_url
    params = {"limit": 1000, "per_page": 1000, "direction": "asc"}
    assert rays(ok(httpx.get(base + ACCESS_PATH, params=params))) == rays(ACCESS[:cap])
    # Pages after the cut are empty, as if the data ended there.
    small = {"limit": 1000, "per_page": 10, "direction": "asc"}
    pages = [rays(ok(httpx.get(base + ACCESS_PATH, params={**small, "page": p}))) for p in range(1, 8)]
    assert [r for page in pages for r in page] == rays(ACCESS[:cap])
    # SCIM, with or without a limit: SCIM's documented default of 20 applied silently is cap=20.
    for extra in ({}, {"limit": 500}):
        records, info = scim_ok(httpx.get(base + SCIM_PATH, params={"idp_id": ["idp-0", "idp-1"], "per_page": 1000,
                                                                    "direction": "asc", **extra}))
        assert records == SCIM[: min(cap, 30)]
        assert (info["count"], info["total_count"], info["total_pages"]) == (min(cap, 30), min(cap, 30), 1)


def test_lie_total_pages_on_a_short_first_page(emulator):
    emu = emulator(DATA, cap_per_page=7, lie_total_pages=1)
    params = {"idp_id": ["idp-0", "idp-1"], "per_page": 10, "direction": "asc"}
    first, info = scim_ok(httpx.get(emu.base_url + SCIM_PATH, params=params))
    assert first == SCIM[:7]  # short of per_page 10...
    assert info == {"count": 7, "page": 1, "per_page": 10, "total_count": 30, "total_pages": 1}  # ...and "last"
    second, info = scim_ok(httpx.get(emu.base_url + SCIM_PATH, params={**params, "page": 2}))
    assert second == SCIM[7:14] and info["total_pages"] == 1  # while more pages exist
    empty, info = scim_ok(httpx.get(emu.base_url + SCIM_PATH, params={**params, "page": 6}))
    assert empty == [] and info["total_pages"] == 1


def test_forbidden_log_answers_403(emulator):
    emu = emulator(DATA, account_id=ACCOUNT, forbidden=frozenset({"scim_updates"}))
    assert_error(httpx.get(emu.base_url + SCIM_PATH, params={"idp_id": "idp-0"}), 403, 10000, "Authentication error")
    assert ok(httpx.get(emu.base_url + ACCESS_PATH))


def test_request_log_and_counter(emulator):
    emu = emulator(DATA)
    httpx.get(emu.base_url + ACCESS_PATH, params={"email": "a@b.c", "limit": 5})
    httpx.get(emu.base_url + "/nope")
    assert emu.requests_served == 2
    first, second = emu.requests
    assert first == ("/client/v4" + ACCESS_PATH, "email=a%40b.c&limit=5", 200)
    assert (second.path, second.status) == ("/client/v4/nope", 404)


# --- data, helpers, CLI ------------------------------------------------------------------------------------

def test_loads_a_data_directory_with_gzip_and_logpush(tmp_path, emulator):
    logpush = {"CreatedAt": T0 * 1000 + 5, "Email": "lp@example.com", "Allowed": False, "RayID": "lp1",
               "AppUUID": "uid-9", "Connection": "saml"}
    (tmp_path / "access_requests.ndjson.gz").write_bytes(
        gzip.compress("".join(json.dumps(r) + "\n" for r in [*ACCESS[1:3], logpush]).encode()))
    (tmp_path / "scim_updates.json").write_text(json.dumps({"success": True, "result": SCIM[:3]}))
    emu = emulator(tmp_path)
    got = ok(httpx.get(emu.base_url + "/accounts/a/access/logs/access_requests", params={"direction": "asc"}))
    assert rays(got) == ["lp1", "ray0001", "ray0002"] and got[0]["user_email"] == "lp@example.com"
    records, _ = scim_ok(httpx.get(emu.base_url + "/accounts/a/access/logs/scim/updates", params={"idp_id": "idp-0"}))
    assert records == [SCIM[2], SCIM[0]]


def test_single_unnamed_file_with_source(tmp_path, emulator):
    export = tmp_path / "20261101T000000Z_20261101T000500Z_abc.log.gz"
    export.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in ACCESS[:4]).encode()))
    with pytest.raises(DataError, match="pass --source"):
        emulator(export)
    emu = emulator(export, source="access_requests")
    assert rays(ok(httpx.get(emu.base_url + ACCESS_PATH))) == rays(ACCESS[3::-1])


def test_bad_data_is_a_data_error(tmp_path, emulator):
    (tmp_path / "access_requests.ndjson").write_text(json.dumps({**ACCESS[0], "created_at": "soon"}) + "\n")
    with pytest.raises(DataError, match=r"access_requests.ndjson:1: error: created_at 'soon'"):
        emulator(tmp_path)


def test_a_record_without_time_is_named_by_number_never_by_content(emulator):
    # Records hold personal data (e-mails, addresses): an error says where, not what.
    broken = {k: v for k, v in ACCESS[2].items() if k != "created_at"}
    with pytest.raises(ValueError, match=r"^access_requests record 3 has no valid created_at$") as raised:
        emulator({"access_requests": [*ACCESS[:2], broken]})
    assert broken["user_email"] not in str(raised.value) and broken["ip_address"] not in str(raised.value)


def test_cli_data_error_shows_no_record(tmp_path):
    (tmp_path / "access_requests.ndjson").write_text(
        json.dumps(ACCESS[0]) + "\n" + json.dumps({**ACCESS[1], "created_at": 17.5}) + "\n")
    result = subprocess.run([sys.executable, "-m", "auditor", "emulate", "--data", str(tmp_path), "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "access_requests.ndjson:2: error:" in result.stderr
    assert ACCESS[1]["user_email"] not in result.stderr and ACCESS[1]["ip_address"] not in result.stderr


def test_helpers():
    assert parse_fail_pages(["2:3", "5", "2:1"]) == {2: 4, 5: 1}
    with pytest.raises(ValueError, match="PAGE:TIMES"):
        parse_fail_pages(["x:1"])
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    with pytest.raises(ValueError, match="not a loopback address"):
        serve(Path("."), EmulatorSettings(host="0.0.0.0"))


def test_cli_serves_until_interrupted(tmp_path):
    (tmp_path / "access_requests.ndjson").write_text("".join(json.dumps(r) + "\n" for r in ACCESS))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "auditor", "emulate", "--data", str(tmp_path), "--port", "0", "--token", "tok-123",
           "--account", ACCOUNT, "--cap-per-page", "3", "--fail-page", "2:1", "--result-info", "--cap-limit", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("auditor emulator serving http://127.0.0.1:"), line + proc.stderr.read()
        base = line.split()[-1]
        headers = {"Authorization": "Bearer tok-123"}
        response = httpx.get(base + ACCESS_PATH, headers=headers)
        assert len(ok(response)) == 3 and response.json()["result_info"]["per_page"] == 25
        assert httpx.get(base + ACCESS_PATH, params={"page": 2}, headers=headers).status_code == 503
        # --cap-limit: at most 4 entries per query, whatever limit asks (page 2 now holds the 4th)
        capped = ok(httpx.get(base + ACCESS_PATH, params={"limit": 100, "page": 2}, headers=headers))
        assert len(capped) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "tok-123" not in out + err + line


def test_cli_strict_cap_limit_and_lying_total_pages(tmp_path):
    (tmp_path / "scim_updates.ndjson").write_text("".join(json.dumps(r) + "\n" for r in SCIM))
    cmd = [sys.executable, "-m", "auditor", "emulate", "--data", str(tmp_path), "--port", "0", "--cap-limit", "1",
           "--lie-total-pages", "1", "--strict"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith("auditor emulator serving "), line + proc.stderr.read()
        records, info = scim_ok(httpx.get(line.split()[-1] + SCIM_PATH, params={"idp_id": "idp-0", "limit": 100}))
        assert len(records) == 1 and info["total_pages"] == 1
        assert httpx.get(line.split()[-1] + ACCESS_PATH, params={"allowed": "true"}).status_code == 400  # --strict
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


# --- sockets: a burst of clients, and shutdown with idle keep-alive connections --------------------------

def test_the_listen_backlog_holds_every_expected_client():
    # Nobody accepts yet (the server is stopped): each connect completes in the kernel's queue, or it
    # would wait for a SYN retransmission (1 s, then 3 s) and time out.
    from auditor.testing.api import Api
    from auditor.testing.store import load_logs

    settings = EmulatorSettings(concurrency=64)
    server = ApiServer(("127.0.0.1", 0), Api(load_logs(DATA), settings), settings.concurrency)
    sockets = []
    try:
        for _ in range(64):
            sock = socket.create_connection(server.server_address[:2], timeout=0.9)
            sockets.append(sock)
        assert len(sockets) == 64
    finally:
        for sock in sockets:
            sock.close()
        server.server_close()


def test_64_concurrent_clients_are_all_answered(emulator):
    emu = emulator(DATA, account_id=ACCOUNT)
    barrier = threading.Barrier(64)

    def one(_: int) -> int:
        with httpx.Client(base_url=emu.base_url, timeout=30) as c:
            barrier.wait()
            return len(ok(c.get(ACCESS_PATH, params={"per_page": 5})))

    with ThreadPoolExecutor(64) as pool:
        assert list(pool.map(one, range(64))) == [5] * 64
    assert emu.requests_served == 64


def test_close_ends_idle_keep_alive_connections():
    emu = Emulator(DATA, EmulatorSettings(account_id=ACCOUNT))
    clients = [httpx.Client(base_url=emu.base_url, timeout=30) for _ in range(3)]
    try:
        for c in clients:
            ok(c.get(ACCESS_PATH))  # each leaves one idle keep-alive connection open
        handlers = [t for t in threading.enumerate() if t.name == HANDLER_THREAD]
        assert len(handlers) == 3
        emu.close()  # returns only once every handler thread has ended
        assert not any(t.is_alive() for t in handlers)
        with pytest.raises(httpx.TransportError):
            clients[0].get(ACCESS_PATH)
    finally:
        for c in clients:
            c.close()
        emu.close()
