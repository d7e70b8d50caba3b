"""Report files are replaced atomically, but a path that is a device or a named pipe (`--report
json=/dev/null`) is written to, never removed or renamed over: as root that would replace /dev/null."""

from __future__ import annotations

import os
import stat
import threading

from auditor.report.outputs import clear, write_atomic


def test_a_named_pipe_is_written_to_and_left_a_pipe(tmp_path):
    pipe = tmp_path / "out.json"
    os.mkfifo(pipe)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_text(encoding="utf-8")))
    reader.start()
    clear([pipe])
    write_atomic(pipe, '{"ok": true}\n')
    reader.join(timeout=10)
    assert got == ['{"ok": true}\n']
    assert stat.S_ISFIFO(pipe.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary file left


def test_regular_files_are_cleared_and_replaced(tmp_path):
    report = tmp_path / "r.html"
    report.write_text("an earlier run's report")
    clear([report])
    assert not report.exists()
    write_atomic(report, "new")
    assert report.read_text() == "new"
