"""The one error type the program raises for bad input."""

import pulumi


class ConfigError(pulumi.RunError):
    """Bad stack config or bad data read from 1Password.

    A `pulumi.RunError` ends the program with its message alone (no traceback), at preview,
    before any resource is changed. Messages name the key or item and never carry a secret.
    """
