"""The one error type a user's mistake raises: a bad value, a missing or corrupt file, a run directory
another process is using. Its message says what to do; the command line prints that one line and exits
with status 2, with no traceback (`common.lifecycle.run.main`)."""


class UserError(Exception):
    """A mistake the user can fix; the message is the whole story."""
