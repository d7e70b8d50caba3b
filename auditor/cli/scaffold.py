"""`auditor init [DIR]`: scaffold a policy repository that validates, tests and runs out of the box.

The files come from auditor/scaffold/ (package data, so an installed wheel has them) and the JSON Schemas
the editors use are copied from the installed schemas. Nothing is overwritten: when any target exists,
nothing is written at all.
"""

from __future__ import annotations

from pathlib import Path

from auditor import __version__
from auditor.core.resources import rules_reference, scaffold_dir, schemas_dir

# Package-data name -> name in the new repository (hidden names are stored without their dot).
_RENAMES = {
    "github/workflows/audit.yml": ".github/workflows/audit.yml",
    "pre-commit-hooks.yaml": ".pre-commit-hooks.yaml",
    "vscode/settings.json": ".vscode/settings.json",
}
SCHEMAS = ("rules", "config", "waivers")
VERSION_TOKEN = "@AUDITOR_VERSION@"  # noqa: S105 (a placeholder, not a secret)


class ScaffoldError(Exception):
    """init cannot write the repository; the message is one line."""


def files() -> dict[str, bytes]:
    """Relative path in the new repository -> content, in a stable order."""
    root = scaffold_dir()
    out: dict[str, bytes] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        name = path.relative_to(root).as_posix()
        content = path.read_bytes().replace(VERSION_TOKEN.encode(), __version__.encode())
        out[_RENAMES.get(name, name)] = content
    for name in SCHEMAS:
        out[f"schemas/{name}.schema.json"] = (schemas_dir() / f"{name}.schema.json").read_bytes()
    out["docs/rules.md"] = rules_reference().read_bytes()  # the language reference of this version
    return dict(sorted(out.items()))


def scaffold(directory: Path) -> list[Path]:
    """Write the scaffold into `directory` (created if missing); the paths written."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ScaffoldError(f"{directory} exists and is not a directory")
    content = files()
    targets = {directory / name: data for name, data in content.items()}
    existing = [str(path) for path in targets if path.exists() or path.is_symlink()]
    if existing:
        raise ScaffoldError(f"init would overwrite {', '.join(existing)}; nothing was written "
                            "(move them away or pick another directory)")
    written: list[Path] = []
    try:
        for path, data in targets.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("xb") as fh:  # never replaces a file created meanwhile
                fh.write(data)
            written.append(path)
    except OSError as exc:
        raise ScaffoldError(f"cannot write {exc.filename or directory}: {exc.strerror or exc}") from None
    return written
