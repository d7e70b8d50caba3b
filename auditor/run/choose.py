"""Which engine evaluates a run: an explicit `--engine` wins, then `engine:` in auditor.yaml, then the input.

The automatic choice: the Python engine over the API (it streams pages as they come) and over small exports
(it starts fastest and needs no table); DuckDB for a Parquet log lake and for exports holding at least
DUCKDB_FROM_BYTES of JSON text (gzip files counted by the size they inflate to), where its scan and
aggregation outrun a Python pass. The threshold is measured (benchmarks/engines.py --crossover): below it
the two engines take about the same time, above it DuckDB wins by more each megabyte. Both engines give the
same results JSON, so the choice changes only how long a run takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from auditor.sources.datasource import DataSource

DUCKDB_FROM_BYTES = 64 << 20  # JSON text: about 250,000 Access records


def choose_engine(explicit: str | None, configured: str | None, data: DataSource | None) -> str:
    """The engine of a run: `explicit` (the command line), else `configured` (auditor.yaml) for a run over
    `--data`, else automatic by input (see the module's docstring); `data` None means a run over the API."""
    if explicit is not None:
        return explicit
    if data is None:
        return "python"  # only the Python engine reads the API
    if configured is not None:
        return configured
    logs = data.logs.values()
    if any(log.lake is not None for log in logs):
        return "duckdb"
    return "duckdb" if json_bytes(p for log in logs for p in log.paths()) >= DUCKDB_FROM_BYTES else "python"


def json_bytes(paths: Iterable[Path]) -> int:
    """The JSON text the files hold: a plain file's size, a gzip file's inflated size (its trailer says it,
    modulo 4 GiB: a file whose compressed size is larger counts as that)."""
    total = 0
    for path in paths:
        try:
            size = path.stat().st_size
            if path.name.endswith(".gz") and size >= 18:  # the smallest gzip file
                with path.open("rb") as f:
                    f.seek(-4, 2)
                    size = max(size, int.from_bytes(f.read(4), "little"))
        except OSError:
            continue  # the run reports an unreadable file itself
        total += size
    return total

