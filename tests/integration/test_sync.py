"""`auditor sync --to LAKE` against the emulator over loopback: the lake holds exactly the API's records, a repeat
adds none, a later sync only the new ones, a fault leaves the lake as it was, and `run --data LAKE` gives the
results of the same records as NDJSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from auditor.sources.lake import MANIFEST, files, read_logs
from tests.helpers import ENGINES, engine_args
from tests.integration.test_api_source import (
    ACCOUNT,
    AT,
    CONFIG,
    SECRETS,
    TOKEN,
    access_records,
    at,
    cli,
    comparable,
    load,
    no_secrets,
    rule,
    run_args,
    scim_records,
    token_env,
    write_data,
    write_rules,
)

REPO = Path(__file__).resolve().parents[2]
RULES = [rule("denied", filter={"allowed": False}, group_by="user_email", expect={"count": {"max": 8}}),
         rule("ssh", window="6h", filter={"app_type": "ssh"}, expect={"count": {"max": 100}}),
         rule("scim-fail", "scim_updates", filter={"status": "FAILURE"}, expect={"count": {"max": 5}})]
LAKE_COVERS = "2026-10-17T00:00:00Z/2026-11-16T00:00:00Z"  # the tests' now (PINNED_NOW) - 30 days .. now


def sync_args(root: Path, lake: Path, base: str, *extra: str) -> list[str]:
    """`sync` arguments for the project in root."""
    return ["sync", "--to", str(lake), "--config", str(root / "auditor.yaml"), "--account-id", ACCOUNT,
            "--api-base", base, "--no-progress", "--json", *extra]


def lake_rows(lake: Path, source: str) -> list[tuple]:
    """Every record the manifest's files hold, sorted (what `run --data LAKE` reads)."""
    paths = [str(p) for p in files(lake, source)]
    if not paths:
        return []
    return sorted(duckdb.sql(f"SELECT * FROM read_parquet({paths!r}, hive_partitioning=false)").fetchall())


def snapshot(lake: Path) -> dict[str, bytes]:
    """Every file under the lake with its bytes."""
    return {p.relative_to(lake).as_posix(): p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_data(tmp_path / "data", access_records(), scim_records())
    return write_rules(tmp_path, RULES)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_lake_synced_from_the_api_gives_the_results_of_the_same_records_as_ndjson(project, emulator, engine, request):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    lake = project / "lake"
    synced = cli(sync_args(project, lake, emu.base_url), env=token_env())
    assert synced.exit_code == 0, synced.stderr
    summary = json.loads(synced.stdout)
    assert {name: log["added"] for name, log in summary["logs"].items()} == {"access_requests": 144,
                                                                            "scim_updates": 96}
    assert summary["logs"]["access_requests"]["covered"] == [LAKE_COVERS.split("/")]
    days = {p.parent.name for p in lake.glob("source=access_requests/*/*.parquet")}
    assert days == {"date=2026-11-14", "date=2026-11-15"}
    assert all(p.read_bytes()[:4] == b"PAR1" for p in lake.rglob("*.parquet"))
    over_lake = cli(run_args(project, "--data", str(lake), *engine_args(engine, request),
                             results=project / "lake.json"))
    over_files = cli(run_args(project, "--data", str(project / "data"), "--data-covers", LAKE_COVERS,
                              "--engine", "python", results=project / "files.json"))
    assert over_lake.exit_code == over_files.exit_code == 1, over_lake.stderr
    assert comparable(load(project / "lake.json")) == comparable(load(project / "files.json"))


def test_a_repeat_sync_adds_nothing_and_a_later_one_only_the_new_records(project, emulator):
    records = access_records()
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    lake = project / "lake"
    first = cli(sync_args(project, lake, emu.base_url, "--until", at(6 * 3600)), env=token_env())
    assert first.exit_code == 0, first.stderr
    before = json.loads(first.stdout)["logs"]["access_requests"]["added"]
    again = cli(sync_args(project, lake, emu.base_url, "--until", at(6 * 3600)), env=token_env())
    assert json.loads(again.stdout)["added"] == 0
    rest = cli(sync_args(project, lake, emu.base_url), env=token_env())
    summary = json.loads(rest.stdout)["logs"]
    # Resumed an hour before the lake's end: that hour is read again, and none of it is written twice.
    assert summary["access_requests"]["since"] == at(7 * 3600)
    assert summary["access_requests"]["fetched"] > summary["access_requests"]["added"] > 0
    assert before + summary["access_requests"]["added"] == len(records)
    assert len(lake_rows(lake, "access_requests")) == len(records)
    assert len(set(lake_rows(lake, "scim_updates"))) == len(lake_rows(lake, "scim_updates")) == 96
    assert len(read_logs(lake)["access_requests"].covered) == 1  # the two syncs' ranges overlap: one interval
    # A sync from further back (--since) reads everything again and still writes nothing twice.
    whole = cli(sync_args(project, lake, emu.base_url, "--since", at(30 * 3600)), env=token_env())
    assert json.loads(whole.stdout)["added"] == 0


def test_a_gap_between_syncs_stays_a_gap(project, emulator):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    lake = project / "lake"
    assert cli(sync_args(project, lake, emu.base_url, "--until", at(12 * 3600)), env=token_env()).exit_code == 0
    assert cli(sync_args(project, lake, emu.base_url, "--since", at(6 * 3600)), env=token_env()).exit_code == 0
    covered = json.loads((lake / MANIFEST).read_text())["logs"]["access_requests"]["covered"]
    assert covered[0][1] == at(12 * 3600) and covered[1][0] == at(6 * 3600)
    cli(run_args(project, "--data", str(lake), "--rule", "ssh", "--at", at(5 * 3600), results=project / "r.json"))
    document = load(project / "r.json")
    assert document["results"][0]["status"] == "error"
    assert f"no access_requests data covers {at(11 * 3600)}..{at(6 * 3600)}" in document["results"][0]["message"]
    assert document["results"][0]["coverage"]["logs"][0]["basis"] == "lake"


@pytest.mark.parametrize("faults", [{"rate_limit_first": 2}, {"cap_limit": 7}, {"fail_pages": {2: 1}}])
def test_recoverable_faults_still_give_every_record(project, emulator, clock, faults):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN, **faults)
    lake = project / "lake"
    synced = cli(sync_args(project, lake, emu.base_url, "--per-page", "25"), env=token_env())
    assert synced.exit_code == 0, synced.stderr
    assert len(lake_rows(lake, "access_requests")) == 144 and len(lake_rows(lake, "scim_updates")) == 96


@pytest.mark.parametrize("faults", [{"fail_pages": {2: 9}}, {"lie_total_pages": 1}, {"malformed_first": 9}])
def test_a_fault_mid_sync_fails_and_leaves_the_lake_as_it_was(project, emulator, clock, faults):
    lake = project / "lake"
    good = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    assert cli(sync_args(project, lake, good.base_url, "--until", at(6 * 3600)), env=token_env()).exit_code == 0
    before = snapshot(lake)
    bad = emulator(project / "data", account_id=ACCOUNT, token=TOKEN, **faults)
    failed = cli(sync_args(project, lake, bad.base_url, "--per-page", "10", "--retries", "1"), env=token_env())
    assert failed.exit_code == 2
    assert failed.stderr.strip().splitlines()[-1].startswith("error: ") and "lake is unchanged" in failed.stderr
    assert snapshot(lake) == before
    no_secrets(failed.stdout, failed.stderr)
    ran = cli(run_args(project, "--data", str(lake), "--rule", "denied", "--at", at(6 * 3600),
                       results=project / "r.json"))
    assert ran.exit_code in (0, 1), ran.stderr


def test_a_write_interrupted_before_the_manifest_is_never_read_and_is_tidied(project, emulator, monkeypatch):
    from auditor.run import sync as sync_module

    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    lake = project / "lake"
    assert cli(sync_args(project, lake, emu.base_url, "--until", at(6 * 3600)), env=token_env()).exit_code == 0
    rows, manifest = lake_rows(lake, "access_requests"), (lake / MANIFEST).read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sync_module, "write_manifest", crash)
    interrupted = cli(sync_args(project, lake, emu.base_url), env=token_env())
    assert interrupted.exit_code == 2
    assert (lake / MANIFEST).read_bytes() == manifest and lake_rows(lake, "access_requests") == rows
    stray = len(list(lake.rglob("*.parquet"))) - len(files(lake, "access_requests")) - len(files(lake, "scim_updates"))
    assert stray > 0  # the new files were written, but nothing lists them
    monkeypatch.undo()
    assert cli(sync_args(project, lake, emu.base_url), env=token_env()).exit_code == 0
    assert len(lake_rows(lake, "access_requests")) == 144
    listed = {p for s in ("access_requests", "scim_updates") for p in files(lake, s)}
    assert set(lake.rglob("*.parquet")) == listed  # the stray files are gone


def test_the_token_is_never_printed_or_written_and_sync_runs_as_a_subprocess(project, emulator):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    lake = project / "lake"
    env = {**os.environ, "PYTHONPATH": str(REPO), **token_env()}
    # A subprocess reads the real clock: the bounds are given, and the API is said to keep them for years.
    (project / "auditor.yaml").write_text(CONFIG + "retention_days: 3650\n", encoding="utf-8")
    bounds = ["--since", "2026-11-10T00:00:00Z", "--until", "2026-11-16T00:00:00Z"]
    done = subprocess.run([sys.executable, "-m", "auditor", *sync_args(project, lake, emu.base_url)[:-1], *bounds],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "access_requests: read 2026-11-10T00:00:00Z..2026-11-16T00:00:00Z: 144 records, 144 new" in done.stdout
    no_secrets(done.stdout, done.stderr)
    for path in lake.rglob("*"):
        if path.is_file():
            assert not any(s.encode() in path.read_bytes() for s in SECRETS), path


def test_scim_needs_idp_ids_and_the_rest_is_synced(tmp_path, emulator):
    write_data(tmp_path / "data", access_records(10), scim_records(10))
    root = write_rules(tmp_path, RULES, config="retention_days: 30\n")
    emu = emulator(tmp_path / "data", account_id=ACCOUNT, token=TOKEN)
    synced = cli(sync_args(root, tmp_path / "lake", emu.base_url), env=token_env())
    assert synced.exit_code == 0, synced.stderr
    logs = json.loads(synced.stdout)["logs"]
    assert logs["access_requests"]["added"] == 10
    assert "scim_idp_ids" in logs["scim_updates"]["note"] and "scim_updates" not in read_logs(tmp_path / "lake")
    changed = write_rules(tmp_path, RULES, config=CONFIG)
    assert cli(sync_args(changed, tmp_path / "lake", emu.base_url), env=token_env()).exit_code == 0
    other = write_rules(tmp_path, RULES, config="scim_idp_ids: [idp-9]\n")
    refused = cli(sync_args(other, tmp_path / "lake", emu.base_url), env=token_env())
    assert refused.exit_code == 2 and "new lake" in refused.stderr


def test_bad_times_are_one_line_errors(project):
    result = cli(["sync", "--to", str(project / "lake"), "--since", "yesterday"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --since 'yesterday'")
    result = cli(["sync", "--to", str(project / "lake"), "--since", AT, "--until", at(3600)])
    assert result.exit_code == 2 and "before --until" in result.stderr


def test_a_malformed_account_id_is_refused_before_any_request(project, emulator):
    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    args = sync_args(project, project / "lake", emu.base_url)
    args[args.index("--account-id") + 1] = "not-an-account"
    result = cli(args, env=token_env())
    assert result.exit_code == 2 and "32 hexadecimal digits" in result.stderr
    assert emu.requests == [] and not (project / "lake").exists()


def test_a_directory_that_is_not_a_lake_or_a_lake_being_synced_is_refused(project, emulator):
    import fcntl

    emu = emulator(project / "data", account_id=ACCOUNT, token=TOKEN)
    refused = cli(sync_args(project, project / "data", emu.base_url), env=token_env())
    assert refused.exit_code == 2 and "not a log lake and not empty" in refused.stderr
    assert sorted(p.name for p in (project / "data").iterdir()) == ["access_requests.ndjson", "scim_updates.ndjson"]
    lake = project / "lake"
    lake.mkdir()
    with (lake / ".sync.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = cli(sync_args(project, lake, emu.base_url), env=token_env())
    assert busy.exit_code == 2 and "another sync is writing this lake" in busy.stderr
    assert cli(sync_args(project, lake, emu.base_url), env=token_env()).exit_code == 0
