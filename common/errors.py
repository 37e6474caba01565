"""The one error type a user's mistake raises: a bad value, a missing or corrupt file, a run directory
another process is using. Its message says what to do; the command line prints that one line and exits
with status 2, with no traceback (`one_line`, around every command's `main`). A run that stops because it was
asked to (`StopRequested`) ends in its one line and exit status `STOPPED`."""

from __future__ import annotations

import functools
import sys

STOPPED = 75  # EX_TEMPFAIL of sysexits.h: not finished, run the same command again to go on


class UserError(Exception):
    """A mistake the user can fix; the message is the whole story."""


class StopRequested(Exception):
    """A run stopped where it was asked to (`common.lifecycle.training.StopWhenAsked`); the message says
    where and how to resume."""


def check_choice(what: str, value, choices, error: type[Exception] = ValueError) -> None:
    """Raise `error` naming `what`, the valid `choices` and the `value` given, unless `value` is one of them."""
    if value not in choices:
        raise error(f"{what} must be one of {', '.join(map(str, choices))}, got {value!r}")


def one_line(main):
    """A command's `main(argv) -> int` whose `UserError` ends in its one line on stderr and exit status 2,
    and whose `StopRequested` in its line on stdout and exit status `STOPPED`."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except StopRequested as e:
            print(e, flush=True)
            return STOPPED

    return wrapped
