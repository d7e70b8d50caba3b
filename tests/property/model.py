"""Random rules and records for the property tests, and one-call evaluation over files and over the emulator.

Rules are drawn from the rule language itself (scalars, lists, operator mappings, group_by, the three
expectations, windows and since/until), as YAML, so they go through the same loading and validation as a
user's rules. Field values come from small pools so that filters match some records and not others, and
include the awkward cases: a missing optional field, letter case, IPv6 and IPv4-mapped addresses, a
malformed address, fractional seconds of every length, records just outside a window.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from auditor.compile.compiler import compile_plan
from auditor.core.coverage import COMPLETE
from auditor.core.timeutil import US, format_time, parse_time
from auditor.load.validate import Inputs, load_project
from auditor.run.runner import RunOptions
from auditor.run.runner import run as run_plan
from auditor.sources.cloudflare import client as api
from auditor.sources.cloudflare.source import CloudflareSource
from auditor.sources.files import FileSource
from auditor.testing.emulator import Emulator, EmulatorSettings, Faults
from tests.helpers import write_ndjson
from tests.integration.test_api_source import VirtualClock

AT = "2026-11-15T12:00:00Z"
T = parse_time(AT)
ACCOUNT = "0000000000000000000000000acc0123"  # 32 hex digits, as the CLI checks
TOKEN = "tok-FAKE-property-never-print"
IDPS = ("idp-0", "idp-1")
ABSENT = object()
SCALE = max(1, int(os.environ.get("AUDITOR_PROPERTY_EXAMPLES", "25")) // 25)


def examples(n: int) -> int:
    """A test's example count: modest in CI, scaled up by AUDITOR_PROPERTY_EXAMPLES for a longer search."""
    return n * SCALE


ACCESS = {
    "action": ["login", "logout", "sso"],
    "allowed": [True, False],
    "app_domain": ["app0.example.com", "app1.example.com", "admin.example.com"],
    "app_uid": ["uid-0", "uid-1"],
    "connection": ["okta", "saml", "onetimepin", "service_token"],
    "ip_address": ["198.51.100.7", "198.51.100.200", "203.0.113.9", "10.1.2.3", "2001:db8::5",
                   "::ffff:10.0.0.1", "not-an-ip"],
    "ray_id": ["r1", "r2", "r3", "r4"],
    "user_email": ["alice@example.com", "Alice@example.com", "bob@svc.example.com", "carol@example.org"],
    "country": ["US", "DE", "RU", ABSENT],
    "app_type": ["ssh", "self_hosted", ABSENT],
}
SCIM = {
    "cf_resource_id": ["cf-0", "cf-1"],
    "error_description": [None, "conflict"],
    "idp_id": [*IDPS, "idp-unlisted"],  # the last is not in scim_idp_ids: its records count nowhere
    "idp_resource_id": ["r-0", "r-1"],
    "request_body": ["{}", '{"active": false}'],
    "request_method": ["DELETE", "PATCH", "POST", "PUT"],
    "resource_group_name": ["G1", "G2"],
    "resource_type": ["USER", "GROUP"],
    "resource_user_email": ["u1@example.com", "U1@example.com", "u2@example.com"],
    "status": ["SUCCESS", "FAILURE"],
}
POOLS = {"access_requests": ACCESS, "scim_updates": SCIM}
TIME_FIELD = {"access_requests": "created_at", "scim_updates": "logged_at"}
NETWORKS = ["198.51.100.0/25", "10.0.0.0/8", "2001:db8::/32", "203.0.113.9"]
PATTERNS = ["^a", "(?i)^alice@", r"\.org$", "svc", "^r[12]$", "1", "^(okta|saml)$"]
TEXT = ["@example.com", "alice", "svc.", "app1", "o", "-1"]
WINDOWS = ["30m", "2h", "6h", "24h", "26h"]


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """A time around the reference time's last day (some outside every window), as RFC 3339 text with
    0 to 6 fractional digits."""
    us = draw(st.integers(-27 * 3600 * US, 3600 * US))
    digits = draw(st.integers(0, 6))
    us -= us % (10 ** (6 - digits))
    text = format_time(T + us)
    if digits and "." not in text:
        text = text[:-1] + "." + "0" * digits + "Z"
    elif "." in text:
        head, fraction = text[:-1].split(".")
        text = f"{head}.{fraction[:digits]}Z" if digits else f"{head}Z"
    return text


@st.composite
def records(draw: st.DrawFn, source: str, max_size: int = 40) -> list[dict[str, Any]]:
    """Records of one source, in no particular order."""
    pool = POOLS[source]
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        record: dict[str, Any] = {TIME_FIELD[source]: draw(timestamps())}
        for name, values in pool.items():
            value = draw(st.sampled_from(values))
            if value is not ABSENT:
                record[name] = value
        out.append(record)
    return out


def _values(source: str, name: str) -> list[Any]:
    return [v for v in POOLS[source][name] if v is not ABSENT and v is not None]


@st.composite
def conditions(draw: st.DrawFn, source: str, name: str) -> Any:
    """One field's filter value: a scalar, a list, or a mapping of one or two operators."""
    values = _values(source, name)
    if name == "allowed":
        return draw(st.one_of(st.sampled_from(values), st.fixed_dictionaries({"neq": st.sampled_from(values)}),
                              st.fixed_dictionaries({"exists": st.booleans()})))
    ops: dict[str, st.SearchStrategy[Any]] = {
        "eq": st.sampled_from(values),
        "neq": st.sampled_from(values),
        "in": st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True),
        "not_in": st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True),
        "exists": st.booleans(),
    }
    if POOLS[source] is ACCESS or name not in ("request_method", "resource_type", "status"):
        ops.update({
            "contains": st.sampled_from(TEXT), "not_contains": st.sampled_from(TEXT),
            "matches": st.sampled_from(PATTERNS), "not_matches": st.sampled_from(PATTERNS),
        })
    if name == "ip_address":
        ops["cidr"] = st.one_of(st.sampled_from(NETWORKS), st.lists(st.sampled_from(NETWORKS), min_size=1,
                                                                     max_size=2, unique=True))
        ops["not_cidr"] = ops["cidr"]
    chosen = draw(st.lists(st.sampled_from(sorted(ops)), min_size=1, max_size=2, unique=True))
    if len(chosen) == 1 and chosen[0] == "eq" and draw(st.booleans()):
        return draw(ops["eq"])  # the scalar shorthand
    if len(chosen) == 1 and chosen[0] == "in" and draw(st.booleans()):
        return draw(ops["in"])  # the list shorthand
    return {op: draw(ops[op]) for op in chosen}


@st.composite
def filters(draw: st.DrawFn, source: str, max_fields: int = 3) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(POOLS[source])), max_size=max_fields, unique=True))
    return {name: draw(conditions(source, name)) for name in names}


@st.composite
def bounds(draw: st.DrawFn, ratio: bool = False) -> dict[str, Any]:
    number = st.sampled_from([0, 0.25, 0.5, 0.9, 1]) if ratio else st.integers(0, 6)
    kind = draw(st.sampled_from(["max", "min", "both"]))
    if kind == "both":
        low, high = sorted([draw(number), draw(number)])
        return {"min": low, "max": high}
    return {kind: draw(number)}


@st.composite
def rules(draw: st.DrawFn, source: str, rule_id: str) -> dict[str, Any]:
    """One valid rule of `source`."""
    names = sorted(POOLS[source])
    rule: dict[str, Any] = {"id": rule_id, "title": f"rule {rule_id}", "source": source}
    if draw(st.booleans()):
        rule["window"] = draw(st.sampled_from(WINDOWS))
    else:
        since, until = sorted(draw(st.lists(st.integers(0, 26 * 60), min_size=2, max_size=2, unique=True)))
        rule["since"], rule["until"] = f"{until}m", f"{since}m"
    rule["filter"] = draw(filters(source))
    group_by = draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    if group_by:
        rule["group_by"] = group_by if len(group_by) > 1 else group_by[0]
    expect: dict[str, Any] = {}
    for kind in draw(st.lists(st.sampled_from(["count", "distinct", "ratio"]), max_size=2, unique=True)):
        if kind == "count":
            expect["count"] = draw(bounds())
        elif kind == "distinct":
            expect["distinct"] = {"field": draw(st.sampled_from(names)), **draw(bounds())}
        else:
            expect["ratio"] = {"where": draw(filters(source, 1).filter(bool)), **draw(bounds(ratio=True))}
    if expect:
        rule["expect"] = expect
    rule["evidence"] = draw(st.integers(0, 3))
    return rule


@st.composite
def scenarios(draw: st.DrawFn, max_rules: int = 4, max_records: int = 40) -> tuple[list[dict], dict[str, list]]:
    """(rules, records per source): one to max_rules rules over both logs."""
    sources = draw(st.lists(st.sampled_from(["access_requests", "access_requests", "scim_updates"]), min_size=1,
                            max_size=max_rules))
    drawn = [draw(rules(source, f"r{i}")) for i, source in enumerate(sources)]
    data = {source: draw(records(source, max_records)) for source in ("access_requests", "scim_updates")}
    return drawn, data


# --- evaluation -----------------------------------------------------------------------------------------


class Workspace:
    """One example's rules and data on disk, loaded once; evaluated over files or the emulator."""

    def __init__(self, root: Path, rule_list: list[dict], data: dict[str, list]) -> None:
        self.root = root
        self.data = data
        (root / "rules").mkdir()
        (root / "rules" / "rules.yaml").write_text(yaml.safe_dump({"rules": rule_list}, sort_keys=False))
        # `pushdown: all`: every condition the API can express goes through the emulator's filtering too.
        (root / "auditor.yaml").write_text(yaml.safe_dump({"scim_idp_ids": list(IDPS), "pushdown": "all"}))
        for source, rows in data.items():
            write_ndjson(root / "data" / f"{source}.ndjson", rows)
        project = load_project(Inputs(paths=(root / "rules",), config_path=root / "auditor.yaml"))
        assert project.ok, [d.format() for d in project.diagnostics]
        plan, problems = compile_plan(list(project.rules), project.config, T, ACCOUNT)
        self.plan = plan
        self.empty = [p.message for p in problems]  # rules whose window is empty at T are left out

    def files(self) -> dict[str, dict[str, Any]]:
        """rule id -> result JSON, evaluated over the NDJSON files."""
        return answers(run_plan(self.plan, FileSource(self.root / "data", None), RunOptions(coverage=COMPLETE)))

    def api(self, *, faults: Faults | None = None, per_page: int | None = None, limit: int | None = None,
            concurrency: int = 2) -> dict[str, dict[str, Any]]:
        """rule id -> result JSON, evaluated through the emulator (serving the same records) over loopback."""
        settings = EmulatorSettings(account_id=ACCOUNT, token=TOKEN, faults=faults or Faults())
        with Emulator(self.data, settings) as emu, client(emu, concurrency, per_page, limit) as c:
            return answers(run_plan(self.plan, CloudflareSource(c), RunOptions(coverage=COMPLETE)))


@contextmanager
def workspace(rule_list: list[dict], data: dict[str, list]) -> Iterator[Workspace]:
    """A Workspace in a fresh temporary folder (hypothesis examples cannot share pytest's tmp_path)."""
    with tempfile.TemporaryDirectory(prefix="auditor-property-") as folder:
        yield Workspace(Path(folder), rule_list, data)


def client(emu: Emulator, concurrency: int = 2, per_page: int | None = None,
           limit: int | None = None) -> api.ApiClient:
    """An API client for the emulator (asking per_page and limit when given) whose waits cost no real time."""
    settings = api.ApiSettings(emu.base_url, ACCOUNT, api.credentials_from_env({"CLOUDFLARE_API_TOKEN": TOKEN}),
                               concurrency=concurrency)
    settings = replace(settings, per_page=per_page or settings.per_page, limit=limit or settings.limit)
    return api.ApiClient(settings, timing=api.Timing(clock=VirtualClock(), random=lambda: 0.5))


def answers(run: Any) -> dict[str, dict[str, Any]]:
    """rule id -> the rule's results JSON (the whole answer: status, message, measurements, evidence), without
    `fetch`, the query text, which names the page size and limit a test may change."""
    out = {}
    for r in run.results:
        doc = r.to_json()
        doc.pop("fetch", None)
        doc.pop("coverage", None)  # how the transport knew what it covers, not the answer
        out[r.compiled.rule.id] = doc
    return out


def decided(result: dict[str, Any]) -> bool:
    """True when the rule was evaluated (pass or fail), False for `error`."""
    return result["status"] in ("pass", "fail")
