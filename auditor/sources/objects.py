"""Logpush destinations in object storage: `s3://BUCKET/PREFIX`, `r2://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`.

All three are read through the S3 API (boto3): R2 serves it at `https://ACCOUNT_ID.r2.cloudflarestorage.com`
and Google Cloud Storage at `https://storage.googleapis.com` (its interoperability endpoint, with HMAC keys).
DuckDB's httpfs extension would read them too, but it is downloaded on first use, which a machine without
internet access (or a locked-down CI runner) cannot do; boto3 is a plain package.

Credentials come only from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optionally
`AWS_SESSION_TOKEN`), never from files or instance metadata, and are never printed. `AWS_ENDPOINT_URL_S3` or
`AWS_ENDPOINT_URL` overrides the endpoint of every scheme (a MinIO, a local test server); `AWS_REGION` or
`AWS_DEFAULT_REGION` sets the region (default `us-east-1` for S3, `auto` for R2 and GCS).

The bucket is listed once; the object names say which objects a rule window needs (auditor.sources.logpush),
and only those are downloaded, into a temporary folder the run reads like a local Logpush folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMES = ("s3", "r2", "gs")
_URL = re.compile(r"^(?P<scheme>s3|r2|gs)://(?P<bucket>[^/]+)(?:/(?P<prefix>.*))?$")
_DEFAULT_ENDPOINT = {"gs": "https://storage.googleapis.com"}
_DOWNLOADS = 8  # objects downloaded at once


class ObjectStoreError(ValueError):
    """Object storage that cannot be read; str() is one line naming the location and what to do."""


@dataclass(frozen=True)
class ObjectPath:
    """A folder in a bucket: `scheme://bucket/prefix` (prefix without leading or trailing slash)."""

    scheme: str
    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def name(self) -> str:
        """The last part of the prefix (like Path.name)."""
        return self.prefix.rsplit("/", 1)[-1]

    def child(self, name: str) -> ObjectPath:
        """The folder `name` inside this one."""
        return ObjectPath(self.scheme, self.bucket, f"{self.prefix}/{name}".strip("/"))

    def url(self, key: str) -> str:
        """The URL of an object of this bucket."""
        return f"{self.scheme}://{self.bucket}/{key}"


def parse_object_path(text: str) -> ObjectPath | None:
    """`s3://bucket/prefix` (or r2://, gs://) -> ObjectPath; None when text is not such a URL."""
    m = _URL.match(text)
    if m is None:
        return None
    return ObjectPath(m.group("scheme"), m.group("bucket"), (m.group("prefix") or "").strip("/"))


def connect(where: ObjectPath, env: Mapping[str, str]) -> Any:
    """A boto3 S3 client for the location's scheme, with credentials from `env` only."""
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise ObjectStoreError(f"{where}: error: no object storage credentials; set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY (an R2 API token's S3 keys, or GCS HMAC keys)")
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or _DEFAULT_ENDPOINT.get(where.scheme)
    if where.scheme == "r2" and not endpoint:
        account = env.get("CLOUDFLARE_ACCOUNT_ID")
        if not account or not re.fullmatch(r"[0-9a-fA-F]{32}", account):
            raise ObjectStoreError(f"{where}: error: R2 needs its account endpoint; set CLOUDFLARE_ACCOUNT_ID "
                                   "(32 hex digits) or AWS_ENDPOINT_URL")
        endpoint = f"https://{account}.r2.cloudflarestorage.com"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ("us-east-1" if where.scheme == "s3" else "auto")
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret,
                                    aws_session_token=env.get("AWS_SESSION_TOKEN") or None, region_name=region)
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60,
                    s3={"addressing_style": "path" if endpoint else "auto"})
    return session.client("s3", endpoint_url=endpoint, config=config)


def list_keys(client: Any, where: ObjectPath) -> list[str]:
    """Every object key under the folder (all pages of the listing)."""
    prefix = f"{where.prefix}/" if where.prefix else ""
    keys: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", ()))
    except Exception as exc:  # botocore's errors (no such bucket, denied, unreachable) have no common base
        raise ObjectStoreError(f"{where}: error: cannot list the objects ({_reason(exc)})") from None
    return keys


def download(client: Any, where: ObjectPath, keys: Iterable[str], directory: Path) -> dict[str, Path]:
    """Download objects into `directory` under their keys; key -> local path. ObjectStoreError on failure."""
    wanted = sorted(set(keys))

    def get(key: str) -> tuple[str, Path]:
        local = directory / key
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            client.download_file(where.bucket, key, str(local))
        except Exception as exc:  # as in list_keys
            raise ObjectStoreError(f"{where.url(key)}: error: cannot download the object ({_reason(exc)})") from None
        return key, local

    with ThreadPoolExecutor(_DOWNLOADS, thread_name_prefix="auditor-objects") as pool:
        return dict(pool.map(get, wanted))


def _reason(exc: Exception) -> str:
    """botocore's one-line reason (it names the operation and the service's error code, never the keys)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
