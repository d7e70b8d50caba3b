"""Provenance records: what a run read, so an auditor can verify it later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FileRecord:
    """One input file a run read, for provenance: which file, its bytes' digest, what it held."""

    path: str  # relative to the working directory where possible
    source: str  # the log it holds: access_requests | scim_updates
    size: int  # bytes on disk (compressed when gzip)
    sha256: str  # of the bytes on disk
    records: int  # records read from it
    first: str | None  # time of its earliest and latest record (RFC 3339), None without records
    last: str | None

    def to_json(self) -> dict[str, Any]:
        """Provenance JSON form."""
        return {"path": self.path, "source": self.source, "size": self.size, "sha256": self.sha256,
                "records": self.records, "first": self.first, "last": self.last}


@dataclass(frozen=True)
class RequestRecord:
    """One API request, for provenance: what was asked, what came back (never credentials)."""

    path: str
    query: str
    status: int
    records: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        """Provenance JSON form."""
        return {"path": self.path, "query": self.query, "status": self.status, "records": self.records,
                "sha256": self.sha256}
