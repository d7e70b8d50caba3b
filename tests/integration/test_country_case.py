"""Country codes are ISO 3166 alpha-2 codes read upper case from every source (Logpush exports write `us`):
through the CLI over files of each shape, both engines, `auditor test`'s inline records, and `validate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from tests.helpers import access, write, write_ndjson

AT = "2026-11-15T12:00:00Z"
COVERS = "2026-11-14T00:00:00Z/2026-11-16T00:00:00Z"
RULES = """\
rules:
  - id: allowed-countries
    title: Sign-ins only from allowed countries
    source: access_requests
    window: 24h
    filter:
      country: {exists: true, not_in: [US, DE]}
  - id: from-germany
    title: No sign-in from Germany
    source: access_requests
    window: 24h
    filter:
      country: DE
"""
CODES = ("us", "de", "Us")  # Logpush's lower case, and a mixed one


def _logpush(i: int, code: str) -> dict:
    return {"CreatedAt": f"2026-11-15T1{i}:00:00Z", "Email": f"u{i}@example.com", "Allowed": True, "Country": code,
            "Action": "login", "AppDomain": "app.example.com", "Connection": "saml", "IPAddress": "198.51.100.7",
            "RayID": f"ray{i}"}


def _write_data(folder: Path, shape: str) -> None:
    if shape == "logpush":
        write_ndjson(folder / "access_requests.ndjson", [_logpush(i, c) for i, c in enumerate(CODES)])
        return
    records = [access(created_at=f"2026-11-15T1{i}:00:00Z", user_email=f"u{i}@example.com", ray_id=f"ray{i}",
                      country=c) for i, c in enumerate(CODES)]
    if shape == "api-ndjson":
        write_ndjson(folder / "access_requests.ndjson", records)
    else:  # an API envelope, as saved from the API
        write(folder / "access_requests.json", json.dumps({"success": True, "result": records}))


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("shape", ["logpush", "api-ndjson", "api-json"])
def test_lower_case_country_codes_pass_an_upper_case_allow_list_and_show_upper_case(tmp_path, engine, shape):
    write(tmp_path / "rules.yaml", RULES)
    _write_data(tmp_path / "data", shape)
    out = tmp_path / "results.json"
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "rules.yaml"), "--data", str(tmp_path / "data"),
                                      "--engine", engine, "--at", AT, "--data-covers", COVERS, "--quiet",
                                      "--no-progress", "--results", str(out)])
    assert result.exit_code == 1, result.output + result.stderr
    by_id = {r["id"]: r for r in json.loads(out.read_text())["results"]}
    assert by_id["allowed-countries"]["status"] == "pass"
    germany = by_id["from-germany"]
    assert germany["status"] == "fail"
    assert [e["country"] for e in germany["evidence"]] == ["DE"]


def test_inline_records_of_auditor_test_are_read_upper_case(tmp_path):
    write(tmp_path / "rules.yaml", RULES.replace("      country: DE\n", """\
      country: DE
    tests:
      - name: a lower-case de is Germany
        expect: fail
        records:
          - {created_at: "2026-11-14T10:00:00Z", country: de}
      - name: a lower-case us is not
        expect: pass
        records:
          - {created_at: "2026-11-14T10:00:00Z", country: us}
"""))
    result = CliRunner().invoke(cli, ["test", str(tmp_path / "rules.yaml")])
    assert result.exit_code == 0, result.output + result.stderr


def test_a_lower_case_country_in_a_rule_is_a_located_error_saying_what_to_write(tmp_path):
    write(tmp_path / "rules.yaml", RULES.replace("not_in: [US, DE]", "not_in: [US, de]"))
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "rules.yaml")])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{tmp_path / 'rules.yaml'}:7:44: error: 'country' is never 'de': country codes (ISO 3166 alpha-2) are read "
        "upper case from every source; write 'DE'\n")
    as_json = CliRunner().invoke(cli, ["validate", str(tmp_path / "rules.yaml"), "--json"])
    assert [p["code"] for p in json.loads(as_json.stdout)["problems"]] == ["E313"]


def test_a_lower_case_country_in_a_waiver_match_is_an_error_too(tmp_path):
    write(tmp_path / "rules.yaml", RULES.replace("      country: DE\n", "      country: {exists: true}\n"
                                                                         "    group_by: country\n"))
    write(tmp_path / "waivers.yaml", """\
waivers:
  - rule: from-germany
    match: {country: de}
    justification: the Berlin office
    owner: it@example.com
    expires: 2026-12-15
""")
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "rules.yaml"), "--waivers",
                                      str(tmp_path / "waivers.yaml"), "--json"])
    assert result.exit_code == 2
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["code"] == "E313" and problem["hint"] == "write 'DE'" and problem["line"] == 3
