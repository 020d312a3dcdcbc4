"""invoke wiring only, one module per concern; each module ends in a Collection.

Options are parsed here, library functions called, results printed; the one
error edge (``edge``) turns a StackError into a one-line message and its exit code."""

from __future__ import annotations

import functools

from invoke import Exit

from stackctl.console import Reporter, error_line
from stackctl.errors import StackError

R = Reporter()


def edge(fn):
    """The one error edge: a StackError becomes ``error: <message>`` on stderr and
    its exit code (1 failed operation, 2 bad input or missing prerequisite)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StackError as err:
            error_line(str(err))
            raise Exit(code=err.exit_code) from None
        except ValueError as err:  # int("abc") of an option
            error_line(f"bad option value: {err}")
            raise Exit(code=2) from None

    return wrapper
