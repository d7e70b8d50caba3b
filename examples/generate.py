#!/usr/bin/env python3
"""Deterministic generator of auditor's bundled sample data (stdlib only, no wall clock).

Writes two weeks of Cloudflare Zero Trust Access logs for a fictional ~400-person company,
2026-11-01T00:00:00Z .. 2026-11-15T00:00:00Z, with planted incidents (see examples/README.md):

    examples/data/access_requests.ndjson.gz   API-shaped access_requests records, one JSON object a line
    examples/data/scim_updates.json           an API envelope whose `result` holds scim_updates records

    python examples/generate.py [--out DIR] [--seed N] [--access N]

The same arguments always produce byte-identical files (gzip is written with mtime 0 and no name).
`generate_access(n, rng, start_us, end_us)` streams baseline access records in time order, so the
benchmarks can produce millions of records without holding them in memory.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import gzip
import heapq
import io
import itertools
import json
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

US = 1_000_000
HOUR = 3600 * US
DAY = 24 * HOUR

DEFAULT_SEED = 20261115
DEFAULT_ACCESS = 42_000
REFERENCE = "2026-11-15T00:00:00Z"
START = "2026-11-01T00:00:00Z"
DATA_DIR = Path(__file__).resolve().parent / "data"

ACCESS_FILE = "access_requests.ndjson.gz"
SCIM_FILE = "scim_updates.json"

# The two SCIM identity providers (fixed ids; auditor.yaml lists them under scim_idp_ids).
OKTA_IDP_ID = "4f6c1a2e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"
AZURE_IDP_ID = "9d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f6a"

# Networks (documentation and benchmarking ranges only; none of these addresses is routable).
OFFICE_V6 = "2001:db8:10"  # 2001:db8:10::/48, one /64 per office
VPN_EGRESS = "198.51.100"  # 198.51.100.1-.30: corporate VPN egress (inside office_networks)
CI_RUNNERS = "198.51.100"  # 198.51.100.130-.139: CI runners (ci_networks = 198.51.100.128/25)
ATTACKER = "192.0.2"  # 192.0.2.0/24: the planted hostile addresses

SVC_DOMAIN = "svc.example.com"
BREAKGLASS = "breakglass@example.com"


def _ts(text: str) -> int:
    """RFC 3339 text (UTC, `Z`) -> epoch microseconds."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * US + dt.microsecond


@functools.lru_cache(maxsize=64)
def _hour_prefix(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H:")


def fmt_us(us: int, digits: int = 6) -> str:
    """Epoch microseconds -> RFC 3339 UTC with `digits` fractional digits (0 = none)."""
    hour, rest = divmod(us, HOUR)
    seconds, micros = divmod(rest, US)
    base = f"{_hour_prefix(hour)}{seconds // 60:02d}:{seconds % 60:02d}"
    if digits == 0:
        return base + "Z"
    return f"{base}.{micros:06d}"[: len(base) + 1 + digits] + "Z"


START_US = _ts(START)
END_US = _ts(REFERENCE)


# --------------------------------------------------------------------------------------------
# Applications


@dataclass(frozen=True)
class App:
    domain: str
    app_type: str
    uid: str  # stable per application: uuid5 of the domain




APPS: dict[str, App] = {
    a.split(".")[0]: App(a, t, str(uuid.uuid5(uuid.NAMESPACE_DNS, a)))
    for a, t in [
        ("wiki.example.com", "self_hosted"),
        ("git.example.com", "self_hosted"),
        ("ci.example.com", "self_hosted"),
        ("grafana.example.com", "self_hosted"),
        ("tickets.example.com", "self_hosted"),
        ("vpn.example.com", "self_hosted"),
        ("admin.example.com", "self_hosted"),
        ("hr.example.com", "saas"),
        ("payroll.example.com", "saas"),
        ("crm.example.com", "saas"),
        ("expenses.example.com", "saas"),
    ]
}
RESTRICTED = ("admin", "payroll")  # only some people are allowed in at all

DEPT_APPS: dict[str, dict[str, int]] = {
    "engineering": {"git": 30, "wiki": 15, "ci": 15, "grafana": 10, "tickets": 15, "vpn": 8, "expenses": 2, "hr": 2},
    "sales": {"crm": 40, "wiki": 15, "tickets": 10, "vpn": 10, "expenses": 8, "hr": 3},
    "support": {"tickets": 40, "crm": 20, "wiki": 20, "vpn": 8, "grafana": 5, "hr": 2, "expenses": 2},
    "marketing": {"wiki": 30, "crm": 20, "tickets": 15, "vpn": 10, "expenses": 8, "hr": 3},
    "finance": {"payroll": 30, "expenses": 25, "wiki": 15, "hr": 10, "tickets": 10, "vpn": 8, "crm": 5},
    "people": {"hr": 40, "wiki": 20, "tickets": 10, "vpn": 8, "expenses": 4},
    "it": {"admin": 25, "tickets": 20, "wiki": 15, "grafana": 10, "git": 10, "vpn": 8, "hr": 2},
    "legal": {"wiki": 40, "tickets": 20, "hr": 5, "vpn": 10, "expenses": 5},
    "leadership": {"wiki": 20, "crm": 20, "hr": 10, "expenses": 15, "tickets": 10, "vpn": 5},
    "contractor": {"wiki": 40, "tickets": 35, "git": 25},
}
RANDOM_DEPTS = {"engineering": 46, "sales": 16, "support": 15, "marketing": 9, "people": 4, "legal": 3,
                "leadership": 3}

# --------------------------------------------------------------------------------------------
# Regions: where people work, their UTC offset in November, their office.


@dataclass(frozen=True)
class Region:
    name: str
    countries: tuple[str, ...]
    utc_offset: int  # hours
    office_v4: tuple[int, int] | None  # last-octet range in 203.0.113.0/24
    office_v6: int | None  # 2001:db8:10:<n>::/64
    idp: str = "okta"


REGIONS: dict[str, Region] = {
    r.name: r
    for r in [
        Region("sf", ("US",), -8, (10, 29), 1),
        Region("ny", ("US",), -5, (40, 59), 2),
        Region("london", ("GB",), 0, (70, 89), 3),
        Region("berlin", ("DE",), 1, (100, 119), 4, idp="azureAD"),
        Region("remote_us", ("US",), -6, None, None),
        Region("remote_eu", ("IE", "NL", "FR", "ES"), 0, None, None),
        Region("remote_ca", ("CA",), -5, None, None),
        Region("contractors", ("US", "GB", "PT", "CA"), -3, None, None, idp="onetimepin"),
    ]
}
REGION_SIZES = {"sf": 118, "ny": 68, "london": 54, "berlin": 70, "remote_us": 35, "remote_eu": 20,
                "remote_ca": 10, "contractors": 15}

# Home broadband per country (198.18.0.0/15, the benchmarking range), mobile CGNAT, hotels.
HOME_NETS = {"US": (198, 18, 0, 255), "GB": (198, 19, 0, 31), "DE": (198, 19, 32, 63)}
OTHER_HOME_NET = (198, 19, 64, 127)
HOTEL_NET = (198, 19, 128, 255)
TRAVEL_COUNTRIES = ("US", "GB", "DE", "FR", "NL", "JP", "ES", "IE", "CA")

# Local-time activity curves (relative sign-ins per hour), weekday and weekend.
WEEKDAY = [0.4, 0.25, 0.15, 0.15, 0.2, 0.6, 2, 5, 9, 10, 9, 8, 6, 8, 9, 9, 8, 6, 4, 3, 2.5, 2, 1.4, 0.8]
WEEKEND = [0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.6, 0.9, 1.1, 1.2, 1.2, 1.1, 1.1, 1.0, 1.0, 1.0, 1.0,
           0.9, 0.8, 0.7, 0.5, 0.4]

FIRST = """james mary robert patricia john jennifer michael linda david elizabeth william barbara richard
susan joseph jessica thomas sarah charles karen christopher lisa matthew nancy anthony betty mark
sandra donald ashley steven emily paul kimberly andrew donna joshua michelle kenneth carol kevin
amanda brian melissa george deborah timothy stephanie ronald rebecca jason laura edward sharon jeffrey
cynthia ryan kathleen jacob amy gary angela nicholas anna eric ruth jonathan brenda stephen pamela
larry nicole justin katherine scott samantha frank christine brandon emma raymond catherine gregory
lukas lena felix mia jonas sofia leon hannah paul clara ahmed fatima wei mei kenji yuki raj ananya
omar leila diego lucia mateo chiara pierre camille sven ingrid""".split()
LAST = """smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez
gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez
clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores green
adams nelson baker hall rivera campbell mitchell carter roberts muller schneider fischer weber meyer
wagner becker schulz hoffmann koch richter klein wolf schroder neumann schwarz zimmermann braun
kruger hofmann hartmann lange schmitt werner krause meier lehmann okafor mensah tanaka suzuki sato
kumar sharma singh chen wang zhang liu ali khan hassan dubois lefevre moreau rossi russo ferrari
silva santos oliveira costa novak horvat kowalczyk nielsen jensen larsen berg""".split()


@dataclass
class User:
    email: str
    first: str
    last: str
    dept: str
    region: str
    country: str
    idp: str  # access `connection`
    apps: dict[str, int]
    home_ip: str
    home_country: str
    rate: float = 1.0
    github: bool = False
    office_share: float = 0.6
    active_from: int | None = None
    active_until: int | None = None
    scim_id: str = ""  # Cloudflare-side resource id (cf_resource_id)
    idp_res_id: str = ""  # IdP-side id (idp_resource_id)
    trips: list[tuple[int, int, str, str]] = field(default_factory=list)  # (from, until, country, ip)

    def active(self, t: int) -> bool:
        return (self.active_from is None or t >= self.active_from) and (
            self.active_until is None or t < self.active_until
        )


# Fixed people (seed-independent: auditor.yaml and the README name them).
FINANCE = [("amelia", "hart", "ny"), ("benjamin", "osei", "ny"), ("carla", "mendes", "ny"),
           ("daniel", "fischer", "london"), ("elena", "petrova", "london"), ("farid", "haddad", "ny"),
           ("grace", "kim", "sf"), ("hannah", "lindqvist", "london"), ("isaac", "turner", "ny"),
           ("julia", "santos", "sf")]
PAYROLL_PEOPLE = [("karen", "wu", "sf"), ("luis", "romero", "ny")]
IT_ADMINS = [("maya", "patel", "sf"), ("noah", "schmidt", "berlin"), ("olivia", "grant", "ny"),
             ("peter", "novak", "berlin"), ("quinn", "harper", "sf"), ("rachel", "adams", "london")]
# Incident actors.
PAYROLL_INTRUDER = ("jordan", "miller", "sf", "engineering")
RU_USER = ("priya", "natarajan", "ny", "sales")
KP_USER = ("sam", "ortiz", "remote_us", "support")
DEPROVISIONED = ("dana", "kowalski", "london", "marketing")
SERVICE_ACCOUNTS = {  # email local part -> app weights
    "ci-bot": {"git": 60, "ci": 40},
    "deploy-bot": {"git": 30, "ci": 50, "grafana": 20},
    "monitoring": {"grafana": 80, "wiki": 20},
    "backup-agent": {"wiki": 50, "git": 50},
}

PAYROLL_USERS = sorted(f"{f}.{last}@example.com" for f, last, _ in FINANCE + PAYROLL_PEOPLE)
ADMIN_USERS = sorted(f"{f}.{last}@example.com" for f, last, _ in IT_ADMINS)


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _okta_id(rng: random.Random, prefix: str) -> str:
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return prefix + "".join(rng.choice(alphabet) for _ in range(17))


def _ip4(rng: random.Random, net: tuple[int, int, int, int]) -> str:
    a, b, lo, hi = net
    return f"{a}.{b}.{rng.randint(lo, hi)}.{rng.randint(1, 254)}"


def _home_ip(rng: random.Random, country: str) -> str:
    if rng.random() < 0.15:  # IPv6 home broadband, 2001:db8:8000::/33
        return f"2001:db8:{rng.randint(0x8000, 0xffff):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
    return _ip4(rng, HOME_NETS.get(country, OTHER_HOME_NET))


# --------------------------------------------------------------------------------------------
# Population


@dataclass
class Population:
    users: list[User]
    by_region: dict[str, list[User]]
    service: list[User]
    by_email: dict[str, User]


def _make_user(rng: random.Random, first: str, last: str, region: str, dept: str,
               domain: str = "example.com") -> User:
    reg = REGIONS[region]
    country = rng.choice(reg.countries)
    apps = dict(DEPT_APPS[dept])
    user = User(
        email=f"{first}.{last}@{domain}", first=first, last=last, dept=dept, region=region,
        country=country, idp=reg.idp, apps=apps, home_ip=_home_ip(rng, country), home_country=country,
        rate=rng.uniform(0.5, 1.6), github=dept == "engineering" and rng.random() < 0.35,
        office_share=rng.uniform(0.3, 0.9) if reg.office_v4 else 0.0,
    )
    user.scim_id = _uuid(rng)
    user.idp_res_id = _uuid(rng) if user.idp == "azureAD" else _okta_id(rng, "00u")
    return user


def build_population(rng: random.Random, start_us: int = START_US, end_us: int = END_US) -> Population:
    """~400 people and four service accounts; some go on business trips inside [start_us, end_us)."""
    users: list[User] = []
    taken: set[tuple[str, str]] = set()

    def fixed(first: str, last: str, region: str, dept: str) -> User:
        taken.add((first, last))
        u = _make_user(rng, first, last, region, dept)
        users.append(u)
        return u

    for first, last, region in FINANCE:
        fixed(first, last, region, "finance")
    for first, last, region in PAYROLL_PEOPLE:
        fixed(first, last, region, "people").apps["payroll"] = 12
    for first, last, region in IT_ADMINS:
        fixed(first, last, region, "it")
    for first, last, region, dept in (PAYROLL_INTRUDER, RU_USER, KP_USER, DEPROVISIONED):
        fixed(first, last, region, dept)
    fixed_users = list(users)

    counts = dict(REGION_SIZES)
    for u in users:
        counts[u.region] -= 1
    depts, weights = zip(*RANDOM_DEPTS.items(), strict=True)
    for region, n in counts.items():
        for _ in range(n):
            while True:
                first, last = rng.choice(FIRST), rng.choice(LAST)
                if (first, last) not in taken:
                    break
            taken.add((first, last))
            if region == "contractors":
                users.append(_make_user(rng, first, last, region, "contractor", "contractors.example.com"))
            else:
                users.append(_make_user(rng, first, last, region, rng.choices(depts, weights)[0]))

    # Business trips: a dozen people spend a few days abroad (allowed countries only).
    span_days = max(1, (end_us - start_us) // DAY)
    candidates = [u for u in users if u not in fixed_users and u.region != "contractors"]
    for u in rng.sample(candidates, min(12, len(candidates))):
        begin = start_us + rng.randrange(span_days) * DAY + rng.randrange(DAY)
        length = rng.randint(2, 5) * DAY
        country = rng.choice([c for c in TRAVEL_COUNTRIES if c != u.home_country])
        u.trips.append((begin, begin + length, country, _ip4(rng, HOTEL_NET)))

    service: list[User] = []
    for i, (local, apps) in enumerate(SERVICE_ACCOUNTS.items()):
        service.append(User(
            email=f"{local}@{SVC_DOMAIN}", first=local, last="", dept="service", region="service",
            country="US", idp="service_token", apps=apps, home_ip=f"{CI_RUNNERS}.{130 + i}",
            home_country="US", rate=1.0,
        ))

    by_region: dict[str, list[User]] = {}
    for u in users:
        by_region.setdefault(u.region, []).append(u)
    by_email = {u.email: u for u in users + service}
    return Population(users, by_region, service, by_email)


# --------------------------------------------------------------------------------------------
# Access requests


def _local(t_us: int, offset_h: int) -> tuple[int, int]:
    """(weekday 0=Mon, hour) in local time."""
    dt = datetime.fromtimestamp(t_us // US + offset_h * 3600, UTC)
    return dt.weekday(), dt.hour


def _region_weight(region: str, members: int, t_us: int) -> float:
    if region == "service":
        weekday, _ = _local(t_us, 0)
        return members * 22.0 * (1.0 if weekday < 5 else 0.6)
    weekday, hour = _local(t_us, REGIONS[region].utc_offset)
    curve = WEEKDAY if weekday < 5 else WEEKEND
    return members * curve[hour]


def _cumulative(items: list[User]) -> list[float]:
    total, out = 0.0, []
    for u in items:
        total += u.rate
        out.append(total)
    return out


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    keys = list(weights)
    return rng.choices(keys, [weights[k] for k in keys])[0]


def access_record(*, t_us: int, user_email: str, app: str, connection: str, ip: str, allowed: bool,
                  action: str = "login", country: str | None, rng: random.Random,
                  with_app_type: bool = True) -> dict:
    """One API-shaped access_requests record (fields in the API's alphabetical order)."""
    a = APPS[app]
    rec: dict = {"action": action, "allowed": allowed, "app_domain": a.domain}
    if with_app_type:
        rec["app_type"] = a.app_type
    rec["app_uid"] = a.uid
    rec["connection"] = connection
    if country is not None:
        rec["country"] = country
    rec["created_at"] = fmt_us(t_us)
    rec["ip_address"] = ip
    rec["ray_id"] = _hex(rng, 16)
    rec["user_email"] = user_email
    return rec


def _office_ip(rng: random.Random, reg: Region) -> str:
    if reg.office_v6 is not None and rng.random() < 0.3:
        return f"{OFFICE_V6}:{reg.office_v6}::{rng.randint(0x100, 0xfff):x}"
    lo, hi = reg.office_v4  # type: ignore[misc]
    return f"203.0.113.{rng.randint(lo, hi)}"


def _human_record(rng: random.Random, u: User, t: int, weekday: int, hour: int) -> dict:
    """A sign-in by a person at `t` (local `weekday` and `hour` in their region)."""
    reg = REGIONS[u.region]
    app = _pick(rng, u.apps)
    allowed = True
    action = "login"
    r = rng.random()
    if r < 0.06:
        action = "logout"
    else:
        if r < 0.12:
            action = "sso"
        r = rng.random()
        if r < 0.004:  # tries an app they are not entitled to
            app = rng.choice([a for a in APPS if a not in u.apps and a not in RESTRICTED] or ["wiki"])
            allowed = False
        elif r < 0.0042 and u.dept != "contractor":
            app = rng.choice([a for a in RESTRICTED if a not in u.apps] or ["wiki"])
            allowed = False
        elif r < 0.032:  # MFA failure, device posture, expired session...
            allowed = False
    connection = u.idp
    if app == "git" and u.github and rng.random() < 0.4:
        connection = "github"

    trip = next((tr for tr in u.trips if tr[0] <= t < tr[1]), None)
    if app == "admin" and allowed:  # the admin console is only reachable from the office or the VPN
        if reg.office_v4 and weekday < 5 and 8 <= hour < 19 and rng.random() < u.office_share:
            ip = _office_ip(rng, reg)
        else:
            ip = f"{VPN_EGRESS}.{rng.randint(1, 30)}"
        country = u.home_country if trip is None else trip[2]
    elif trip is not None:
        ip, country = trip[3], trip[2]
    elif reg.office_v4 and weekday < 5 and 8 <= hour < 19 and rng.random() < u.office_share:
        ip, country = _office_ip(rng, reg), u.home_country
    elif rng.random() < 0.2:
        ip, country = _ip4(rng, (100, 64 + rng.randrange(64), 0, 255)), u.home_country  # mobile CGNAT
    else:
        ip, country = u.home_ip, u.home_country
    return access_record(
        t_us=t, user_email=u.email, app=app, connection=connection, ip=ip, allowed=allowed, action=action,
        country=None if rng.random() < 0.01 else country, rng=rng, with_app_type=rng.random() >= 0.01,
    )


def _service_record(rng: random.Random, u: User, t: int) -> dict:
    return access_record(
        t_us=t, user_email=u.email, app=_pick(rng, u.apps), connection="service_token",
        ip=f"{CI_RUNNERS}.{rng.randint(130, 139)}", allowed=rng.random() >= 0.005, country="US", rng=rng,
    )


def generate_access(n: int, rng: random.Random, start_us: int = START_US, end_us: int = END_US,
                    population: Population | None = None) -> Iterator[dict]:
    """Stream exactly `n` baseline access_requests records in ascending `created_at` order.

    Volume follows working hours in each region's time zone (weekends quieter); users only appear
    while active (`User.active_from`/`active_until`). Memory is one hour's worth of records.
    """
    pop = population if population is not None else build_population(rng, start_us, end_us)
    groups: dict[str, list[User]] = {**pop.by_region, "service": pop.service}
    cums = {k: _cumulative(v) for k, v in groups.items()}
    buckets = []
    day_factor: dict[int, float] = {}
    t = start_us - start_us % HOUR
    while t < end_us:
        lo, hi = max(t, start_us), min(t + HOUR, end_us)
        day = t // DAY
        if day not in day_factor:
            day_factor[day] = rng.uniform(0.85, 1.15)  # busy days and quiet days
        share = (hi - lo) / HOUR * day_factor[day] * rng.uniform(0.85, 1.15)
        weights = {k: _region_weight(k, len(v), t) * share for k, v in groups.items()}
        buckets.append((lo, hi, weights))
        t += HOUR
    totals = [sum(w.values()) for _, _, w in buckets]
    grand = sum(totals) or 1.0
    acc, emitted = 0.0, 0
    for (lo, hi, weights), total in zip(buckets, totals, strict=True):
        acc += total
        k = round(n * acc / grand) - emitted
        emitted += k
        if k <= 0:
            continue
        names = list(weights)
        cum_ws = list(itertools.accumulate(weights.values()))
        local = {r: _local(lo, REGIONS[r].utc_offset) for r in names if r != "service"}
        batch = []
        for _ in range(k):
            t = lo + rng.randrange(hi - lo)
            for _attempt in range(20):
                region = rng.choices(names, cum_weights=cum_ws)[0]
                members = groups[region]
                u = members[bisect.bisect_left(cums[region], rng.random() * cums[region][-1])]
                if u.active(t):
                    break
            else:
                u = pop.service[0]
            if u.region == "service":
                rec = _service_record(rng, u, t)
            else:
                rec = _human_record(rng, u, t, *local[u.region])
            batch.append((t, rec))
        batch.sort(key=lambda x: x[0])
        for _, rec in batch:
            yield rec


# --------------------------------------------------------------------------------------------
# SCIM updates

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
OKTA_GROUPS = ["Engineering", "Sales", "Support", "Marketing", "Finance", "People-Team", "Legal",
               "Leadership", "Payroll-Access", "VPN-Users", "Wiki-Editors", "On-Call"]
AZURE_GROUPS = ["DE-Engineering", "DE-Sales", "DE-Support", "DE-All-Staff", "DE-VPN-Users"]
ADMIN_GROUPS = {"IT-Admins": OKTA_IDP_ID, "Cloudflare-Admins": OKTA_IDP_ID, "DE-Admins": AZURE_IDP_ID}
TITLES = ["Software Engineer", "Senior Software Engineer", "Staff Engineer", "Account Executive",
          "Support Specialist", "Marketing Manager", "Engineering Manager", "Solutions Engineer",
          "Product Designer", "Data Analyst"]
OKTA_ERRORS = [
    "Conflict: a user with userName '{email}' already exists",
    "Invalid value for attribute 'name.familyName'",
    "Too many requests, retry later",
]
AZURE_BURST_ERROR = "Invalid request: attribute 'userName' must be an email address (got '{id}')"


@dataclass
class ScimGroup:
    name: str
    idp_id: str
    cf_id: str
    idp_res_id: str


def _body(obj: dict | None) -> str:
    return "" if obj is None else json.dumps(obj, separators=(",", ":"))


def _user_body(u: User, with_id: bool) -> dict:
    body: dict = {"schemas": [USER_SCHEMA, ENTERPRISE]}
    if with_id:
        body["id"] = u.scim_id
    body.update({
        "externalId": u.idp_res_id, "userName": u.email,
        "name": {"givenName": u.first.capitalize(), "familyName": u.last.capitalize()},
        "displayName": f"{u.first.capitalize()} {u.last.capitalize()}",
        "emails": [{"primary": True, "type": "work", "value": u.email}], "active": True,
        ENTERPRISE: {"department": u.dept.capitalize()},
    })
    return body


def scim_record(*, t_us: int, idp_id: str, method: str, rtype: str, cf_id: str, idp_res_id: str,
                body: dict | None, user_email: str = "", group: str = "", error: str = "") -> dict:
    """One API-shaped scim_updates record (fields in the API's alphabetical order)."""
    return {
        "cf_resource_id": cf_id,
        "error_description": error,
        "idp_id": idp_id,
        "idp_resource_id": idp_res_id,
        "logged_at": fmt_us(t_us, 3),
        "request_body": _body(body),
        "request_method": method,
        "resource_group_name": group,
        "resource_type": rtype,
        "resource_user_email": user_email,
        "status": "FAILURE" if error else "SUCCESS",
    }


def _user_op(rng: random.Random, u: User, idp_id: str, t: int, method: str, error: str = "") -> dict:
    if method == "DELETE":
        body = None
    elif method == "PATCH":
        ops = rng.choice([
            [{"op": "replace", "path": "title", "value": rng.choice(TITLES)}],
            [{"op": "replace", "path": f"{ENTERPRISE}:department", "value": u.dept.capitalize()}],
            [{"op": "replace", "path": "displayName", "value": f"{u.first.capitalize()} {u.last.capitalize()}"}],
            [{"op": "replace", "path": "phoneNumbers[type eq \"work\"].value",
              "value": f"+1 555 01{rng.randint(0, 99):02d}"}],
        ])
        body = {"schemas": [PATCH_SCHEMA], "Operations": ops}
    else:
        body = _user_body(u, with_id=method == "PUT")
    return scim_record(t_us=t, idp_id=idp_id, method=method, rtype="USER", cf_id=u.scim_id,
                       idp_res_id=u.idp_res_id, body=body, user_email=u.email, error=error)


def _group_op(rng: random.Random, g: ScimGroup, member: User, t: int, op: str = "", error: str = "") -> dict:
    # A membership change names the group and the one user it changes ("User email: user who received the
    # SCIM identity update", Cloudflare's SCIM log docs), so it can be joined with that user's sign-ins.
    op = op or rng.choice(["add", "add", "remove"])
    body = {"schemas": [PATCH_SCHEMA], "Operations": [
        {"op": op, "path": "members", "value": [{"value": member.scim_id, "display": member.email}]}]}
    return scim_record(t_us=t, idp_id=g.idp_id, method="PATCH", rtype="GROUP", cf_id=g.cf_id,
                       idp_res_id=g.idp_res_id, body=body, user_email=member.email, group=g.name, error=error)


@dataclass
class Scenario:
    """The dataset's storyline: population, lifecycle events and the SCIM log."""

    population: Population
    scim: list[dict]
    mass_deprovisioned: list[User]
    spray_targets: list[str]


# Planted incident times (examples/README.md documents them; tests check them).
SPRAY_START = _ts("2026-11-14T02:10:00Z")
SPRAY_IP = f"{ATTACKER}.77"
SPRAY_COUNTRY = "VN"
MASS_DEPROVISION_START = _ts("2026-11-14T16:05:00Z")
AZURE_BURST_START = _ts("2026-11-13T09:02:00Z")
AZURE_SILENT_FROM = _ts("2026-11-13T12:00:00Z")
DEPROVISIONED_DELETE = _ts("2026-11-10T14:22:07Z")
# An engineer (the payroll intruder) is added to IT-Admins by Okta and opens the admin console 10 minutes later.
ADMIN_GRANT = _ts("2026-11-13T22:47:31.204Z")
ADMIN_GRANT_USED = "2026-11-13T22:58:05Z"


def build_scenario(rng: random.Random, start_us: int = START_US, end_us: int = END_US) -> Scenario:
    pop = build_population(rng, start_us, end_us)
    okta_users = [u for u in pop.users if u.idp == "okta"]
    azure_users = [u for u in pop.users if u.idp == "azureAD"]

    def groups(names: list[str], idp_id: str, azure: bool) -> list[ScimGroup]:
        return [ScimGroup(n, idp_id, _uuid(rng), _uuid(rng) if azure else _okta_id(rng, "00g")) for n in names]

    okta_groups = groups(OKTA_GROUPS, OKTA_IDP_ID, False)
    azure_groups = groups(AZURE_GROUPS, AZURE_IDP_ID, True)
    admin_groups = {n: ScimGroup(n, idp, _uuid(rng), _uuid(rng) if idp == AZURE_IDP_ID else _okta_id(rng, "00g"))
                    for n, idp in ADMIN_GROUPS.items()}
    fixed_emails = {f"{f}.{last}@example.com" for f, last, *_ in
                    FINANCE + PAYROLL_PEOPLE + IT_ADMINS + [PAYROLL_INTRUDER, RU_USER, KP_USER, DEPROVISIONED]}
    ordinary_okta = [u for u in okta_users if u.email not in fixed_emails and not u.trips]
    ordinary_azure = [u for u in azure_users if u.email not in fixed_emails and not u.trips]
    records: list[dict] = []

    # Lifecycle: new hires (POST, active afterwards) and leavers (DELETE, inactive afterwards).
    pool_okta = list(ordinary_okta)
    rng.shuffle(pool_okta)
    pool_azure = list(ordinary_azure)
    rng.shuffle(pool_azure)

    def weekday_time(lo: int, hi: int, offset: int) -> int:
        while True:
            t = lo + rng.randrange(hi - lo)
            wd, hour = _local(t, offset)
            if wd < 5 and 9 <= hour < 17:
                return t

    lifecycle = [(pool_okta.pop(), OKTA_IDP_ID, "POST") for _ in range(6)]
    lifecycle += [(pool_okta.pop(), OKTA_IDP_ID, "DELETE") for _ in range(4)]
    lifecycle += [(pool_azure.pop(), AZURE_IDP_ID, "POST"), (pool_azure.pop(), AZURE_IDP_ID, "DELETE")]
    for u, idp_id, method in lifecycle:
        hi = AZURE_BURST_START if idp_id == AZURE_IDP_ID else end_us - DAY
        t = weekday_time(start_us + DAY, hi, REGIONS[u.region].utc_offset)
        if method == "POST":
            u.active_from = t + rng.randrange(10 * 60 * US, 3 * HOUR)
            records.append(_user_op(rng, u, idp_id, t, "POST"))
            g = rng.choice(okta_groups if idp_id == OKTA_IDP_ID else azure_groups)
            records.append(_group_op(rng, g, u, t + 2 * US + rng.randrange(US), "add"))
        else:
            u.active_until = t
            records.append(_user_op(rng, u, idp_id, t, "DELETE"))

    # The deprovisioned user who keeps signing in (their access records are planted separately).
    dana = pop.by_email[f"{DEPROVISIONED[0]}.{DEPROVISIONED[1]}@example.com"]
    dana.active_until = DEPROVISIONED_DELETE
    records.append(_user_op(rng, dana, OKTA_IDP_ID, DEPROVISIONED_DELETE, "DELETE"))

    # Mass deprovisioning: 36 DELETE USER from Okta within 45 minutes.
    mass = sorted(rng.sample([u for u in pool_okta if u.dept in ("support", "marketing", "sales")], 36),
                  key=lambda u: u.email)
    t = MASS_DEPROVISION_START + rng.randrange(60 * US)
    for u in mass:
        u.active_until = t
        records.append(_user_op(rng, u, OKTA_IDP_ID, t, "DELETE"))
        t += rng.randrange(55 * US, 80 * US)

    # Regular sync cycles per IdP.
    def cycles(idp_id: str, users: list[User], grps: list[ScimGroup], gap_h: tuple[float, float],
               per_run: tuple[int, int], stop: int) -> None:
        t = start_us + rng.randrange(int(gap_h[1] * HOUR))
        offset = 1 if idp_id == AZURE_IDP_ID else -6
        while t < stop:
            wd, _ = _local(t, offset)
            k = rng.randint(*per_run) if wd < 5 else rng.randint(1, max(1, per_run[0]))
            ts = t
            for _ in range(k):
                ts += rng.randrange(200_000, 4 * US)
                if ts >= stop:
                    break
                u = rng.choice(users)
                while not u.active(ts):
                    u = rng.choice(users)
                r = rng.random()
                error = ""
                if r < 0.45:
                    method = "PUT" if idp_id == OKTA_IDP_ID else "PATCH"
                    if rng.random() < 0.006:
                        error = rng.choice(OKTA_ERRORS).format(email=u.email)
                    records.append(_user_op(rng, u, idp_id, ts, method, error))
                elif r < 0.62:
                    records.append(_user_op(rng, u, idp_id, ts, "PATCH"))
                else:
                    records.append(_group_op(rng, rng.choice(grps), u, ts))
            t += int(rng.uniform(*gap_h) * HOUR)

    cycles(OKTA_IDP_ID, okta_users, okta_groups, (2.0, 4.0), (4, 18), end_us)
    cycles(AZURE_IDP_ID, azure_users, azure_groups, (1.5, 3.0), (1, 6), AZURE_BURST_START)

    # Azure: an attribute-mapping change makes every update fail, then Azure quarantines the job.
    t = AZURE_BURST_START
    for _ in range(28):
        u = rng.choice(azure_users)
        records.append(_user_op(rng, u, AZURE_IDP_ID, t, rng.choice(["PATCH", "PATCH", "PUT"]),
                                AZURE_BURST_ERROR.format(id=u.idp_res_id)))
        t += rng.randrange(4 * 60 * US, 7 * 60 * US)
    assert t < AZURE_SILENT_FROM

    # Routine changes to privileged groups (reviewed; none in the last 24 hours).
    by_name = {u.email: u for u in pop.users}
    for when, group, email, op in [
        ("2026-11-04T17:20:11.482Z", "IT-Admins", "quinn.harper@example.com", "add"),
        ("2026-11-10T09:45:52.107Z", "DE-Admins", "noah.schmidt@example.com", "remove"),
        ("2026-11-12T15:02:40.930Z", "Cloudflare-Admins", "olivia.grant@example.com", "add"),
    ]:
        records.append(_group_op(rng, admin_groups[group], by_name[email], _ts(when), op))
    intruder = by_name[f"{PAYROLL_INTRUDER[0]}.{PAYROLL_INTRUDER[1]}@example.com"]
    records.append(_group_op(rng, admin_groups["IT-Admins"], intruder, ADMIN_GRANT, "add"))

    records = [r for r in records if start_us <= _ts(r["logged_at"]) < end_us]
    records.sort(key=lambda r: r["logged_at"], reverse=True)  # the API's default: newest first
    real = sorted(rng.sample([u.email for u in ordinary_okta if u.active(SPRAY_START) and u not in mass], 30))
    spray_targets = [*real, "admin@example.com", "test@example.com"]  # plus two guessed names
    return Scenario(pop, records, mass, spray_targets)


# --------------------------------------------------------------------------------------------
# Planted access incidents


def planted_access(rng: random.Random, sc: Scenario) -> list[dict]:
    pop = sc.population
    recs: list[dict] = []

    def add(when: str | int, email: str, app: str, connection: str, ip: str, country: str | None,
            allowed: bool = True, action: str = "login") -> None:
        t = _ts(when) + rng.randrange(US) if isinstance(when, str) else when
        recs.append(access_record(t_us=t, user_email=email, app=app, connection=connection, ip=ip,
                                  allowed=allowed, action=action, country=country, rng=rng))

    # 1. Password spray: one IP, 48 denied VPN logins over 32 users within an hour.
    t = SPRAY_START
    targets = list(sc.spray_targets)
    attempts = targets + rng.sample(targets, 16)
    for email in attempts:
        add(t, email, "vpn", "okta", SPRAY_IP, SPRAY_COUNTRY, allowed=False)
        t += rng.randrange(40 * US, 90 * US)

    # 2. Sign-ins from unexpected countries.
    priya = f"{RU_USER[0]}.{RU_USER[1]}@example.com"
    add("2026-11-14T21:03:12Z", priya, "wiki", "okta", f"{ATTACKER}.150", "RU")
    add("2026-11-14T21:05:40Z", priya, "crm", "okta", f"{ATTACKER}.150", "RU", action="sso")
    add("2026-11-14T21:17:02Z", priya, "crm", "okta", f"{ATTACKER}.150", "RU")
    sam = f"{KP_USER[0]}.{KP_USER[1]}@example.com"
    add("2026-11-14T05:30:18Z", sam, "vpn", "okta", f"{ATTACKER}.201", "KP", allowed=False)
    add("2026-11-14T05:31:02Z", sam, "tickets", "okta", f"{ATTACKER}.201", "KP")

    # 3. Break-glass account used once (during an Okta incident), from the VPN.
    add("2026-11-09T03:12:45Z", BREAKGLASS, "admin", "onetimepin", f"{VPN_EGRESS}.7", "US")

    # 4. Service account signing in interactively (Okta) to the admin console, from the VPN.
    add("2026-11-14T13:41:09Z", "ci-bot@svc.example.com", "admin", "okta", f"{VPN_EGRESS}.12", "US")
    add("2026-11-14T14:02:51Z", "ci-bot@svc.example.com", "admin", "okta", f"{VPN_EGRESS}.12", "US",
        action="logout")

    # 5. Payroll accessed by an engineer outside the finance/payroll group.
    jordan = pop.by_email[f"{PAYROLL_INTRUDER[0]}.{PAYROLL_INTRUDER[1]}@example.com"]
    add("2026-11-12T20:05:33Z", jordan.email, "payroll", "okta", jordan.home_ip, "US")
    add("2026-11-14T18:22:10Z", jordan.email, "payroll", "okta", jordan.home_ip, "US")

    # 6. Deprovisioned user (SCIM DELETE 2026-11-10T14:22:07Z) still gets in with a one-time PIN.
    dana = pop.by_email[f"{DEPROVISIONED[0]}.{DEPROVISIONED[1]}@example.com"]
    for when in ("2026-11-11T09:14:51Z", "2026-11-13T16:40:03Z", "2026-11-14T11:02:37Z"):
        add(when, dana.email, "wiki", "onetimepin", dana.home_ip, dana.home_country)

    # 7. Some of the mass-deprovisioned users try to sign in afterwards and are denied.
    t = MASS_DEPROVISION_START + 2 * HOUR
    for u in rng.sample(sc.mass_deprovisioned, 8):
        add(t, u.email, _pick(rng, u.apps), "okta", u.home_ip, u.home_country, allowed=False)
        t += rng.randrange(10 * 60 * US, 40 * 60 * US)

    # 8. The on-call admin checks the console on Saturday from the VPN.
    add("2026-11-14T09:15:27Z", "rachel.adams@example.com", "admin", "okta", f"{VPN_EGRESS}.21", "GB")

    # 9. The engineer just added to IT-Admins (SCIM, ADMIN_GRANT) opens the admin console from the VPN. Its own
    # Random keeps every other record as it was before this incident was added.
    own = random.Random("admin-grant")
    recs.append(access_record(t_us=_ts(ADMIN_GRANT_USED) + own.randrange(US), user_email=jordan.email, app="admin",
                              connection="okta", ip=f"{VPN_EGRESS}.17", allowed=True, action="login",
                              country=jordan.home_country, rng=own))
    return sorted(recs, key=lambda r: r["created_at"])


# --------------------------------------------------------------------------------------------
# Writing


def build(out: Path, seed: int = DEFAULT_SEED, access: int = DEFAULT_ACCESS) -> dict[str, int]:
    """Write both files into `out`; returns record counts."""
    rng = random.Random(seed)
    sc = build_scenario(rng)
    planted = planted_access(rng, sc)
    out.mkdir(parents=True, exist_ok=True)

    scim_doc = {
        "success": True, "errors": [], "messages": [], "result": sc.scim,
        "result_info": {"count": len(sc.scim), "page": 1, "per_page": len(sc.scim),
                        "total_count": len(sc.scim), "total_pages": 1},
    }
    (out / SCIM_FILE).write_text(json.dumps(scim_doc, indent=1) + "\n", encoding="utf-8")

    baseline = generate_access(access, rng, START_US, END_US, sc.population)
    merged: Iterable[dict] = heapq.merge(baseline, planted, key=lambda r: r["created_at"])
    n = 0
    with (out / ACCESS_FILE).open("wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as text:
        for rec in merged:
            text.write(json.dumps(rec, separators=(",", ":")) + "\n")
            n += 1
    return {"access_requests": n, "scim_updates": len(sc.scim)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DATA_DIR, help="output directory (default examples/data)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    p.add_argument("--access", type=int, default=DEFAULT_ACCESS,
                   help=f"baseline access records, planted incidents come on top (default {DEFAULT_ACCESS})")
    args = p.parse_args(argv)
    counts = build(args.out, args.seed, args.access)
    for name, count in counts.items():
        print(f"{name}: {count} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
