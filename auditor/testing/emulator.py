"""Local stand-in for Cloudflare's two Access log endpoints, served on loopback HTTP: its lifecycle.

It is a model of the API (cloudflare-api.md, "working model"), written independently of auditor's
compiler. Documented choices:

- `since` and `until` are both inclusive.
- `direction` defaults to `desc`; records with equal times keep file order (reversed for desc).
- access_requests: `limit` defaults to 25, `per_page` to 25. scim/updates: no default `limit`
  (all matching records), `per_page` defaults to 20. `per_page` above 1000 is a 400.
- `limit` caps the entries across all pages; `page` past the end answers an empty list.
- `idp` filters the record's `connection` (the IdP); `country_code` filters `country`;
  `non_identity` filters a boolean `non_identity` field, absent meaning false.
- `email` is a substring match unless `email_exact=true`; `emailOp=contains` forces substring,
  `emailOp=neq` negates. `neq` matches records that lack the field.
- A parameter given twice (other than the scim arrays) uses its first value; unknown parameters
  are ignored, as Cloudflare does.
- With the `cap_per_page` fault, result_info echoes the requested `per_page` while `count` and
  `total_pages` follow what was really served; with `cap_limit`, `total_count` counts what the cap let
  through, so nothing in an answer shows the cut. A cap may have any size, 1 and 20 (SCIM's documented
  default `limit`) included.
- With `lie_total_pages`, result_info's `total_pages` says that number whatever the truth (e.g. 1 on a
  short first page while more pages exist); `count` and `total_count` stay true.

Strict mode (`strict`, `emulate --strict`) answers like the published schema instead: a 400 for any
parameter it does not declare (access_requests' value parameters `allowed`, `country_code`, `app_uid`,
`ray_id`, `app_type`, `idp`, `non_identity` included) and for `fields` names outside the 9 record fields;
`emailOp` only eq (an exact match, the default) or neq; SCIM's documented default `limit` of 20 when none
is sent; a null `result` on an empty page. Lenient mode stays the default working model.

Modules: `store` (records and selections), `query` (parameters and filters), `api` (routes,
credentials, pages), `faults`, `httpserver` (sockets); this one starts and stops them.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from auditor.testing.api import Api, Request
from auditor.testing.errors import ApiError
from auditor.testing.faults import Faults, parse_fail_pages
from auditor.testing.httpserver import ApiServer
from auditor.testing.settings import EmulatorSettings
from auditor.testing.store import load_logs

# The names tests and the CLI use, importable from here.
__all__ = ["ApiError", "Emulator", "EmulatorSettings", "Faults", "Request", "is_loopback", "parse_fail_pages",
           "serve"]


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Emulator:
    """The emulator running on a background thread: `.base_url`, `.requests`, `.close()`; a context manager."""

    def __init__(self, data: Path | Mapping[str, Iterable[dict]], settings: EmulatorSettings | None = None) -> None:
        settings = settings or EmulatorSettings()
        if not (settings.allow_remote or is_loopback(settings.host)):
            raise ValueError(f"refusing to serve on {settings.host!r}, which is not a loopback address "
                             "(add --allow-remote)")
        self.settings = settings
        self.api = Api(load_logs(data, settings.source), settings)
        self._server = ApiServer((settings.host, settings.port), self.api, settings.concurrency)
        # A short poll interval makes close() quick: shutdown() waits for the loop to notice.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="auditor-emulator",
                                        daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT/client/v4`, the value for --api-base."""
        return self._server.base_url

    @property
    def requests(self) -> list[Request]:
        """Every request answered so far: (path, query, status)."""
        return self.api.requests

    @property
    def requests_served(self) -> int:
        """How many requests were answered."""
        return self.api.requests_served

    def close(self) -> None:
        """Stop accepting, end every connection (idle keep-alive ones too), wait for their handlers."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(data: Path, settings: EmulatorSettings, echo: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C (blocking, for the CLI); ValueError for a non-loopback host without allow_remote."""
    emulator = Emulator(data, settings)
    try:
        echo(f"auditor emulator serving {emulator.base_url}")
        while True:  # the server runs on its own thread; this one only waits for Ctrl-C
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.close()
