"""The live API source against the emulator over loopback HTTP (and a scripted server for odd behaviour):
parameter mapping, pagination, per_page caps, limit splitting, retries and fail-closed errors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from auditor.cli import app
from auditor.compile.plan import Fetch
from auditor.core.timeutil import format_time, parse_time
from auditor.sources.cloudflare import client as api
from auditor.sources.cloudflare.ratelimit import RateLimiter
from auditor.testing.emulator import ApiError
from tests.helpers import API_COVERS, access, scim, write, write_ndjson
from tests.integration.apitools import VirtualClock, clean_env, use_virtual_clock  # noqa: F401 (re-exported)

TOKEN = "tok-FAKE-7c1e9a5d3b-never-print"
EMAIL = "ops@example.com"
KEY = "key-FAKE-2b8f6e0c4a-never-print"
SECRETS = (TOKEN, KEY)
ACCOUNT = "0000000000000000000000000acc0123"
AT = "2026-11-15T12:00:00Z"
T = parse_time(AT)
S = 1_000_000
IDPS = ("idp-0", "idp-1")
CONFIG = f"scim_idp_ids: [{', '.join(IDPS)}]\n"




def at(seconds_before_t: float) -> str:
    """A timestamp this many seconds before the reference time."""
    return format_time(T - int(seconds_before_t * S))


def access_records(n: int = 144, step_s: int = 600) -> list[dict[str, Any]]:
    """Varied access records, one every `step_s` seconds back from T (most recent first)."""
    out = []
    for i in range(n):
        fields: dict[str, Any] = {
            "allowed": i % 3 != 0,
            "app_domain": f"app{i % 2}.example.com",
            "app_uid": f"uid-{i % 2}",
            "connection": "okta" if i % 4 == 0 else "saml",
            "created_at": at(step_s * i + 30),
            "ip_address": f"198.51.100.{i % 250}",
            "ray_id": f"ray{i:05d}",
            "user_email": f"user{i % 5}@{'svc.' if i % 5 == 4 else ''}example.com",
            "app_type": "ssh" if i % 6 == 0 else "self_hosted",
            "country": "DE" if i % 2 else "US",
        }
        if i % 7 == 0:
            del fields["country"]  # an optional field some records lack
        out.append(access(**fields))
    return out


def scim_records(n: int = 96, step_s: int = 900) -> list[dict[str, Any]]:
    """Varied SCIM records over the day before T."""
    return [scim(
        cf_resource_id=f"cf-{i % 3}",
        error_description="conflict" if i % 4 == 0 else None,
        idp_id=IDPS[i % 2],
        idp_resource_id=f"r-{i % 3}",
        logged_at=at(step_s * i + 45),
        request_method=("DELETE", "PATCH", "POST", "PUT")[i % 4],
        resource_group_name=f"G{i % 3}",
        resource_type="GROUP" if i % 5 == 0 else "USER",
        resource_user_email=f"u{i % 4}@example.com",
        status="FAILURE" if i % 4 == 0 else "SUCCESS",
    ) for i in range(n)]


def write_data(directory: Path, access_rows: Iterable[dict] = (), scim_rows: Iterable[dict] = ()) -> Path:
    """NDJSON files as `run --data` and the emulator read them."""
    write_ndjson(directory / "access_requests.ndjson", list(access_rows))
    write_ndjson(directory / "scim_updates.ndjson", list(scim_rows))
    return directory


def write_rules(root: Path, rules: list[dict[str, Any]], config: str = CONFIG) -> Path:
    """rules/rules.yaml and auditor.yaml under root; returns root."""
    write(root / "rules" / "rules.yaml", yaml.safe_dump({"rules": rules}, sort_keys=False))
    write(root / "auditor.yaml", config)
    return root


def rule(rule_id: str, source: str = "access_requests", **fields: Any) -> dict[str, Any]:
    """A rule mapping with defaults (window 24h, default expectation: no record may match)."""
    return {"id": rule_id, "title": f"rule {rule_id}", "source": source, "window": "24h", **fields}


def scim_rule(k: int, spec: dict[str, Any]) -> dict[str, Any]:
    """Stagger SCIM windows by k minutes so no range nests in another: the compiler then keeps one fetch
    per rule (nested SCIM fetches over the same IdPs would merge) and every parameter is sent."""
    spec = {key: value for key, value in spec.items() if key != "window"}
    return {**spec, "since": f"{24 * 60 + k}m", "until": f"{k}m"}


def cli(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Invoke the real CLI in-process."""
    return CliRunner().invoke(app.cli, args, env=env, catch_exceptions=False)


def run_args(root: Path, *extra: str, results: Path | None = None, base: str | None = None) -> list[str]:
    """`run` arguments for the project in root (explicit config: never the repo's auditor.yaml)."""
    args = ["run", str(root / "rules"), "--config", str(root / "auditor.yaml"), "--at", AT, "--account-id",
            ACCOUNT, "--no-progress", "--results", str(results or root / "results.json")]
    if base is not None:
        args += ["--api-base", base]
    return [*args, *extra]


def token_env(**extra: str) -> dict[str, str]:
    """The environment of an authenticated run."""
    return {"CLOUDFLARE_API_TOKEN": TOKEN, **extra}


def load(path: Path) -> dict[str, Any]:
    """A results JSON document."""
    return json.loads(path.read_text(encoding="utf-8"))


def statuses(document: dict[str, Any]) -> dict[str, str]:
    """rule id -> status."""
    return {r["id"]: r["status"] for r in document["results"]}


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """A results document without what legitimately differs between the API and files: provenance,
    counters of the transport (requests, records read, duration), the source name, how coverage was known,
    the API's warnings about windows beyond its retention, and each result's `fetch` (a run over the API
    names the queries it sent, re-planned once correlation `first` sides were read; a run over files names
    the planned ones)."""
    out = json.loads(json.dumps(document))
    out.pop("provenance")
    out.pop("source")
    for key in ("api_requests", "records_fetched", "duration_s"):
        out["summary"].pop(key)
    out.pop("coverage", None)  # what the API and the files cover is the same, but known differently
    # Said only over the API, before any request: a window reaching beyond what the API serves.
    out["warnings"] = [w for w in out["warnings"] if "decided only where more data could not change it" not in w]
    for result in out["results"]:
        result.pop("fetch")
        for log in result.get("coverage", {}).get("logs", []):
            log.pop("basis")
    return out


def queries(emu: Any, source: str = "access_requests") -> list[dict[str, list[str]]]:
    """Parsed query strings of the emulator's requests to one endpoint, without the client's completeness
    checks (the same query newest first, `direction=desc`: tests/integration/test_limit_cap.py)."""
    marker = "access_requests" if source == "access_requests" else "scim/updates"
    parsed = [parse_qs(r.query, keep_blank_values=True) for r in emu.requests if marker in r.path]
    return [q for q in parsed if q.get("direction") != ["desc"]]


def no_secrets(*texts: str) -> None:
    """Fail if any fake secret appears in any of the texts."""
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# --- parameter mapping ------------------------------------------------------------------------------

MAPPING_RULES = [
    rule("allowed-eq", filter={"allowed": False}, group_by="user_email", expect={"count": {"max": 8}}),
    rule("allowed-neq", filter={"allowed": {"neq": False}, "app_uid": "uid-0"}, expect={"count": {"max": 30}}),
    rule("app-uid-neq", filter={"app_uid": {"neq": "uid-0"}, "ray_id": {"contains": "1"}}),
    rule("ray-id", filter={"ray_id": "ray00003"}),
    rule("country-eq", filter={"country": "DE"}, expect={"distinct": {"field": "user_email", "max": 3}}),
    rule("country-neq", window="20h", filter={"country": {"neq": "DE"}}, expect={"count": {"max": 60}}),
    rule("app-type", filter={"app_type": "ssh"}, group_by="app_domain", expect={"count": {"max": 10}}),
    rule("email-eq", filter={"user_email": "user1@example.com"}, expect={"count": {"min": 1, "max": 40}}),
    rule("email-neq", window="23h", filter={"user_email": {"neq": "user1@example.com"}},
         expect={"ratio": {"where": {"allowed": True}, "min": 0.5}}),
    rule("email-contains", filter={"user_email": {"contains": "@svc."}}, group_by="connection"),
    rule("in-one", window="22h", filter={"app_uid": {"in": ["uid-1"]}}, expect={"count": {"max": 100}}),
    rule("not-in-one", window="21h", filter={"app_uid": {"not_in": ["uid-1"]}}, expect={"count": {"max": 100}}),
    rule("local-only", window="1h", filter={"connection": "okta"}, expect={"count": {"max": 5}}),
    *[scim_rule(k, r) for k, r in enumerate([
        rule("scim-status", "scim_updates", filter={"status": "FAILURE"}, group_by="idp_id",
             expect={"count": {"max": 5}}),
        rule("scim-idp-one", "scim_updates", filter={"idp_id": "idp-0"}, expect={"count": {"min": 1}}),
        rule("scim-methods", "scim_updates", filter={"request_method": ["DELETE", "PUT"]},
             expect={"count": {"max": 30}}),
        rule("scim-type", "scim_updates", filter={"resource_type": "GROUP"}, expect={"count": {"max": 30}}),
        rule("scim-user", "scim_updates", filter={"resource_user_email": "u1@example.com"}),
        rule("scim-group", "scim_updates", filter={"resource_group_name": ["G1", "G2"]},
             expect={"count": {"max": 99}}),
        rule("scim-cf", "scim_updates", filter={"cf_resource_id": "cf-1"}, expect={"count": {"max": 99}}),
        rule("scim-idp-res", "scim_updates", filter={"idp_resource_id": "r-2"}, expect={"count": {"max": 99}}),
    ])],
    rule("scim-all", "scim_updates", window="2h", expect={"count": {"min": 1}}),
]


def test_every_parameter_mapping_gives_the_files_answer(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", access_records(), scim_records())
    root = write_rules(tmp_path, MAPPING_RULES, config=CONFIG + "pushdown: all\n")  # every mapping is sent
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    plan = json.loads(cli(["plan", str(root / "rules"), "--config", str(root / "auditor.yaml"), "--at", AT,
                           "--account-id", ACCOUNT, "--json"]).stdout)
    over_api = cli(run_args(root, base=emu.base_url, results=tmp_path / "api.json"), env=token_env())
    over_files = cli(run_args(root, "--data", str(data), "--data-covers", API_COVERS, results=tmp_path / "files.json"))
    assert over_api.exit_code == over_files.exit_code == 1, over_api.stderr
    api_doc, files_doc = load(tmp_path / "api.json"), load(tmp_path / "files.json")
    assert comparable(api_doc) == comparable(files_doc)
    assert set(statuses(api_doc).values()) == {"pass", "fail"}
    # Every fetch of the plan was asked exactly as planned (page added), and nothing else was asked.
    sent = {tuple(kv for kv in parse_qsl(r.query, keep_blank_values=True) if kv[0] != "page") for r in emu.requests}
    planned = {tuple(parse_qsl(f["query"], keep_blank_values=True)) for f in plan["fetches"]}
    # Completeness checks: a planned query newest first, asking only a few entries (limit, per_page).
    checks = {q for q in sent if ("direction", "desc") in q}
    assert sent - checks == planned

    def shape(query: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        return tuple(kv for kv in query if kv[0] not in ("direction", "limit", "per_page"))

    assert {shape(q) for q in checks} <= {shape(q) for q in planned}
    text = " ".join(r.query for r in emu.requests)
    for pair in ("allowed=false&allowedOp=eq", "allowed=false&allowedOp=neq", "app_uid=uid-0&app_uidOp=neq",
                 "ray_id=ray00003&ray_idOp=eq", "country_code=DE&country_codeOp=eq", "country_codeOp=neq",
                 "app_type=ssh&app_typeOp=eq", "email=user1%40example.com&email_exact=true",
                 "email_exact=true&emailOp=neq", "email=%40svc.", "status=FAILURE", "idp_id=idp-0&idp_id=idp-1",
                 "request_method=DELETE&request_method=PUT", "resource_type=GROUP",
                 "resource_user_email=u1%40example.com", "resource_group_name=G1&resource_group_name=G2",
                 "cf_resource_id=cf-1", "idp_resource_id=r-2", "direction=asc", "limit=10000", "per_page=1000",
                 "fields=", "since=", "until="):
        assert pair in text, pair
    provenance = api_doc["provenance"]["requests"]
    assert len(provenance) == api_doc["summary"]["api_requests"] == len(emu.requests)
    assert all(p["status"] == 200 and len(p["sha256"]) == 64 for p in provenance)
    assert {p["path"] for p in provenance} == {f"/client/v4/accounts/{ACCOUNT}/access/logs/access_requests",
                                               f"/client/v4/accounts/{ACCOUNT}/access/logs/scim/updates"}


def test_stderr_names_the_auth_scheme_never_the_secret(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", access_records(10), scim_records(5))
    root = write_rules(tmp_path, [rule("a", filter={"allowed": False}), rule("s", "scim_updates")])
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN, email=EMAIL, api_key=KEY)
    both = cli(run_args(root, base=emu.base_url), env=token_env(CLOUDFLARE_EMAIL=EMAIL, CLOUDFLARE_API_KEY=KEY))
    assert both.exit_code == 1
    assert "CLOUDFLARE_API_TOKEN (Authorization: Bearer)" in both.stderr
    assert "CLOUDFLARE_EMAIL/CLOUDFLARE_API_KEY are also set and not used" in both.stderr
    key_only = cli(run_args(root, base=emu.base_url), env={"CLOUDFLARE_EMAIL": EMAIL, "CLOUDFLARE_API_KEY": KEY})
    assert key_only.exit_code == 1, key_only.stderr
    assert "CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY (X-Auth-Email/X-Auth-Key)" in key_only.stderr
    no_secrets(both.stdout, both.stderr, key_only.stdout, key_only.stderr)


# --- pagination ---------------------------------------------------------------------------------------

PAGING_RULES = [
    rule("all-access", expect={"count": {"max": 10}, "distinct": {"field": "ray_id", "min": 0}}),
    rule("all-scim", "scim_updates", expect={"count": {"max": 10}}),
]


def _paging_run(tmp_path: Path, emulator: Any, per_page: int, **faults: Any) -> tuple[Any, dict]:
    data = write_data(tmp_path / "data", access_records(130), scim_records(70))
    root = write_rules(tmp_path, PAGING_RULES)
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN, **faults)
    result = cli(run_args(root, "--per-page", str(per_page), base=emu.base_url), env=token_env())
    assert result.exit_code == 1, result.stderr
    doc = load(root / "results.json")
    value = {r["id"]: r["measurements"][0]["value"] for r in doc["results"]}
    assert value == {"all-access": 130, "all-scim": 70}
    return emu, doc


def test_pagination_without_result_info_ends_on_an_empty_page(tmp_path, emulator, clock):
    emu, _ = _paging_run(tmp_path, emulator, 20)
    pages = [(q["page"][0], q["per_page"][0]) for q in queries(emu)]
    assert sorted(int(p) for p, _ in pages) == list(range(1, 9))  # 7 pages of records, then the empty one
    assert {pp for _, pp in pages} == {"20"}
    scim_pages = sorted(int(q["page"][0]) for q in queries(emu, "scim_updates"))
    assert scim_pages == [1, 2, 3, 4, 5]  # result_info (SCIM) is a cross-check: the empty page still ends it


def test_pagination_with_result_info_still_ends_on_an_empty_page(tmp_path, emulator, clock):
    emu, _ = _paging_run(tmp_path, emulator, 20, result_info_access=True)
    assert sorted(int(q["page"][0]) for q in queries(emu)) == list(range(1, 9))


@pytest.mark.parametrize("result_info", [False, True])
def test_silent_per_page_cap_loses_nothing(tmp_path, emulator, clock, result_info):
    # Asked for 50 a page, the server gives 9: short pages must not end pagination.
    emu, _ = _paging_run(tmp_path, emulator, 50, cap_per_page=9, result_info_access=result_info)
    pages = sorted(int(q["page"][0]) for q in queries(emu))
    assert pages[:15] == list(range(1, 16))  # 130 records / 9 = 15 pages


def test_pages_are_fetched_concurrently_when_the_total_is_known(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", [], scim_records(80))
    root = write_rules(tmp_path, [PAGING_RULES[1]])
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    # Two later pages must be in flight at once: each waits at a barrier for the other (a sequential client
    # would break it). No timing is asserted; the speed-up is measured in benchmarks/concurrency.py.
    met: list[bool] = []
    admitted, lock, barrier, answer = [0], threading.Lock(), threading.Barrier(2, timeout=10), emu.api.handle

    def handle(target: str, headers: Any) -> Any:
        query = parse_qs(target.partition("?")[2])
        if "scim/updates" in target and query.get("page", ["1"]) != ["1"]:
            with lock:
                admitted[0] += 1
                waits = admitted[0] <= 2
            if waits:
                try:
                    barrier.wait()
                    met.append(True)
                except threading.BrokenBarrierError:
                    met.append(False)
        return answer(target, headers)

    emu.api.handle = handle
    result = cli(run_args(root, "--per-page", "10", "--concurrency", "4", base=emu.base_url), env=token_env())
    assert result.exit_code == 1, result.stderr
    assert len(queries(emu, "scim_updates")) == 9  # 8 pages and the empty one (and a check: test_limit_cap.py)
    assert met == [True, True]


# --- limit splitting ---------------------------------------------------------------------------------


def dense_records(n: int, per_second: int = 3, newest_s: int = 100) -> list[dict[str, Any]]:
    """n records at whole seconds, several per second: cuts land exactly on records."""
    return [access(created_at=at(newest_s + i // per_second), ray_id=f"d{i:06d}", user_email=f"u{i % 7}@x.com",
                   allowed=i % 2 == 0) for i in range(n)]


@pytest.mark.parametrize("result_info", [False, True])
def test_a_fetch_reaching_limit_is_split_and_counted_exactly_once(tmp_path, emulator, clock, result_info):
    records = dense_records(23_456)
    data = write_data(tmp_path / "data", records, [])
    root = write_rules(tmp_path, [
        rule("count-all", window="12h", expect={"count": {"max": 1}, "distinct": {"field": "ray_id", "max": 1}}),
        rule("denied", window="6h", filter={"allowed": False}, group_by="user_email", expect={"count": {"max": 1}}),
    ])
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN, result_info_access=result_info)
    result = cli(run_args(root, base=emu.base_url), env=token_env())
    assert result.exit_code == 1, result.stderr
    doc = load(root / "results.json")
    count_all = doc["results"][0]["measurements"]
    assert {m["expectation"]: m["value"] for m in count_all} == {"count": 23_456, "distinct": 23_456}
    windows = {(q["since"][0], q["until"][0]) for q in queries(emu)}
    assert len(windows) >= 3  # the whole range, then its parts
    over_files = cli(run_args(root, "--data", str(data), "--data-covers", API_COVERS, results=tmp_path / "files.json"))
    assert comparable(doc) == comparable(load(tmp_path / "files.json")), over_files.stderr


def test_parts_are_streamed_below_limit_each(tmp_path, emulator, clock):
    """Memory: the client hands over one verified part at a time, each smaller than `limit`."""
    emu = emulator({"access_requests": dense_records(2_345), "scim_updates": []}, account_id=ACCOUNT)
    fetch = Fetch("access_requests", T - 3600 * S, T, ())
    settings = api.ApiSettings(emu.base_url, ACCOUNT, api.credentials_from_env({"CLOUDFLARE_API_TOKEN": TOKEN}),
                               per_page=100, limit=500)
    with api.ApiClient(settings) as client:
        parts = [records for _, records in client.stream(fetch, 0)]
    assert len(parts) >= 5 and all(len(p) < 500 for p in parts)
    rays = [r["ray_id"] for p in parts for r in p]
    assert len(rays) == len(set(rays)) == 2_345


def test_limit_reached_within_one_second_is_an_error_for_that_fetch_only(tmp_path, emulator, clock):
    burst = [access(created_at=at(600), ray_id=f"b{i:05d}") for i in range(10_050)]
    data = write_data(tmp_path / "data", burst, scim_records(10))
    root = write_rules(tmp_path, [rule("burst", window="1h"), rule("scim", "scim_updates")])
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    result = cli(run_args(root, base=emu.base_url), env=token_env())
    assert result.exit_code == 2
    doc = load(root / "results.json")
    assert statuses(doc) == {"burst": "error", "scim": "fail"}
    message = doc["results"][0]["message"]
    assert "more than 10000 records within 1 s" in message and at(600) in message
    # The burst second is isolated: about 12 halvings from 1 h to 1 s (30-40 requests, as many pages are in
    # flight when a part turns out to be over the limit); halving on towards 1 us would add 20 more levels.
    assert doc["summary"]["api_requests"] < 50


# --- faults: recover or fail closed -----------------------------------------------------------------

FAULT_RULES = [rule("access", filter={"allowed": False}, expect={"count": {"max": 1000}}),
               rule("scim", "scim_updates", expect={"count": {"min": 1}})]


def _fault_run(tmp_path: Path, emulator: Any, *extra: str, rules: list[dict] = FAULT_RULES,
               **faults: Any) -> tuple[Any, Result, dict]:
    data = write_data(tmp_path / "data", access_records(60), scim_records(20))
    root = write_rules(tmp_path, rules)
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN, **faults)
    result = cli(run_args(root, *extra, "--report", f"html={root / 'r.html'}", base=emu.base_url),
                 env=token_env())
    no_secrets(result.stdout, result.stderr, *(p.read_text() for p in root.glob("r*.*")))
    return emu, result, load(root / "results.json")


def test_429_with_retry_after_is_honoured_and_recovers(tmp_path, emulator, clock):
    emu, result, doc = _fault_run(tmp_path, emulator, "--concurrency", "1", rate_limit_first=3, retry_after=7)
    assert result.exit_code == 0, result.stderr
    assert [s for s in clock.sleeps if s >= 7] and max(clock.sleeps) <= 7.5
    assert [r.status for r in emu.requests].count(429) == 3
    assert [p["status"] for p in doc["provenance"]["requests"]].count(429) == 3


def test_retry_after_beyond_the_bound_fails_closed(tmp_path, emulator, clock):
    _, result, doc = _fault_run(tmp_path, emulator, rate_limit_first=99, retry_after=600)
    assert result.exit_code == 2
    assert set(statuses(doc).values()) == {"error"}
    message = doc["results"][0]["message"]
    assert "429" in message and "600 s" in message and "300 s bound" in message and "--max-wait" in message
    assert not [s for s in clock.sleeps if s >= 100]


def test_a_five_minute_block_is_waited_out_with_a_countdown_unless_max_wait_is_lower(tmp_path, emulator, clock):
    # Cloudflare blocks a client over its quota for five minutes: a Retry-After of 299 s is honoured, and
    # said on stderr, since the run seems to hang otherwise. --max-wait lowers the bound.
    _, result, doc = _fault_run(tmp_path, emulator, "--concurrency", "1", rate_limit_first=1, retry_after=299)
    assert result.exit_code == 0, result.stderr
    assert 299 in clock.sleeps
    assert "Cloudflare rate limit: waiting 4m 59s (retry 1 of 4)" in result.stderr
    _, result, doc = _fault_run(tmp_path / "again", emulator, "--max-wait", "60", rate_limit_first=1,
                                retry_after=299)
    assert result.exit_code == 2  # whichever fetch's request met the 429 first errors, the other is decided
    assert len([r for r in doc["results"] if "more than the 60 s bound" in r["message"]]) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retried_with_backoff_and_recovers(tmp_path, emulator, clock, status):
    emu, result, _ = _fault_run(tmp_path, emulator, rules=FAULT_RULES[:1], fail_pages={1: 3}, fail_status=status)
    assert result.exit_code == 0, result.stderr
    assert [r.status for r in emu.requests] == [status] * 3 + [200, 200, 200]  # pages 1, 2 and the check
    assert clock.sleeps == [0.375, 0.75, 1.5]  # 0.5 s x 2^n, jitter factor 0.75 (random() = 0.5)


def test_5xx_that_persists_errors_only_the_rules_of_that_fetch(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", access_records(60), scim_records(20))
    root = write_rules(tmp_path, FAULT_RULES)
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    page = emu.api._page

    def failing(source: str, params: Any, q: Any) -> bytes:
        if source == "access_requests" and q.page == 2:  # the closing page of the access fetch, always
            raise ApiError(503, 10000, "Service Unavailable")
        return page(source, params, q)

    emu.api._page = failing
    result = cli(run_args(root, base=emu.base_url), env=token_env())
    doc = load(root / "results.json")
    assert result.exit_code == 2
    assert statuses(doc) == {"access": "error", "scim": "pass"}
    message = doc["results"][0]["message"]
    assert "page 2" in message and "503 Service Unavailable" in message and "gave up after 5 attempts" in message
    assert "access_requests records" in message


def test_malformed_body_is_retried_then_recovers(tmp_path, emulator, clock):
    emu, result, doc = _fault_run(tmp_path, emulator, malformed_first=2)
    assert result.exit_code == 0, result.stderr
    assert doc["summary"]["api_requests"] == len(emu.requests)


def test_malformed_bodies_fail_closed_never_an_empty_pass(tmp_path, emulator, clock):
    _, result, doc = _fault_run(tmp_path, emulator, malformed_first=1000)
    assert result.exit_code == 2
    assert set(statuses(doc).values()) == {"error"}
    assert all("body is not valid JSON" in r["message"] for r in doc["results"])


def test_wrong_token_is_one_error_line_not_one_per_rule(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", access_records(5), scim_records(5))
    root = write_rules(tmp_path, FAULT_RULES)
    emu = emulator(data, account_id=ACCOUNT, token="the-right-one")
    result = cli(run_args(root, base=emu.base_url), env=token_env())
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[1:] == [
        "error: the API refused the credentials: 401 Authentication error (10000); check CLOUDFLARE_API_TOKEN "
        "(current, complete, not revoked)"]
    assert not (root / "results.json").exists()  # nothing was decided
    assert len(emu.requests) <= 2  # 4xx is not retried; the other fetch may have been in flight
    no_secrets(result.stdout, result.stderr)


def test_wrong_key_names_the_key_variables(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", access_records(5), scim_records(5))
    root = write_rules(tmp_path, FAULT_RULES[:1])
    emu = emulator(data, account_id=ACCOUNT, email=EMAIL, api_key="another-key")
    result = cli(run_args(root, base=emu.base_url), env={"CLOUDFLARE_EMAIL": EMAIL, "CLOUDFLARE_API_KEY": KEY})
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "error: the API refused the credentials: 401 Authentication error (10000); check CLOUDFLARE_EMAIL and "
        "CLOUDFLARE_API_KEY (current, complete, not revoked)")
    no_secrets(result.stdout, result.stderr)


def test_wrong_account_is_a_clear_error(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", access_records(5), scim_records(5))
    root = write_rules(tmp_path, FAULT_RULES)
    emu = emulator(data, account_id="another-account", token=TOKEN)
    result = cli(run_args(root, base=emu.base_url), env=token_env())
    assert result.exit_code == 2
    message = load(root / "results.json")["results"][0]["message"]
    assert "404" in message and "(7003)" in message and f"check the account id '{ACCOUNT}'" in message


def test_connection_refused_is_retried_then_an_error(tmp_path, clock):
    root = write_rules(tmp_path, FAULT_RULES)
    with httpx.Client() as probe:  # a port nobody listens on
        del probe
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli(run_args(root, base=f"http://127.0.0.1:{port}/client/v4"), env=token_env())
    assert result.exit_code == 2
    doc = load(root / "results.json")
    assert all("connection failed (ConnectError" in r["message"] and "gave up after 5 attempts" in r["message"]
               for r in doc["results"])
    assert all(p["status"] is None and p["sha256"] is None for p in doc["provenance"]["requests"])
    no_secrets(result.stdout, result.stderr, json.dumps(doc))


# --- a scripted server for behaviour the emulator does not show ---------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def scripted(handler: Handler, *, limit: int = 10_000, per_page: int = 100, concurrency: int = 2,
             span_s: int = 3600) -> tuple[list[list[dict]], BaseException | None, api.ApiClient]:
    """Stream one access_requests fetch from a MockTransport; (parts, error, client)."""
    fetch = Fetch("access_requests", T - span_s * S, T, ())
    creds = api.credentials_from_env({"CLOUDFLARE_API_TOKEN": TOKEN})
    settings = api.ApiSettings("https://api.example.test/client/v4", ACCOUNT, creds, concurrency=concurrency,
                               per_page=per_page, limit=limit)
    client = api.ApiClient(settings, transport=httpx.MockTransport(handler))
    parts: list[list[dict]] = []
    error = None
    try:
        parts.extend(records for _, records in client.stream(fetch, 0))
    except api.FetchError as exc:
        error = exc
    finally:
        client.close()
    return parts, error, client


def envelope(records: list[dict], **extra: Any) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "errors": [], "messages": [], "result": records, **extra})


def server(records: list[dict], *, ordered: bool = True, inclusive: bool = True) -> Handler:
    """A minimal API over records: since/until, limit, page/per_page; asc order unless `ordered` is False."""
    def handle(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        since, until = parse_time(q["since"]), parse_time(q["until"])
        chosen = [r for r in records if (since <= parse_time(r["created_at"]) <= until if inclusive
                                         else since < parse_time(r["created_at"]) < until)]
        chosen.sort(key=lambda r: r["created_at"] if ordered else r["ray_id"][::-1])
        chosen = chosen[: int(q["limit"])]
        size, page = int(q["per_page"]), int(q["page"])
        return envelope(chosen[(page - 1) * size: page * size])

    return handle


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("inclusive", [True, False])
def test_splitting_needs_neither_ordering_nor_inclusive_bounds(clock, ordered, inclusive):
    records = dense_records(1_234, per_second=2)
    parts, error, _ = scripted(server(records, ordered=ordered, inclusive=inclusive), limit=300)
    assert error is None
    rays = sorted(r["ray_id"] for p in parts for r in p)
    assert rays == sorted(r["ray_id"] for r in records)


def test_a_server_ignoring_page_is_an_error_not_a_loop(clock):
    records = [access(created_at=at(i + 1), ray_id=f"r{i}") for i in range(100)]
    _, error, client = scripted(lambda request: envelope(records), per_page=100)
    assert error is not None and "ignore `page`" in str(error)
    assert len(client.requests()) <= 3


def test_records_after_an_empty_page_are_inconsistent(clock):
    def handle(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        records = [] if page == 2 else [access(created_at=at(600 - page), ray_id=f"p{page}-{i}") for i in range(100)]
        return envelope(records, result_info={"page": page, "total_pages": 3, "total_count": 300})

    _, error, client = scripted(handle, per_page=100)
    assert error is not None and "page 3 has records after the empty page 2" in str(error)
    # The announced pages and the one after them are asked at once; result_info only saves round trips.
    assert sorted(int(parse_qs(r.query)["page"][0]) for r in client.requests()) == [1, 2, 3, 4]


def test_total_count_larger_than_what_arrived_is_an_error(clock):
    def handle(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        records = [access(created_at=at(600 - page), ray_id=f"p{page}")] if page == 1 else []
        return envelope(records, result_info={"page": page, "total_pages": 1, "total_count": 5})

    _, error, _ = scripted(handle)
    assert error is not None and "announced 5 records (result_info.total_count) but pagination ended" in str(error)


@pytest.mark.parametrize(("body", "expected"), [
    (b"<html>oops</html>", "body is not valid JSON"),
    (b'{"result": []}', "not a Cloudflare API envelope"),
    (b'{"success": true, "result": {"a": 1}}', "result is an object, not a list"),
])
def test_bodies_that_are_not_the_envelope_are_errors(clock, body, expected):
    parts, error, client = scripted(lambda request: httpx.Response(200, content=body))
    assert parts == [] and error is not None and expected in str(error)
    assert len(client.requests()) == 5  # retried: usually a cut transfer


@pytest.mark.parametrize("body", [b'{"success": true, "errors": [], "result": null}', b'{"success": true}'])
def test_a_missing_or_null_result_is_an_empty_page(clock, body):
    # The schema does not require `result`; the official SDKs read a missing or null one as an empty list.
    parts, error, client = scripted(lambda request: httpx.Response(200, content=body))
    assert error is None and parts == [[]]
    assert len(client.requests()) == 1


@pytest.mark.parametrize(("result", "expected"), [
    ([42], "record 1 is a number, not an object"),
    ([{"created_at": "yesterday"}], "record 1 has an invalid created_at \"yesterday\""),
    ([{"user_email": "x"}], "record 1 has an invalid created_at null"),
])
def test_bad_records_are_errors(clock, result, expected):
    _, error, _ = scripted(lambda request: envelope(result))
    assert error is not None and expected in str(error)


def test_success_false_is_an_error_with_the_api_message(clock):
    body = {"success": False, "errors": [{"code": 1234, "message": "nope"}], "result": None}
    _, error, client = scripted(lambda request: httpx.Response(200, json=body))
    assert error is not None and "success=false: nope (1234)" in str(error)
    assert len(client.requests()) == 1


def test_a_server_echoing_the_token_is_scrubbed(clock):
    body = {"success": False, "errors": [{"code": 9109, "message": f"Invalid access token {TOKEN}"}]}
    _, error, _ = scripted(lambda request: httpx.Response(403, json=body))
    assert error is not None and "403 Invalid access token [redacted] (9109)" in str(error)
    no_secrets(str(error), repr(error))


def test_redirects_are_not_followed(clock):
    seen = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/steal"})

    _, error, _ = scripted(handle)
    assert error is not None and "302" in str(error) and "redirect" in str(error)
    assert all("elsewhere" not in url for url in seen)


def test_timeouts_are_retried(clock):
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= 2:
            raise httpx.ReadTimeout("slow", request=request)
        return envelope([])

    parts, error, client = scripted(handle)
    assert error is None and parts == [[]]
    assert [r.status for r in client.requests()] == [None, None, 200]


def test_retry_after_as_an_http_date(clock):
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
            return httpx.Response(429, headers={"Retry-After": when}, json={"success": False, "errors": []})
        return envelope([])

    _, error, _ = scripted(handle)
    assert error is None
    assert 25 <= max(clock.sleeps) <= 31


def test_a_request_sent_counts_against_the_limiter(clock):
    limiter = RateLimiter(((3, 10.0),), clock)
    waits = [limiter.acquire() for _ in range(7)]
    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] > 9 and sum(waits) >= 19


def test_default_limiter_stays_under_cloudflares_quota():
    assert all(count / span <= 1200 / 300 for count, span in api.DEFAULT_WINDOWS if span >= 300)
    assert dict((span, count) for count, span in api.DEFAULT_WINDOWS)[300.0] < 1200


def test_the_request_url_holds_the_plan_query(clock):
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return envelope([])

    scripted(handle)
    url = urlsplit(seen[0])
    assert url.path == f"/client/v4/accounts/{ACCOUNT}/access/logs/access_requests"
    assert parse_qs(url.query)["page"] == ["1"] and parse_qs(url.query)["limit"] == ["10000"]


def test_cancel_ends_a_long_retry_after_wait_at_once():
    """Ctrl-C during a 60 s Retry-After wait: the run stops now, not in a minute."""
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "60"}, json={"success": False, "errors": []})

    fetch = Fetch("access_requests", T - 3600 * S, T, ())
    creds = api.credentials_from_env({"CLOUDFLARE_API_TOKEN": TOKEN})
    settings = api.ApiSettings("https://api.example.test/client/v4", ACCOUNT, creds, per_page=100)
    client = api.ApiClient(settings, transport=httpx.MockTransport(handle), timing=api.Timing())
    threading.Timer(0.2, client.cancel).start()
    started = time.monotonic()
    with pytest.raises(api.FetchError, match="stopped before the fetch was complete"):
        list(client.stream(fetch, 0))
    client.close()
    assert time.monotonic() - started < 5
