"""The bundled sample data (examples/data): deterministic, well-formed, and holding every planted incident."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
import yaml

from auditor.core.timeutil import parse_time

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DATA = EXAMPLES / "data"
START = parse_time("2026-11-01T00:00:00Z")
END = parse_time("2026-11-15T00:00:00Z")
HOUR = 3600 * 1_000_000
OKTA = "4f6c1a2e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"
AZURE = "9d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f6a"

ACCESS_FIELDS = {"action", "allowed", "app_domain", "app_uid", "connection", "created_at", "ip_address",
                 "ray_id", "user_email"}
ACCESS_OPTIONAL = {"country", "app_type"}
SCIM_FIELDS = {"cf_resource_id", "error_description", "idp_id", "idp_resource_id", "logged_at",
               "request_body", "request_method", "resource_group_name", "resource_type",
               "resource_user_email", "status"}


def _generator():
    spec = importlib.util.spec_from_file_location("sample_generate", EXAMPLES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@cache
def access() -> list[dict]:
    with gzip.open(DATA / "access_requests.ndjson.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@cache
def scim_doc() -> dict:
    return json.loads((DATA / "scim_updates.json").read_text(encoding="utf-8"))


def scim() -> list[dict]:
    return scim_doc()["result"]


def t(text: str) -> int:
    return parse_time(text)


# --- generator --------------------------------------------------------------------------------


def test_generator_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    subprocess.run([sys.executable, str(EXAMPLES / "generate.py"), "--out", str(a), "--access", "400"],
                   check=True, capture_output=True)
    _generator().main(["--out", str(b), "--access", "400"])
    for name in ("access_requests.ndjson.gz", "scim_updates.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    with gzip.open(a / "access_requests.ndjson.gz", "rt") as f:
        lines = f.read().splitlines()
    assert len(lines) > 400  # baseline plus the planted incidents


def test_generator_seed_changes_output(tmp_path):
    gen = _generator()
    gen.main(["--out", str(tmp_path / "a"), "--access", "200", "--seed", "1"])
    gen.main(["--out", str(tmp_path / "b"), "--access", "200", "--seed", "2"])
    assert (tmp_path / "a" / "scim_updates.json").read_bytes() != (tmp_path / "b" / "scim_updates.json").read_bytes()


def test_generate_access_streams_exact_count_in_order():
    import random

    gen = _generator()
    start = t("2026-12-01T00:00:00Z")
    end = start + 3 * 24 * HOUR
    recs = list(gen.generate_access(2_000, random.Random(7), start, end))
    assert len(recs) == 2_000
    stamps = [t(r["created_at"]) for r in recs]
    assert stamps == sorted(stamps)
    assert start <= stamps[0] and stamps[-1] < end


def test_committed_data_matches_generator(tmp_path):
    """The committed files are what `python examples/generate.py` produces (compared uncompressed,
    since another zlib build may compress the same text to different bytes)."""
    _generator().main(["--out", str(tmp_path)])
    with gzip.open(tmp_path / "access_requests.ndjson.gz", "rb") as fresh, \
            gzip.open(DATA / "access_requests.ndjson.gz", "rb") as committed:
        assert fresh.read() == committed.read(), "examples/data is stale: run python examples/generate.py"
    assert (tmp_path / "scim_updates.json").read_bytes() == (DATA / "scim_updates.json").read_bytes()


# --- shape and volume -------------------------------------------------------------------------


def test_access_records_are_api_shaped():
    recs = access()
    assert 30_000 <= len(recs) <= 50_000
    assert (DATA / "access_requests.ndjson.gz").stat().st_size < 3_000_000
    for r in recs:
        assert ACCESS_FIELDS <= r.keys() <= ACCESS_FIELDS | ACCESS_OPTIONAL, r
        assert isinstance(r["allowed"], bool)
        assert len(r["ray_id"]) == 16 and int(r["ray_id"], 16) >= 0
        assert r["created_at"].endswith("Z") and "." in r["created_at"]
        assert START <= t(r["created_at"]) < END
        if "country" in r:
            assert len(r["country"]) == 2 and r["country"].isupper()
    assert len({r["ray_id"] for r in recs}) == len(recs)
    assert 8 <= len({r["app_uid"] for r in recs}) <= 12
    assert {r["action"] for r in recs} == {"login", "logout", "sso"}
    assert any(":" in r["ip_address"] for r in recs) and any("." in r["ip_address"] for r in recs)
    denied = sum(not r["allowed"] for r in recs) / len(recs)
    assert 0.02 <= denied <= 0.04


def test_access_volume_follows_the_week():
    per_day = Counter(r["created_at"][:10] for r in access())
    assert per_day["2026-11-04"] > 3 * per_day["2026-11-07"]  # Wednesday vs Saturday


def test_scim_envelope_and_records():
    doc = scim_doc()
    assert doc["success"] is True and doc["errors"] == [] and doc["messages"] == []
    recs = doc["result"]
    assert 1_000 <= len(recs) <= 3_000
    assert doc["result_info"]["total_count"] == len(recs)
    for r in recs:
        assert r.keys() == SCIM_FIELDS, r
        assert START <= t(r["logged_at"]) < END
        assert r["idp_id"] in (OKTA, AZURE)
        assert r["request_method"] in ("DELETE", "PATCH", "POST", "PUT")
        assert r["resource_type"] in ("USER", "GROUP")
        assert r["status"] in ("SUCCESS", "FAILURE")
        assert bool(r["error_description"]) == (r["status"] == "FAILURE")
        assert bool(r["resource_group_name"]) == (r["resource_type"] == "GROUP")
        if r["request_method"] == "DELETE":
            assert r["request_body"] == ""
        else:
            assert "schemas" in json.loads(r["request_body"])


def test_config_matches_sample_data():
    gen = _generator()
    config = yaml.safe_load((ROOT / "auditor.yaml").read_text(encoding="utf-8"))
    assert config["scim_idp_ids"] == [gen.OKTA_IDP_ID, gen.AZURE_IDP_ID] == [OKTA, AZURE]
    variables = config["variables"]
    assert variables["payroll_users"]["default"] == gen.PAYROLL_USERS
    assert variables["okta_idp_id"]["default"] == OKTA
    assert variables["azure_idp_id"]["default"] == AZURE
    assert all("description" in v and "default" in v for v in variables.values())
    # every baseline country is allowed; only the planted ones are not
    allowed = set(variables["allowed_countries"]["default"])
    seen = {r["country"] for r in access() if r["allowed"] and "country" in r}
    assert seen - allowed == {"RU", "KP"}


# --- planted incidents ------------------------------------------------------------------------


def test_password_spray():
    hits = [r for r in access() if r["ip_address"] == "192.0.2.77"]
    assert all(not r["allowed"] and r["action"] == "login" for r in hits)
    assert len(hits) >= 40
    assert len({r["user_email"] for r in hits}) >= 25
    times = sorted(t(r["created_at"]) for r in hits)
    assert times[-1] - times[0] < HOUR
    assert t("2026-11-14T00:00:00Z") <= times[0]


def test_signins_from_unexpected_countries():
    hits = Counter((r["user_email"], r["country"]) for r in access()
                   if r["allowed"] and r.get("country") in ("RU", "KP"))
    assert hits == {("priya.natarajan@example.com", "RU"): 3, ("sam.ortiz@example.com", "KP"): 1}
    assert all(r["created_at"].startswith("2026-11-14") for r in access() if r.get("country") in ("RU", "KP"))


def test_azure_scim_outage_after_failure_burst():
    azure = sorted(t(r["logged_at"]) for r in scim() if r["idp_id"] == AZURE)
    assert END - azure[-1] >= 36 * HOUR  # silent for the last 36 hours
    assert azure[-1] < t("2026-11-13T12:00:00Z")
    failures = [r for r in scim() if r["idp_id"] == AZURE and r["status"] == "FAILURE"
                and t(r["logged_at"]) >= t("2026-11-13T09:00:00Z")]
    assert len(failures) >= 20
    okta_last_day = [r for r in scim() if r["idp_id"] == OKTA and t(r["logged_at"]) >= END - 24 * HOUR]
    assert okta_last_day  # Okta keeps syncing


def test_mass_deprovisioning():
    deletes = sorted(t(r["logged_at"]) for r in scim() if r["idp_id"] == OKTA
                     and r["request_method"] == "DELETE" and r["resource_type"] == "USER"
                     and r["logged_at"].startswith("2026-11-14"))
    assert len(deletes) >= 30
    assert deletes[-1] - deletes[0] < HOUR
    other_days = Counter(r["logged_at"][:10] for r in scim()
                         if r["request_method"] == "DELETE" and not r["logged_at"].startswith("2026-11-14"))
    assert max(other_days.values()) <= 3


def test_deprovisioned_user_still_signs_in():
    deleted = {r["resource_user_email"]: t(r["logged_at"]) for r in scim()
               if r["request_method"] == "DELETE" and r["resource_type"] == "USER" and r["status"] == "SUCCESS"}
    assert deleted["dana.kowalski@example.com"] == t("2026-11-10T14:22:07Z")
    after = Counter(r["user_email"] for r in access()
                    if r["allowed"] and r["user_email"] in deleted and t(r["created_at"]) > deleted[r["user_email"]])
    assert after == {"dana.kowalski@example.com": 3}  # nobody else who was deleted signs in afterwards


def test_breakglass_used_once():
    hits = [r for r in access() if r["user_email"] == "breakglass@example.com"]
    assert len(hits) == 1
    assert hits[0]["created_at"].startswith("2026-11-09T03:12:45")
    assert hits[0]["allowed"] and hits[0]["app_domain"] == "admin.example.com"


def test_service_account_interactive_login():
    svc = [r for r in access() if r["user_email"].endswith("@svc.example.com")]
    assert len(svc) > 1_000
    interactive = [r for r in svc if r["connection"] != "service_token"]
    assert [(r["user_email"], r["connection"], r["app_domain"], r["created_at"][:10]) for r in interactive] == [
        ("ci-bot@svc.example.com", "okta", "admin.example.com", "2026-11-14")] * 2


def test_payroll_outside_finance():
    payroll_users = set(_generator().PAYROLL_USERS)
    outsiders = [r for r in access() if r["app_domain"] == "payroll.example.com" and r["allowed"]
                 and r["user_email"] not in payroll_users]
    assert [(r["user_email"], r["created_at"][:10]) for r in outsiders] == [
        ("jordan.miller@example.com", "2026-11-12"), ("jordan.miller@example.com", "2026-11-14")]


def test_admin_group_changes_are_older_than_a_day():
    changes = [r for r in scim() if r["resource_type"] == "GROUP" and "admin" in r["resource_group_name"].lower()]
    assert len(changes) == 4  # three routine ones and the engineer added to IT-Admins
    assert all(t(r["logged_at"]) < END - 24 * HOUR for r in changes)


def test_group_membership_changes_name_the_member():
    groups = [r for r in scim() if r["resource_type"] == "GROUP"]
    assert groups and all(r["resource_user_email"] in r["request_body"] for r in groups)


def test_admin_grant_used_within_minutes():
    grants = [r for r in scim() if r["resource_group_name"] == "IT-Admins" and '"op":"add"' in r["request_body"]
              and r["resource_user_email"] == "jordan.miller@example.com"]
    assert [r["logged_at"] for r in grants] == ["2026-11-13T22:47:31.204Z"]
    used = [r for r in access() if r["user_email"] == "jordan.miller@example.com"
            and r["app_domain"] == "admin.example.com"]
    assert [(r["created_at"][:19], r["allowed"], r["ip_address"]) for r in used] == [
        ("2026-11-13T22:58:05", True, "198.51.100.17")]
    # the routine grants are used, if at all, more than an hour later
    for r in scim():
        if "admin" in r["resource_group_name"].lower() and '"op":"add"' in r["request_body"] \
                and r["resource_user_email"] != "jordan.miller@example.com":
            later = [t(a["created_at"]) - t(r["logged_at"]) for a in access()
                     if a["user_email"] == r["resource_user_email"] and a["app_domain"] == "admin.example.com"
                     and t(a["created_at"]) > t(r["logged_at"])]
            assert not later or min(later) > HOUR


@pytest.mark.parametrize("rule_file", ["access.yaml", "scim.yaml", "hygiene.yaml", "correlation.yaml"])
def test_rule_files_point_at_schema(rule_file):
    first = (ROOT / "rules" / rule_file).read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/rules.schema.json"
