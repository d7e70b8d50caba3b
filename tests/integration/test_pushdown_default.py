"""What a run sends by default (issue 13, "conservative by default") and source-neutral plans (issue 15):
the emulator over loopback HTTP records every query, the CLI runs through CliRunner.

- By default only parameters the published schema declares are sent; `fields` lists only declared record
  fields, and is left out when a rule needs an undeclared one (country).
- A pushdown an API profile proved is sent, and `plan` says it rests on the profile; `pushdown: all` opts in.
- A plan over files pushes nothing down and shows no API parameters.
- A saved plan of the old format, or one whose API profile changed since, is refused with one clear line.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl

from auditor.core.timeutil import format_time, now_us
from auditor.load.profile import ApiProfile
from tests.helpers import API_COVERS
from tests.integration.test_api_source import (
    ACCOUNT,
    AT,
    TOKEN,
    access_records,
    cli,
    load,
    rule,
    run_args,
    scim_records,
    token_env,
    write_data,
    write_rules,
)

UNDECLARED_VALUES = {"allowed", "country_code", "app_uid", "ray_id", "app_type"}
DECLARED_FIELDS = {"action", "allowed", "app_domain", "app_uid", "connection", "created_at", "ip_address", "ray_id",
                   "user_email"}
DENIED = rule("denied", filter={"allowed": False, "app_uid": "uid-1"}, group_by="user_email",
              expect={"count": {"max": 100}}, evidence=0)  # evidence shows country: none here
FOREIGN = rule("foreign", filter={"country": {"not_in": ["US"]}, "user_email": {"contains": "@example.com"}},
               expect={"count": {"max": 1000}})


def _sent(emu) -> list[list[tuple[str, str]]]:
    """The query parameters of every access_requests request the emulator received."""
    return [parse_qsl(r.query) for r in emu.requests if "access_requests" in r.path]


def _plan(root: Path, *extra: str, env: dict[str, str] | None = None):
    return cli(["plan", str(root / "rules"), "--config", str(root / "auditor.yaml"), "--at", AT, "--account-id",
                ACCOUNT, *extra], env=env or {})


def _profile(root: Path, **pushdowns: bool) -> None:
    """An API profile measured now on ACCOUNT, as `auditor doctor` writes it, proving or disproving these."""
    path = root / ".auditor" / "api-profile.json"
    path.parent.mkdir(exist_ok=True)
    profile = ApiProfile(account_id=ACCOUNT, api_base="http://127.0.0.1", measured_at=format_time(now_us()),
                         endpoints={}, pushdowns={k.replace("__", "="): v for k, v in pushdowns.items()})
    path.write_text(json.dumps(profile.to_json()), encoding="utf-8")


def test_a_default_run_sends_only_declared_parameters(tmp_path, emulator):
    data = write_data(tmp_path / "data", access_records(), scim_records())
    root = write_rules(tmp_path, [DENIED])
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    result = cli(run_args(root, "--quiet", base=emu.base_url), env=token_env())
    assert result.exit_code == 0, result.stderr
    sent = _sent(emu)
    assert sent and not any(k in UNDECLARED_VALUES for q in sent for k, _ in q)
    # `fields` still narrows the answer: it names only fields of the record schema.
    fields = {v for q in sent for k, v in q if k == "fields"}
    assert fields and all(set(f.split(",")) <= DECLARED_FIELDS for f in fields)
    over_files = cli(run_args(root, "--quiet", "--data", str(data), "--data-covers", API_COVERS,
                              results=tmp_path / "files.json"))
    assert over_files.exit_code == 0, over_files.stderr
    assert load(root / "results.json")["results"][0]["measurements"] == \
        load(tmp_path / "files.json")["results"][0]["measurements"]


def test_fields_is_not_sent_when_a_rule_needs_country(tmp_path, emulator):
    data = write_data(tmp_path / "data", access_records(), scim_records())
    root = write_rules(tmp_path, [FOREIGN])
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    result = cli(run_args(root, "--quiet", base=emu.base_url), env=token_env())
    assert result.exit_code in (0, 1), result.stderr
    sent = _sent(emu)
    assert sent and not any(k in {"fields", "country_code"} for q in sent for k, _ in q)
    # `contains` on the e-mail is sent, with its operator said explicitly.
    assert all(("emailOp", "contains") in q and ("email", "@example.com") in q for q in sent)
    plan = _plan(root)
    assert "fields:      (all fields)" in plan.stdout and "country_code" not in plan.stdout


def test_a_pushdown_the_profile_proved_is_sent_and_plan_says_it_rests_on_the_profile(tmp_path, emulator):
    data = write_data(tmp_path / "data", access_records(), scim_records())
    root = write_rules(tmp_path, [DENIED, FOREIGN])
    _profile(root, allowed=True, fields__country=True, app_uid=False)
    plan = _plan(root)
    assert plan.exit_code == 0, plan.stderr
    assert "allowed=false allowedOp=eq" in plan.stdout and "app_uid=" not in plan.stdout
    assert "proven by the API profile (undeclared by the API schema): allowed" in plan.stdout
    assert "pushdowns resting on the profile" in plan.stdout and "fields=country:" in plan.stdout
    document = json.loads(_plan(root, "--json").stdout)
    assert document["proven_pushdowns"] == ["allowed", "fields=country"]
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    result = cli(run_args(root, "--quiet", base=emu.base_url), env=token_env())
    assert result.exit_code in (0, 1), result.stderr
    sent = _sent(emu)
    assert any(("allowed", "false") in q for q in sent)
    assert not any(k == "app_uid" for q in sent for k, _ in q)  # disproved: never sent
    assert any(k == "fields" and "country" in v for q in sent for k, v in q)


def test_pushdown_all_is_an_explicit_opt_in(tmp_path, emulator):
    data = write_data(tmp_path / "data", access_records(), scim_records())
    root = write_rules(tmp_path, [DENIED], config="pushdown: all\n")
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    assert cli(run_args(root, "--quiet", base=emu.base_url), env=token_env()).exit_code == 0
    sent = _sent(emu)
    assert any(("allowed", "false") in q and ("app_uid", "uid-1") in q for q in sent)


def test_a_plan_over_files_pushes_nothing_and_shows_no_api_parameters(tmp_path):
    data = write_data(tmp_path / "data", access_records(), scim_records())
    root = write_rules(tmp_path, [DENIED, FOREIGN, rule("scim", "scim_updates", filter={"status": "FAILURE"})],
                       config="scim_idp_ids: [idp-0]\npushdown: all\n")
    text = _plan(root, "--data", str(data))
    assert text.exit_code == 0, text.stderr
    assert "over exported files: nothing pushed down" in text.stdout
    for api_word in ("api filters", "fields:", "allowedOp", "api:", "idp_id=", "GET "):
        assert api_word not in text.stdout
    assert "local: allowed eq false; app_uid eq \"uid-1\"" in text.stdout
    document = json.loads(_plan(root, "--data", str(data), "--json").stdout)
    assert document["backend"] == "files" and document["pushdown"] is None
    for fetch in document["fetches"]:
        assert "path" not in fetch and "query" not in fetch
        assert fetch["filters"] == [] and fetch["fields"] == []
    over_api = json.loads(_plan(root, "--json").stdout)
    assert all(f["path"].startswith("/client/v4/accounts/") and "per_page=1000" in f["query"]
               for f in over_api["fetches"])


def test_per_page_from_the_config_is_the_api_request_shape(tmp_path):
    root = write_rules(tmp_path, [DENIED], config="per_page: 200\n")
    (fetch,) = json.loads(_plan(root, "--json").stdout)["fetches"]
    assert ("per_page", "200") in parse_qsl(fetch["query"])


def test_a_saved_plan_of_the_old_format_is_refused_in_one_line(tmp_path):
    root = write_rules(tmp_path, [DENIED])
    saved = tmp_path / "plan.json"
    assert _plan(root, "-o", str(saved)).exit_code == 0
    document = json.loads(saved.read_text())
    # As saved before "format" existed: its format was its "version".
    saved.write_text(json.dumps({**{k: v for k, v in document.items() if k != "format"}, "version": 1}))
    result = cli(["run", "--plan", str(saved), "--config", str(root / "auditor.yaml"), "--account-id", ACCOUNT],
                 env=token_env())
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --plan {saved}: a saved plan of format 1, made by an older auditor (this one reads format 2); "
        f"make a new plan with: auditor plan -o {saved}")


def test_a_changed_api_profile_says_so_and_to_plan_again(tmp_path):
    root = write_rules(tmp_path, [DENIED])
    saved = tmp_path / "plan.json"
    _profile(root, allowed=True)
    assert _plan(root, "-o", str(saved)).exit_code == 0
    assert "allowed=false" in json.loads(saved.read_text())["fetches"][0]["query"]
    _profile(root, allowed=False)  # doctor ran again and found `allowed` wrong on this account
    result = cli(["run", "--plan", str(saved), "--config", str(root / "auditor.yaml"), "--account-id", ACCOUNT],
                 env=token_env())
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "the API profile changed since it was saved" in last and "another auditor version" not in last
    assert last.endswith(f"re-plan with: auditor plan -o {saved}")


def test_a_files_plan_is_not_run_over_the_api_and_an_api_plan_runs_over_files(tmp_path):
    data = write_data(tmp_path / "data", access_records(), scim_records())
    root = write_rules(tmp_path, [DENIED])
    saved = tmp_path / "plan.json"
    assert _plan(root, "--data", str(data), "-o", str(saved)).exit_code == 0
    result = cli(["run", "--plan", str(saved), "--config", str(root / "auditor.yaml"), "--account-id", ACCOUNT],
                 env=token_env())
    assert result.exit_code == 2
    assert f"{saved} was planned for exported files (plan --data), not the API" in result.stderr
    # The other way round the reviewed plan runs as saved: files ignore its filters, all is checked locally.
    assert _plan(root, "-o", str(saved)).exit_code == 0
    result = cli(["run", "--plan", str(saved), "--config", str(root / "auditor.yaml"), "--data", str(data),
                  "--data-covers", API_COVERS, "--quiet"])
    assert result.exit_code == 0, result.stderr
