"""Errors meant for people: one line saying what is wrong and what to do."""


class StackError(Exception):
    """A failure the user can act on. ``str(err)`` is the one-line message.

    ``exit_code`` follows the convention used by every task: 1 for a failed
    check or operation, 2 for bad input or a missing prerequisite.
    """

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(StackError):
    """Bad input (option, file, value): exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=2)
