"""`auditor doctor` against the emulator over loopback: lenient (the working model) and strict (the published
schema), silent caps, a missing permission; the profile it writes and how plan and run read it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from auditor.core.timeutil import US, format_time, now_us, parse_time
from auditor.load.profile import UNDECLARED_PUSHDOWNS, ApiProfile, ProfileError, read_profile
from auditor.run.doctor import MAX_REQUESTS

# Retention is measured back from the clock, and runs without --at are at the clock: keep it real.
pytestmark = pytest.mark.real_clock

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "tok-doctor-5ecret"
NOW = now_us()
DAY = 86_400 * US


def access(i: int) -> dict:
    rec = {
        "action": "login",
        "allowed": i % 3 != 0,
        "app_domain": f"app{i % 2}.example.com",
        "app_uid": f"uid-{i % 4}",
        "app_type": "ssh" if i % 5 == 0 else "self_hosted",
        "connection": "okta" if i % 4 == 0 else "saml",
        "created_at": format_time(NOW - 50 * DAY + i * 2400 * US),  # 1500 records over 41.7 days
        "ip_address": f"198.51.100.{i % 250}",
        "ray_id": f"ray{i:05d}",
        "user_email": f"user{i % 7}@{'svc.' if i % 7 == 6 else ''}example.com",
    }
    if i % 9:
        rec["country"] = ("us", "de", "fr")[i % 3]  # lower case, as Logpush exports have it; some lack it
    return rec


def scim(i: int) -> dict:
    return {"cf_resource_id": f"cf-{i}", "idp_id": f"idp-{i % 2}", "idp_resource_id": f"r-{i}",
            "logged_at": format_time(NOW - 20 * DAY + i * 3600 * US), "request_method": "PATCH",
            "resource_type": "USER", "resource_user_email": f"u{i}@example.com", "status": "SUCCESS",
            "resource_group_name": None, "error_description": None, "request_body": "{}"}


DATA = {"access_requests": [access(i) for i in range(1500)], "scim_updates": [scim(i) for i in range(60)]}


def project(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "auditor.yaml").write_text(f"account_id: {ACCOUNT}\nscim_idp_ids: [idp-0, idp-1]\n{extra}")
    return tmp_path / "auditor.yaml"


def doctor(config: Path, base: str, *extra: str, token: str = TOKEN):
    env = {"CLOUDFLARE_API_TOKEN": token, "CLOUDFLARE_EMAIL": "", "CLOUDFLARE_API_KEY": "",
           "CLOUDFLARE_ACCOUNT_ID": "", "CLOUDFLARE_BASE_URL": ""}
    return CliRunner().invoke(cli, ["doctor", "--config", str(config), "--api-base", base, *extra], env=env)


def checks(result) -> dict[str, dict]:
    doc = json.loads(result.stdout)
    return {c["name"]: c for c in doc["checks"]}


def test_doctor_against_the_lenient_emulator_proves_every_pushdown(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN)
    result = doctor(project(tmp_path), emu.base_url, "--json")
    assert result.exit_code == 0, result.stderr
    found = checks(result)
    assert all(c["ok"] for c in found.values()), [c for c in found.values() if not c["ok"]]
    doc = json.loads(result.stdout)
    assert doc["requests"] == emu.requests_served <= MAX_REQUESTS
    profile = read_profile(tmp_path / ".auditor" / "api-profile.json")
    assert profile is not None and profile.account_id == ACCOUNT
    assert profile.proven() == frozenset(UNDECLARED_PUSHDOWNS)
    assert profile.retention_days("access_requests") == 50 and profile.retention_days("scim_updates") == 20
    assert profile.endpoints["access_requests"].per_page_honoured is True
    assert profile.endpoints["access_requests"].limit_cap is None
    assert (profile.country_present, profile.country_case) == (True, "lower")


def test_doctor_against_the_strict_emulator_proves_no_undeclared_pushdown(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN, strict=True)
    result = doctor(project(tmp_path), emu.base_url)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for name in UNDECLARED_PUSHDOWNS:
        assert f"✗ pushdown {name}: refused: 400" in text
    assert "fix: none needed: auditor does not send it and filters locally" in text
    assert "✓ access_requests: credential" in text and "✓ scim_updates: retention" in text
    assert "✓ access_requests: per_page 1000: honoured" in text
    assert f"requests (at most {MAX_REQUESTS}); API profile written to" in text
    profile = read_profile(tmp_path / ".auditor" / "api-profile.json")
    assert profile is not None and profile.proven() == frozenset()
    assert all(profile.pushdowns[name] is False for name in UNDECLARED_PUSHDOWNS)
    assert TOKEN not in text + result.stderr + (tmp_path / ".auditor" / "api-profile.json").read_text()


@pytest.mark.parametrize("cap", [1, 20, 999])
def test_doctor_finds_a_silent_limit_cap_of_any_size(tmp_path, emulator, cap):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN, cap_limit=cap)
    result = doctor(project(tmp_path), emu.base_url, "--json")
    found = checks(result)
    limit = found["access_requests: limit 10000"]
    assert not limit["ok"] and f"silently capped at {cap} entries" in limit["detail"]
    profile = read_profile(tmp_path / ".auditor" / "api-profile.json")
    assert profile is not None and profile.endpoints["access_requests"].limit_cap == cap
    assert profile.endpoints["scim_updates"].limit_cap == (cap if cap < 60 else None)  # 60 SCIM records
    # Pushdowns are compared over the part of the window the capped sample holds completely (its newest
    # seconds): a cap of 20 still proves them, a cap of 1 leaves nothing to compare.
    assert profile.proven() == (frozenset() if cap == 1 else frozenset(UNDECLARED_PUSHDOWNS))


def test_doctor_names_a_page_size_cap(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN, cap_per_page=100)
    found = checks(doctor(project(tmp_path), emu.base_url, "--json"))
    per_page = found["access_requests: per_page 1000"]
    assert not per_page["ok"] and "at most 100 records" in per_page["detail"] and "per_page: 100" in per_page["fix"]
    assert found["access_requests: limit 10000"]["ok"]


def test_doctor_names_the_missing_permission(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN, forbidden=frozenset({"scim_updates"}))
    result = doctor(project(tmp_path), emu.base_url)
    assert result.exit_code == 2
    assert "✗ scim_updates: credential: 403" in result.stdout
    assert "fix: give the API token the account permission Access: SCIM Logs Read" in result.stdout
    assert "✓ access_requests: credential" in result.stdout
    wrong = doctor(project(tmp_path), emu.base_url, token="not-the-token")
    assert wrong.exit_code == 2 and "Access: Audit Logs Read" in wrong.stdout and "not-the-token" not in wrong.stdout


def test_doctor_rate_limited_says_to_wait(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN, rate_limit_first=1)
    result = doctor(project(tmp_path), emu.base_url)
    assert result.exit_code == 2
    assert "✗ access_requests: credential: 429" in result.stdout and "fix: wait: Cloudflare blocks" in result.stdout
    assert "✓ scim_updates: credential" in result.stdout


def test_doctor_without_records_or_idps_says_what_it_could_not_prove(tmp_path, emulator):
    emu = emulator({"access_requests": [], "scim_updates": []}, account_id=ACCOUNT, token=TOKEN)
    config = tmp_path / "auditor.yaml"
    config.write_text(f"account_id: {ACCOUNT}\napi_profile: out/profile.json\n")
    result = doctor(config, emu.base_url, "--json")
    assert result.exit_code == 0, result.stderr
    found = checks(result)
    assert "no scim_idp_ids" in found["scim_updates"]["detail"]
    assert "no records" in found["access_requests: retention"]["detail"]
    assert all(not found[f"pushdown {n}"]["ok"] for n in UNDECLARED_PUSHDOWNS)
    profile = read_profile(tmp_path / "out" / "profile.json")  # api_profile: in auditor.yaml
    assert profile is not None and profile.proven() == frozenset() and profile.country_present is None


def test_profile_freshness_account_and_bad_files(tmp_path):
    profile = ApiProfile(account_id=ACCOUNT, api_base="x", measured_at=format_time(NOW - 31 * DAY), endpoints={})
    assert "31 days old" in (profile.usable(ACCOUNT, NOW) or "")
    fresh = ApiProfile(account_id=ACCOUNT, api_base="x", measured_at=format_time(NOW - 29 * DAY), endpoints={})
    assert fresh.usable(ACCOUNT, NOW) is None
    assert "measured on account" in (fresh.usable("other", NOW) or "")
    assert read_profile(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text('{"version": 1, "account_id": 3}')
    with pytest.raises(ProfileError, match=r"bad.json: not a usable API profile .*run `auditor doctor` again"):
        read_profile(tmp_path / "bad.json")


# --- plan and run read the profile ------------------------------------------------------------------------

def write_rule(root: Path) -> None:
    (root / "rules").mkdir(exist_ok=True)
    (root / "rules" / "denied.yaml").write_text(
        "rules:\n  - id: denied-signins\n    title: Denied sign-ins\n    source: access_requests\n    window: 10d\n"
        "    filter:\n      allowed: false\n    expect:\n      count:\n        max: 1000\n")


def plan_or_run(root: Path, command: str, base: str, *extra: str):
    env = {"CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_EMAIL": "", "CLOUDFLARE_API_KEY": "",
           "CLOUDFLARE_ACCOUNT_ID": "", "CLOUDFLARE_BASE_URL": ""}
    args = [command, str(root / "rules"), "--config", str(root / "auditor.yaml"), *extra]
    if command == "run":
        args += ["--api-base", base, "--quiet", "--no-progress", "--results", str(root / "results.json"),
                 "--at", format_time(NOW)]
    return CliRunner().invoke(cli, args, env=env)


def test_plan_pushes_down_what_the_profile_proved_and_says_so(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN)
    config = project(tmp_path, "pushdown: documented\n")
    write_rule(tmp_path)
    before = plan_or_run(tmp_path, "plan", emu.base_url)
    assert before.exit_code == 0, before.stderr
    assert "allowed=false" not in before.stdout and "rests on the profile" not in before.stdout
    assert doctor(config, emu.base_url).exit_code == 0
    after = plan_or_run(tmp_path, "plan", emu.base_url)
    assert "allowed=false" in after.stdout
    assert "pushdowns resting on the profile (undeclared by the API schema, proven on this account):" in after.stdout
    assert "  allowed: access_requests:" in after.stdout and "access_requests serves 50 days" in after.stdout
    doc = json.loads(plan_or_run(tmp_path, "plan", emu.base_url, "--json").stdout)
    assert set(doc["api_profile"]["pushdowns"]) == {"allowed", "fields=country"}  # country is evidence


def test_plan_never_sends_what_the_profile_disproved(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN, strict=True)
    config = project(tmp_path, "pushdown: all\n")  # would send allowed=false, which strict refuses
    write_rule(tmp_path)
    assert "allowed=false" in plan_or_run(tmp_path, "plan", emu.base_url).stdout
    assert doctor(config, emu.base_url).exit_code == 0
    plan = plan_or_run(tmp_path, "plan", emu.base_url)
    assert "allowed=false" not in plan.stdout and "no pushdown rests on the profile" in plan.stdout
    assert "fields:      (all fields)\n" in plan.stdout  # country is evidence, and fields=country was refused


def test_run_pushes_down_what_the_profile_proved(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN)
    config = project(tmp_path, "pushdown: documented\n")
    write_rule(tmp_path)
    assert doctor(config, emu.base_url).exit_code == 0
    served = emu.requests_served
    result = plan_or_run(tmp_path, "run", emu.base_url)
    assert result.exit_code == 0, result.stderr
    queries = [r.query for r in emu.requests[served:]]
    assert queries and all("allowed=false" in q and "fields=" in q for q in queries)
    doc = json.loads((tmp_path / "results.json").read_text())
    (only,) = doc["results"]
    expected = sum(1 for r in DATA["access_requests"] if r["allowed"] is False
                   and NOW - 10 * DAY <= parse_time(r["created_at"]) < NOW)
    assert only["status"] == "pass" and only["measurements"][0]["value"] == expected > 0
    # Coverage says what the account was measured to serve, not the configured retention_days.
    earliest = read_profile(tmp_path / ".auditor" / "api-profile.json").endpoints["access_requests"].earliest
    access_log = next(c for c in doc["coverage"] if c["log"] == "access_requests")
    assert access_log["basis"] == "profile" and access_log["covered"][0]["since"] == earliest
    assert only["coverage"]["logs"][0]["basis"] == "profile"


def test_run_over_the_strict_api_never_sends_what_the_profile_disproved(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN, strict=True)
    config = project(tmp_path, "pushdown: all\n")  # would send allowed=false, which strict refuses
    write_rule(tmp_path)
    assert doctor(config, emu.base_url).exit_code == 0
    plan = plan_or_run(tmp_path, "plan", emu.base_url)
    assert "allowed=false" not in plan.stdout and "no pushdown rests on the profile" in plan.stdout
    result = plan_or_run(tmp_path, "run", emu.base_url)
    assert result.exit_code == 0, result.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    (only,) = doc["results"]
    expected = sum(1 for r in DATA["access_requests"] if r["allowed"] is False
                   and NOW - 10 * DAY <= parse_time(r["created_at"]) < NOW)
    assert only["status"] == "pass" and only["measurements"][0]["value"] == expected > 0


def test_a_stale_profile_is_not_used(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN)
    project(tmp_path, "pushdown: documented\n")
    write_rule(tmp_path)
    path = tmp_path / ".auditor" / "api-profile.json"
    path.parent.mkdir()
    stale = ApiProfile(account_id=ACCOUNT, api_base=emu.base_url, measured_at=format_time(NOW - 40 * DAY),
                       endpoints={}, pushdowns=dict.fromkeys(UNDECLARED_PUSHDOWNS, True))
    path.write_text(json.dumps(stale.to_json()))
    result = plan_or_run(tmp_path, "plan", emu.base_url)
    assert result.exit_code == 0
    assert "API profile not used: it is 40 days old (at most 30); run `auditor doctor` again" in result.stderr
    assert "allowed=false" not in result.stdout


def test_doctor_reports_the_case_of_country_codes_and_run_sends_country_code_in_it(tmp_path, emulator):
    emu = emulator(DATA, account_id=ACCOUNT, token=TOKEN)  # lower-case codes, as Logpush exports have them
    config = project(tmp_path, "pushdown: documented\n")
    text = doctor(config, emu.base_url)
    assert ("✓ country codes: 889 of 1000 sample records carry country, in lower case; auditor reads them upper "
            "case and sends country_code lower case") in text.stdout
    found = checks(doctor(config, emu.base_url, "--json"))["country codes"]
    assert found["ok"] is True and "in lower case" in found["detail"]
    profile = read_profile(tmp_path / ".auditor" / "api-profile.json")
    assert profile is not None and (profile.country_present, profile.country_case) == (True, "lower")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "germany.yaml").write_text(
        "rules:\n  - id: from-germany\n    title: t\n    source: access_requests\n    window: 10d\n"
        "    filter:\n      country: DE\n")
    served = emu.requests_served
    result = plan_or_run(tmp_path, "run", emu.base_url)
    assert result.exit_code == 1, result.stderr
    queries = [r.query for r in emu.requests[served:]]
    assert queries and all("country_code=de&country_codeOp=eq" in q for q in queries)
    (only,) = json.loads((tmp_path / "results.json").read_text())["results"]
    expected = sum(1 for r in DATA["access_requests"] if r.get("country") == "de"
                   and NOW - 10 * DAY <= parse_time(r["created_at"]) < NOW)
    assert only["measurements"][0]["value"] == expected > 0
    assert only["evidence"] and {e["country"] for e in only["evidence"]} == {"DE"}
