"""The --data progress line (auditor.cli.progress): the file being read, files and bytes done, erased at the end."""

from __future__ import annotations

import io

from auditor.cli.progress import FilesProgress

ERASE = "\r\x1b[K"


def _lines(out: io.StringIO) -> list[str]:
    return [x for x in out.getvalue().split(ERASE) if x]


def test_data_runs_show_the_file_being_read_and_files_and_bytes_done():
    out = io.StringIO()
    files = FilesProgress(out, 2, 3_000_000, clock=iter(range(100)).__next__, width=200)
    files("data/access_requests.ndjson.gz", 0, 65_536, False)
    files("data/access_requests.ndjson.gz", 1_500_000, 70_000, True)
    files.close()
    lines = _lines(out)
    assert lines[0] == "reading data/access_requests.ndjson.gz: 65,536 records · 0/2 files, 0.0 MB of 3.0 MB"
    assert lines[1] == "reading data/access_requests.ndjson.gz: 70,000 records · 1/2 files, 1.5 MB of 3.0 MB"
    assert out.getvalue().endswith(ERASE)
