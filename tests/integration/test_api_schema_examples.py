"""Bodies shaped like the official schema's examples (tests/fixtures/cloudflare) replayed through the client
over loopback HTTP: records of both endpoints, errors, messages and result_info read as the schema says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auditor.compile.plan import Fetch, PushedFilter
from auditor.core.timeutil import parse_time
from auditor.sources.cloudflare import client as api
from tests.integration.apitools import VirtualClock
from tests.integration.tinyserver import Reply, tiny_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloudflare"
TOKEN = "tok-FAKE-schema-examples"
T = parse_time("2026-11-15T12:00:00Z")
HOUR = 3600 * 1_000_000
IDP = PushedFilter("idp_id", (("idp_id", "df7e2w5f-02b7-4d9d-af26-8d1988fca630"),), array=True)
FETCHES = {"access_requests": Fetch("access_requests", T - 12 * HOUR, T, ()),
           "scim_updates": Fetch("scim_updates", T - 12 * HOUR, T, (IDP,))}


def example(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def replay(source: str, first_page: dict[str, Any], status: int = 200) -> tuple[list[dict], Exception | None, Any]:
    """Stream the source's fetch from a server answering `first_page` to every page-1 query (the completeness
    check included) and an empty page after it; (records, error, requests)."""
    def handle(path: str, q: dict[str, list[str]], reply: Reply) -> None:
        if q["page"] == ["1"]:
            reply.send(status, json.dumps(first_page).encode())
        else:
            empty = {**first_page, "result": []}
            if "result_info" in empty:
                empty["result_info"] = {**empty["result_info"], "count": 0, "page": int(q["page"][0])}
            reply.send(200, json.dumps(empty).encode())

    with tiny_server(handle) as server:
        credentials = api.credentials_from_env({"CLOUDFLARE_API_TOKEN": TOKEN})
        settings = api.ApiSettings(server.base_url, "acc0123", credentials)
        records: list[dict] = []
        error = None
        with api.ApiClient(settings, timing=api.Timing(clock=VirtualClock(), random=lambda: 0.5)) as client:
            try:
                records = [r for _, part in client.stream(FETCHES[source], 0) for r in part]
            except api.FetchError as exc:
                error = exc
    return records, error, server.requests


@pytest.mark.parametrize("source", ["access_requests", "scim_updates"])
def test_the_schema_example_record_of_each_endpoint_is_read_whole(source):
    body = example(source)
    records, error, requests = replay(source, body)
    assert error is None and records == body["result"]  # every field kept, the 5-digit fraction parsed
    assert [q["direction"] for _, q in requests] == [["asc"], ["asc"], ["desc"]]  # pages 1, 2 (empty), check


def test_result_info_as_in_the_schema_example_is_cross_checked():
    # The schema's example result_info announces far more records than its one-record result: taken as
    # an answer, that disagreement is an error, never a silent pass on one record.
    body = example("scim_updates")
    body["result_info"] = {"count": 1, "page": 1, "per_page": 20, "total_count": 2000}
    _, error, _ = replay("scim_updates", body)
    assert error is not None and "announced 2000 records (result_info.total_count)" in str(error)


@pytest.mark.parametrize("source", ["access_requests", "scim_updates"])
def test_the_schema_4xx_error_body_names_the_message_and_code(source):
    _, error, requests = replay(source, example("error_4xx"), status=404)
    assert error is not None and "404 No route for the URI (7003)" in str(error)
    assert len(requests) == 1  # a client error is not retried


@pytest.mark.parametrize("result", [None, "absent"])
def test_a_schema_envelope_without_result_is_an_empty_page(result):
    body = example("access_requests")
    if result == "absent":
        del body["result"]
    else:
        body["result"] = None
    records, error, _ = replay("access_requests", body)
    assert error is None and records == []
