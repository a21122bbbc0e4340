"""The one exception type for user error: the CLI prints its message as one sentence, no traceback."""


class UserError(Exception):
    """Bad input from the user (a missing file, a malformed line, a bad flag): say what and what to do."""
