"""Mask personal data (email and IP addresses) in a results document, for ``--redact``."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from typing import Any

# Emails also appear URL-encoded inside fetch query strings (`user_email=alice%40example.com`).
_EMAIL = re.compile(r"([^\s@<>()\[\]{}\"',;:=&?/|%]+)(@|%40)([\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,})")
# A dotted quad not glued to other digits/dots; one followed by `/NN` is already a network (config, not PII).
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?!\.?\d|/\d)")
# Candidate IPv6 tokens; ipaddress decides, so timestamps like 12:00:00 are left alone.
_IPV6 = re.compile(
    r"(?<![0-9A-Za-z:.])([0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?::\d{1,3}(?:\.\d{1,3}){3})?)"
    r"(?![0-9A-Za-z:]|\.\d|/\d)"
)

IPV4_PREFIX = 24
IPV6_PREFIX = 48


def redact_results(results: dict) -> dict:
    """Copy of a results document with emails masked and IPs cut to their network, in every string."""
    return _walk(results)


def redact_text(text: str) -> str:
    """Mask every email and IP address found inside one string."""
    text = _EMAIL.sub(_mask_email, text)
    text = _IPV6.sub(_mask_ipv6, text)
    return _IPV4.sub(_mask_ipv4, text)


def _walk(value: Any) -> Any:
    # Keys are field names chosen by the schema, not log data, so only values are rewritten.
    if isinstance(value, dict):
        return {key: _walk(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_walk(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


# Distinct addresses stay distinct (`a***@example.com #3f2a`): a short hash keyed so that it cannot be
# looked up in a list of addresses. The key is random per process (one run's reports agree); set
# AUDITOR_REDACT_KEY to keep the marks stable across runs, e.g. to compare two redacted reports.
_KEY = os.environ.get("AUDITOR_REDACT_KEY", "").encode() or secrets.token_bytes(16)


def _mask_email(match: re.Match[str]) -> str:
    local, at, domain = match.groups()
    address = f"{local}@{domain}".lower()
    mark = hmac.new(_KEY, address.encode(), hashlib.sha256).hexdigest()[:4]
    return f"{local[0]}***{at}{domain} #{mark}"


def _mask_ipv4(match: re.Match[str]) -> str:
    try:
        address = ipaddress.IPv4Address(match.group(1))
    except ValueError:
        return match.group(0)
    return str(ipaddress.IPv4Network(f"{address}/{IPV4_PREFIX}", strict=False))


def _mask_ipv6(match: re.Match[str]) -> str:
    token = match.group(1)
    if not any(ch.isalnum() for ch in token):
        return token
    try:
        address = ipaddress.IPv6Address(token)
    except ValueError:
        return token
    return str(ipaddress.IPv6Network(f"{address}/{IPV6_PREFIX}", strict=False))
