"""Hostile API servers, fuzzed: whatever a server on loopback answers (status, Retry-After, body shape and
depth, compression, a credential echoed in it), the client returns records or a FetchError for the fetch,
never another exception, and never the credential (docs/guarantees.md, section 9)."""

from __future__ import annotations

import gzip
import json
from typing import Any
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.compile.plan import Fetch
from auditor.core.timeutil import parse_time
from auditor.sources.cloudflare import client as api
from tests.integration.apitools import VirtualClock
from tests.integration.tinyserver import Reply, TinyServer
from tests.property.model import examples

TOKEN = "tok/FUZZ+1=never&print"
T = parse_time("2026-11-15T12:00:00Z")
FETCH = Fetch("access_requests", T - 3600 * 1_000_000, T, ())  # asked 5 per page, limit 50 (the settings)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def record(i: int, text: str) -> dict[str, Any]:
    return {"created_at": f"2026-11-15T11:{i % 60:02d}:00Z", "user_email": text, "ray_id": f"r{i}"}


bodies = st.one_of(
    st.binary(max_size=64),
    st.integers(1, 200_000).map(nested),
    st.lists(st.tuples(st.integers(0, 59), st.sampled_from(["a@x.com", TOKEN, quote(TOKEN, safe="")])),
             max_size=6).map(lambda rs: json.dumps({"success": True, "result": [record(i, t) for i, t in rs],
                                                     "errors": [{"message": TOKEN}]}).encode()),
    st.sampled_from([b'{"success": true}', b'{"success": true, "result": null}', b'{"success": false}']),
)
answers = st.tuples(st.sampled_from([200, 200, 200, 400, 429, 500, 503]),
                    st.one_of(st.none(), st.text(max_size=12)), bodies, st.booleans())


class Script:
    """What the server answers next: a hostile answer for every request."""

    answer: tuple[int, str | None, bytes, bool] = (200, None, b"", False)

    def __call__(self, path: str, q: dict[str, list[str]], reply: Reply) -> None:
        status, retry_after, body, compressed = self.answer
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after.encode("utf-8", "replace").decode("latin-1").replace("\n", " ")
        if compressed:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        reply.send(status, body, headers)


SCRIPT = Script()


@settings(max_examples=examples(25), deadline=None)
@given(answers)
def test_any_server_answer_is_records_or_a_fetch_error_and_never_shows_the_token(answer):
    SCRIPT.answer = answer
    with TinyServer(SCRIPT) as server:
        settings_ = api.ApiSettings(server.base_url, "acc0123",
                                    api.credentials_from_env({"CLOUDFLARE_API_TOKEN": TOKEN}), concurrency=2,
                                    per_page=5, limit=50)
        client = api.ApiClient(settings_, timing=api.Timing(clock=VirtualClock(), random=lambda: 0.5))
        with client:
            try:
                parts = [records for _, records in client.stream(FETCH, 0)]
            except api.FetchError as exc:
                text = str(exc)
            else:
                text = json.dumps(parts)
    for form in (TOKEN, quote(TOKEN, safe="")):
        assert form not in text
