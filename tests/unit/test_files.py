"""Offline file source: formats, Logpush, discovery, errors with file and line, bounded memory."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from auditor.core.timeutil import parse_time
from auditor.sources import files, jsondoc, reader
from auditor.sources.files import DataError, find_source_files, iter_records

A1 = {
    "action": "login",
    "allowed": True,
    "app_domain": "app.example.com/admin",
    "app_uid": "df7e2w5f-02b7-4d9d-af26-8d1988fca630",
    "connection": "saml",
    "created_at": "2026-11-01T05:20:00.12345Z",
    "ip_address": "198.41.129.166",
    "ray_id": "187d944c61940c77",
    "user_email": "user@example.com",
}
A2 = {**A1, "allowed": False, "created_at": "2026-11-01T06:00:00Z", "user_email": "b@example.com"}
S1 = {
    "cf_resource_id": "bd97ef8d",
    "idp_id": "idp-1",
    "logged_at": "2026-11-01T05:20:00Z",
    "request_method": "DELETE",
    "resource_type": "USER",
    "resource_user_email": "gone@example.com",
    "status": "SUCCESS",
}


def write(path: Path, text: str, gz: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def ndjson(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def read(path: Path, source: str = "access_requests", **kw) -> list[dict]:
    return list(iter_records(path, source, **kw))


def error_of(path: Path, source: str = "access_requests", **kw) -> DataError:
    with pytest.raises(DataError) as info:
        read(path, source, **kw)
    return info.value


# --- formats -------------------------------------------------------------------------------------

ENVELOPE_RESULT_FIRST = json.dumps({"result": [A1, A2], "success": True, "errors": [], "messages": []})
ENVELOPE_RESULT_LAST = json.dumps(
    {"success": True, "errors": [], "messages": [{"code": 1, "message": "hi"}],
     "result_info": {"page": 1, "count": 2}, "result": [A1, A2]},
    indent=2,
)
FORMATS = {
    "access_requests.json": json.dumps([A1, A2]),
    "access_requests-pretty.json": json.dumps([A1, A2], indent=4),
    "access_requests-envelope-first.json": ENVELOPE_RESULT_FIRST,
    "access_requests-envelope-last.json": ENVELOPE_RESULT_LAST,
    "access_requests.ndjson": ndjson(A1, A2),
    "access_requests-2026-11-01.jsonl": "\n" + ndjson(A1) + "   \n\n" + ndjson(A2) + "\n",
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_plain_and_gzip(tmp_path, name, gz):
    path = write(tmp_path / (name + (".gz" if gz else "")), FORMATS[name], gz)
    assert read(path) == [A1, A2]


def test_gzip_detected_by_magic_bytes_not_name(tmp_path):
    path = write(tmp_path / "access_requests.ndjson", ndjson(A1), gz=True)
    assert read(path) == [A1]


def test_content_sniffed_for_json_and_unknown_names(tmp_path):
    # NDJSON saved as .json, a one-line compact envelope, and a Logpush-style .log file.
    assert read(write(tmp_path / "a.json", ndjson(A1, A2))) == [A1, A2]
    assert read(write(tmp_path / "b.json", json.dumps({"success": True, "result": [A1]}))) == [A1]
    assert read(write(tmp_path / "c.log", ndjson(A1, A2), gz=True)) == [A1, A2]
    assert read(write(tmp_path / "d.txt", json.dumps([A2]))) == [A2]


def test_scim_records(tmp_path):
    assert read(write(tmp_path / "scim_updates.ndjson", ndjson(S1)), "scim_updates") == [S1]


def test_byte_order_mark_and_empty_files(tmp_path):
    bom = "\ufeff"
    assert read(write(tmp_path / "a.ndjson", bom + ndjson(A1))) == [A1]
    assert read(write(tmp_path / "a.json", bom + json.dumps([A1]))) == [A1]
    assert read(write(tmp_path / "empty.ndjson", "")) == []
    assert read(write(tmp_path / "empty.json", "  \n")) == []
    assert read(write(tmp_path / "list.json", "[ ]")) == []


def test_stdlib_decoder_gives_the_same_records(tmp_path, monkeypatch):
    path = write(tmp_path / "a.ndjson", ndjson(A1, A2) + '{"created_at": "2026-11-01T00:00:00Z", "n": NaN}\n')
    fast = read(path)
    monkeypatch.setattr(reader, "orjson", None)
    slow = read(path)
    assert json.dumps(fast) == json.dumps(slow)
    assert len(slow) == 3


# --- Logpush -------------------------------------------------------------------------------------

LOGPUSH = {
    "Action": "login", "Allowed": False, "AppDomain": "app.example.com", "AppUUID": "uuid-1",
    "Connection": "okta", "Country": "de", "Email": "x@example.com", "IPAddress": "2001:db8::1",
    "RayID": "7c1f", "PurposeJustificationPrompt": None, "UserUID": "u-1", "TemporaryAccessApprovers": [],
}


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2026-11-01T05:20:00Z", "2026-11-01T05:20:00Z"),
        (1793491200, "2026-11-01T00:00:00Z"),
        (1793491200123456789, "2026-11-01T00:00:00.123456Z"),
    ],
    ids=["rfc3339", "unix-seconds", "unix-nanoseconds"],
)
def test_logpush_names_and_timestamps(tmp_path, created, expected):
    path = write(tmp_path / "access_requests.ndjson.gz", ndjson({**LOGPUSH, "CreatedAt": created}), gz=True)
    (rec,) = read(path)
    assert rec == {
        "action": "login", "allowed": False, "app_domain": "app.example.com", "app_uid": "uuid-1",
        # Logpush writes country codes lower case ("de"); they are read upper case, as from every source
        "connection": "okta", "country": "DE", "user_email": "x@example.com", "ip_address": "2001:db8::1",
        "ray_id": "7c1f", "created_at": expected,
        # unknown Logpush fields keep their names
        "PurposeJustificationPrompt": None, "UserUID": "u-1", "TemporaryAccessApprovers": [],
    }


def test_logpush_in_a_json_list(tmp_path):
    (rec,) = read(write(tmp_path / "x.json", json.dumps([{**LOGPUSH, "CreatedAt": 1793491200}])))
    assert rec["created_at"] == "2026-11-01T00:00:00Z" and rec["user_email"] == "x@example.com"


def test_logpush_bad_created_at(tmp_path):
    err = error_of(write(tmp_path / "a.ndjson", ndjson({**LOGPUSH, "CreatedAt": True})))
    assert err.line == 1 and "created_at" in err.message


# --- errors with file and line -------------------------------------------------------------------

def test_data_error_is_one_line():
    assert str(DataError(Path("d/a.json"), 3, "bad\nthing")) == "d/a.json:3: error: bad thing"
    err = DataError(Path("d"), None, "missing")
    assert str(err) == "d: error: missing" and err.line is None and err.path == Path("d")


def test_invalid_json_line_number(tmp_path):
    path = write(tmp_path / "a.ndjson", ndjson(A1) + "\n" + '{"created_at": "x",}\n' + ndjson(A2))
    err = error_of(path)
    assert (err.path, err.line) == (path, 3)
    assert err.message.startswith("invalid JSON: ") and err.message.endswith("fix or remove the line")


def test_records_before_an_error_are_streamed(tmp_path):
    path = write(tmp_path / "a.ndjson", ndjson(A1, A2) + "oops\n")
    it = iter_records(path, "access_requests")
    assert next(it) == A1 and next(it) == A2
    with pytest.raises(DataError, match=r"a.ndjson:3: error: invalid JSON"):
        next(it)


def test_invalid_json_in_a_pretty_list_names_the_line(tmp_path):
    text = json.dumps([A1, A2], indent=2).replace('"b@example.com"', "b@example.com")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "b@example.com" in t)
    err = error_of(write(tmp_path / "a.json", text))
    assert err.line == line and err.message.startswith("invalid JSON")


def test_invalid_utf8_line(tmp_path):
    path = tmp_path / "a.ndjson"
    path.write_bytes(ndjson(A1).encode() + b'{"created_at": "\xff"}\n')
    assert error_of(path).line == 2


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("a.ndjson", ndjson(A1) + "[1, 2]\n", 2),
        ("a.jsonl", '"text"\n', 1),
        ("a.json", json.dumps([A1, 42], indent=2), 13),
        ("a.json", '{"success": true, "result": [null]}', 1),
    ],
)
def test_record_that_is_not_an_object(tmp_path, name, text, line):
    err = error_of(write(tmp_path / name, text))
    assert err.line == line and "not a JSON object" in err.message


@pytest.mark.parametrize(
    ("source", "record", "field"),
    [
        ("access_requests", {k: v for k, v in A1.items() if k != "created_at"}, "created_at"),
        ("scim_updates", {k: v for k, v in S1.items() if k != "logged_at"}, "logged_at"),
        ("access_requests", {**A1, "created_at": 1793491200}, "created_at"),  # ints only from Logpush
        ("scim_updates", {**S1, "logged_at": None}, "logged_at"),
    ],
)
def test_missing_or_mistyped_time_field(tmp_path, source, record, field):
    good = A1 if source == "access_requests" else S1
    err = error_of(write(tmp_path / "x.ndjson", ndjson(good, good, record)), source)
    assert err.line == 3 and field in err.message


def test_time_parsed_once_in_the_reader(tmp_path):
    path = write(tmp_path / "x.json", json.dumps([A1, {**A1, "created_at": "yesterday"}], indent=1))
    err = error_of(path)  # the reader parses every time (and hands it on): a bad one is reported with its line
    assert err.line == 13 and "not an RFC 3339 timestamp" in err.message
    assert [t for t, _ in files.iter_timed(write(tmp_path / "a.ndjson", ndjson(A1)), "access_requests")] == [
        parse_time(A1["created_at"])]


def test_bad_timestamp_names_file_and_line(tmp_path):
    path = write(tmp_path / "a.ndjson", ndjson(A1, A2, {**A1, "created_at": "2026-11-15 10:00"}))
    err = error_of(path)
    assert str(err) == f"{path}:3: error: created_at '2026-11-15 10:00' is not an RFC 3339 timestamp"


def test_truncated_gzip(tmp_path):
    blob = gzip.compress(ndjson(*([A1] * 2000)).encode())
    for name in ("a.ndjson.gz", "a.json.gz"):
        path = tmp_path / name
        path.write_bytes(blob[: len(blob) // 2])
        assert "truncated gzip" in error_of(path).message


def test_truncated_and_trailing_json_documents(tmp_path):
    text = json.dumps([A1, A2], indent=2)
    err = error_of(write(tmp_path / "cut.json", text[: len(text) // 2]))
    assert "truncated file?" in err.message and err.line is not None
    err = error_of(write(tmp_path / "open.json", text[:-1]))
    assert "before the JSON list is closed" in err.message
    err = error_of(write(tmp_path / "two.json", text + "\n" + text))
    assert "unexpected data after the JSON document" in err.message
    err = error_of(write(tmp_path / "scalar.json", "42"))
    assert "expected a JSON list" in err.message
    err = error_of(write(tmp_path / "record.json", json.dumps(A1, indent=1)))
    assert '"result" list' in err.message


def test_envelope_with_success_false(tmp_path):
    body = {"result": None, "success": False, "messages": [],
            "errors": [{"code": 10000, "message": "Authentication error"}, {"code": 9109, "message": "Invalid"}]}
    err = error_of(write(tmp_path / "a.json", json.dumps(body, indent=2)))
    assert "failed API response: 10000 Authentication error; 9109 Invalid" in err.message
    assert err.line == 3  # the line of "success"
    # A failed response's result list is not trusted: no records, then the error.
    path = write(tmp_path / "b.json", json.dumps({"success": False, "result": [A1], "errors": []}))
    records = []
    with pytest.raises(DataError, match="failed API response: success is false and no errors are given"):
        records.extend(iter_records(path, "access_requests"))
    assert records == []


def test_unknown_source_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError):
        read(write(tmp_path / "a.ndjson", ndjson(A1)), "dns")


def test_unreadable_file(tmp_path):
    err = error_of(tmp_path / "gone.ndjson")
    assert err.line is None and "cannot read" in err.message


# --- bounded memory ------------------------------------------------------------------------------

def _doc(text: str, chunk: int) -> tuple[list, jsondoc.JsonDocument]:
    def error(line, message):
        return DataError(Path("mem.json"), line, message)

    doc = jsondoc.JsonDocument(io.StringIO(text), chunk, error)
    return list(doc.values()), doc


def test_json_reader_buffer_stays_bounded():
    records = [{**A1, "n": i} for i in range(3000)]
    longest = max(len(json.dumps(r)) for r in records)
    chunk = 256
    for text in (json.dumps(records), json.dumps({"success": True, "result": records, "errors": []}, indent=1)):
        values, doc = _doc(text, chunk)
        assert [v for v, _ in values] == records
        assert len(text) > 100 * chunk
        assert doc.max_buffer <= 2 * (chunk + longest), doc.max_buffer


def test_json_reader_handles_every_chunk_boundary():
    tricky = [
        {"created_at": "2026-11-01T00:00:00Z", "n": 12345, "f": -1.5e-3, "t": True, "z": None, "x": False,
         "s": "caf\u00e9 \\\" \u2603 \U0001F600", "l": [1, [2, {}]]},
        {"created_at": "2026-11-01T00:00:01Z", "n": 0},
    ]
    for ascii_only in (True, False):
        text = "\n" + json.dumps(tricky, indent=1, ensure_ascii=ascii_only) + "\n"
        for chunk in range(1, 40):
            values, _ = _doc(text, chunk)
            assert [v for v, _ in values] == tricky, chunk
            starts = [i for i, t in enumerate(text.splitlines(), 1) if t.startswith(" {")]
            assert [line for _, line in values] == starts


def test_json_reader_record_larger_than_the_chunk():
    big = [{"created_at": "2026-11-01T00:00:00Z", "body": "x" * 50_000}, A1]
    values, _ = _doc(json.dumps(big), 64)
    assert [v for v, _ in values] == big


def test_iter_records_chunk_size_passthrough(tmp_path):
    path = write(tmp_path / "a.json.gz", json.dumps({"result": [A1, A2] * 50, "success": True}), gz=True)
    assert read(path, chunk_size=16) == [A1, A2] * 50


# --- discovery -----------------------------------------------------------------------------------

def test_directory_discovery(tmp_path):
    for name in ("scim_updates.json", "access_requests.ndjson.gz", "access_requests-2026-11-01.jsonl",
                 "access_requests.csv", "README.md", "access_requests.json.bak", "other.ndjson"):
        write(tmp_path / name, "[]")
    (tmp_path / "access_requests-dir.json").mkdir()
    assert find_source_files(tmp_path) == {
        "access_requests": [tmp_path / "access_requests-2026-11-01.jsonl", tmp_path / "access_requests.ndjson.gz"],
        "scim_updates": [tmp_path / "scim_updates.json"],
    }
    assert find_source_files(tmp_path, "scim_updates") == {"scim_updates": [tmp_path / "scim_updates.json"]}


def test_directory_without_data_files(tmp_path):
    write(tmp_path / "notes.json", "[]")
    with pytest.raises(DataError, match="no data files here"):
        find_source_files(tmp_path)
    write(tmp_path / "access_requests.json", "[]")
    with pytest.raises(DataError, match="no data files here: expected scim_updates"):
        find_source_files(tmp_path, "scim_updates")


def test_single_file(tmp_path):
    named = write(tmp_path / "scim_updates-nov.ndjson.gz", "", gz=True)
    assert find_source_files(named) == {"scim_updates": [named]}
    export = write(tmp_path / "20261101T000000Z_abc.log.gz", "", gz=True)
    assert find_source_files(export, "access_requests") == {"access_requests": [export]}
    with pytest.raises(DataError, match=r"pass --source access_requests\|scim_updates") as info:
        find_source_files(export)
    assert info.value.path == export and info.value.line is None


def test_missing_path_and_unknown_source(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        find_source_files(tmp_path / "nope")
    with pytest.raises(DataError, match="unknown source 'dns'"):
        find_source_files(tmp_path, "dns")
