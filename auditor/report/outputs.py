"""Writing report and results files: never a partial file, never a stale one that looks current.

A run first removes the outputs it is about to write (`clear`), so a run that fails or is interrupted
leaves no earlier run's report at those paths to be mistaken for its own; each output is then written
to a temporary file in the same folder and renamed into place (`write_atomic`), so a full disk or an
interrupt leaves either the complete new file or nothing. A file other steps append to (the GitHub step
summary) gets each run's block in one write (`append_whole`): all of it or none.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def encodable(text: str) -> str:
    """Text that UTF-8 can encode: a lone surrogate (from a JSON `\\ud800` in a log) becomes `\\ud800`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def clear(paths: Iterable[Path]) -> None:
    """Remove earlier outputs at these paths (a missing file is fine; a folder is left for the write to refuse)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            if path.is_file() or (path.is_symlink() and not path.exists()):  # never a device such as /dev/null
                path.unlink()


def write_atomic(path: Path, text: str) -> None:
    """Write text (UTF-8) to path through a temporary file in the same folder renamed into place.

    Raises OSError; on any failure, interrupts included, the temporary file is removed and `path` is not
    created. A path that is not a regular file (`/dev/null`, a named pipe) is written to directly: renaming
    over it would replace the device with a file.
    """
    if path.exists() and not path.is_file() and not path.is_dir():
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write(encodable(text))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(encodable(text))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; a report is as readable as any new file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def append_whole(path: Path, text: str) -> None:
    """Append text (UTF-8) to path with one write, so a crash or a full disk never leaves part of it.

    A short write (the disk filled up) is undone by cutting the file back to its earlier size. Raises OSError.
    """
    data = encodable(text).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        before = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
        except BaseException:
            _cut(fd, before)
            raise
        if written != len(data):
            _cut(fd, before)
            raise OSError(errno.ENOSPC, f"wrote only {written} of {len(data)} bytes; left as it was")
    finally:
        os.close(fd)


def _cut(fd: int, size: int) -> None:
    """Best effort: the file back to `size` bytes (what it held before a failed append)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, size)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
