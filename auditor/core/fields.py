"""The two log sources' fields: type, API parameter, Logpush name. One table, read by everything."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    """How a field's values compare: strings, booleans, IP addresses or timestamps."""

    STRING = "string"
    BOOL = "bool"
    IP = "ip"
    TIME = "time"


class ParamStyle(StrEnum):
    """How the Cloudflare API takes a filter on a field (its query parameters), if at all."""

    NONE = "none"  # evaluated locally only
    OP_PAIR = "op_pair"  # access_requests: name=value&nameOp=eq|neq
    EMAIL = "email"  # access_requests: email/email_exact/emailOp
    ARRAY = "array"  # scim_updates: repeated keys name=a&name=b (one-of)


@dataclass(frozen=True)
class Field:
    """One field of one source and how the API and Logpush name it."""

    name: str
    type: FieldType
    param_style: ParamStyle = ParamStyle.NONE
    api_param: str | None = None
    # False when the public OpenAPI schema does not declare the value parameter (working model only).
    documented: bool = True
    logpush: str | None = None
    optional: bool = False
    # Values the API documents as the only ones; eq/in with anything else can never match.
    enum: tuple[str, ...] | None = None
    # Shown in evidence records even when no rule condition mentions the field.
    evidence: bool = False
    # Holds an e-mail address: correlation joins compare such fields case-insensitively (auditor.evaluate.correlate).
    email: bool = False


@dataclass(frozen=True)
class Source:
    """One log type: its API path, time field and fields."""

    name: str
    path: str  # relative to /accounts/{account_id}
    time_field: str
    fields: dict[str, Field]
    default_limit: int | None = None
    requires: tuple[str, ...] = ()
    # Whether the endpoint documents the `fields` projection parameter.
    projection: bool = False


def _table(*fields: Field) -> dict[str, Field]:
    return {f.name: f for f in fields}


S, B, IP, T = FieldType.STRING, FieldType.BOOL, FieldType.IP, FieldType.TIME

ACCESS_REQUESTS = Source(
    name="access_requests",
    path="/access/logs/access_requests",
    time_field="created_at",
    default_limit=25,
    projection=True,
    fields=_table(
        Field("action", S, logpush="Action", evidence=True),
        Field("allowed", B, ParamStyle.OP_PAIR, "allowed", documented=False, logpush="Allowed", evidence=True),
        Field("app_domain", S, logpush="AppDomain", evidence=True),
        Field("app_uid", S, ParamStyle.OP_PAIR, "app_uid", documented=False, logpush="AppUUID"),
        Field("connection", S, logpush="Connection", evidence=True),
        Field("created_at", T, logpush="CreatedAt", evidence=True),
        Field("ip_address", IP, logpush="IPAddress", evidence=True),
        Field("ray_id", S, ParamStyle.OP_PAIR, "ray_id", documented=False, logpush="RayID", evidence=True),
        Field("user_email", S, ParamStyle.EMAIL, "email", logpush="Email", evidence=True, email=True),
        Field("country", S, ParamStyle.OP_PAIR, "country_code", documented=False, logpush="Country",
              optional=True, evidence=True),
        Field("app_type", S, ParamStyle.OP_PAIR, "app_type", documented=False, optional=True),
    ),
)

SCIM_UPDATES = Source(
    name="scim_updates",
    path="/access/logs/scim/updates",
    time_field="logged_at",
    requires=("idp_id",),
    fields=_table(
        Field("cf_resource_id", S, ParamStyle.ARRAY, "cf_resource_id"),
        Field("error_description", S, evidence=True),
        Field("idp_id", S, ParamStyle.ARRAY, "idp_id", evidence=True),
        Field("idp_resource_id", S, ParamStyle.ARRAY, "idp_resource_id"),
        Field("logged_at", T, evidence=True),
        Field("request_body", S),
        Field("request_method", S, ParamStyle.ARRAY, "request_method",
              enum=("DELETE", "PATCH", "POST", "PUT"), evidence=True),
        Field("resource_group_name", S, ParamStyle.ARRAY, "resource_group_name", evidence=True),
        Field("resource_type", S, ParamStyle.ARRAY, "resource_type", enum=("USER", "GROUP"), evidence=True),
        Field("resource_user_email", S, ParamStyle.ARRAY, "resource_user_email", evidence=True, email=True),
        Field("status", S, ParamStyle.ARRAY, "status", enum=("FAILURE", "SUCCESS"), evidence=True),
    ),
)

SOURCES: dict[str, Source] = {s.name: s for s in (ACCESS_REQUESTS, SCIM_UPDATES)}

# Logpush's PascalCase export names -> API field names (access_requests only: SCIM has no dataset).
LOGPUSH_NAMES: dict[str, str] = {
    f.logpush: f.name for f in ACCESS_REQUESTS.fields.values() if f.logpush is not None
}
# ... and back: API field name -> Logpush's name, for reading a record kept in Logpush's names.
LOGPUSH_NAME_OF: dict[str, str] = {api: logpush for logpush, api in LOGPUSH_NAMES.items()}
