"""The emulated API: answers (path, query, headers) with (status, headers, body). No sockets here.

Routes, authentication and pages; the query string is read by `query`, the records selected by
`store`, misbehaviour injected by `faults`.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import threading
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qs, urlsplit

from auditor.testing.errors import (
    CODE_AUTH,
    CODE_BAD_ACCOUNT,
    CODE_INTERNAL,
    CODE_METHOD,
    CODE_MISSING_AUTH,
    CODE_NO_ROUTE,
    ApiError,
)
from auditor.testing.faults import FaultState
from auditor.testing.query import Params, Query, parse_query
from auditor.testing.settings import EmulatorSettings
from auditor.testing.store import ENDPOINTS, Log, Store

try:  # optional: encodes a 1000-record page several times faster than the stdlib
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

_ROUTE = re.compile(r"^/client/v4/accounts/([^/]+)/access/logs/(access_requests|scim/updates)/?$")
_JSON = "application/json; charset=utf-8"


class Request(NamedTuple):
    """One request the emulator answered: path, raw query string, HTTP status."""

    path: str
    query: str
    status: int


class Headers(Protocol):
    """Request headers looked up by name: http.server's case-insensitive message, or a dict in tests."""

    def get(self, name: str, /) -> str | None: ...


class Api:
    """The emulated API over `logs`, as `settings` say (account, credentials, faults)."""

    def __init__(self, logs: dict[str, Log], settings: EmulatorSettings) -> None:
        self.settings = settings
        self.faults = settings.faults
        self._store = Store(logs)
        self._state = FaultState(settings.faults)
        self._lock = threading.Lock()
        self._requests: list[Request] = []

    @property
    def requests(self) -> list[Request]:
        """Every request answered so far, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def requests_served(self) -> int:
        """How many requests were answered (any status)."""
        with self._lock:
            return len(self._requests)

    def handle(self, target: str, headers: Headers) -> tuple[int, dict[str, str], bytes]:
        """Answer one GET request; never raises."""
        url = urlsplit(target)
        try:
            status, extra, body = 200, {}, self._answer(url.path, url.query, headers)
        except ApiError as e:
            status, extra, body = e.status, e.headers, e.body()
        except Exception as e:  # a bug here must still answer, or the client hangs
            status, extra, body = 500, {}, ApiError(500, CODE_INTERNAL, f"emulator error: {e!r}").body()
        extra.setdefault("Content-Type", _JSON)
        self._log(url.path, url.query, status)
        return status, extra, body

    def reject_method(self, target: str) -> tuple[int, dict[str, str], bytes]:
        """Answer a request with a method other than GET."""
        url = urlsplit(target)
        self._log(url.path, url.query, 405)
        return 405, {"Content-Type": _JSON}, ApiError(405, CODE_METHOD, "Method not allowed").body()

    def _log(self, path: str, query: str, status: int) -> None:
        with self._lock:
            self._requests.append(Request(path, query, status))

    def _answer(self, path: str, query: str, headers: Headers) -> bytes:
        self._state.delay()
        route = _ROUTE.match(path)
        if route is None:
            raise ApiError(404, CODE_NO_ROUTE, "No route for that URI")
        self._state.throttle()
        self._authenticate(headers)
        account = self.settings.account_id
        if account is not None and route.group(1) != account:
            raise ApiError(404, CODE_BAD_ACCOUNT,
                           f"Could not route to {path}, perhaps your object identifier is invalid?")
        source = ENDPOINTS[route.group(2)][0]
        self._state.forbid(source)
        params = parse_qs(query, keep_blank_values=True)
        q = parse_query(source, params, self.settings.strict)
        self._state.fail(q.page)
        return self._state.malform(self._page(source, params, q))

    def _authenticate(self, headers: Headers) -> None:
        s = self.settings
        email_key = (s.email, s.api_key) if s.email and s.api_key else None
        if s.token is None and email_key is None:
            return
        bearer = headers.get("Authorization")
        email, key = headers.get("X-Auth-Email"), headers.get("X-Auth-Key")
        if bearer is None and (email is None or key is None):
            raise ApiError(401, CODE_MISSING_AUTH, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
        ok = False
        if bearer is not None and s.token is not None:
            ok = hmac.compare_digest(bearer.encode(), f"Bearer {s.token}".encode())
        elif bearer is None and email_key is not None:
            ok = hmac.compare_digest(f"{email}\0{key}".encode(), "\0".join(email_key).encode())
        if not ok:
            raise ApiError(401, CODE_AUTH, "Authentication error")

    def _page(self, source: str, params: Params, q: Query) -> bytes:
        faults = self.faults
        limit = q.limit
        if faults.cap_limit is not None:
            limit = faults.cap_limit if limit is None else min(limit, faults.cap_limit)
        key = (source, *sorted((k, tuple(v)) for k, v in params.items() if k not in ("page", "per_page")))
        chosen = self._store.select(key, source, q, limit)
        served = min(q.per_page, faults.cap_per_page or q.per_page)
        start = (q.page - 1) * served
        records = [self._store.logs[source].records[i] for i in chosen[start : start + served]]
        if q.fields is not None:
            records = [{k: r[k] for k in q.fields if k in r} for r in records]
        # The schema does not require `result`: strict sends null for an empty page, as the real API may.
        result = None if self.settings.strict and not records else records
        body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
        if source == "scim_updates" or faults.result_info_access:
            body["result_info"] = {
                "count": len(records),
                "page": q.page,
                "per_page": q.per_page,
                "total_count": len(chosen),
                "total_pages": (math.ceil(len(chosen) / served) if faults.lie_total_pages is None
                                else faults.lie_total_pages),
            }
        return _dumps(body)


def _dumps(body: dict[str, Any]) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(body)
        except TypeError:
            pass  # e.g. an integer beyond 64 bits, which the stdlib encodes
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
