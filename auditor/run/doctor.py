"""`auditor doctor`: prove on the account what the published schema leaves open, with a few requests.

At most `MAX_REQUESTS` GETs, each over the same window (the last `LOOKBACK_DAYS` days):

per endpoint (access_requests; scim_updates with the configured `scim_idp_ids`), 2 or 3 requests:
  1. newest first, per_page 1000 and auditor's limit: the credential works (else the missing permission);
     the sample that the pushdown checks filter locally;
  2. oldest first, the same: the earliest record still served (the retention), and, compared with 1,
     whether more records exist than were returned (a silent cap);
  3. page 2 of 1, only when 1 came back full or short of records that exist: which cap it was (per_page or
     limit);
then, on access_requests, one request per undeclared pushdown (`UNDECLARED_PUSHDOWNS`), over the part of
the window that the sample holds completely: proven when it returns exactly the sample records that local
filtering keeps. The country codes' letter case comes from the sample.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from auditor import __version__
from auditor.core.fields import SOURCES
from auditor.core.timeutil import US, format_time, parse_time
from auditor.load.profile import DAY_US, UNDECLARED_PUSHDOWNS, ApiProfile, EndpointFindings, describe_time
from auditor.sources.cloudflare.envelope import NOT_JSON, error_text, parse_json
from auditor.sources.cloudflare.settings import LIMIT, PERMISSIONS, ApiSettings

PER_PAGE = 1000
LOOKBACK_DAYS = 400  # beyond Enterprise's 180 days of Access logs
MAX_REQUESTS = 2 * 3 + len(UNDECLARED_PUSHDOWNS)  # 13
DECLARED_FIELDS = ("action", "allowed", "app_domain", "app_uid", "connection", "created_at", "ip_address",
                   "ray_id", "user_email")
# Undeclared value parameters -> the record field local filtering compares.
VALUE_PUSHDOWNS = {"allowed": "allowed", "country_code": "country", "app_uid": "app_uid", "ray_id": "ray_id",
                   "app_type": "app_type"}


@dataclass(frozen=True)
class Check:
    """One line of the checklist: passed or not, what was seen, and the fix when it did not pass."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def line(self) -> str:
        """`✓ name: detail` or `✗ name: detail` with its fix on the next line."""
        text = f"{'✓' if self.ok else '✗'} {self.name}: {self.detail}"
        return text + (f"\n    fix: {self.fix}" if self.fix else "")

    def to_json(self) -> dict[str, Any]:
        """The check for `doctor --json`."""
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Diagnosis:
    """What doctor found: the checklist, the profile written from it, and the requests it took."""

    checks: list[Check]
    profile: ApiProfile
    requests: int

    @property
    def usable(self) -> bool:
        """The credential reads every endpoint that was probed."""
        return all(found.readable for found in self.profile.endpoints.values())


@dataclass(frozen=True)
class _Answer:
    status: int
    records: list[dict[str, Any]]
    problem: str | None = None  # set when the request did not succeed


def _key(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


class _Prober:
    """GETs with the run's credentials; counts requests and never exceeds MAX_REQUESTS."""

    def __init__(self, settings: ApiSettings, window: tuple[int, int],
                 transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.requests = 0
        self._since, self._until = window
        self._http = httpx.Client(
            base_url=settings.base_url, transport=transport, follow_redirects=False,
            headers={"User-Agent": f"auditor/{__version__}", "Accept": "application/json",
                     **dict(settings.credentials.headers)},
            timeout=httpx.Timeout(settings.retry.read_timeout_s, connect=settings.retry.connect_timeout_s))

    def close(self) -> None:
        self._http.close()

    def _scrub(self, text: str) -> str:
        for secret in self.settings.credentials.secrets:
            text = text.replace(secret, "[redacted]") if secret else text
        return text

    def get(self, source: str, params: Iterable[tuple[str, str]], *, since_us: int | None = None) -> _Answer:
        if self.requests >= MAX_REQUESTS:
            raise RuntimeError("doctor would exceed its documented number of requests")
        self.requests += 1
        query = [("since", format_time(since_us if since_us is not None else self._since)),
                 ("until", format_time(self._until)), ("per_page", str(PER_PAGE)), ("limit", str(LIMIT)),
                 *params]
        path = f"/accounts/{self.settings.account_id}{SOURCES[source].path}"
        try:
            response = self._http.get(f"{path}?{urlencode(query)}")
        except httpx.HTTPError as exc:
            return _Answer(0, [], f"request failed ({type(exc).__name__}: {self._scrub(str(exc)) or 'no detail'})")
        doc = parse_json(response.content)
        if response.status_code != 200:
            text = error_text(doc, response.reason_phrase, self._scrub)
            return _Answer(response.status_code, [], f"{response.status_code} {text}")
        if doc is NOT_JSON or not isinstance(doc, dict) or doc.get("success") is not True:
            return _Answer(200, [], "the answer is not a successful Cloudflare API envelope")
        result = doc.get("result")  # a missing or null result is an empty page, as the official SDKs read it
        if result is not None and not (isinstance(result, list) and all(isinstance(r, dict) for r in result)):
            return _Answer(200, [], "the answer's result is not a list of records")
        return _Answer(200, list(result or []))


def diagnose(settings: ApiSettings, scim_idp_ids: Iterable[str], now_us: int,
             transport: httpx.BaseTransport | None = None) -> Diagnosis:
    """Probe the account and return the checklist and profile (at most MAX_REQUESTS requests)."""
    window = (now_us - LOOKBACK_DAYS * DAY_US, now_us)
    prober = _Prober(settings, window, transport)
    checks: list[Check] = []
    endpoints: dict[str, EndpointFindings] = {}
    samples: dict[str, list[dict[str, Any]]] = {}
    try:
        idp = tuple(("idp_id", i) for i in sorted(set(scim_idp_ids)))
        for source, extra in (("access_requests", ()), ("scim_updates", idp)):
            if source == "scim_updates" and not idp:
                checks.append(Check("scim_updates", False, "not probed: no scim_idp_ids in auditor.yaml",
                                    "list your SCIM IdPs' ids under scim_idp_ids in auditor.yaml, then run doctor "
                                    "again"))
                continue
            found, sample, lines = _endpoint(prober, source, extra, now_us)
            endpoints[source] = found
            samples[source] = sample
            checks.extend(lines)
        access = samples.get("access_requests")
        pushdowns: dict[str, bool | None] = dict.fromkeys(UNDECLARED_PUSHDOWNS)
        if access is not None and endpoints["access_requests"].readable:
            found = endpoints["access_requests"]
            # The sample is the whole window only when it came in one page that nothing cut.
            whole = found.records_seen < PER_PAGE and found.limit_cap is None and found.per_page_cap is None
            for name, ok, line in _pushdowns(prober, access, whole):
                pushdowns[name] = ok
                checks.append(line)
            present, case, line = _country(access)
            checks.append(line)
        else:
            present, case = None, None
    finally:
        prober.close()
    profile = ApiProfile(account_id=settings.account_id, api_base=settings.base_url,
                         measured_at=describe_time(now_us), endpoints=endpoints, pushdowns=pushdowns,
                         country_present=present, country_case=case)
    return Diagnosis(checks, profile, prober.requests)


def _endpoint(prober: _Prober, source: str, extra: tuple[tuple[str, str], ...],
              now_us: int) -> tuple[EndpointFindings, list[dict[str, Any]], list[Check]]:
    """Probes 1-3 of one endpoint: access, retention, per_page and limit."""
    newest = prober.get(source, [("direction", "desc"), ("page", "1"), *extra])
    if newest.problem is not None:
        return EndpointFindings(readable=False), [], [_denied(prober, source, newest)]
    checks = [Check(f"{source}: credential", True, "reads this endpoint")]
    oldest = prober.get(source, [("direction", "asc"), ("page", "1"), *extra])
    if oldest.problem is not None:
        checks.append(Check(f"{source}: oldest first", False, oldest.problem,
                            "run doctor again; if it persists, the API refuses direction=asc"))
        return EndpointFindings(readable=True, records_seen=len(newest.records)), newest.records, checks
    time_field = SOURCES[source].time_field
    earliest_us = min((parse_time(r[time_field]) for r in oldest.records if isinstance(r.get(time_field), str)),
                      default=None)
    earliest, retention = None, None
    if earliest_us is None:
        checks.append(Check(f"{source}: retention", False, f"no records in the last {LOOKBACK_DAYS} days",
                            "run doctor again once the account has logs; until then retention_days in "
                            "auditor.yaml is used"))
    else:
        earliest, retention = describe_time(earliest_us), int((now_us - earliest_us) // DAY_US)
        checks.append(Check(f"{source}: retention", True,
                            f"earliest record served {earliest} ({retention} days ago): at least {retention} days"))
    n = len(newest.records)
    more_exist = {_key(r) for r in newest.records} != {_key(r) for r in oldest.records}
    per_page_ok: bool | None = None
    per_page_cap = limit_cap = None
    if n >= PER_PAGE or (more_exist and n < PER_PAGE):
        page2 = prober.get(source, [("direction", "desc"), ("page", "2"), *extra])
        pages_go_on = page2.problem is None and bool(page2.records)
        if n >= PER_PAGE:
            per_page_ok = True
            limit_cap = None if pages_go_on or not more_exist else n
        elif pages_go_on:
            per_page_cap = n
        else:
            limit_cap = n
    elif n:
        per_page_ok = True  # every record of the window came in one page
    if per_page_cap is not None:
        checks.append(Check(f"{source}: per_page {PER_PAGE}", False, f"pages hold at most {per_page_cap} records",
                            f"none needed (auditor reads pages until an empty one); per_page: {per_page_cap} in "
                            "auditor.yaml asks for what is served"))
    else:
        seen = "honoured" if per_page_ok else "not tested: no records"
        checks.append(Check(f"{source}: per_page {PER_PAGE}", True, seen if n >= PER_PAGE or not n else
                            f"honoured as far as {n} records show"))
    if limit_cap is not None:
        checks.append(Check(f"{source}: limit {LIMIT}", False,
                            f"silently capped at {limit_cap} entries per query (more records exist)",
                            "none needed: auditor detects the cut and reads on from it, at the cost of more "
                            "requests (docs/guarantees.md)"))
    else:
        checks.append(Check(f"{source}: limit {LIMIT}", True, f"no silent cap seen ({n} records in the sample)"))
    found = EndpointFindings(readable=True, earliest=earliest, retention_days=retention, per_page_honoured=per_page_ok,
                             per_page_cap=per_page_cap, limit_cap=limit_cap, records_seen=n)
    return found, newest.records, checks


def _denied(prober: _Prober, source: str, answer: _Answer) -> Check:
    permission = PERMISSIONS[source]
    if answer.status in (401, 403):
        scheme = prober.settings.credentials.scheme
        fix = (f"give the API token the account permission {permission} (CLOUDFLARE_API_TOKEN)" if scheme == "token"
               else f"give the user of CLOUDFLARE_EMAIL/CLOUDFLARE_API_KEY the permission {permission}")
        return Check(f"{source}: credential", False, f"{answer.problem}: missing {permission}?", fix)
    if answer.status == 429:
        return Check(f"{source}: credential", False, answer.problem or "429",
                     "wait: Cloudflare blocks a token over its quota (1200 requests per 5 minutes) for five "
                     "minutes; then run doctor again")
    if answer.status == 404:
        return Check(f"{source}: credential", False, answer.problem or "404",
                     "check the account id (--account-id, CLOUDFLARE_ACCOUNT_ID or account_id in auditor.yaml) "
                     "and the API base URL")
    return Check(f"{source}: credential", False, answer.problem or "failed",
                 "check the network and the API base URL, then run doctor again")


def _complete_part(sample: list[dict[str, Any]], whole: bool) -> tuple[int | None, list[dict[str, Any]]]:
    """The start of the part of the window the sample (newest first) holds completely, and its records."""
    if whole or not sample:
        return None, sample  # the whole window came in one page
    oldest_us = parse_time(sample[-1]["created_at"])
    start = oldest_us - oldest_us % US + US  # the next whole second: no record of it can be missing
    return start, [r for r in sample if parse_time(r["created_at"]) >= start]


def _choose(records: list[dict[str, Any]], keeps: Callable[[Any], Callable[[dict[str, Any]], bool]],
            values: Iterable[Any]) -> tuple[Any, list[dict[str, Any]]] | None:
    """A value whose filter keeps some but not all records (so an ignored filter shows), else one keeping none."""
    fallback = None
    for value in values:
        kept = [r for r in records if keeps(value)(r)]
        if 0 < len(kept) < len(records):
            return value, kept
        if not kept and fallback is None:
            fallback = (value, kept)
    return fallback


def _pushdowns(prober: _Prober, sample: list[dict[str, Any]],
               whole: bool) -> list[tuple[str, bool | None, Check]]:
    """One request per undeclared pushdown: exactly the records local filtering of the sample keeps?"""
    start, part = _complete_part(sample, whole)
    out: list[tuple[str, bool | None, Check]] = []
    for name in UNDECLARED_PUSHDOWNS:
        label = f"pushdown {name}"
        if not part:
            out.append((name, None, Check(label, False, "not tested: no records to compare with",
                                          "run doctor again once the account has logs; until then it stays local")))
            continue
        params, expected = _probe_params(name, part)
        if params is None:
            out.append((name, None, Check(label, False, "not tested: the sample cannot tell (no suitable value)",
                                          "run doctor again later; until then it stays local")))
            continue
        answer = prober.get("access_requests", [("direction", "desc"), ("page", "1"), *params], since_us=start)
        if answer.problem is not None:
            ok, detail = False, f"refused: {answer.problem}"
        else:
            got = sorted(_key(r) for r in answer.records)
            ok = got == sorted(_key(r) for r in expected)
            detail = (f"exact ({len(expected)} of {len(part)} sample records)" if ok else
                      f"returned {len(got)} records where local filtering keeps {len(expected)} of {len(part)}")
        fix = None if ok else "none needed: auditor does not send it and filters locally"
        out.append((name, ok, Check(label, ok, detail, fix)))
    return out


def _probe_params(name: str, part: list[dict[str, Any]]) -> tuple[list[tuple[str, str]] | None, list[dict]]:
    """The probe's filter parameters and the sample records local filtering keeps."""
    if name == "fields=country":
        names = (*DECLARED_FIELDS, "country")
        if not any("country" in r for r in part):
            return None, []
        return [("fields", ",".join(names))], [{k: r[k] for k in names if k in r} for r in part]
    if name == "emailOp=contains":
        emails = [r["user_email"] for r in part if isinstance(r.get("user_email"), str) and "@" in r["user_email"]]
        domains = sorted({"@" + e.split("@", 1)[1] for e in emails})
        chosen = _choose(part, lambda sub: lambda r: isinstance(r.get("user_email"), str) and sub in r["user_email"],
                         domains)
        if chosen is None:
            return None, []
        return [("email", chosen[0]), ("emailOp", "contains")], chosen[1]
    record_field = VALUE_PUSHDOWNS[name]
    if record_field == "allowed":
        candidates: list[Any] = [False, True]
    else:
        candidates = sorted({r[record_field] for r in part if isinstance(r.get(record_field), str)})
    chosen = _choose(part, lambda v: lambda r: r.get(record_field) is v if isinstance(v, bool)
                     else r.get(record_field) == v, candidates)
    if chosen is None:
        return None, []
    value, kept = chosen
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return [(name, text), (f"{name}Op", "eq")], kept


def _country(sample: list[dict[str, Any]]) -> tuple[bool | None, str | None, Check]:
    """Whether records carry `country`, and its letter case."""
    if not sample:
        return None, None, Check("country codes", False, "not tested: no records",
                                 "run doctor again once the account has logs")
    codes = {r["country"] for r in sample if isinstance(r.get("country"), str) and r["country"]}
    if not codes:
        return False, None, Check("country codes", False, f"none of {len(sample)} sample records carries country",
                                  "rules on country can only be checked over exported logs (Logpush) with --data")
    case = "upper" if all(c.isupper() for c in codes) else "lower" if all(c.islower() for c in codes) else "mixed"
    carried = sum(1 for r in sample if isinstance(r.get("country"), str) and r["country"])
    seen = f"{carried} of {len(sample)} sample records carry country, in {case} case"
    if case == "mixed":
        return True, case, Check("country codes", False, seen,
                                 "none needed: auditor reads them upper case and never sends country_code (no one "
                                 "case matches every record)")
    how = "" if case == "upper" else "; auditor reads them upper case and sends country_code lower case"
    return True, case, Check("country codes", True, seen + how)
