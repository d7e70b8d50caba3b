"""The progress line as an 80-column terminal shows it (issue 17 item 3, issue 13 item 4): the real CLI writes
to a pseudo-terminal, and a terminal emulator (pyte) replays what it wrote, so the assertions are about the
screen: the line never wraps or scrolls, names each fetch by log and range, counts down rate-limit waits, and
is erased at the end."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import sys
import termios
import threading
from pathlib import Path

import pyte
import pytest

from auditor.cli import main
from tests.helpers import access, scim
from tests.integration.test_api_source import (
    ACCOUNT,
    TOKEN,
    access_records,
    load,
    rule,
    scim_records,
    write_data,
    write_rules,
)
from tests.integration.test_cli import AT, COVERS, _run_on_a_terminal, data, subprocess_env
from tests.integration.test_cli_policy_work import policy  # noqa: F401 (a fixture)

COLUMNS = 80
RULES = [rule("access", filter={"allowed": False}, expect={"count": {"max": 1000}}),
         rule("scim", "scim_updates", expect={"count": {"min": 1}})]
AUTH = "authenticating with CLOUDFLARE_API_TOKEN (Authorization: Bearer)\n"  # said before any request
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _terminal(columns: int = COLUMNS) -> tuple[int, int]:
    """A pseudo-terminal `columns` wide: (leader, follower)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    return leader, follower


def _drain(leader: int, into: list[bytes]) -> threading.Thread:
    """Read what the program writes (a full terminal buffer would block it) until the follower closes."""
    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the follower is closed
                return
            if not chunk:
                return
            into.append(chunk)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def run_on_a_terminal(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """`auditor ARGS` in-process (so the tests' virtual clock makes rate-limit waits instant) with stderr on an
    80-column pseudo-terminal; its exit code and everything it wrote there."""
    leader, follower = _terminal()
    chunks: list[bytes] = []
    reader = _drain(leader, chunks)
    stream = io.TextIOWrapper(os.fdopen(follower, "wb", buffering=0), encoding="utf-8", write_through=True)
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        code = main(args)
    finally:
        monkeypatch.setattr(sys, "stderr", sys.__stderr__)
        stream.close()
    reader.join(timeout=30)
    os.close(leader)
    return code, b"".join(chunks).decode("utf-8")


def screens(output: str) -> list[tuple[list[str], int]]:
    """The screen's rows and the cursor's row after each redraw (each carriage return), as an 80x24 terminal
    replays the output."""
    screen = pyte.Screen(COLUMNS, 24)
    stream = pyte.Stream(screen)
    shots = []
    for piece in re.split(r"(?<=\r)", output):
        stream.feed(piece)
        shots.append(([row.rstrip() for row in screen.display], screen.cursor.y))
    return shots


def shown(output: str) -> list[str]:
    """Every progress line the terminal showed, in order, and asserts that the progress row is the only one
    that ever differed from the final screen: a line that wraps, or a redraw that scrolls, would leave text
    on another row (a stale line), or move the rows above."""
    shots = screens(output)
    final, row = shots[-1]
    lines = []
    for rows, _ in shots:
        assert rows[:row] + rows[row + 1:] == final[:row] + final[row + 1:], rows[: row + 2]
        if rows[row] and (not lines or lines[-1] != rows[row]):
            lines.append(rows[row])
    return lines


def assert_fitted_and_erased(output: str) -> None:
    """No line written wider than the terminal, and nothing left on the screen at the end."""
    for segment in re.split(r"[\r\n]", CONTROL.sub("\r", output)):
        assert len(segment) <= COLUMNS, segment
    rows, row = screens(output)[-1]
    assert not any(rows[row:]), "the progress line was not erased"


@pytest.fixture
def terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal like a user's: not CI, not a dumb terminal, a token."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)


def _api_run(tmp_path: Path, emulator, monkeypatch, *extra: str, **faults) -> tuple[int, str, dict]:
    write_data(tmp_path / "data", access_records(60), scim_records(20))
    root = write_rules(tmp_path, RULES)
    emu = emulator(tmp_path / "data", account_id=ACCOUNT, token=TOKEN, **faults)
    code, output = run_on_a_terminal(
        ["run", str(root / "rules"), "--config", str(root / "auditor.yaml"), "--at", AT, "--account-id", ACCOUNT,
         "--api-base", emu.base_url, "--results", str(root / "results.json"), "--concurrency", "1",
         *extra], monkeypatch)
    return code, output, load(root / "results.json")


def test_a_cloudflare_block_is_counted_down_on_one_line_that_is_erased(tmp_path, emulator, clock, terminal_env,
                                                                         monkeypatch, capsys):
    code, output, doc = _api_run(tmp_path, emulator, monkeypatch, rate_limit_first=1, retry_after=299)
    assert code == 0, output
    lines = shown(output)
    # The wait, in full, first on the line; the rest is cut with an ellipsis at the 80th column.
    wait = "Cloudflare rate limit: waiting 4m 59s (retry 1 of 4) · 0% · 0/2 fetches"
    waits = [x for x in lines if x.startswith(wait)]
    assert waits and len(waits[0]) == COLUMNS and waits[0].endswith("…"), lines
    # Fetches are named by log and time range (the rules' 24 h windows), never by a hash.
    assert any(re.fullmatch(r"\d+% · access_requests 2026-11-14 12:00 → 11-15 12:00 · \d/2 fetches · .*", x)
               for x in lines), lines
    assert not any(re.search(r":[0-9a-f]{10}", x) for x in lines)
    assert_fitted_and_erased(output)
    assert {r["status"] for r in doc["results"]} == {"pass"}
    assert "Cloudflare rate limit" not in capsys.readouterr().err  # said on the line, not as well below it


def test_a_short_rate_limit_says_when_it_retries(tmp_path, emulator, clock, terminal_env, monkeypatch):
    code, output, _ = _api_run(tmp_path, emulator, monkeypatch, rate_limit_first=2, retry_after=3)
    assert code == 0, output
    lines = shown(output)
    assert any(x.startswith("rate limited, retrying in 3 s (1/4) · 0% · 0/2 fetches") for x in lines), lines
    assert any(x.startswith("rate limited, retrying in 3 s (2/4) · 0% · 0/2 fetches") for x in lines), lines
    assert_fitted_and_erased(output)


def test_the_share_read_and_an_eta_follow_the_fetches(tmp_path, emulator, clock, terminal_env, monkeypatch):
    code, output, _ = _api_run(tmp_path, emulator, monkeypatch)
    assert code == 0, output
    lines = shown(output)
    assert lines[0].startswith("0% · ")
    # One of the two fetches read: half of the time ranges, and an estimate of the time left.
    half = [x for x in lines if re.match(r"50% \(ETA \d+s\) · \w+ 2026-11-14 12:00 → 11-15 12:00 · 1/2 fetches", x)]
    assert half, lines
    assert_fitted_and_erased(output)


@pytest.mark.parametrize("off", [["--no-progress"], ["--quiet"]])
def test_no_line_when_asked_not_to(tmp_path, emulator, clock, terminal_env, monkeypatch, off):
    code, output, _ = _api_run(tmp_path, emulator, monkeypatch, *off)
    assert code == 0 and output.replace("\r\n", "\n") == AUTH


def test_no_line_in_ci_but_a_rate_limit_wait_is_still_said(tmp_path, emulator, clock, terminal_env, monkeypatch):
    monkeypatch.setenv("CI", "true")
    code, output, _ = _api_run(tmp_path, emulator, monkeypatch, rate_limit_first=1, retry_after=299)
    assert code == 0
    assert output.replace("\r\n", "\n") == AUTH + "Cloudflare rate limit: waiting 4m 59s (retry 1 of 4)\n"


def _data_run(root: Path, *extra: str) -> tuple[int, str]:
    """`auditor run --data` in a subprocess with stderr on a pseudo-terminal."""
    data(root, [access(country="US", user_email=f"u{i}@example.com") for i in range(3)], [scim()])
    args = [sys.executable, "-m", "auditor", "run", "--data", "data", "--data-covers", COVERS, "--at", AT, *extra]
    env = {k: v for k, v in subprocess_env(TERM="xterm").items() if k != "CI"}
    return _run_on_a_terminal(args, env, root, stream="stderr")


def test_a_data_run_shows_files_bytes_and_records_and_clears_the_line(policy, terminal_env):  # noqa: F811
    code, output = _data_run(policy)
    assert code == 0, output
    lines = shown(output)
    assert lines, output
    assert all(re.fullmatch(r"reading data/\w+\.ndjson · [0-2]/2 files \([\d.]+ k?B of 1.2 kB\) · \d records?", x)
               for x in lines), lines
    assert lines[-1].startswith("reading data/scim_updates.ndjson · 2/2 files (1.2 kB of 1.2 kB) · 4 records"), lines
    assert_fitted_and_erased(output)


def test_a_duckdb_run_says_the_engine_is_at_work(policy, terminal_env):  # noqa: F811
    # DuckDB reads the files itself: the line says so until the files' provenance is counted.
    code, output = _data_run(policy, "--engine", "duckdb")
    assert code == 0, output
    lines = shown(output)
    assert lines[0] == "DuckDB: evaluating the rules over 2 files (1.2 kB)", lines
    assert_fitted_and_erased(output)


def test_sync_shows_the_same_line(tmp_path, emulator, clock, terminal_env, monkeypatch):
    # Any command reading the API draws the line the same way: here `auditor sync`, with a short rate limit.
    write_data(tmp_path / "data", access_records(60), scim_records(20))
    root = write_rules(tmp_path, RULES)
    emu = emulator(tmp_path / "data", account_id=ACCOUNT, token=TOKEN, rate_limit_first=1, retry_after=2)
    code, output = run_on_a_terminal(["sync", "--to", str(tmp_path / "lake"), "--config", str(root / "auditor.yaml"),
                                      "--account-id", ACCOUNT, "--api-base", emu.base_url, "--json"], monkeypatch)
    assert code == 0, output
    lines = shown(output)
    assert any(x.startswith("rate limited, retrying in 2 s (1/4) · 0%") for x in lines), lines
    assert "0% · access_requests 2026-10-17 → 11-16 · 0/2 fetches · 0 records" in lines  # the lake's 30 days
    assert_fitted_and_erased(output)
