"""The API profile: what `auditor doctor` measured on one account, read back by `plan` and `run`.

A profile (JSON, `.auditor/api-profile.json` unless `api_profile:` in auditor.yaml says otherwise) holds the
account, the time of measurement and the findings: per endpoint whether the credential reads it, the
earliest record it still serves (its retention), the page size and limit it honours; per undeclared
pushdown whether it returned exactly what local filtering keeps; how country codes are written. It never
holds a credential. A profile older than `MAX_AGE_DAYS`, or for another account, is not used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from auditor.core.model import Config
from auditor.core.timeutil import US, format_time, parse_time

PROFILE_VERSION = 1
MAX_AGE_DAYS = 30
DEFAULT_PATH = ".auditor/api-profile.json"
DAY_US = 86_400 * US

# The pushdowns the published schema does not declare, named as the API takes them. A profile proves or
# disproves each; without a proof auditor does not send it.
UNDECLARED_PUSHDOWNS = ("allowed", "country_code", "app_uid", "ray_id", "app_type", "emailOp=contains",
                        "fields=country")


class ProfileError(Exception):
    """A profile file that cannot be used; one line naming the file and what to do."""


@dataclass(frozen=True)
class EndpointFindings:
    """What one endpoint showed: access, retention, page size and limit."""

    readable: bool  # the credential reads it
    earliest: str | None = None  # the earliest record it served (RFC 3339), None without records
    retention_days: int | None = None  # whole days from `earliest` to the measurement
    per_page_honoured: bool | None = None  # per_page 1000 served in full (None: too few records to tell)
    per_page_cap: int | None = None  # records per page it serves at most, when below the asked per_page
    limit_cap: int | None = None  # entries per query it returns at most, silently, when below auditor's limit
    records_seen: int = 0  # records in the probes' answers (the sample size)


@dataclass(frozen=True)
class ApiProfile:
    """One account's measured API behaviour."""

    account_id: str
    api_base: str
    measured_at: str  # RFC 3339
    endpoints: dict[str, EndpointFindings]
    pushdowns: dict[str, bool | None] = field(default_factory=dict)  # True proven, False not, None untested
    country_present: bool | None = None  # records carry `country` (None: no records to tell)
    country_case: str | None = None  # upper | lower | mixed (None: no country seen)
    version: int = PROFILE_VERSION

    @property
    def measured_us(self) -> int:
        """The measurement time in epoch microseconds."""
        return parse_time(self.measured_at)

    def age_days(self, now_us: int) -> float:
        """Days since the measurement."""
        return (now_us - self.measured_us) / DAY_US

    def usable(self, account_id: str | None, now_us: int) -> str | None:
        """Why this profile must not be used for `account_id` at `now_us`, or None when it may."""
        if account_id is not None and account_id != self.account_id:
            return f"it was measured on account {self.account_id}, not {account_id}"
        age = self.age_days(now_us)
        if age > MAX_AGE_DAYS:
            return f"it is {age:.0f} days old (at most {MAX_AGE_DAYS}); run `auditor doctor` again"
        if age < 0:
            return "its measurement time is in the future"
        return None

    def proven(self) -> frozenset[str]:
        """The undeclared pushdowns this account was shown to answer exactly."""
        return frozenset(name for name, ok in self.pushdowns.items() if ok) - self._mixed_case()

    def refused(self) -> frozenset[str]:
        """The undeclared pushdowns this account was shown to answer wrongly (or to refuse); country_code when
        its country codes come in both cases (no one case matches every record: the filter stays local)."""
        return frozenset(name for name, ok in self.pushdowns.items() if ok is False) | self._mixed_case()

    def _mixed_case(self) -> frozenset[str]:
        return frozenset({"country_code"}) if self.country_case == "mixed" else frozenset()

    def retention_days(self, source: str) -> int | None:
        """Days of logs `source` was measured to serve (a lower bound: older logs may never have existed)."""
        found = self.endpoints.get(source)
        return found.retention_days if found is not None else None

    def served_from(self) -> dict[str, int]:
        """Per endpoint with records, the earliest instant it was measured to serve (coverage's `profile` basis)."""
        return {source: parse_time(found.earliest) for source, found in self.endpoints.items() if found.earliest}

    def to_json(self) -> dict[str, Any]:
        """The profile as the JSON document written to disk."""
        return asdict(self)


def profile_path(config_path: str | None, configured: str | None) -> Path:
    """Where the profile lives: `api_profile:` (relative to auditor.yaml's folder), else the default there."""
    base = Path(config_path).parent if config_path else Path(".")
    return base / (configured or DEFAULT_PATH)


def write_profile(profile: ApiProfile, path: Path) -> None:
    """Write the profile (folders created); ProfileError naming the path on failure."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(profile.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)  # never a half-written profile
    except OSError as exc:
        raise ProfileError(f"{path}: cannot write the API profile: {exc.strerror or exc}") from None


def read_profile(path: Path) -> ApiProfile | None:
    """The profile at `path`, None when there is none; ProfileError for one that cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read the API profile ({exc}); run `auditor doctor` again") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != PROFILE_VERSION:
            raise ValueError(f"not a version {PROFILE_VERSION} API profile")
        endpoints = {name: EndpointFindings(**found) for name, found in data["endpoints"].items()}
        profile = ApiProfile(**{**data, "endpoints": endpoints})
        profile.measured_us  # noqa: B018 - checks the time parses
        if not isinstance(profile.pushdowns, dict):
            raise ValueError("pushdowns is not an object")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ProfileError(f"{path}: not a usable API profile ({exc}); run `auditor doctor` again") from None
    return profile


def describe_time(us: int) -> str:
    """An RFC 3339 time for the profile (second precision is enough for retention)."""
    return format_time(us - us % US)


def apply_profile(config: Config, profile: ApiProfile) -> Config:
    """The config with the access log retention a usable profile measured (coverage reads retention_days).
    What it proved of pushdowns is the planner's input (auditor.compile.pushdown.api_target)."""
    retention = profile.retention_days("access_requests")
    return replace(config, retention_days=retention if retention else config.retention_days)


def load_profile(config: Config, account_id: str | None, now_us: int) -> tuple[ApiProfile | None, Path, str | None]:
    """The profile for plan and run: (profile if usable, its path, why an existing one is not used)."""
    path = profile_path(config.path, config.api_profile)
    try:
        profile = read_profile(path)
    except ProfileError as exc:
        return None, path, str(exc)
    if profile is None:
        return None, path, None
    why = profile.usable(account_id or config.account_id, now_us)
    if why is not None:
        return None, path, f"{path}: API profile not used: {why}"
    return profile, path, None
