"""`run --data s3://BUCKET/PREFIX`: a Logpush folder in object storage, read from a local S3 server (moto) on
loopback, gives the results of the same local folder; objects are pruned by name; credentials stay secret."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from moto.server import ThreadedMotoServer

from auditor.cli import app
from auditor.sources.objects import ObjectPath, parse_object_path
from tests.helpers import ENGINES, engine_args, scim, write, write_ndjson
from tests.integration.test_logpush_data import AT, RULES, _logpush_folder, _records

SECRET = "s3-FAKE-secret-9d2c7b-never-print"
BUCKET = "audit-logs"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """A moto S3 server on a free loopback port (never the internet)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: str) -> Path:
    """Rules, SCIM records, and one Logpush folder both on disk (lp/) and in the bucket (logpush/...)."""
    monkeypatch.chdir(tmp_path)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET,
                        "AWS_ENDPOINT_URL": s3_server, "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    write(tmp_path / "rules" / "rules.yaml", RULES)
    write_ndjson(tmp_path / "scim_updates.ndjson", [scim(logged_at="2026-11-20T10:00:00Z")])
    _logpush_folder(tmp_path / "lp", _records(), "unixnano", skip_hour=1)
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key=SECRET)
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    prefix = f"{tmp_path.name}/logpush"
    for path in sorted((tmp_path / "lp").rglob("*.log.gz")):
        s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(tmp_path / 'lp').as_posix()}")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/ownership-challenge-abc.txt", Body=b"challenge")  # not a log
    (tmp_path / "prefix").write_text(prefix)
    return tmp_path


def _run(*args: str, at: str = AT) -> tuple[dict, str]:
    out = Path("results.json")
    result = CliRunner().invoke(app.cli, ["run", "rules", "--at", at, "--quiet", "--results", str(out), *args])
    assert result.exit_code in (0, 1, 2), result.output
    assert out.exists(), result.stderr
    document = json.loads(out.read_text())
    document["summary"].pop("duration_s")
    return document, result.stderr


def _without_locations(document: dict) -> dict:
    """The document without which files were read (their names differ by location by design)."""
    out = json.loads(json.dumps(document))
    files = out["provenance"].pop("files")
    for r in out["results"]:
        r.pop("fetch")
    return {**out, "warnings": [w for w in out["warnings"] if "Logpush object" not in w]}, files


@pytest.mark.parametrize("engine", ENGINES)
def test_a_logpush_folder_on_s3_gives_the_results_of_the_same_local_folder(project, engine, request):
    url = f"s3://{BUCKET}/{(project / 'prefix').read_text()}"
    local, _ = _run("--data", "access_requests=lp", "--data", "scim_updates=scim_updates.ndjson", "--engine", "python")
    remote, stderr = _run("--data", f"access_requests={url}", "--data", "scim_updates=scim_updates.ndjson",
                          *engine_args(engine, request))
    assert _without_locations(remote)[0] == _without_locations(local)[0]
    assert [r["status"] for r in remote["results"]] == [r["status"] for r in local["results"]]
    assert remote["results"][0]["coverage"]["logs"][0]["basis"] == "logpush"
    # The gap (the hour with no objects) is named the same way, with the same times.
    gap = [w for w in remote["warnings"] if "no access_requests Logpush object covers" in w]
    assert gap and gap == [w for w in local["warnings"] if "no access_requests Logpush object covers" in w]
    read = [f["path"] for f in remote["provenance"]["files"] if f["source"] == "access_requests"]
    assert read and all(p.startswith(f"{url}/20261120/") for p in read)
    assert SECRET not in json.dumps(remote) + stderr


def test_objects_no_window_needs_are_not_downloaded(project):
    prefix = (project / "prefix").read_text()
    # At 10:00 the 3-hour windows end where the first hour of objects does: only its 12 objects are read.
    document, _ = _run("--data", f"s3://{BUCKET}/{prefix}", "--rule", "denied-burst", at="2026-11-20T10:00:00Z")
    read = sorted(f["path"] for f in document["provenance"]["files"])
    assert len(read) == 12 and read[0].endswith("20261120/20261120T090000Z_20261120T090500Z_00000000.log.gz")
    assert document["results"][0]["fetch"].startswith(f"files s3://{BUCKET}/{prefix}/20261120/")


def test_a_bucket_folder_holding_an_access_requests_folder_is_read_too(project):
    prefix = (project / "prefix").read_text().removesuffix("/logpush")
    s3 = boto3.client("s3", endpoint_url=None, region_name="us-east-1")
    for path in sorted((project / "lp").rglob("*T09*_*.log.gz")):  # the first hour
        s3.upload_file(str(path), BUCKET, f"{prefix}/archive/access_requests/{path.relative_to(project / 'lp')}")
    document, _ = _run("--data", f"s3://{BUCKET}/{prefix}/archive", "--rule", "denied-burst", at="2026-11-20T10:00:00Z")
    read = [f["path"] for f in document["provenance"]["files"]]
    assert len(read) == 12 and all(p.startswith(f"s3://{BUCKET}/{prefix}/archive/access_requests/") for p in read)
    # The names cover 09:00..10:00 only: the rest of the window is a gap.
    assert "2026-11-20T07:00:00Z..2026-11-20T09:00:00Z" in document["results"][0]["message"]


@pytest.mark.parametrize(("env", "needle"), [
    ({"AWS_ACCESS_KEY_ID": None}, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ({}, "cannot list the objects"),
])
def test_storage_that_cannot_be_read_makes_the_rules_errors_naming_it(project, monkeypatch, env, needle):
    for name in env:
        monkeypatch.delenv(name)
    document, stderr = _run("--data", "s3://no-such-bucket/logs", "--rule", "denied-burst")
    assert document["results"][0]["status"] == "error"
    message = document["results"][0]["message"]
    assert needle in message and "s3://no-such-bucket/logs" in message
    assert SECRET not in json.dumps(document) + stderr


def test_r2_needs_its_account_endpoint_and_gs_has_one():
    from auditor.sources.objects import ObjectStoreError, connect

    r2 = parse_object_path("r2://bucket/logs/")
    assert r2 == ObjectPath("r2", "bucket", "logs") and str(r2) == "r2://bucket/logs"
    keys = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": SECRET}
    with pytest.raises(ObjectStoreError, match="CLOUDFLARE_ACCOUNT_ID"):
        connect(r2, keys)
    client = connect(r2, {**keys, "CLOUDFLARE_ACCOUNT_ID": "0" * 32})
    assert client.meta.endpoint_url == f"https://{'0' * 32}.r2.cloudflarestorage.com"
    assert connect(ObjectPath("gs", "b"), keys).meta.endpoint_url == "https://storage.googleapis.com"
    assert parse_object_path("/local/path") is None and parse_object_path("s3:/one-slash") is None


def test_a_lake_on_s3_gives_the_results_of_the_local_lake_reading_only_the_days_windows_meet(project, monkeypatch):
    from auditor.sources import datasource
    from auditor.sources.lake import write_from_files

    write_from_files(project / "lake", {"access_requests": sorted((project / "lp").rglob("*.log.gz")),
                                        "scim_updates": [project / "scim_updates.ndjson"]})
    prefix = f"{(project / 'prefix').read_text()}/lake"
    s3 = boto3.client("s3", region_name="us-east-1")
    for path in sorted(p for p in (project / "lake").rglob("*") if p.is_file()):
        s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(project / 'lake').as_posix()}")
    local, _ = _run("--data", "lake", "--engine", "python")
    remote, stderr = _run("--data", f"s3://{BUCKET}/{prefix}")
    assert _without_locations(remote)[0] == _without_locations(local)[0]
    asked: list[str] = []
    real = datasource.download

    def spy(client, where, keys, directory):
        asked.extend(keys)
        return real(client, where, keys, directory)

    monkeypatch.setattr(datasource, "download", spy)
    early, _ = _run("--data", f"s3://{BUCKET}/{prefix}", "--rule", "denied-burst", at="2026-11-19T12:00:00Z")
    assert asked == []  # the lake holds 2026-11-20 only; a window on the 19th downloads no file
    assert early["results"][0]["status"] == "error"
    assert SECRET not in json.dumps(remote) + stderr
