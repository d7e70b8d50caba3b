"""Local stand-in for Cloudflare's two Access log endpoints, served on loopback HTTP.

It is a model of the API (cloudflare-api.md, "working model"), written independently of auditor's
compiler: its own parameter parsing and filtering, so the client's pushdown is tested against it
rather than against itself. Documented choices:

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
  through, so nothing in an answer shows the cut.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import re
import socket
import sys
import threading
import time
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qs, urlsplit

from auditor.core.timeutil import parse_time
from auditor.sources.files import find_source_files, iter_records

try:  # optional: encodes a 1000-record page several times faster than the stdlib
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

# Cloudflare error codes seen in public reports; 10001 (bad parameter), 10002 (internal error) and
# 7001 (method) are this emulator's choices where no public code is known.
CODE_BAD_PARAM = 10001
CODE_INTERNAL = 10002
CODE_AUTH = 10000
CODE_MISSING_AUTH = 9106
CODE_NO_ROUTE = 7000
CODE_BAD_ACCOUNT = 7003
CODE_METHOD = 7001
CODE_RATE_LIMIT = 971
MAX_PER_PAGE = 1000

_ROUTE = re.compile(r"^/client/v4/accounts/([^/]+)/access/logs/(access_requests|scim/updates)/?$")
_EDGE_PAGE = (
    "<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n<center><h1>{status}</h1></center>\r\n"
    "<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}

# The API's record fields (for `fields=`), and the value/Op filter pairs -> (record field, is boolean).
ACCESS_FIELDS = frozenset({
    "action", "allowed", "app_domain", "app_type", "app_uid", "connection", "country", "created_at",
    "ip_address", "ray_id", "user_email",
})
ACCESS_PAIRS: dict[str, tuple[str, bool]] = {
    "allowed": ("allowed", True),
    "app_type": ("app_type", False),
    "app_uid": ("app_uid", False),
    "country_code": ("country", False),
    "idp": ("connection", False),
    "non_identity": ("non_identity", True),
    "ray_id": ("ray_id", False),
}
SCIM_ENUMS: dict[str, frozenset[str] | None] = {
    "idp_id": None,
    "status": frozenset({"FAILURE", "SUCCESS"}),
    "resource_type": frozenset({"USER", "GROUP"}),
    "request_method": frozenset({"DELETE", "PATCH", "POST", "PUT"}),
    "resource_user_email": None,
    "resource_group_name": None,
    "cf_resource_id": None,
    "idp_resource_id": None,
}
_ENDPOINTS = {"access_requests": ("access_requests", "created_at"), "scim/updates": ("scim_updates", "logged_at")}


@dataclass(frozen=True)
class Faults:
    """Deterministic misbehaviour for tests, counted per server."""

    latency: float = 0.0  # seconds added to every request
    rate_limit_first: int = 0  # the first N API requests answer 429
    retry_after: int = 1  # the Retry-After of those 429s, in seconds
    fail_pages: Mapping[int, int] = field(default_factory=dict)  # page -> how many times it answers 5xx
    fail_status: int = 503
    malformed_first: int = 0  # the first N successful bodies are cut in half (status 200)
    cap_per_page: int | None = None  # serve at most N records per page, silently
    cap_limit: int | None = None  # return at most N entries per query whatever `limit` asks, silently
    result_info_access: bool = False  # access_requests answers carry result_info too


class Request(NamedTuple):
    """One request the emulator answered: path, raw query string, HTTP status."""

    path: str
    query: str
    status: int


class ApiError(Exception):
    """An answer other than 200: status, Cloudflare error code and message."""

    def __init__(self, status: int, code: int, message: str, headers: Mapping[str, str] | None = None,
                 *, edge_page: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        # Cloudflare's proxy answers some 5xx with an HTML page, not the API envelope.
        self.edge_page = edge_page

    def body(self) -> bytes:
        """The response body: the error envelope, or the edge's HTML page."""
        if self.edge_page:
            return _EDGE_PAGE.format(status=self.message).encode()
        envelope = {"success": False, "errors": [{"code": self.code, "message": self.message}],
                    "messages": [], "result": None}
        return json.dumps(envelope).encode()


@dataclass(frozen=True)
class _Log:
    """One source's records in time order, with their times in epoch microseconds."""

    times: list[int]
    records: list[dict]


@dataclass(frozen=True)
class _Query:
    """A parsed list request: which records, in which order, which page."""

    since: int | None
    until: int | None
    direction: str
    limit: int | None
    page: int
    per_page: int
    fields: tuple[str, ...] | None
    tests: tuple[Callable[[dict], bool], ...]


def load_logs(data: Path | Mapping[str, Iterable[dict]], source: str | None = None) -> dict[str, _Log]:
    """Records per source, sorted by time, from a --data path (`source` for a single unnamed file)
    or from in-memory records."""
    if isinstance(data, Mapping):
        batches: dict[str, list[tuple[Path | None, Iterable[dict]]]] = {
            source: [(None, records)] for source, records in data.items()
        }
    else:
        batches = {
            name: [(path, iter_records(path, name)) for path in paths]
            for name, paths in find_source_files(Path(data), source).items()
        }
    logs = {}
    for name, time_field in _ENDPOINTS.values():
        keyed: list[tuple[int, int, dict]] = []
        for origin, records in batches.get(name, []):
            for record in records:
                try:
                    keyed.append((parse_time(record[time_field]), len(keyed), record))
                except (KeyError, TypeError, ValueError):
                    if origin is not None:
                        # Read again with strict checks: the same problem, reported with file and line.
                        for _ in iter_records(origin, name):
                            pass
                    raise ValueError(f"{name} record without a valid {time_field}: {record!r}") from None
        keyed.sort()
        logs[name] = _Log([t for t, _, _ in keyed], [r for _, _, r in keyed])
    return logs


def parse_fail_pages(specs: Iterable[str]) -> dict[int, int]:
    """`PAGE[:TIMES]` strings (CLI --fail-page) -> {page: times}; ValueError on bad input."""
    out: dict[int, int] = {}
    for spec in specs:
        page, _, times = spec.partition(":")
        try:
            p, n = int(page), int(times or "1")
        except ValueError:
            raise ValueError(f"--fail-page {spec!r}: expected PAGE:TIMES, e.g. 2:3") from None
        if p < 1 or n < 0:
            raise ValueError(f"--fail-page {spec!r}: PAGE must be >= 1 and TIMES >= 0")
        out[p] = out.get(p, 0) + n
    return out


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Headers(Protocol):
    """Request headers looked up by name: http.server's case-insensitive message, or a dict in tests."""

    def get(self, name: str, /) -> str | None: ...


class Api:
    """The emulated API: answers (path, query, headers) with (status, headers, body). No sockets here."""

    def __init__(
        self,
        logs: dict[str, _Log],
        *,
        account_id: str | None = None,
        token: str | None = None,
        email: str | None = None,
        api_key: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        self._logs = logs
        self._account_id = account_id
        self._token = token
        self._email_key = (email, api_key) if email and api_key else None
        self.faults = faults = faults or Faults()
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._api_calls = 0
        self._fail_left = dict(faults.fail_pages)
        self._malformed_left = faults.malformed_first
        self._selections: OrderedDict[tuple, list[int]] = OrderedDict()  # LRU: pages of one query scan once

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
        if "Content-Type" not in extra:
            extra["Content-Type"] = "application/json; charset=utf-8"
        with self._lock:
            self._requests.append(Request(url.path, url.query, status))
        return status, extra, body

    def reject_method(self, target: str) -> tuple[int, dict[str, str], bytes]:
        """Answer a request with a method other than GET."""
        url = urlsplit(target)
        with self._lock:
            self._requests.append(Request(url.path, url.query, 405))
        body = ApiError(405, CODE_METHOD, "Method not allowed").body()
        return 405, {"Content-Type": "application/json; charset=utf-8"}, body

    def _answer(self, path: str, query: str, headers: Headers) -> bytes:
        if self.faults.latency:
            time.sleep(self.faults.latency)
        route = _ROUTE.match(path)
        if route is None:
            raise ApiError(404, CODE_NO_ROUTE, "No route for that URI")
        with self._lock:
            self._api_calls += 1
            call = self._api_calls
        if call <= self.faults.rate_limit_first:
            raise ApiError(429, CODE_RATE_LIMIT, "Please wait and consider throttling your request speed",
                           {"Retry-After": str(self.faults.retry_after)})
        self._authenticate(headers)
        if self._account_id is not None and route.group(1) != self._account_id:
            raise ApiError(404, CODE_BAD_ACCOUNT,
                           f"Could not route to {path}, perhaps your object identifier is invalid?")
        source = _ENDPOINTS[route.group(2)][0]
        params = parse_qs(query, keep_blank_values=True)
        q = _access_query(params) if source == "access_requests" else _scim_query(params)
        self._inject_failure(q.page)
        return self._malform(self._page(source, params, q))

    def _authenticate(self, headers: Headers) -> None:
        if self._token is None and self._email_key is None:
            return
        bearer = headers.get("Authorization")
        email, key = headers.get("X-Auth-Email"), headers.get("X-Auth-Key")
        if bearer is None and (email is None or key is None):
            raise ApiError(401, CODE_MISSING_AUTH, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
        ok = False
        if bearer is not None and self._token is not None:
            ok = hmac.compare_digest(bearer.encode(), f"Bearer {self._token}".encode())
        elif bearer is None and self._email_key is not None:
            want_email, want_key = self._email_key
            ok = hmac.compare_digest(f"{email}\0{key}".encode(), f"{want_email}\0{want_key}".encode())
        if not ok:
            raise ApiError(401, CODE_AUTH, "Authentication error")

    def _inject_failure(self, page: int) -> None:
        with self._lock:
            left = self._fail_left.get(page, 0)
            if left <= 0:
                return
            self._fail_left[page] = left - 1
        status = self.faults.fail_status
        if status == 500:
            raise ApiError(500, CODE_INTERNAL, "Internal server error")
        reason = f"{status} {_REASONS.get(status, 'Server Error')}"
        raise ApiError(status, 0, reason, {"Content-Type": "text/html"}, edge_page=True)

    def _malform(self, body: bytes) -> bytes:
        with self._lock:
            if self._malformed_left <= 0:
                return body
            self._malformed_left -= 1
        return body[: max(1, len(body) // 2)]

    def _selection(self, source: str, params: dict[str, list[str]], q: _Query) -> list[int]:
        """Indices of the matching records, in the requested order, cut at `limit` (cached per query)."""
        key = (source, *sorted((k, tuple(v)) for k, v in params.items() if k not in ("page", "per_page")))
        with self._lock:
            hit = self._selections.get(key)
            if hit is not None:
                self._selections.move_to_end(key)
                return hit
        log = self._logs[source]
        lo = 0 if q.since is None else bisect_left(log.times, q.since)
        hi = len(log.times) if q.until is None else bisect_right(log.times, q.until)
        records, tests = log.records, q.tests
        if not tests:
            chosen = list(range(lo, hi))
        elif len(tests) == 1:
            (test,) = tests
            chosen = [i for i in range(lo, hi) if test(records[i])]
        else:
            chosen = [i for i in range(lo, hi) if all(test(records[i]) for test in tests)]
        if q.direction == "desc":
            chosen.reverse()
        limit, cap = q.limit, self.faults.cap_limit
        if cap is not None:
            limit = cap if limit is None else min(limit, cap)
        if limit is not None:
            del chosen[limit:]
        with self._lock:
            self._selections[key] = chosen
            if len(self._selections) > 16:
                self._selections.popitem(last=False)
        return chosen

    def _page(self, source: str, params: dict[str, list[str]], q: _Query) -> bytes:
        chosen = self._selection(source, params, q)
        served = min(q.per_page, self.faults.cap_per_page or q.per_page)
        start = (q.page - 1) * served
        records = [self._logs[source].records[i] for i in chosen[start : start + served]]
        if q.fields is not None:
            records = [{k: r[k] for k in q.fields if k in r} for r in records]
        body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": records}
        if source == "scim_updates" or self.faults.result_info_access:
            body["result_info"] = {
                "count": len(records),
                "page": q.page,
                "per_page": q.per_page,
                "total_count": len(chosen),
                "total_pages": math.ceil(len(chosen) / served),
            }
        return _dumps(body)


def _dumps(body: dict[str, Any]) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(body)
        except TypeError:
            pass  # e.g. an integer beyond 64 bits, which the stdlib encodes
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# --- parameter parsing: each helper raises ApiError(400) on a malformed value -----------------------

def _bad(message: str) -> ApiError:
    return ApiError(400, CODE_BAD_PARAM, message)


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _time(params: dict[str, list[str]], name: str) -> int | None:
    text = _one(params, name)
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise _bad(f"{name}: {text!r} is not an RFC 3339 date-time") from None


def _int(params: dict[str, list[str]], name: str, default: int | None, low: int, high: int | None = None) -> Any:
    text = _one(params, name)
    if text is None:
        return default
    if not text.isdigit() or not text.isascii():
        raise _bad(f"{name}: {text!r} is not a whole number")
    value = int(text)
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _bad(f"{name}: {value} must be {span}")
    return value


def _bool(params: dict[str, list[str]], name: str) -> bool | None:
    text = _one(params, name)
    if text is None:
        return None
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise _bad(f"{name}: {text!r} is not a boolean (true or false)")
    return lowered == "true"


def _choice(params: dict[str, list[str]], name: str, choices: tuple[str, ...], default: str) -> str:
    text = _one(params, name)
    if text is None:
        return default
    if text not in choices:
        raise _bad(f"{name}: {text!r} must be one of {', '.join(choices)}")
    return text


def _common(params: dict[str, list[str]], limit: int | None, per_page: int) -> dict[str, Any]:
    return {
        "since": _time(params, "since"),
        "until": _time(params, "until"),
        "direction": _choice(params, "direction", ("desc", "asc"), "desc"),
        "limit": _int(params, "limit", limit, 1),
        "page": _int(params, "page", 1, 1),
        "per_page": _int(params, "per_page", per_page, 1, MAX_PER_PAGE),
    }


def _access_query(params: dict[str, list[str]]) -> _Query:
    tests: list[Callable[[dict], bool]] = []
    email = _one(params, "email")
    exact = _bool(params, "email_exact") or False
    email_op = _choice(params, "emailOp", ("eq", "neq", "contains"), "eq")
    if email is not None:
        tests.append(_email_test(email, exact and email_op != "contains", email_op == "neq"))
    for name, (record_field, is_bool) in ACCESS_PAIRS.items():
        op = _choice(params, f"{name}Op", ("eq", "neq"), "eq")
        if name not in params:
            continue
        value: Any = _bool(params, name) if is_bool else _one(params, name)
        # non_identity is absent on ordinary (identity) logins.
        tests.append(_pair_test(record_field, value, op == "neq", False if name == "non_identity" else None))
    fields = None
    text = _one(params, "fields")
    if text is not None:
        fields = tuple(f for f in (part.strip() for part in text.split(",")) if f)
        unknown = [f for f in fields if f not in ACCESS_FIELDS]
        if unknown:
            raise _bad(f"fields: unknown field {unknown[0]!r}")
    return _Query(**_common(params, 25, 25), fields=fields, tests=tuple(tests))


def _email_test(value: str, exact: bool, negate: bool) -> Callable[[dict], bool]:
    def test(record: dict) -> bool:
        email = record.get("user_email")
        hit = isinstance(email, str) and (email == value if exact else value in email)
        return hit != negate

    return test


def _pair_test(record_field: str, value: Any, negate: bool, absent: Any) -> Callable[[dict], bool]:
    def test(record: dict) -> bool:
        got = record.get(record_field, absent)
        # `is` for booleans: 1 == True must not match.
        hit = got is value if isinstance(value, bool) else (isinstance(got, str) and got == value)
        return hit != negate

    return test


def _scim_query(params: dict[str, list[str]]) -> _Query:
    if not any(params.get("idp_id", [])):
        raise _bad("idp_id: required (the id of an IdP with SCIM enabled)")
    tests = []
    for name, allowed in SCIM_ENUMS.items():
        values = params.get(name)
        if not values:
            continue
        if allowed is not None:
            wrong = [v for v in values if v not in allowed]
            if wrong:
                raise _bad(f"{name}: {wrong[0]!r} must be one of {', '.join(sorted(allowed))}")
        tests.append(_one_of_test(name, frozenset(values)))
    return _Query(**_common(params, None, 20), fields=None, tests=tuple(tests))


def _one_of_test(record_field: str, values: frozenset[str]) -> Callable[[dict], bool]:
    def test(record: dict) -> bool:
        got = record.get(record_field)
        return isinstance(got, str) and got in values

    return test


# --- HTTP ------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API: clients reuse connections
    timeout = 30  # idle keep-alive connections end
    disable_nagle_algorithm = True  # headers and body go in two writes: without this, 40 ms per request
    server: _Server

    def do_GET(self) -> None:
        self._send(*self.server.api.handle(self.path, self.headers))

    def _reject(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # drain, so the connection stays usable
        self._send(*self.server.api.reject_method(self.path))

    do_POST = do_PUT = do_PATCH = do_DELETE = _reject

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and the CLI read the request log instead


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Api) -> None:
        self.api = api
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    @property
    def base_url(self) -> str:
        address, port = self.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/client/v4"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer is normal (timeouts, retries); anything else gets one line.
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError | TimeoutError):
            print(f"auditor emulator: error answering {client_address}: {exc!r}", file=sys.stderr)


class Emulator:
    """The emulator running on a background thread: `.base_url`, `.requests`, `.close()`; a context manager."""

    def __init__(
        self,
        data: Path | Mapping[str, Iterable[dict]],
        *,
        source: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        account_id: str | None = None,
        token: str | None = None,
        email: str | None = None,
        api_key: str | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.api = Api(load_logs(data, source), account_id=account_id, token=token, email=email, api_key=api_key,
                       faults=faults)
        self._server = _Server((host, port), self.api)
        # A short poll interval makes close() quick: shutdown() waits for the loop to notice.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="auditor-emulator",
                                        daemon=True)
        self._thread.start()

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
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    data: Path,
    *,
    source: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8787,
    account_id: str | None = None,
    token: str | None = None,
    email: str | None = None,
    api_key: str | None = None,
    faults: Faults | None = None,
    allow_remote: bool = False,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve until Ctrl-C (blocking, for the CLI); ValueError for a non-loopback host without allow_remote."""
    if not (allow_remote or is_loopback(host)):
        raise ValueError(f"refusing to serve on {host!r}, which is not a loopback address (add --allow-remote)")
    api = Api(load_logs(data, source), account_id=account_id, token=token, email=email, api_key=api_key, faults=faults)
    server = _Server((host, port), api)
    echo(f"auditor emulator serving {server.base_url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
