"""The HTML report rendered by a real browser (Debian's chromium, headless): it draws a page, not a blank."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from auditor.load.schema import validator
from auditor.report.render import render

CHROMIUM = Path("/usr/bin/chromium")
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "results" / "sample.json"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# In CI a missing browser is a broken setup (.ci/run installs it), not a reason to skip.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="/usr/bin/chromium not installed (apt-get install chromium); required when CI is set",
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def decode_png(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Width, height, bytes per pixel and unfiltered rows of an 8-bit RGB/RGBA PNG (stdlib only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color_type in (2, 6) and interlace == 0, (depth, color_type, interlace)
            bpp = 3 if color_type == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        offset = y * (stride + 1)
        kind, line = raw[offset], bytearray(raw[offset + 1 : offset + 1 + stride])
        for x in range(stride):
            left = line[x - bpp] if x >= bpp else 0
            up = previous[x]
            up_left = previous[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[x] = (line[x] + predictor) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, bpp, rows


@pytest.fixture(scope="module")
def sample_html(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render(json.loads(SAMPLE.read_text(encoding="utf-8")), "html"), encoding="utf-8")
    return path


def test_screenshot_is_not_blank(tmp_path, sample_html) -> None:
    png = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2000", sample_html.as_uri())
    assert png.is_file(), done.stderr[-2000:]
    width, height, bpp, rows = decode_png(png.read_bytes())
    assert (width, height) == (1280, 2000)
    # Sample a grid of pixels: a rendered report has many distinct colours and real contrast.
    pixels = [row[x * bpp : x * bpp + 3] for row in rows[::20] for x in range(0, width, 8)]
    luminance = [(299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000 for p in pixels]
    mean = sum(luminance) / len(luminance)
    variance = sum((v - mean) ** 2 for v in luminance) / len(luminance)
    assert variance > 200, f"page looks blank (luminance variance {variance:.1f})"
    assert len(set(pixels)) > 50
    # The masthead band is coloured by the run's outcome (this sample exits 2: the error amber #9a6700),
    # so the page was styled, not raw text.
    assert json.loads(SAMPLE.read_text(encoding="utf-8"))["summary"]["exit_code"] == 2
    assert tuple(rows[40][640 * bpp : 640 * bpp + 3]) == (0x9A, 0x67, 0x00)


def test_dom_has_title_and_no_script(tmp_path, sample_html) -> None:
    done = chromium(tmp_path, "--dump-dom", sample_html.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<title>auditor report · 2026-11-20T09:00:00Z</title>" in dom
    assert "failed-login-burst" in dom and "<svg" in dom
    assert "<script" not in dom.lower()


# ---- periodic report: the timeline heatmap -------------------------------------------------------------------

PASS_CELL, FAIL_CELL = (0xA3, 0xDC, 0xB0), (0xCF, 0x22, 0x2E)  # heatmap colours of pass and fail steps


def _periodic(document: dict, steps: int = 90) -> dict:
    """The sample results as a 90-day periodic run: every rule gets a timeline (failing rules fail on some days)."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 8, 17, tzinfo=UTC)
    document = json.loads(json.dumps(document))
    document["period"] = {"label": "2026-08-17T00:00:00Z/2026-11-15T00:00:00Z", "tz": "UTC",
                          "start": "2026-08-17T00:00:00Z", "end": "2026-11-15T00:00:00Z", "step": "1d",
                          "steps": steps}
    for n, result in enumerate(document["results"]):
        timeline = []
        for i in range(steps):
            at = (start + timedelta(days=i + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            bad = result["status"] != "pass" and (i + 3 * n) % 11 == 0
            status = result["status"] if bad else "pass"
            timeline.append({"at": at, "status": status, "violations": 1 if status in ("fail", "waived") else 0})
        result["timeline"] = timeline
    return document


def _near(pixel: bytes, colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 12 for a, b in zip(pixel, colour, strict=True))


def test_periodic_report_draws_a_readable_heatmap(tmp_path) -> None:
    document = _periodic(json.loads(SAMPLE.read_text(encoding="utf-8")))
    assert not list(validator("results").iter_errors(document))
    html = tmp_path / "periodic.html"
    html.write_text(render(document, "html"), encoding="utf-8")
    png = tmp_path / "periodic.png"
    done = chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,1100", html.as_uri())
    assert png.is_file(), done.stderr[-2000:]
    width, _, bpp, rows = decode_png(png.read_bytes())
    pixels = [(x, y, row[x * bpp : x * bpp + 3]) for y, row in enumerate(rows) for x in range(0, width, 2)]
    passing = [(x, y) for x, y, p in pixels if _near(p, PASS_CELL)]
    failing = [(x, y) for x, y, p in pixels if _near(p, FAIL_CELL)]
    # The heatmap is on the first screen (right after the summary), fully inside the page's width, with
    # many pass cells and some fail cells: 90 steps x rules, each step at least a few pixels wide.
    assert len(passing) > 2000, len(passing)
    assert len(failing) > 50, len(failing)
    assert max(x for x, _ in passing) < width - 40
    columns = sorted({x for x, _ in passing})
    assert columns[-1] - columns[0] > 600  # 90 steps spread over most of the width, not squeezed
    # Printing keeps it: a PDF with the timeline renders (colours are kept by print-color-adjust).
    pdf = tmp_path / "periodic.pdf"
    chromium(tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", html.as_uri())
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000


# ---- what a reader sees (issue 17 item 13), measured in the rendered page ------------------------------------

# Appended to a copy of the report (the report itself has no script): records what the browser laid out.
PROBE = """<script>
const lines = (el) => { const range = document.createRange(); range.selectNodeContents(el);
  return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size; };
// Laid out and not inside a closed <details> (whose content Chromium keeps laid out but hides).
const seen = (el) => el.checkVisibility() && el.getClientRects().length > 0;
const out = {
  masthead: getComputedStyle(document.querySelector("header.masthead")).backgroundColor,
  // The colour the masthead would have for each outcome (the template picks the class by exit code).
  outcomes: Object.fromEntries(["pass", "fail", "error"].map((outcome) => {
    const header = document.createElement("header"); header.className = "masthead " + outcome;
    document.body.appendChild(header); const colour = getComputedStyle(header).backgroundColor;
    header.remove(); return [outcome, colour]; })),
  rules: [...document.querySelectorAll("article.rule")].map((rule) => ({
    id: rule.id,
    terms: [...rule.querySelectorAll("dl > dt")].map((dt) => dt.textContent.trim()),
    fetch: (rule.querySelector("code.fetch") || {}).textContent || "",
    shown: [...rule.querySelectorAll("td.keep")].filter(seen).map((td) => td.textContent.trim()),
    folded: [...rule.querySelectorAll("details.held")].map((d) => ({open: d.open,
      rows: d.querySelectorAll("tbody tr").length, seen: [...d.querySelectorAll("tbody tr")].filter(seen).length})),
  })),
  nobr: [...document.querySelectorAll(".nobr")].filter(seen).map((s) => ({text: s.textContent, lines: lines(s)})),
  keep: [...document.querySelectorAll("td.keep")].filter(seen).map((td) => ({text: td.textContent.trim(),
    lines: lines(td), wrap: getComputedStyle(td).overflowWrap, brk: getComputedStyle(td).wordBreak})),
};
const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"""


def probe(tmp_path: Path, document: dict, *, redact: bool = False, width: int = 1024) -> dict:
    """Render the results as HTML, open it in chromium at `width` pixels, and read what the page laid out."""
    import html as markup

    page = tmp_path / "probed.html"
    page.write_text(render(document, "html", redact=redact).replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = chromium(tmp_path, "--dump-dom", f"--window-size={width},900", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stdout[-2000:]
    return json.loads(markup.unescape(found.group(1)))


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory) -> dict:
    """The sample report as laid out in a narrow window (600 px: cells are squeezed), probed once."""
    return probe(tmp_path_factory.mktemp("probe"), json.loads(SAMPLE.read_text(encoding="utf-8")), width=600)


def test_a_failing_rule_leads_with_its_failing_groups_and_folds_the_others(laid_out) -> None:
    page = laid_out
    rules = {r["id"].removeprefix("rule-"): r for r in page["rules"]}
    burst = rules["failed-login-burst"]
    # The two groups over the threshold are on the page; the two within bounds are folded away, unseen.
    assert burst["shown"] == ["user_email=mallory@example.com", "user_email=bob@example.com"], burst
    assert burst["folded"] == [{"open": False, "rows": 2, "seen": 0}]
    assert rules["country-hopping"]["folded"] == []  # a passing rule shows its groups: nothing to lead with
    # No Message row repeats the Result; a rule without measurements (an error) says its message instead.
    assert "Result" in burst["terms"] and "Message" not in burst["terms"]
    assert "Message" in rules["break-glass-use"]["terms"]
    # Fetches read as filters, not URL-encoded queries.
    assert "breakglass@example.com" in rules["break-glass-use"]["fetch"]
    assert not [r["id"] for r in page["rules"] if re.search(r"%[0-9A-F]{2}", r["fetch"])]


def test_emails_stay_on_one_line_and_the_masthead_has_the_outcomes_colour(laid_out) -> None:
    page = laid_out
    for cell in page["keep"]:
        assert cell["brk"] != "break-all" and cell["wrap"] != "anywhere", cell  # no mid-word breaks
    addresses = [c for c in page["keep"] if "@" in c["text"] or "ip_address=" in c["text"]]
    assert len(addresses) == 3 and all(c["lines"] == 1 for c in addresses), addresses  # (anywhere: 2 lines)
    # Within results' text too: an email or a UUID is not broken at a hyphen.
    assert {s["text"] for s in page["nobr"]} == {"mallory@example.com", "5f1b7c3e-9a2d-4b6e-8c0f-1a2b3c4d5e6f"}
    assert all(s["lines"] == 1 for s in page["nobr"]), page["nobr"]
    assert page["masthead"] == "rgb(154, 103, 0)"  # the sample exits 2 (an error): amber
    assert page["outcomes"] == {"pass": "rgb(26, 127, 55)", "fail": "rgb(207, 34, 46)", "error": "rgb(154, 103, 0)"}


def test_redaction_keeps_distinct_users_distinct(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AUDITOR_REDACT_KEY", "browser-test")
    page = probe(tmp_path, json.loads(SAMPLE.read_text(encoding="utf-8")), redact=True)
    burst = next(r for r in page["rules"] if r["id"] == "rule-failed-login-burst")
    assert len(burst["shown"]) == 2 and len(set(burst["shown"])) == 2, burst
    for text in burst["shown"]:
        assert re.fullmatch(r"user_email=\w\*\*\*@example\.com #[0-9a-f]{4}", text), text
