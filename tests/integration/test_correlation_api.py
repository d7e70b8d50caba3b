"""Correlation rules over the live API source (the emulator over loopback HTTP): both fetches made and
shared, the `then` fetch scheduled after the `first` one, the same answer as over files, and an error in
either fetch making the rule `error`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from auditor.testing.emulator import ApiError
from tests.helpers import API_COVERS, access, scim
from tests.integration.test_api_source import (
    ACCOUNT,
    AT,
    TOKEN,
    at,
    cli,
    comparable,
    load,
    rule,
    run_args,
    statuses,
    token_env,
    write_data,
    write_rules,
)

IDP = "idp-0"




def leaver(rule_id: str = "leaver", **correlate: Any) -> dict[str, Any]:
    spec = {"first": {"source": "scim_updates", "filter": {"request_method": "DELETE", "resource_type": "USER"}},
            "then": {"source": "access_requests", "filter": {"allowed": True}},
            "join": {"resource_user_email": "user_email"}, **correlate}
    return {"id": rule_id, "title": f"rule {rule_id}", "source": "correlation", "window": "24h", "correlate": spec,
            "group_by": "user_email"}


def deleted(email: str, seconds_before_t: float, **fields: Any) -> dict[str, Any]:
    return scim(**{"request_method": "DELETE", "resource_type": "USER", "resource_user_email": email,
                   "logged_at": at(seconds_before_t), "idp_id": IDP, "request_body": "", **fields})


def signin(email: str, seconds_before_t: float, **fields: Any) -> dict[str, Any]:
    return access(**{"user_email": email, "created_at": at(seconds_before_t), "allowed": True,
                     "ray_id": f"r{int(seconds_before_t):07d}{len(email):02d}", **fields})


def sample(tmp_path: Path) -> Path:
    """Two leavers (one signs in afterwards, in another letter case), noise on both sides, 3 pages each at 7."""
    scim_rows = [deleted("Dana@Example.com", 20 * 3600), deleted("bob@example.com", 10 * 3600),
                 deleted("bob@example.com", 11 * 3600, request_method="PATCH", request_body="{}")]
    scim_rows += [scim(logged_at=at(600 * i + 7), idp_id=IDP, resource_user_email=f"u{i}@example.com",
                       request_method="PATCH") for i in range(18)]
    access_rows = [signin("dana@example.com", 21 * 3600),  # before the DELETE
                   signin("dana@example.com", 19 * 3600), signin("dana@example.com", 2 * 3600),  # after it
                   signin("bob@example.com", 9 * 3600, allowed=False)]  # denied
    access_rows += [signin(f"u{i}@example.com", 500 * i + 11) for i in range(15)]
    return write_data(tmp_path / "data", access_rows, scim_rows)


def with_neighbours() -> list[dict[str, Any]]:
    """The leaver rule beside an access rule and a SCIM rule that share its fetches."""
    return [leaver(), rule("signins", filter={"allowed": True}, expect={"count": {"min": 1}}),
            rule("deletes", "scim_updates", filter={"request_method": "DELETE"}, expect={"count": {"max": 5}})]


def both(root: Path, data: Path, emulator: Any, *extra: str) -> tuple[dict, dict, Any]:
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    over_api = cli([*run_args(root, *extra, results=root / "api.json", base=emu.base_url)], env=token_env())
    over_files = cli([*run_args(root, *extra, results=root / "files.json"), "--data", str(data),
                      "--data-covers", API_COVERS])
    assert over_api.exit_code == over_files.exit_code, over_api.stderr + over_files.stderr
    return load(root / "api.json"), load(root / "files.json"), emu


@pytest.mark.parametrize("per_page", ["1000", "7"])
def test_matches_across_both_sources_over_http(tmp_path, emulator, clock, per_page):
    data = sample(tmp_path)
    rules = with_neighbours()
    root = write_rules(tmp_path, rules, config=f"scim_idp_ids: [{IDP}]\n")
    api_doc, files_doc, emu = both(root, data, emulator, "--per-page", per_page)
    assert comparable(api_doc) == comparable(files_doc)
    assert statuses(api_doc) == {"leaver": "fail", "signins": "pass", "deletes": "pass"}
    result = next(r for r in api_doc["results"] if r["id"] == "leaver")
    assert result["source"] == "correlation"
    assert [(m["group"], m["value"]) for m in result["measurements"]] == [({"user_email": "dana@example.com"}, 2)]
    assert [(e["first"]["resource_user_email"], e["then"]["created_at"], e["delay_s"]) for e in result["evidence"]] == [
        ("Dana@Example.com", at(19 * 3600), 3600), ("Dana@Example.com", at(2 * 3600), 18 * 3600)]
    # two fetches in all, each shared with the other rule of its source; both endpoints asked
    paths = {q["path"].rsplit("/", 2)[-1] for q in api_doc["provenance"]["requests"]}
    assert paths == {"access_requests", "updates"}
    asked = [q for q in api_doc["provenance"]["requests"] if "direction=desc" not in q["query"]]  # not checks
    assert len({(q["path"], q["query"].split("&page=")[0]) for q in asked}) == 2
    # the `then` fetch starts after the `first` fetch is complete: the index is whole when sign-ins stream
    served = [r.path for r in emu.requests]
    last_scim = max(i for i, p in enumerate(served) if p.endswith("/scim/updates"))
    first_access = min(i for i, p in enumerate(served) if p.endswith("/access_requests"))
    assert last_scim < first_access


def test_plan_shows_the_two_fetches_and_sharing(tmp_path):
    rules = [leaver(), rule("signins", filter={"allowed": True}, expect={"count": {"min": 1}})]
    root = write_rules(tmp_path, rules, config=f"scim_idp_ids: [{IDP}]\n")
    args = ["plan", str(root / "rules"), "--config", str(root / "auditor.yaml"), "--at", AT]
    doc = json.loads(cli([*args, "--json"]).stdout)
    assert [(f["source"], f["rules"]) for f in doc["fetches"]] == [
        ("access_requests", ["leaver", "signins"]), ("scim_updates", ["leaver"])]
    entry = next(r for r in doc["rules"] if r["id"] == "leaver")
    assert {side: entry["correlate"][side]["fetch"] for side in ("first", "then")} == {
        "first": doc["fetches"][1]["key"], "then": doc["fetches"][0]["key"]}
    text = cli(args).stdout
    assert "rules (shared):" in text and "(correlation: then side)" in text and "(correlation: first side)" in text


def refusing(emu: Any, broken: str) -> Any:
    """The emulator, answering every request for `broken` with a 400 error."""
    page = emu.api._page

    def failing(source: str, params: Any, q: Any) -> bytes:
        if source == broken:
            raise ApiError(400, 12345, f"{source} refused in this test")
        return page(source, params, q)

    emu.api._page = failing
    return emu


@pytest.mark.parametrize("broken", ["scim_updates", "access_requests"])
def test_an_error_in_either_fetch_errors_the_rule(tmp_path, emulator, clock, broken):
    data = sample(tmp_path)
    rules = with_neighbours()
    root = write_rules(tmp_path, rules, config=f"scim_idp_ids: [{IDP}]\n")
    emu = refusing(emulator(data, account_id=ACCOUNT, token=TOKEN), broken)
    result = cli(run_args(root, base=emu.base_url), env=token_env())
    assert result.exit_code == 2, result.stderr
    doc = load(root / "results.json")
    expected = {"leaver": "error", "signins": "pass", "deletes": "pass"}
    expected["signins" if broken == "access_requests" else "deletes"] = "error"
    assert statuses(doc) == expected
    leaver_result = next(r for r in doc["results"] if r["id"] == "leaver")
    assert leaver_result["message"].startswith("rule not evaluated, data missing:")
    assert f"{broken} refused in this test" in leaver_result["message"]
    assert leaver_result["evidence"] == [] and leaver_result["measurements"] == []


def test_one_fetch_for_both_sides_and_crossed_dependencies(tmp_path, emulator, clock):
    """A SCIM->SCIM rule (one fetch feeds both sides) and two rules whose fetches depend on each other
    (scim -> access and access -> scim): then records arrive before their index is complete and are
    buffered; the answers are the files' answers."""
    data = sample(tmp_path)
    short_lived = leaver("short-lived", first={"source": "scim_updates", "filter": {"request_method": "PATCH"}},
                         then={"source": "scim_updates", "filter": {"request_method": "DELETE"}},
                         join={"resource_user_email": "resource_user_email"}, within="2h")
    short_lived["group_by"] = "resource_user_email"
    signed_in_then_deleted = leaver("signed-in-then-deleted", first={"source": "access_requests",
                                                                     "filter": {"allowed": True}},
                                    then={"source": "scim_updates", "filter": {"request_method": "DELETE"}},
                                    join={"user_email": "resource_user_email"})
    signed_in_then_deleted["group_by"] = "resource_user_email"
    rules = [leaver(), short_lived, signed_in_then_deleted]
    root = write_rules(tmp_path, rules, config=f"scim_idp_ids: [{IDP}]\n")
    plan = json.loads(cli(["plan", str(root / "rules"), "--config", str(root / "auditor.yaml"), "--at", AT,
                           "--json"]).stdout)
    sides = {r["id"]: {k: v["fetch"] for k, v in r["correlate"].items()} for r in plan["rules"]}
    assert len(plan["fetches"]) == 2  # each fetch is a first side of one rule and the then side of another
    assert sides["leaver"]["then"] == sides["signed-in-then-deleted"]["first"]
    assert sides["leaver"]["first"] == sides["signed-in-then-deleted"]["then"] == sides["short-lived"]["first"]
    api_doc, files_doc, _ = both(root, data, emulator, "--per-page", "5", "--concurrency", "3")
    assert comparable(api_doc) == comparable(files_doc)
    assert statuses(api_doc) == {"leaver": "fail", "short-lived": "fail", "signed-in-then-deleted": "fail"}
    crossed = next(r for r in api_doc["results"] if r["id"] == "signed-in-then-deleted")
    assert [m["group"] for m in crossed["measurements"]] == [{"resource_user_email": "Dana@Example.com"}]
    short = next(r for r in api_doc["results"] if r["id"] == "short-lived")
    assert short["violations"] == 1 and short["evidence"][0]["delay_s"] == 3600
    assert short["evidence"][0]["join"] == {"resource_user_email": "bob@example.com"}


def test_reports_over_the_api_show_both_sides(tmp_path, emulator, clock):
    data = sample(tmp_path)
    root = write_rules(tmp_path, [leaver(within="1d")], config=f"scim_idp_ids: [{IDP}]\n")
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    html, md = root / "report.html", root / "report.md"
    result = cli(run_args(root, "--report", f"html={html}", "--report", f"markdown={md}", base=emu.base_url),
                 env=token_env())
    assert result.exit_code == 1, result.stderr
    page = html.read_text(encoding="utf-8")
    assert "<th>First: scim_updates</th>" in page and "<th>Then: access_requests</th>" in page
    assert "<td class=\"num delay\">1h</td>" in page and "<dd>Dana@Example.com</dd>" in page
    text = md.read_text(encoding="utf-8")
    assert "| Join value | First: scim\\_updates | Then: access\\_requests | Delay |" in text
    assert "| 1h |" in text and "| 18h |" in text


def _access_queries(emu: Any) -> list[dict[str, str]]:
    return [dict(parse_qsl(r.query)) for r in emu.requests if r.path.endswith("/access_requests")]


def test_the_then_side_is_read_only_after_the_earliest_first_match(tmp_path, emulator, clock):
    """Over the API the `first` side is read, then the `then` side only from its earliest match on: the
    sign-ins before the first DELETE cannot match, so they are not asked for; the answer is the files'."""
    scim_rows = [deleted("dana@example.com", 5 * 3600 + 0.25), deleted("bob@example.com", 2 * 3600)]
    access_rows = [signin(f"u{i}@example.com", 1800 * i + 60) for i in range(48)]  # every 30 min over 24 h
    access_rows += [signin("dana@example.com", 4 * 3600), signin("dana@example.com", 6 * 3600)]
    data = write_data(tmp_path / "data", access_rows, scim_rows)
    root = write_rules(tmp_path, [leaver()], config=f"scim_idp_ids: [{IDP}]\n")
    api_doc, files_doc, emu = both(root, data, emulator)
    assert comparable(api_doc) == comparable(files_doc)
    result = api_doc["results"][0]
    assert result["status"] == "fail" and [m["value"] for m in result["measurements"]] == [1]
    # since: the earliest DELETE (a quarter second before T-5h) widened to its whole second, minus the
    # one-second pad every fetch has; until: the window's end plus the pad
    queries = _access_queries(emu)
    assert queries and {(q["since"], q["until"]) for q in queries} == {(at(5 * 3600 + 2), at(-1))}
    assert api_doc["summary"]["records_fetched"] < files_doc["summary"]["records_fetched"]
    assert "then: GET /client/v4/" in result["fetch"] and "since=" + at(5 * 3600 + 2).replace(":", "%3A") in \
        result["fetch"]


def test_no_first_match_means_no_then_request(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", [signin("dana@example.com", 3600)],
                      [scim(logged_at=at(7200), idp_id=IDP, request_method="PATCH", resource_user_email="x@e.com")])
    root = write_rules(tmp_path, [leaver()], config=f"scim_idp_ids: [{IDP}]\n")
    api_doc, files_doc, emu = both(root, data, emulator)
    assert comparable(api_doc) == comparable(files_doc)
    assert statuses(api_doc) == {"leaver": "pass"}
    assert _access_queries(emu) == []
    assert api_doc["results"][0]["fetch"].endswith("; then: not fetched (no first record matched)")


def test_within_bounds_the_then_side_on_both_ends(tmp_path, emulator, clock):
    scim_rows = [deleted("dana@example.com", 20 * 3600), deleted("bob@example.com", 10 * 3600)]
    access_rows = [signin("dana@example.com", 19.5 * 3600), signin("bob@example.com", 9.5 * 3600),
                   signin("bob@example.com", 3600)]  # more than an hour after bob's DELETE
    data = write_data(tmp_path / "data", access_rows, scim_rows)
    root = write_rules(tmp_path, [leaver(within="1h")], config=f"scim_idp_ids: [{IDP}]\n")
    api_doc, files_doc, emu = both(root, data, emulator)
    assert comparable(api_doc) == comparable(files_doc)
    assert [m["value"] for m in api_doc["results"][0]["measurements"]] == [1, 1]
    # from the earliest DELETE to an hour after the latest (rounded up to a second), each padded by 1 s
    assert {(q["since"], q["until"]) for q in _access_queries(emu)} == {(at(20 * 3600 + 1), at(9 * 3600 - 2))}


def test_a_failed_first_side_fetches_no_then_side(tmp_path, emulator, clock):
    data = sample(tmp_path)
    root = write_rules(tmp_path, [leaver()], config=f"scim_idp_ids: [{IDP}]\n")
    emu = refusing(emulator(data, account_id=ACCOUNT, token=TOKEN), "scim_updates")
    result = cli(run_args(root, base=emu.base_url), env=token_env())
    assert result.exit_code == 2, result.stderr
    doc = load(root / "results.json")
    assert statuses(doc) == {"leaver": "error"}
    assert _access_queries(emu) == []
    assert doc["results"][0]["fetch"].endswith("; then: not fetched (its first side failed)")


def test_a_saved_plan_runs_exactly_its_fetches(tmp_path, emulator, clock):
    """`run --plan` makes exactly the reviewed fetches: the `then` side is not re-planned (same answer)."""
    data = sample(tmp_path)
    root = write_rules(tmp_path, [leaver()], config=f"scim_idp_ids: [{IDP}]\n")
    saved = root / "plan.json"
    made = cli(["plan", str(root / "rules"), "--config", str(root / "auditor.yaml"), "--at", AT, "-o", str(saved)])
    assert made.exit_code == 0, made.stderr
    planned = {f["source"]: f["query"] for f in json.loads(saved.read_text())["fetches"]}
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    args = run_args(root, base=emu.base_url)
    at_index = args.index("--at")
    del args[at_index:at_index + 2]  # the saved plan fixes the reference time
    result = cli([*args, "--plan", str(saved)], env=token_env())
    assert result.exit_code == 1, result.stderr
    since = dict(parse_qsl(planned["access_requests"]))["since"]
    assert {q["since"] for q in _access_queries(emu)} == {since}  # the planned 24 h, not from the DELETE on
    narrowed = cli(run_args(root, base=emulator(data, account_id=ACCOUNT, token=TOKEN).base_url), env=token_env())
    assert narrowed.exit_code == 1
    doc = load(root / "results.json")
    then = doc["results"][0]["fetch"].split("; then: ")[1]
    assert "since=" in then and since.replace(":", "%3A") not in then  # without --plan: narrowed
