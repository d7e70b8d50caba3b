"""What shapes one emulator: what it serves, to whom, where it listens and how it misbehaves."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.testing.faults import Faults


@dataclass(frozen=True)
class EmulatorSettings:
    """The one set of options of `Emulator`, `serve` and `auditor emulate`."""

    source: str | None = None  # which log a single unnamed --data file holds
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    allow_remote: bool = False  # serve on an address that is not loopback
    account_id: str | None = None  # only this account is served (others 404); None: every account
    token: str | None = field(default=None, repr=False)  # require this bearer token
    email: str | None = None  # with api_key: accept X-Auth-Email + X-Auth-Key
    api_key: str | None = field(default=None, repr=False)
    strict: bool = False  # answer like the published schema, not the lenient working model (see `query`)
    concurrency: int = 64  # clients expected at once: the listen backlog holds them all
    faults: Faults = field(default_factory=Faults)
