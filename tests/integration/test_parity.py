"""Parity: the same rules over the API (the emulator serving the files) and over the files themselves give
the same results JSON, except provenance, transport counters (requests, records read, duration) and the
source name. Pushdown, projection, splitting and paging may change what travels, never the answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import API_COVERS
from tests.integration.test_api_source import (
    ACCOUNT,
    TOKEN,
    access_records,
    cli,
    comparable,
    load,
    rule,
    scim_records,
    statuses,
    token_env,
    write_data,
    write_rules,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data"
SAMPLE_AT = "2026-11-15T00:00:00Z"

RULES = [
    rule("grouped", filter={"allowed": False, "user_email": {"not_contains": "@svc."}}, group_by="user_email",
         expect={"count": {"max": 3}}),
    rule("two-keys", filter={"app_uid": "uid-1"}, group_by=["user_email", "country"], evidence=2),
    rule("distinct", window="6h", filter={"allowed": True}, group_by="app_domain",
         expect={"distinct": {"field": "ip_address", "max": 10}}),
    rule("ratio", window="12h", filter={"app_domain": "app1.example.com"},
         expect={"ratio": {"where": {"allowed": True}, "min": 0.9}}),
    rule("cidr", filter={"ip_address": {"not_cidr": "198.51.100.0/28"}, "allowed": True},
         expect={"count": {"max": 500}}),
    rule("regex", filter={"user_email": {"matches": "^user[13]@"}, "connection": {"neq": "okta"}}),
    rule("missing-field", filter={"country": {"exists": False}}, expect={"count": {"max": 100}}),
    {**rule("absolute", since="2026-11-15T02:00:00Z", until="2026-11-15T09:30:00Z", filter={"ray_id": "ray00020"}),
     "window": None},
    rule("silence", window="30m", filter={"user_email": "nobody@example.com"}, expect={"count": {"min": 1}}),
    rule("scim-failures", "scim_updates", filter={"status": "FAILURE"}, group_by="idp_id",
         expect={"count": {"max": 2}}),
    rule("scim-deletes", "scim_updates", window="12h", filter={"request_method": "DELETE",
                                                                 "resource_type": "USER"}, evidence=3),
    rule("scim-heartbeat", "scim_updates", window="2h", group_by="idp_id",
         expect={"count": {"min": 1}}),
]



def _drop_none(rules: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if v is not None} for r in rules]


def _both(root: Path, data: Path, emulator, *extra: str, at: str | None = None,
          strict: bool = False) -> tuple[dict, dict]:
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN, strict=strict)
    args = [*extra, *(["--at", at] if at else [])]
    over_api = cli([*_args(root, root / "api.json"), "--api-base", emu.base_url, *args], env=token_env())
    over_files = cli([*_args(root, root / "files.json"), "--data", str(data), "--data-covers", API_COVERS, *args])
    assert over_api.exit_code == over_files.exit_code, over_api.stderr + over_files.stderr
    return load(root / "api.json"), load(root / "files.json")


def _args(root: Path, results: Path) -> list[str]:
    from tests.integration.test_api_source import run_args

    return run_args(root, "--quiet", results=results)


@pytest.mark.parametrize("per_page", ["1000", "7"])
def test_api_and_files_agree_on_varied_rules(tmp_path, emulator, clock, per_page):
    data = write_data(tmp_path / "data", access_records(200, step_s=400), scim_records(120, step_s=700))
    root = write_rules(tmp_path, _drop_none(RULES))
    api_doc, files_doc = _both(root, data, emulator, "--per-page", per_page)
    assert comparable(api_doc) == comparable(files_doc)
    assert {"pass", "fail"} <= set(statuses(api_doc).values())
    assert api_doc["source"] == "api" and files_doc["source"] == "files"
    assert api_doc["summary"]["api_requests"] == len(api_doc["provenance"]["requests"]) > 0
    assert files_doc["provenance"]["requests"] == []


@pytest.mark.skipif(not (SAMPLE / "access_requests.ndjson.gz").exists(), reason="sample data not generated")
def test_starter_pack_over_the_sample_data(tmp_path, emulator, clock):
    root = tmp_path
    (root / "rules").symlink_to(REPO / "rules")
    (root / "auditor.yaml").write_text((REPO / "auditor.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (root / "waivers.yaml").symlink_to(REPO / "waivers.yaml")  # auditor.yaml names it
    api_doc, files_doc = _both(root, SAMPLE, emulator, at=SAMPLE_AT)
    assert comparable(api_doc) == comparable(files_doc)
    assert set(statuses(api_doc).values()) == {"pass", "fail", "waived"}
    # Sharing and pushdown: far fewer requests than rules x pages; splitting kept every record. (The
    # correlation pack's leaver rule reads 30 days of allowed sign-ins, about 60 of these requests.)
    assert api_doc["summary"]["api_requests"] < 100


@pytest.mark.skipif(not (SAMPLE / "access_requests.ndjson.gz").exists(), reason="sample data not generated")
def test_starter_pack_against_the_strict_emulator(tmp_path, emulator, clock):
    # An API that answers like its published schema (400 for undeclared parameters and fields, SCIM's
    # default limit of 20, null result on empty pages, e-mail eq meaning equal): with default settings the
    # starter pack gets the files' answers; only the number of requests may differ.
    root = tmp_path
    (root / "rules").symlink_to(REPO / "rules")
    (root / "auditor.yaml").write_text((REPO / "auditor.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (root / "waivers.yaml").symlink_to(REPO / "waivers.yaml")
    assert "pushdown:" not in (root / "auditor.yaml").read_text(encoding="utf-8")  # the default scope
    api_doc, files_doc = _both(root, SAMPLE, emulator, at=SAMPLE_AT, strict=True)
    assert comparable(api_doc) == comparable(files_doc)
    assert set(statuses(api_doc).values()) == {"pass", "fail", "waived"}
    # The default sends only what the schema declares: the strict API refuses nothing, no fetch falls back.
    assert {r["status"] for r in api_doc["provenance"]["requests"]} == {200}
    assert not any("refused with 400" in r["fetch"] for r in api_doc["results"])
