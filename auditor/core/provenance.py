"""Provenance records: what a run read, so an auditor can verify it later."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
