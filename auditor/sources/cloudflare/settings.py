"""API settings: credentials from the environment, base URL and account id checks, retry policy, timing.

Everything here is checked before the first request, so a bad setting is one line for the user.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote, quote_plus, urlsplit

from auditor.core.model import Config
from auditor.sources.cloudflare.ratelimit import DEFAULT_WINDOWS, Clock, SystemClock

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
PERMISSIONS = {"access_requests": "Access: Audit Logs Read", "scim_updates": "Access: SCIM Logs Read"}
LIMIT = 10_000  # entries one query may return, sent with every request (the client continues past it)
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SetupError(Exception):
    """Missing or unsafe API settings, found before any request; one line for the user."""


@dataclass(frozen=True)
class Credentials:
    """How requests authenticate; the secret values never appear in repr or messages."""

    scheme: str  # token | key
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    both_set: bool = False  # a token and an email/key pair were both in the environment

    def describe(self) -> str:
        """Which scheme is used, for stderr (names of variables only)."""
        if self.scheme == "key":
            return "authenticating with CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY (X-Auth-Email/X-Auth-Key)"
        text = "authenticating with CLOUDFLARE_API_TOKEN (Authorization: Bearer)"
        if self.both_set:
            text += "; CLOUDFLARE_EMAIL/CLOUDFLARE_API_KEY are also set and not used"
        return text

    def forms(self) -> tuple[str, ...]:
        """Every form in which a server could echo a secret: as it is and URL-encoded (either case of hex)."""
        out: list[str] = []
        for secret in self.secrets:
            for form in (secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)):
                for variant in (form, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form)):
                    if variant and variant not in out:
                        out.append(variant)
        return tuple(sorted(out, key=len, reverse=True))  # longest first: a form inside another is masked whole

    def hint(self, source: str) -> str:
        """What to check after a 401/403 on this source."""
        permission = PERMISSIONS[source]
        if self.scheme == "key":
            return f"check CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY, and that the user has {permission}"
        return f"check CLOUDFLARE_API_TOKEN has {permission}"


def _header_safe(value: str) -> bool:
    return value.isascii() and value.isprintable()


def credentials_from_env(env: Mapping[str, str]) -> Credentials:
    """CLOUDFLARE_API_TOKEN (preferred), else CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY; SetupError if neither."""
    token = env.get("CLOUDFLARE_API_TOKEN", "").strip()
    email = env.get("CLOUDFLARE_EMAIL", "").strip()
    key = env.get("CLOUDFLARE_API_KEY", "").strip()
    if token:
        if not _header_safe(token):
            raise SetupError("CLOUDFLARE_API_TOKEN holds characters that cannot be sent in an HTTP header")
        return Credentials("token", (("Authorization", f"Bearer {token}"),), (token,), both_set=bool(email or key))
    if email and key:
        if not (_header_safe(email) and _header_safe(key)):
            raise SetupError("CLOUDFLARE_EMAIL or CLOUDFLARE_API_KEY holds characters that cannot be sent in an "
                             "HTTP header")
        return Credentials("key", (("X-Auth-Email", email), ("X-Auth-Key", key)), (key,))
    if email or key:
        missing = "CLOUDFLARE_API_KEY" if email else "CLOUDFLARE_EMAIL"
        raise SetupError(f"{missing} is not set: the global API key needs both CLOUDFLARE_EMAIL and "
                         "CLOUDFLARE_API_KEY (or set CLOUDFLARE_API_TOKEN instead)")
    raise SetupError("no Cloudflare credentials: set CLOUDFLARE_API_TOKEN (a token with Access: Audit Logs Read "
                     "and Access: SCIM Logs Read), or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """The API base URL without a trailing slash; SetupError for anything that could leak credentials."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        raise SetupError("the API base URL cannot be parsed; expected https://HOST/client/v4") from None
    shown = f"{parts.scheme}://{host}" if host else "(unparsable URL)"
    if parts.scheme not in ("http", "https") or not host:
        raise SetupError(f"API base URL {shown!r} must look like https://HOST/client/v4")
    if "@" in parts.netloc:
        raise SetupError("the API base URL must not hold credentials (user:password@); use CLOUDFLARE_API_TOKEN")
    if parts.query or parts.fragment:
        raise SetupError(f"API base URL {shown!r} must not have a query or fragment")
    if parts.scheme == "http" and not _is_loopback(host):
        raise SetupError(f"refusing plain http:// to {host}: credentials would travel unencrypted; use https:// "
                         "(http is only allowed for a loopback host such as 127.0.0.1)")
    return url.strip().rstrip("/")


def check_account_id(account_id: str | None) -> str:
    """The account id, checked before it goes into a URL path."""
    if not account_id:
        raise SetupError("no Cloudflare account id: pass --account-id, set CLOUDFLARE_ACCOUNT_ID, or set "
                         "account_id in auditor.yaml")
    if not _ACCOUNT_ID.match(account_id):
        raise SetupError(f"account id {account_id!r} is not a Cloudflare account id (32 hexadecimal characters)")
    return account_id


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts and retries: exponential backoff with jitter; Retry-After honoured up to a bound."""

    attempts: int = 5  # in all, so 4 retries: waits of about 0.5, 1, 2, 4 s
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    # Cloudflare blocks a client over its quota for five minutes (429 with Retry-After): wait that long.
    max_retry_after_s: float = 300.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    deadline_s: float = 120.0  # one request in all (a server trickling its answer byte by byte), then retried

    def backoff(self, attempt: int, rand: float) -> float:
        """Wait after failed attempt `attempt` (1-based): half to all of base * 2^(attempt-1), capped."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * (0.5 + rand / 2)


@dataclass(frozen=True)
class Timing:
    """Clock and randomness, injectable so tests run without real waits."""

    clock: Clock = field(default_factory=SystemClock)
    random: Callable[[], float] = random.random


@dataclass(frozen=True)
class ApiSettings:
    """Everything the client needs; built and checked before the first request."""

    base_url: str
    account_id: str
    credentials: Credentials
    concurrency: int = Config.concurrency
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    windows: tuple[tuple[int, float], ...] = DEFAULT_WINDOWS
    # The request shape (auditor.sources.cloudflare.parts.Ask): records per page, entries per query.
    per_page: int = Config.per_page
    limit: int = LIMIT


def settings_from(base_url: str | None, account_id: str | None, env: Mapping[str, str],
                  concurrency: int | None = None, *, max_wait_s: float | None = None,
                  deadline_s: float | None = None, retries: int | None = None,
                  per_page: int | None = None) -> ApiSettings:
    """Settings from CLI/config values and the environment; SetupError names what is missing."""
    credentials = credentials_from_env(env)
    retry = RetryPolicy() if retries is None else RetryPolicy(attempts=retries + 1)
    if max_wait_s is not None:
        retry = replace(retry, max_retry_after_s=float(max_wait_s))
    if deadline_s is not None:
        retry = replace(retry, deadline_s=float(deadline_s))
    return ApiSettings(
        base_url=check_base_url(base_url or DEFAULT_BASE_URL),
        account_id=check_account_id(account_id),
        credentials=credentials,
        concurrency=max(1, concurrency or Config.concurrency),
        retry=retry,
        per_page=per_page or Config.per_page,
    )
