"""Renew the README's screenshot (docs/report-sample.png): the HTML report of the README's first command.

    python scripts/screenshot.py [--chromium PATH] [--out docs/report-sample.png]

Runs `auditor run` over the bundled sample (examples/data, the starter rules in rules/) as the README's first
command does, writes its HTML report to a temporary folder, and has headless Chromium photograph it at
1280 x 2200 pixels (the summary, the rules table and the first rule details).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMAND = ["run", "--data", "examples/data", "--data-covers", "2026-11-01T00:00:00Z/2026-11-15T00:00:00Z",
           "--at", "2026-11-15T00:00:00Z", "--quiet"]  # the README's first command
SIZE = (1280, 2200)


def main() -> int:
    """Render the sample run's report and photograph it; exit 1 when a step fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser")
                        or shutil.which("google-chrome") or "/usr/bin/chromium", help="the browser to use")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "report-sample.png", help="the PNG to write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        run = subprocess.run([sys.executable, "-m", "auditor", *COMMAND, "--report", f"html={report}"], cwd=REPO,
                             capture_output=True, text=True, check=False)
        if run.returncode not in (0, 1) or not report.is_file():  # 1: the sample's planted incidents fail
            print(f"auditor run failed (exit {run.returncode}):\n{run.stderr}", file=sys.stderr)
            return 1
        shot = subprocess.run([args.chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               "--no-first-run", "--disable-background-networking", "--disable-sync",
                               f"--user-data-dir={Path(tmp) / 'profile'}", f"--window-size={SIZE[0]},{SIZE[1]}",
                               f"--screenshot={args.out.resolve()}", report.as_uri()],
                              capture_output=True, text=True, check=False)
        if shot.returncode != 0 or not args.out.is_file():
            print(f"{args.chromium} failed (exit {shot.returncode}):\n{shot.stderr[-2000:]}", file=sys.stderr)
            return 1
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes, {SIZE[0]}x{SIZE[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
