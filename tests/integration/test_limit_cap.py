"""Reaching `limit`, or a cap below it that the server applies silently, must never make a fetch look
complete, nor cost requests for records that already arrived.

The working model says `limit` caps the entries one query returns. If the real API applied a lower cap
without saying so, a query would return its first N records, then an empty page, and look complete.
auditor checks each part whose size nothing yet proves is below the cap, by reading the same range
newest first (docs/guarantees.md, "limit caps"); these tests show the answer stays exact or the rules
fail closed, and that an honest server costs few extra requests. An ascending answer cut at `limit` or at
a cap is kept up to the second of its last record and the range is read on from there (keyset
continuation): the request counts below are the pages the data needs, nothing fetched twice but the
records of the seconds at the cuts.
"""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from auditor.compile.plan import Fetch
from auditor.core.timeutil import parse_time
from auditor.sources.cloudflare import client as api
from tests.helpers import API_COVERS, access
from tests.integration.test_api_source import (
    ACCOUNT,
    TOKEN,
    S,
    T,
    VirtualClock,
    access_records,
    at,
    clean_env,
    cli,
    comparable,
    envelope,
    load,
    queries,
    rule,
    run_args,
    scripted,
    server,
    token_env,
    use_virtual_clock,
    write_data,
    write_rules,
)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Retries and rate limits cost no real time; no Cloudflare settings from the machine."""
    clean_env(monkeypatch)
    return use_virtual_clock(monkeypatch)

RULES = [
    rule("count-all", window="12h", expect={"count": {"max": 1}, "distinct": {"field": "ray_id", "max": 1}}),
    rule("denied-per-user", window="6h", filter={"allowed": False}, group_by="user_email",
         expect={"count": {"max": 3}}),
]


def spread(n: int, span_s: int = 3000, seed: int = 1) -> list[dict[str, Any]]:
    """n records at random times within the last span_s seconds before T (some share a second)."""
    rng = random.Random(seed)
    return [access(created_at=at(rng.randrange(5, span_s) + rng.random()), ray_id=f"s{i:05d}",
                   user_email=f"u{i % 9}@x.com", allowed=i % 3 == 0) for i in range(n)]


@pytest.mark.parametrize("result_info", [False, True])
def test_emulator_capping_limit_gives_the_files_answer(tmp_path, emulator, clock, result_info):
    data = write_data(tmp_path / "data", access_records(400, step_s=90), [])
    root = write_rules(tmp_path, RULES)
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN, cap_limit=50, result_info_access=result_info)
    over_api = cli(run_args(root, "--per-page", "20", base=emu.base_url, results=tmp_path / "api.json"),
                   env=token_env())
    over_files = cli(run_args(root, "--per-page", "20", "--data", str(data), "--data-covers", API_COVERS,
                              results=tmp_path / "files.json"))
    assert over_api.exit_code == over_files.exit_code == 1, over_api.stderr
    api_doc = load(tmp_path / "api.json")
    assert comparable(api_doc) == comparable(load(tmp_path / "files.json"))
    count = {m["expectation"]: m["value"] for m in api_doc["results"][0]["measurements"]}
    assert count == {"count": 400, "distinct": 400}  # 12 h of records every 90 s... all 400 of them
    assert any(q.get("direction") == ["desc"] for q in _all_queries(emu))  # the check that found the cut


def _all_queries(emu: Any) -> list[dict[str, list[str]]]:

    return [parse_qs(r.query) for r in emu.requests]


def test_an_honest_server_costs_one_check_per_source(tmp_path, emulator, clock):
    data = write_data(tmp_path / "data", access_records(300, step_s=100), [])
    root = write_rules(tmp_path, [rule("a", window="2h"), rule("b", window="4h"), rule("c", window="8h")])
    emu = emulator(data, account_id=ACCOUNT, token=TOKEN)
    result = cli(run_args(root, "--concurrency", "1", base=emu.base_url), env=token_env())
    assert result.exit_code == 1, result.stderr
    checks = [q for q in _all_queries(emu) if q.get("direction") == ["desc"]]
    # One fetch serves all three rules (the 8 h range contains the others): one check, one page.
    assert len(checks) == 1 and len(queries(emu)) == 2


def capped_server(records: list[dict[str, Any]], cap: int, order: str = "honest") -> Any:
    """since/until (inclusive), direction, limit capped at `cap`, page/per_page. order: `honest`; `asc`
    (direction ignored, always ascending); `desc` (always newest first); `shuffled` (a fixed arbitrary order)."""
    by_time = sorted(records, key=lambda r: r["created_at"])
    shuffled = {r["ray_id"]: random.Random(r["ray_id"]).random() for r in records}

    def handle(request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        since, until = parse_time(q["since"]), parse_time(q["until"])
        chosen = [r for r in by_time if since <= parse_time(r["created_at"]) <= until]
        newest_first = q.get("direction", "desc") == "desc"
        if order == "desc" or (order == "honest" and newest_first):
            chosen.reverse()
        elif order == "shuffled":
            chosen.sort(key=lambda r: shuffled[r["ray_id"]])
        chosen = chosen[: min(int(q["limit"]), cap)]
        size, page = int(q["per_page"]), int(q["page"])
        return envelope(chosen[(page - 1) * size: page * size])

    return handle


@pytest.mark.parametrize("order", ["honest", "asc", "desc", "shuffled"])
@pytest.mark.parametrize("cap", [25, 60, 10_000])
def test_a_silent_cap_never_loses_records_whatever_the_order(clock, order, cap):
    records = spread(333)
    parts, error, _ = scripted(capped_server(records, cap, order), limit=500, per_page=25)
    assert error is None, error
    rays = sorted(r["ray_id"] for p in parts for r in p)
    assert rays == sorted(r["ray_id"] for r in records)


@pytest.mark.parametrize("order", ["honest", "asc", "desc", "shuffled"])
@pytest.mark.parametrize("same_instant", [True, False])
def test_more_records_in_one_second_than_the_cap_is_an_error_not_a_pass(clock, order, same_instant):
    burst = [access(created_at=at(100 - (0 if same_instant else i / 100)), ray_id=f"b{i:03d}") for i in range(45)]
    _, error, _ = scripted(capped_server(burst + spread(40), cap=30, order=order), limit=500, per_page=10)
    assert error is not None
    assert "within 1 s" in str(error) or "cannot verify" in str(error)


@pytest.mark.parametrize("n", [1, 24])
def test_small_answers_are_checked_too_with_one_small_query(clock, n):
    # No size is assumed safe from a cap (a server may cap at 1 or 20): the answer is checked, asking newest
    # first only for one more entry than the held records of its last instant.
    tied = [access(created_at=at(100), ray_id=f"t{i:03d}") for i in range(n)]
    parts, error, client = scripted(capped_server(tied, cap=40), limit=500, per_page=10)
    assert error is None
    assert sorted(r["ray_id"] for p in parts for r in p) == sorted(r["ray_id"] for r in tied)
    checks = [parse_qs(r.query) for r in client.requests() if "direction=desc" in r.query]
    assert {c["limit"][0] for c in checks} == {str(n + 1)}  # one query, in pages of the fetch's per_page
    assert len(checks) == -(-(n + 1) // 10)


@pytest.mark.parametrize("order", ["honest", "asc"])
def test_records_sharing_one_instant_are_trusted_when_newest_first_lists_them_reversed(clock, order):
    # 30 records at one instant and nothing else. A server listing them in reverse when asked newest first
    # would have shown a record not held had it capped the answer: verified. A server listing them the same
    # way both times could hide the rest of the instant behind a cap of 30: not verifiable, an error. With
    # other records in the range (seconds apart), the check sees an older record after the held ones.
    tied = [access(created_at=at(100), ray_id=f"t{i:03d}") for i in range(30)]
    parts, error, _ = scripted(capped_server(tied, cap=40, order=order), limit=500, per_page=10)
    if order == "honest":
        assert error is None and len([r for p in parts for r in p]) == 30
    else:
        assert error is not None and "cannot verify" in str(error)
    others = [access(created_at=at(200 + i), ray_id=f"o{i:03d}") for i in range(40)]
    parts, error, _ = scripted(capped_server(tied + others, cap=400, order=order), limit=500, per_page=10)
    # Honest: the check sees the others newest first. Ignoring direction: the check cannot decide, the part is
    # split and each half, smaller than what the whole returned, is below any cap.
    assert error is None
    assert len([r for p in parts for r in p]) == 70


def test_a_cut_found_once_is_remembered_so_later_parts_split_early(clock):
    records = spread(600, span_s=3500, seed=4)
    parts, error, client = scripted(capped_server(records, cap=40), limit=1000, per_page=20, concurrency=1)
    assert error is None
    assert sorted(r["ray_id"] for p in parts for r in p) == sorted(r["ray_id"] for r in records)
    checks = [r for r in client.requests() if "direction=desc" in r.query]
    assert len(checks) <= 3  # the cap is learned from the first cut; later parts stop at it and continue


def test_an_empty_answer_needs_no_check(clock):
    parts, error, client = scripted(capped_server([], cap=5), limit=500)
    assert error is None and parts == [[]]
    assert len(client.requests()) == 1


@pytest.mark.parametrize("per_page", [1, 3])
def test_identical_records_on_consecutive_pages_are_not_a_server_ignoring_page(clock, per_page):
    # A burst of identical events (or of records alike in the projected fields) fills pages that repeat:
    # only a page whose first and last records differ can show that the server ignores `page`.
    same = [access(created_at=at(100), ray_id="same") for _ in range(7)]
    other = [access(created_at=at(200 + i), ray_id=f"o{i}") for i in range(3)]
    parts, error, _ = scripted(capped_server(same + other, cap=10_000), limit=500, per_page=per_page)
    assert error is None, error
    assert sorted(r["ray_id"] for p in parts for r in p) == sorted(r["ray_id"] for r in same + other)


# --- keyset continuation: an answer cut at `limit` or at a cap is kept, and the range read on from its end ---


def _stream(emu: Any, fetch: Fetch, concurrency: int = 4, *, per_page: int, limit: int
            ) -> tuple[list[list[dict]], api.ApiClient]:
    """Stream one fetch from the emulator with a fresh client asking per_page and limit; (parts, client)."""
    creds = api.credentials_from_env({"CLOUDFLARE_API_TOKEN": TOKEN})
    settings = api.ApiSettings(emu.base_url, ACCOUNT, creds, concurrency=concurrency, per_page=per_page, limit=limit)
    with api.ApiClient(settings) as client:
        return [records for _, records in client.stream(fetch, 0)], client


def _asked(client: api.ApiClient) -> list[tuple[dict[str, str], int]]:
    """(query, records answered) of every request, in plan order."""
    from urllib.parse import parse_qsl
    return [(dict(parse_qsl(r.query)), r.records) for r in client.requests()]


def _one_per_second(n: int, newest_s: int = 10) -> list[dict[str, Any]]:
    """n records one second apart, the newest newest_s seconds before T."""
    return [access(created_at=at(newest_s + i), ray_id=f"o{i:05d}") for i in range(n)]


@pytest.mark.parametrize("result_info", [False, True])
def test_a_fetch_past_limit_is_read_once_continuing_from_each_cut(emulator, clock, result_info):
    records = _one_per_second(2_500)  # T-2509s .. T-10s
    emu = emulator({"access_requests": records, "scim_updates": []}, account_id=ACCOUNT,
                   result_info_access=result_info)
    fetch = Fetch("access_requests", T - 3600 * S, T, ())
    parts, client = _stream(emu, fetch, per_page=100, limit=1_000)
    rays = [r["ray_id"] for p in parts for r in p]
    assert sorted(rays) == sorted(r["ray_id"] for r in records)  # every record, each once
    asked = _asked(client)
    # Three queries, each continuing one second before the second of the previous answer's last record:
    # [T-3600s ..] answers T-2509s .. T-1510s (limit), [T-1511s ..] answers T-1511s .. T-512s (limit),
    # [T-513s ..] answers the last 504. A query reaching `limit` needs its 10 pages and no more; the last
    # needs 6 pages, plus the empty 7th (result_info is a cross-check, never an end). No completeness
    # check: a query of the endpoint returned more.
    assert sorted({q["since"] for q, _ in asked}) == sorted({at(3600), at(1511), at(513)})
    assert {q["until"] for q, _ in asked} == {at(0)}  # one remainder each time, never a split by estimate
    assert all(q["direction"] == "asc" and int(q["page"]) <= 10 for q, _ in asked)
    assert len(asked) == 27
    assert sum(n for _, n in asked) == 2_504  # re-read: the record at each cut and the one before it


def test_a_silent_cap_is_continued_from_the_cut_not_fetched_again(emulator, clock):
    records = _one_per_second(600)  # T-609s .. T-10s
    emu = emulator({"access_requests": records, "scim_updates": []}, account_id=ACCOUNT, cap_limit=200)
    fetch = Fetch("access_requests", T - 3600 * S, T, ())
    parts, client = _stream(emu, fetch, per_page=50, limit=10_000)
    assert sorted(r["ray_id"] for p in parts for r in p) == sorted(r["ray_id"] for r in records)
    asked = _asked(client)
    checks = [q for q, _ in asked if q["direction"] == "desc"]
    ascending = [(q, n) for q, n in asked if q["direction"] == "asc"]
    # The first answer (200 records, 4 pages and an empty 5th) looks complete; one check newest first finds
    # the cut. Its records before T-410s are kept and the range is read on from T-411s; the cap, now known,
    # ends the next queries at their 4th page (no empty page, no check), and the last 6 records take 2.
    assert len(checks) == 1
    assert sorted({q["since"] for q, _ in ascending}) == sorted({at(3600), at(411), at(213), at(15)})
    assert {q["until"] for q, _ in ascending} == {at(0)}
    assert len(ascending) == 5 + 4 + 4 + 2
    assert sum(n for _, n in ascending) == 606


def test_an_answer_that_is_not_ascending_is_split_and_stays_complete(clock):
    # A server that ignores `direction` and answers newest first: no prefix of an answer proves anything,
    # so a query reaching `limit` is split by estimate (parts end inside the range), each part verified.
    records = spread(900, span_s=3000, seed=7)
    parts, error, client = scripted(capped_server(records, cap=10_000, order="desc"), limit=300, per_page=50)
    assert error is None, error
    assert sorted(r["ray_id"] for p in parts for r in p) == sorted(r["ray_id"] for r in records)
    untils = {q["until"] for q, _ in _asked(client)}
    assert len(untils) > 1  # parts cut by estimate, not one remainder after another


@pytest.mark.parametrize("inclusive", [True, False])
@pytest.mark.parametrize("same_instant", [True, False])
def test_many_records_in_the_second_of_a_cut_are_neither_lost_nor_doubled(clock, inclusive, same_instant):
    older = [access(created_at=at(201 + i), ray_id=f"a{i:03d}") for i in range(80)]  # T-280s .. T-201s
    # The second of T-200s, at one instant or spread over it (all with a fraction: these servers sort the text).
    burst = [access(created_at=at(200 - (0 if same_instant else (i + 1) / 100)), ray_id=f"b{i:03d}")
             for i in range(60)]
    newer = [access(created_at=at(199 - i), ray_id=f"c{i:03d}") for i in range(100)]  # T-199s .. T-100s
    records = older + burst + newer
    parts, error, client = scripted(server(records, inclusive=inclusive), limit=100, per_page=25)
    assert error is None, error
    rays = [r["ray_id"] for p in parts for r in p]
    assert sorted(rays) == sorted(r["ray_id"] for r in records)
    # The first answer ends inside the burst: the 80 older records are kept, and the next query, from
    # T-201s, reads the whole burst and 39 (or 40) newer records; the third reads the rest.
    asked = _asked(client)
    assert sorted({q["since"] for q, _ in asked}) == sorted({at(3600), at(201), at(162 if inclusive else 161)})
    assert len(asked) == 4 + 4 + 4


@pytest.mark.parametrize("result_info", [False, True])
def test_a_short_page_at_the_limit_page_still_ends_on_an_empty_page(emulator, clock, result_info):
    # 950 records, limit 1000, 100 per page: the 10th page (where `limit` would be reached) holds 50. That is
    # the end of the answer, but only the empty 11th page says so: a short page alone never, nor result_info.
    records = _one_per_second(950)
    emu = emulator({"access_requests": records, "scim_updates": []}, account_id=ACCOUNT,
                   result_info_access=result_info)
    parts, client = _stream(emu, Fetch("access_requests", T - 3600 * S, T, ()), per_page=100, limit=1_000)
    assert sorted(r["ray_id"] for p in parts for r in p) == sorted(r["ray_id"] for r in records)
    pages = [int(q["page"]) for q, _ in _asked(client) if q["direction"] == "asc"]
    assert sorted(pages) == list(range(1, 12))
