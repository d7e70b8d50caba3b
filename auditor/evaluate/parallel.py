"""A second core for large exported logs: a forked helper evaluates every rule over part of the records.

Reading a large export is bound by one core (JSON decoding and the per-record work of the rules). When the
input is large and the machine has a spare core, the runner forks a helper: the parent reads the files and
cuts them into blocks of whole lines; each block it either decodes itself or, when the helper has fewer than
AHEAD blocks waiting, hands to the helper through a pipe. Both evaluate all rules over their records; at the
end the helper sends back its accumulators, which merge exactly into the parent's (auditor.evaluate.merge):
counts add, distinct sets unite, evidence heaps keep the earliest records of both, so the answer is the
single-pass one whatever the split.

The split follows the machine: a helper that gets less CPU time than the parent takes fewer blocks (none
while it has AHEAD waiting), so the parent is never held up by more than AHEAD blocks. And a helper is only
started while the load average leaves at least FREE of a core unused: measured on the 2-core machine with
six other jobs on it (load average 13-15), a second process made a run slower (benchmarks/README.md), since
it only competes with them for the same cores. Used only where it is safe and pays: files (never the API),
`fork` available, no other thread running, at least two cores, at least MIN_BYTES of uncompressed input.
`AUDITOR_WORKERS=1` turns it off, `AUDITOR_WORKERS=2` turns it on whatever the size and the load. If the
helper fails in any way, the parent reads the unit again alone: slower, same answer.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ForkContext does not exist on Windows: a type only
    from multiprocessing.connection import Connection
    from multiprocessing.context import ForkContext

MIN_BYTES = 16 << 20  # uncompressed; below this (about 50,000 records) a helper costs more than it saves
FREE = 0.5  # cores the load average must leave free: on a busy machine a second process only competes
ENV = "AUDITOR_WORKERS"
AHEAD = 3  # blocks the helper may have waiting: what the parent may wait for at the end
PIPE_BYTES = 1 << 20  # the pipe is grown to this (Linux' limit for unprivileged processes) ...
BLOCK_BYTES = PIPE_BYTES // (AHEAD + 1)  # ... so that AHEAD blocks fit in it: handing one over never waits
_F_SETPIPE_SZ = 1031  # Linux' fcntl to resize a pipe (not in the fcntl module before Python 3.10 on all builds)

Block = tuple[int, int, bytes]  # (part number, line number of the block's first line, whole lines)


def context(size: int) -> ForkContext | None:
    """The multiprocessing context to fork a helper with, or None when a helper is not worth it or not safe."""
    wanted = os.environ.get(ENV, "").strip()
    if wanted == "1":
        return None
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return None  # forking while other threads hold locks can deadlock the child
    if wanted == "2":
        return multiprocessing.get_context("fork")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if size < MIN_BYTES or cores < 2 or free_cores(cores) < FREE:
        return None
    return multiprocessing.get_context("fork")


def free_cores(cores: int) -> float:
    """Cores not in use on average over the last minute (the load average's view; all of them if unknown)."""
    try:
        return cores - os.getloadavg()[0]
    except OSError:  # no load average on this platform
        return float(cores)


class HelperFailed(Exception):
    """The helper gave no result; str() says why (what it raised, how it ended, or that it timed out)."""


class Helper:
    """`work(blocks)` running in a forked process over the blocks `offer` hands it; `result()` waits for what
    it returned."""

    def __init__(self, ctx: ForkContext, work: Callable[[Iterator[Block]], Any]) -> None:
        blocks_in, self._blocks = ctx.Pipe(duplex=False)
        self._answers, answers_out = ctx.Pipe(duplex=False)
        block_bytes = BLOCK_BYTES
        try:
            fcntl.fcntl(self._blocks.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:  # not Linux, or a lower limit: blocks small enough for the default 64 KiB pipe
            block_bytes = (1 << 16) // (AHEAD + 1)
        self.block_bytes = block_bytes - 256  # room for the message's header
        self._process = ctx.Process(target=_child, args=(blocks_in, answers_out, work), name="auditor-helper",
                                    daemon=True)
        self._process.start()
        blocks_in.close()
        answers_out.close()
        self._waiting = 0
        self._answer: tuple[str, Any] | None = None
        self._broken: str | None = None
        self.handed = 0  # blocks handed over

    def offer(self, block: Block) -> bool:
        """Hand the block to the helper when it has fewer than AHEAD waiting (True), else keep it (False)."""
        if self._broken is not None:
            return False
        self._drain()
        if self._waiting >= AHEAD or self._answer is not None:
            return False
        try:
            self._blocks.send(block)
        except OSError as exc:  # the helper is gone: its blocks are lost, result() says so
            self._broken = f"its pipe broke ({type(exc).__name__})"
            return False
        self._waiting += 1
        self.handed += 1
        return True

    def _drain(self) -> None:
        """Count the blocks the helper has finished (each acknowledged with None); keep an early answer."""
        try:
            while self._answer is None and self._answers.poll():
                message = self._answers.recv()
                if message is None:
                    self._waiting -= 1
                else:
                    self._answer = message
        except (EOFError, OSError):
            self._broken = self._broken or "it ended without an answer"

    def result(self, timeout: float = 3600.0) -> Any:
        """What `work()` returned once every block was handed over; HelperFailed (saying why) when the helper
        raised, died or took longer than `timeout` seconds (the caller then does the work itself)."""
        try:
            if self._broken is None and self._answer is None:
                try:
                    self._blocks.send(None)  # no more blocks
                except OSError:
                    pass  # it has ended: its answer, or the lack of one, says why
            self._blocks.close()
            while self._answer is None:
                if not self._answers.poll(timeout):
                    raise HelperFailed(f"no answer within {timeout:.0f} s")
                message = self._answers.recv()
                if message is not None:
                    self._answer = message
        except (EOFError, OSError) as exc:
            self._process.join(1.0)
            code = self._process.exitcode
            raise HelperFailed(f"it ended without an answer (exit code {code})" if code is not None
                               else f"its answer could not be read ({type(exc).__name__})") from None
        finally:
            self.close()
        kind, value = self._answer
        if kind != "ok":
            raise HelperFailed(f"it raised {value}")
        if self._broken is not None:
            raise HelperFailed(self._broken)
        return value

    def close(self) -> None:
        """Stop the helper (if still running) and release the pipes."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._blocks.close()
        self._answers.close()


def _received(blocks: Connection, answers: Connection) -> Iterator[Block]:
    """The blocks the parent hands over, each acknowledged once the next is asked for (it has been read)."""
    while (block := blocks.recv()) is not None:
        yield block
        answers.send(None)


def _child(blocks: Connection, answers: Connection, work: Callable[[Iterator[Block]], Any]) -> None:
    # Ctrl-C is the parent's to handle (it ends the helper); nothing may escape here either: multiprocessing
    # would print a traceback on the user's terminal. The parent sees a failure as ("failed", ...) or as the
    # pipe closing, and redoes the work itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            value: tuple[str, Any] = ("ok", work(_received(blocks, answers)))
        except BaseException as exc:
            value = ("failed", repr(exc))
        answers.send(value)
    except Exception:  # noqa: S110 - e.g. an outcome that cannot be pickled: the parent sees the pipe close
        pass
    finally:
        answers.close()
