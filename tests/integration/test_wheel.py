"""A non-editable install finds its schemas, templates and starter rules as package data."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import access, scim, write, write_ndjson

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-15T12:00:00Z"



def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def _clean_env() -> dict[str, str]:
    """The environment without anything that would point Python back at the source checkout."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV", "GITHUB_STEP_SUMMARY", "NO_COLOR")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("AUDITOR_VAR_", "CLOUDFLARE_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _outer_site_dirs() -> list[str]:
    """This interpreter's package directories (a venv's own, or the system's), where the dependencies are."""
    return [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv (sharing this environment's dependencies) with auditor installed from the repo, not editable."""
    venv = tmp_path_factory.mktemp("wheel") / "venv"
    env = _clean_env()
    # Not --system-site-packages: made from inside a venv, that would see the base interpreter's packages
    # instead of this venv's. A .pth file names this environment's package directories instead; plain path
    # lines, so an editable auditor there (a .pth of its own, not processed) stays out of sight.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env, timeout=120)
    python = _bin(venv, "python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, env=env, timeout=60).stdout.strip()
    (Path(purelib) / "_auditor_test_outer_env.pth").write_text("\n".join(_outer_site_dirs()) + "\n")
    # --ignore-installed: this environment may hold an editable auditor; the venv must get its own copy.
    command = [str(python), "-m", "pip", "install", "--quiet", "--ignore-installed", "--no-deps"]
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-build-isolation")  # no network needed for the build backend
    done = subprocess.run([*command, str(REPO)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


def test_installed_copy_is_used_with_its_package_data(installed, tmp_path):
    python = _bin(installed, "python")
    probe = ("import auditor, auditor.core.resources as r; "
             "print(auditor.__file__); print(r.schemas_dir()); print(r.templates_dir()); print(r.starter_rules_dir())")
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=_clean_env(), cwd=tmp_path,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    module, schemas, templates, rules = (Path(p) for p in out.stdout.splitlines())
    assert installed in module.parents, module
    for directory in (schemas, templates, rules):
        assert installed in directory.parents, directory
        assert REPO not in directory.parents
    assert (schemas / "rules.schema.json").is_file()
    assert (schemas / "results.schema.json").is_file()
    assert (templates / "text.j2").is_file()


def test_installed_console_script_validates_and_runs(installed, tmp_path):
    write(tmp_path / "auditor.yaml", "scim_idp_ids: [idp-1]\nvariables:\n  max_denied: {default: 2}\n")
    write(tmp_path / "rules" / "r.yaml", yaml.safe_dump({"rules": [
        {"id": "denied-burst", "title": "No user denied more than twice", "source": "access_requests",
         "window": "1h", "filter": {"allowed": False}, "group_by": "user_email",
         "expect": {"count": {"max": "${var.max_denied}"}}},
        {"id": "scim-heartbeat", "title": "SCIM ran", "source": "scim_updates", "window": "1d",
         "expect": {"count": {"min": 1}}},
    ]}))
    write_ndjson(tmp_path / "data" / "access_requests.ndjson",
                 [access(allowed=False, user_email="eve@x.com", created_at=f"2026-11-15T11:1{i}:00Z")
                  for i in range(3)])
    write_ndjson(tmp_path / "data" / "scim_updates.ndjson", [scim()])
    auditor = str(_bin(installed, "auditor"))
    env = _clean_env()

    valid = subprocess.run([auditor, "validate"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert (valid.returncode, valid.stdout, valid.stderr) == (0, "ok: 2 rules in 1 file\n", "")

    bad = subprocess.run([auditor, "validate", "--var", "max_denied=x"], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=60)
    assert bad.returncode == 2
    assert "rules/r.yaml:" in bad.stderr and "Traceback" not in bad.stderr

    run = subprocess.run([auditor, "run", "--data", "data", "--at", AT, "--results", "out.json",
                          "--report", "html=out.html"], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=60)
    assert run.returncode == 1, run.stderr
    assert "denied-burst" in run.stdout
    doc = json.loads((tmp_path / "out.json").read_text())
    assert {r["id"]: r["status"] for r in doc["results"]} == {"denied-burst": "fail", "scim-heartbeat": "pass"}
    assert "eve@x.com" in (tmp_path / "out.html").read_text()

    module = subprocess.run([str(_bin(installed, "python")), "-m", "auditor", "plan", "--at", AT, "--json"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert module.returncode == 0, module.stderr
    assert json.loads(module.stdout)["version"] == 1


def test_installed_init_scaffold_is_package_data(installed, tmp_path):
    auditor = str(_bin(installed, "auditor"))
    env = _clean_env()
    init = subprocess.run([auditor, "init", "policy"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=60)
    assert init.returncode == 0, init.stderr
    policy = tmp_path / "policy"
    for name in (".github/workflows/audit.yml", ".pre-commit-hooks.yaml", ".vscode/settings.json", "waivers.yaml",
                 "rules/scim.yaml", "schemas/waivers.schema.json"):
        assert (policy / name).is_file(), name
    for command in (["validate"], ["test"]):
        done = subprocess.run([auditor, *command], capture_output=True, text=True, cwd=policy, env=env, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
