"""Shared fixtures: an emulator factory serving each test's own data and faults on a free loopback port."""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from auditor.cli.app import COMMANDS
from auditor.core import timeutil
from auditor.testing.emulator import Emulator, EmulatorSettings, Faults
from tests.helpers import PINNED_NOW

_FAULTS = {f.name for f in dataclasses.fields(Faults)}

# `auditor --help` imports no command (auditor.cli.app.COMMANDS); the tests import them all now, before any
# test pins the clock: a module importing `now_us` by name (cli/selection.py, for --at's default) keeps the
# real clock, as it does in a user's process.
for _module, _, _ in COMMANDS.values():
    importlib.import_module(f"auditor.cli.commands.{_module}")


_SPARK = pytest.StashKey[bool]()


def pytest_itemcollected(item: pytest.Item) -> None:
    """Under pytest-xdist, forking and Spark tests share one worker (`--dist loadgroup`), forking ones first,
    so no test forks in a process where Spark's threads run; the other worker never starts Spark."""
    if item.get_closest_marker("forks") or item.get_closest_marker("spark"):
        item.add_marker(pytest.mark.xdist_group("forks-then-spark"))


@pytest.hookimpl(trylast=True)  # after -m and -k deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that fork a helper process (marked `forks`: it is forked only while no other thread runs) go first,
    Spark's last (tests/spark): Spark starts slowly (a JVM) and keeps threads, so it starts in the background
    once the forking tests are done, overlapping the tests in between."""
    forks = [i for i in items if i.get_closest_marker("forks")]
    spark = [i for i in items if i.get_closest_marker("spark")]
    first_or_last = {id(i) for i in (*forks, *spark)}
    items[:] = forks + [i for i in items if id(i) not in first_or_last] + spark
    # Under xdist a worker cannot know whether Spark tests come its way: Spark then starts at the first of them.
    config.stash[_SPARK] = bool(spark) and not hasattr(config, "workerinput")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start Spark in the background at the first test that does not fork (when a Spark test will run)."""
    if item.config.stash.get(_SPARK, False) and item.get_closest_marker("forks") is None:
        from tests.spark import begin

        begin()




@pytest.fixture(scope="session")
def spark():
    """The Spark session on local[2] (tests.spark); the tests skip where PySpark is not installed (CI installs it,
    and fails when it cannot start: AUDITOR_REQUIRE_SPARK). A test using it is marked `spark`."""
    from tests.spark import wait

    session, unavailable = wait()
    if session is None:
        if os.environ.get("AUDITOR_REQUIRE_SPARK"):
            pytest.fail(f"Spark is required here: {unavailable}")
        pytest.skip(unavailable or "Spark did not start")
    return session


@pytest.fixture(autouse=True)
def _pinned_now(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs over the API see a fixed "now" (tests.helpers.PINNED_NOW), the day after the reference time most
    tests use, so they answer the same whatever the calendar says; --at defaults still read the clock. Tests
    marked `real_clock` (measuring against the clock, e.g. `auditor doctor`) keep it."""
    if request.node.get_closest_marker("real_clock") is None:
        monkeypatch.setattr(timeutil, "now_us", lambda: timeutil.parse_time(PINNED_NOW))


class EmulatorFactory(Protocol):
    """emulator(data, <any EmulatorSettings field>=..., <any Faults field>=...) -> a running Emulator."""

    def __call__(self, data: Path | Mapping[str, Iterable[dict]] | None = None, **options: Any) -> Emulator: ...


@pytest.fixture
def emulator() -> Iterator[EmulatorFactory]:
    """Start emulators (closed after the test): data is a --data path or {source: records}.

    Fault options may be given as a `faults=Faults(...)` or directly: `emulator(d, rate_limit_first=2)`.
    """
    started: list[Emulator] = []

    def start(data: Path | Mapping[str, Iterable[dict]] | None = None, **options: Any) -> Emulator:
        faults = {k: options.pop(k) for k in list(options) if k in _FAULTS}
        if faults:
            options["faults"] = dataclasses.replace(options.get("faults") or Faults(), **faults)
        emu = Emulator({} if data is None else data, EmulatorSettings(**options))
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.close()
