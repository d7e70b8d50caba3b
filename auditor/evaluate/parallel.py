"""A second core for large exported logs: a forked helper process evaluates part of a unit's rules.

Reading a large export is bound by one core (JSON decoding and the per-record work of each rule). When
the files are large and the machine has a spare core, the runner hands about half of the rules (by the
span of their windows) to a helper: a forked copy of the process that reads the same files itself, feeds
only those rules and sends back their outcomes. The two passes run side by side; each reads the records
in the same order, so every outcome is exactly the one a single pass would give.

Used only where it is safe and pays: files (never the API), `fork` available, no other thread running, at
least two cores, at least MIN_BYTES of input. `AUDITOR_WORKERS=1` turns it off. If the helper fails in
any way, the parent evaluates its rules itself in a second pass: slower, same answer.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ForkContext does not exist on Windows: a type only
    from multiprocessing.context import ForkContext

MIN_BYTES = 32 << 20  # below this, a second pass costs more than it saves
ENV = "AUDITOR_WORKERS"


def context(size: int) -> ForkContext | None:
    """The multiprocessing context to fork a helper with, or None when a helper is not worth it or not safe."""
    if size < MIN_BYTES or os.environ.get(ENV, "").strip() == "1":
        return None
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return None  # forking while other threads hold locks can deadlock the child
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return multiprocessing.get_context("fork") if cores >= 2 else None


def share(weights: Sequence[float], kept: float) -> list[int]:
    """Indices of the items the helper takes: heaviest first, each to whichever side has less so far (the
    parent starts with `kept`, the weight of what only it can do)."""
    helper: list[int] = []
    load, mine = 0.0, kept
    for i in sorted(range(len(weights)), key=lambda i: -weights[i]):
        if load <= mine:
            helper.append(i)
            load += weights[i]
        else:
            mine += weights[i]
    return sorted(helper) if mine > 0 else []  # nothing left for the parent: no point in a helper


class HelperFailed(Exception):
    """The helper gave no result; str() says why (what it raised, how it ended, or that it timed out)."""


class Helper:
    """`work()` running in a forked process; `result()` waits for what it returned."""

    def __init__(self, ctx: ForkContext, work: Callable[[], Any]) -> None:
        self._receive, send = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_child, args=(send, work), name="auditor-helper", daemon=True)
        self._process.start()
        send.close()

    def result(self, timeout: float = 3600.0) -> Any:
        """What `work()` returned; HelperFailed (saying why) when the helper raised, died or took longer than
        `timeout` seconds (the caller then does the work itself)."""
        try:
            if not self._receive.poll(timeout):
                raise HelperFailed(f"no answer within {timeout:.0f} s")
            kind, value = self._receive.recv()
        except (EOFError, OSError) as exc:
            self._process.join(1.0)
            code = self._process.exitcode
            raise HelperFailed(f"it ended without an answer (exit code {code})" if code is not None
                               else f"its answer could not be read ({type(exc).__name__})") from None
        finally:
            self.close()
        if kind != "ok":
            raise HelperFailed(f"it raised {value}")
        return value

    def close(self) -> None:
        """Stop the helper (if still running) and release the pipe."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._receive.close()


def _child(send: Any, work: Callable[[], Any]) -> None:
    # Ctrl-C is the parent's to handle (it ends the helper); nothing may escape here either: multiprocessing
    # would print a traceback on the user's terminal. The parent sees a failure as ("failed", ...) or as the
    # pipe closing, and redoes the work itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            value: tuple[str, Any] = ("ok", work())
        except BaseException as exc:
            value = ("failed", repr(exc))
        send.send(value)
    except Exception:  # noqa: S110 - e.g. an outcome that cannot be pickled: the parent sees the pipe close
        pass
    finally:
        send.close()
