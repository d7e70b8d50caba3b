"""Hostile API servers (issue 14): each answer is a fetch error for its fetch only, never a crash or a hang,
and a credential a server echoes never reaches an output. Through the real CLI, against a tiny server on
loopback that answers the access log with the hostile answer and SCIM honestly.
"""

from __future__ import annotations

import functools
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from tests.helpers import access, scim
from tests.integration.test_api_source import (
    CONFIG,
    at,
    cli,
    load,
    rule,
    run_args,
    statuses,
    write_rules,
)
from tests.integration.tinyserver import Reply, slowly, tiny_server

RULES = [rule("signins", expect={"count": {"max": 5}}),  # access_requests: the hostile answer
         rule("changes", "scim_updates", expect={"count": {"min": 1}})]  # SCIM: answered honestly
SCIM = [scim(logged_at=at(600), idp_id="idp-0")]
TOKEN = "tok/FAKE+9=never&print"  # characters that URL-encoding changes
FORMS = (TOKEN, quote(TOKEN, safe=""), re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(TOKEN, safe="")),
         quote(TOKEN), quote_plus(TOKEN))


def envelope(records: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"success": True, "errors": [], "messages": [], "result": records, **extra}).encode()


def serve(hostile: Any) -> Any:
    """The access endpoint answered by `hostile(query, reply)`; SCIM honestly (one record, then empty)."""
    def handle(path: str, q: dict[str, list[str]], reply: Reply) -> None:
        if path.endswith("/access_requests"):
            hostile(q, reply)
            return
        reply.send(200, envelope(SCIM if q["page"] == ["1"] else []))
    return handle


def audit(tmp_path: Path, hostile: Any, config: str = "") -> tuple[Any, dict[str, Any], Any]:
    root = write_rules(tmp_path, RULES, config=CONFIG + config)
    with tiny_server(serve(hostile)) as server:
        result = cli(run_args(root, "--report", f"html={root / 'report.html'}", base=server.base_url),
                     env={"CLOUDFLARE_API_TOKEN": TOKEN})
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    doc = load(root / "results.json")
    assert (root / "report.html").read_text(encoding="utf-8")  # reports are written
    return result, doc, server


def only_access_fails(result: Any, doc: dict[str, Any]) -> str:
    """The access rule is `error`, the SCIM rule decided; the access rule's message."""
    assert result.exit_code == 2
    assert statuses(doc) == {"signins": "error", "changes": "pass"}
    return doc["results"][0]["message"]


def test_a_retry_after_that_is_not_ascii_digits_is_ignored_not_a_crash(tmp_path, clock):
    def hostile(q: dict[str, list[str]], reply: Reply) -> None:
        reply.send(429, b'{"success": false, "errors": [{"code": 971, "message": "slow down"}]}',
                   {"Retry-After": "\u00b2".encode().decode("latin-1")})

    result, doc, _ = audit(tmp_path, hostile)
    message = only_access_fails(result, doc)
    assert "429" in message and "gave up after 5 attempts" in message
    assert max(clock.sleeps) < 10  # the usual backoff, not a wait read from the header


def test_a_body_nested_100000_arrays_deep_is_a_fetch_error(tmp_path, clock):
    deep = b"[" * 100_000 + b"]" * 100_000

    def hostile(q: dict[str, list[str]], reply: Reply) -> None:
        reply.send(200, deep)

    message = only_access_fails(*audit(tmp_path, hostile)[:2])
    assert "nested too deeply" in message


@functools.cache
def gzip_bomb() -> bytes:
    """About 1 MB of gzip that inflates to 1 GiB of zeros. Each MiB is compressed once and ends in a full
    flush, which resets the compressor, so the same bytes repeated 1024 times are a valid stream."""
    block = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    # The trailer's CRC is left 0 (computing it over 1 GiB is slow): a reader stops long before it.
    return header + one * 1024 + packer.flush() + struct.pack("<II", 0, (1 << 30) & 0xFFFFFFFF)


def test_a_gzip_bomb_is_cut_off_at_the_body_cap(tmp_path, clock):
    bomb = gzip_bomb()
    assert len(bomb) < 1_100_000

    def hostile(q: dict[str, list[str]], reply: Reply) -> None:
        reply.send(200, bomb, {"Content-Encoding": "gzip"})

    message = only_access_fails(*audit(tmp_path, hostile)[:2])
    assert "larger than 32 MiB" in message


def test_a_server_trickling_one_byte_at_a_time_meets_the_request_deadline(tmp_path, clock):
    body = envelope([access(created_at=at(60), ray_id="r1")])

    def hostile(q: dict[str, list[str]], reply: Reply) -> None:
        reply.send(200, b"", {"Content-Length": str(len(body))}, chunks=slowly(body, 0.25))

    result, doc, _ = audit(tmp_path, hostile, config="request_deadline: 1\n")
    message = only_access_fails(result, doc)
    assert "longer than the 1 s deadline" in message and "gave up after 5 attempts" in message


def test_a_server_repeating_one_single_record_page_is_recognised_within_a_few_pages(tmp_path, clock):
    def hostile(q: dict[str, list[str]], reply: Reply) -> None:
        reply.send(200, envelope([access(created_at=at(60), ray_id="same")]))

    result, doc, server = audit(tmp_path, hostile)
    message = only_access_fails(result, doc)
    assert "ignore `page`" in message
    assert len([q for p, q in server.requests if p.endswith("/access_requests")]) <= 6


def test_a_token_echoed_plain_or_url_encoded_is_masked_everywhere(tmp_path, clock):
    # A server echoing the credential into error messages and record values, as it is and URL-encoded.
    newest_first = [access(created_at=at(60 + i), ray_id=f"r{i}", user_email=f"{form}@example.com", app_domain=form)
                    for i, form in enumerate(FORMS * 2)]

    def hostile(q: dict[str, list[str]], reply: Reply) -> None:
        ordered = newest_first if q["direction"] == ["desc"] else newest_first[::-1]
        reply.send(200, envelope(ordered[: int(q["limit"][0])] if q["page"] == ["1"] else []))

    root = write_rules(tmp_path, [{**RULES[0], "group_by": "user_email", "expect": {"count": {"max": 1}}}, RULES[1]],
                       config=CONFIG)
    with tiny_server(serve(hostile)) as server:
        outputs = root / "out"
        result = cli(run_args(root, *(f"--report={fmt}={outputs / fmt}" for fmt in ("html", "markdown", "csv",
                                                                                      "sarif", "junit")),
                              "--report", "text", base=server.base_url), env={"CLOUDFLARE_API_TOKEN": TOKEN})
    texts = [result.stdout, result.stderr, (root / "results.json").read_text(encoding="utf-8"),
             *(p.read_text(encoding="utf-8") for p in outputs.iterdir())]
    assert "[redacted]@example.com" in texts[2]  # the evidence shows the record, masked
    for text in texts:
        for form in FORMS:
            assert form not in text
