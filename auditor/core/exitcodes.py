"""Process exit codes shared by every command."""

from enum import IntEnum


class ExitCode(IntEnum):
    """0 passed, 1 a rule failed at or above --fail-on, 2 could not decide."""

    OK = 0
    FAILED = 1
    UNDECIDED = 2
