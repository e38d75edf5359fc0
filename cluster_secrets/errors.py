"""The tool's one error for bad input: bad arguments, a bad stack file, a bad environment."""


class UsageError(Exception):
    """Exit code 2, with this message alone on stderr (no traceback)."""
