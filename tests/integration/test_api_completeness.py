"""Completeness proven, not assumed (issue 12 item 5), through the real CLI against small servers on loopback.

Pagination ends only on an empty page; result_info is a cross-check whose disagreement is an error; a
server that silently returns fewer entries than `limit` asks is caught whatever its cap, by one small
newest-first query per fetch (docs/guarantees.md, section 1).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from auditor.core.timeutil import parse_time
from tests.helpers import scim
from tests.integration.test_api_source import at, cli, load, rule, run_args, statuses, token_env, write_rules
from tests.integration.tinyserver import Reply, tiny_server

RECORDS = [scim(logged_at=at(60 * (40 - i)), idp_id="idp-0", cf_resource_id=f"cf-{i}") for i in range(40)]
COUNT_RULE = rule("forty", "scim_updates", expect={"count": {"max": 39}})  # 40 records: fail


def records_server(*, cap: int | None = None, total_pages: int | None = None, total_count: int | None = None,
                   result_info: bool = True) -> Any:
    """A SCIM endpoint over RECORDS: since/until inclusive, direction (default desc), limit, page, per_page.
    `cap` silently bounds the entries of every query; `total_pages`/`total_count` replace the true totals."""
    by_time = sorted(RECORDS, key=lambda r: parse_time(r["logged_at"]))

    def handle(path: str, q: dict[str, list[str]], reply: Reply) -> None:
        since, until = parse_time(q["since"][0]), parse_time(q["until"][0])
        chosen = [r for r in by_time if since <= parse_time(r["logged_at"]) <= until]
        if q.get("direction", ["desc"])[0] == "desc":
            chosen.reverse()
        limit = int(q.get("limit", ["20"])[0])
        chosen = chosen[: min(limit, cap or limit)]
        size, page = int(q["per_page"][0]), int(q["page"][0])
        body: dict[str, Any] = {"success": True, "errors": [], "messages": [],
                                "result": chosen[(page - 1) * size: page * size]}
        if result_info:
            body["result_info"] = {"page": page, "per_page": size, "count": len(body["result"]),
                                   "total_count": len(chosen) if total_count is None else total_count,
                                   "total_pages": -(-len(chosen) // size) if total_pages is None else total_pages}
        reply.send(200, json.dumps(body).encode())

    return handle


def _run(tmp_path: Any, handler: Any, *extra: str) -> tuple[Any, dict[str, Any], list[dict[str, list[str]]]]:
    root = write_rules(tmp_path, [COUNT_RULE])
    with tiny_server(handler) as server:
        result = cli(run_args(root, "--per-page", "10", *extra, base=server.base_url), env=token_env())
        asked = [q for _, q in server.requests]
    return result, load(root / "results.json"), asked


def test_an_honest_server_gives_the_answer_with_one_small_check(tmp_path, clock):
    result, doc, asked = _run(tmp_path, records_server())
    assert result.exit_code == 1 and statuses(doc) == {"forty": "fail"}, result.stderr
    ascending = sorted(int(q["page"][0]) for q in asked if q["direction"] == ["asc"])
    checks = [q for q in asked if q["direction"] == ["desc"]]
    assert ascending == [1, 2, 3, 4, 5]  # four pages of records, then the empty page that ends the answer
    assert len(checks) == 1 and checks[0]["limit"] == ["2"]  # the newest record, and one more


@pytest.mark.parametrize("cap", [1, 20, 39])
def test_a_silent_cap_of_any_size_never_yields_a_pass(tmp_path, clock, cap):
    # SCIM documents a default `limit` of 20; a server applying it (or any cap) whatever `limit` asks would
    # answer its first `cap` records and an empty page: complete-looking. The newest-first check finds
    # the newest record missing; the answer is continued from the cut (or, with a cap of 1, cannot be).
    result, doc, _ = _run(tmp_path, records_server(cap=cap, result_info=False))
    assert statuses(doc)["forty"] in ("fail", "error"), result.stderr
    if cap > 1:
        assert result.exit_code == 1 and statuses(doc) == {"forty": "fail"}
        assert doc["results"][0]["measurements"][0]["value"] == 40
    else:
        assert result.exit_code == 2 and "within 1 s" in doc["results"][0]["message"]


def test_a_lying_total_pages_is_read_past_and_reported(tmp_path, clock):
    # result_info says 1 page on a short first page while the server holds 4: never believed. Pagination
    # goes on to the empty page, and the disagreement is a fetch error (the rule is `error`, never `pass`).
    result, doc, asked = _run(tmp_path, records_server(total_pages=1))
    assert result.exit_code == 2 and statuses(doc) == {"forty": "error"}
    assert "announced 1 pages (result_info.total_pages)" in doc["results"][0]["message"]
    assert sorted(int(q["page"][0]) for q in asked if q["direction"] == ["asc"]) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("announced", [39, 41])
def test_fewer_or_more_records_than_total_count_announced_is_an_error(tmp_path, clock, announced):
    result, doc, _ = _run(tmp_path, records_server(total_count=announced))
    assert result.exit_code == 2 and statuses(doc) == {"forty": "error"}
    assert f"announced {announced} records (result_info.total_count)" in doc["results"][0]["message"]
