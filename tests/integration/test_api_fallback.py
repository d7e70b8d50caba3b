"""A query the API refuses (400) because of a parameter it may not take is read again without it and
filtered locally (issue 13 item 2): the answers are the files' answers, only the requests differ."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pytest

from auditor.testing.emulator import ApiError
from tests.helpers import API_COVERS
from tests.integration.test_api_source import (
    ACCOUNT,
    CONFIG,
    TOKEN,
    access_records,
    cli,
    comparable,
    load,
    rule,
    run_args,
    scim_records,
    statuses,
    token_env,
    write_data,
    write_rules,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data"

RULES = [
    rule("denied", filter={"allowed": False}, group_by="user_email", expect={"count": {"max": 8}}),
    rule("by-country", filter={"country": {"in": ["DE"]}}, expect={"count": {"max": 5}}),
    rule("svc", filter={"user_email": {"contains": "@svc."}}, expect={"count": {"max": 99}}),
    rule("scim", "scim_updates", filter={"status": "FAILURE"}, expect={"count": {"max": 99}}),
]


def test_a_strict_server_refusing_undeclared_parameters_gives_the_files_answers(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", access_records(), scim_records())
    root = write_rules(tmp_path, RULES, config=CONFIG + "pushdown: all\n")  # sends what strict refuses
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN, strict=True)
    over_api = cli(run_args(root, base=emu.base_url, results=tmp_path / "api.json"), env=token_env())
    over_files = cli(run_args(root, "--data", str(data), "--data-covers", API_COVERS, results=tmp_path / "files.json"))
    assert over_api.exit_code == over_files.exit_code, over_api.stderr
    api_doc, files_doc = load(tmp_path / "api.json"), load(tmp_path / "files.json")
    assert comparable(api_doc) == comparable(files_doc)
    assert {"pass", "fail"} <= set(statuses(api_doc).values())
    # Said once on stderr for each set of parameters left out; the provenance lists the refused requests.
    lines = [line for line in over_api.stderr.splitlines() if "refused a query (400)" in line]
    assert lines and len(lines) == len(set(lines))
    refused = [r for r in api_doc["provenance"]["requests"] if r["status"] == 400]
    assert refused and all(r["records"] == 0 for r in refused)
    by_country = next(r for r in api_doc["results"] if r["id"] == "by-country")
    assert "country_code=DE" in by_country["fetch"] and "(refused with 400; read as GET " in by_country["fetch"]
    answered = [parse_qs(r["query"]) for r in api_doc["provenance"]["requests"] if r["status"] == 200]
    assert not any("allowed" in q or "country_code" in q or "fields" in q for q in answered)


def test_a_400_no_fallback_removes_is_the_error_naming_the_parameter(tmp_path, emulator, clock):
    # Only declared parameters are sent (pushdown: documented) and the server refuses one of them anyway:
    # nothing is left to drop, so the rule is `error` with the API's message.
    root = write_rules(tmp_path, [RULES[0]], config="pushdown: documented\n")
    emu = emulator(write_data(tmp_path / "data", access_records(), []), account_id=ACCOUNT, token=TOKEN)
    def refusing(source: str, params: object, q: object) -> bytes:
        raise ApiError(400, 10001, "per_page: not accepted here")

    emu.api._page = refusing
    result = cli(run_args(root, "--no-progress", base=emu.base_url), env=token_env())
    doc = load(root / "results.json")
    assert result.exit_code == 2 and statuses(doc) == {"denied": "error"}
    assert "per_page: not accepted here" in doc["results"][0]["message"]


@pytest.mark.skipif(not (SAMPLE / "access_requests.ndjson.gz").exists(), reason="sample data not generated")
def test_the_starter_pack_against_the_strict_emulator_gives_the_files_answers(tmp_path, emulator, clock):
    (tmp_path / "rules").symlink_to(REPO / "rules")
    (tmp_path / "auditor.yaml").write_text((REPO / "auditor.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "waivers.yaml").symlink_to(REPO / "waivers.yaml")
    emu = emulator(SAMPLE, account_id=ACCOUNT, token=TOKEN, strict=True)
    at = ["--at", "2026-11-15T00:00:00Z", "--quiet"]
    over_api = cli([*run_args(tmp_path, results=tmp_path / "api.json"), "--api-base", emu.base_url, *at],
                   env=token_env())
    over_files = cli([*run_args(tmp_path, results=tmp_path / "files.json"), "--data", str(SAMPLE),
                      "--data-covers", API_COVERS, *at])
    assert over_api.exit_code == over_files.exit_code, over_api.stderr
    assert comparable(load(tmp_path / "api.json")) == comparable(load(tmp_path / "files.json"))
