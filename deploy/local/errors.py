"""The one exception the local stack raises, so callers (the CLI) can print it and exit 1."""

from __future__ import annotations


class StackError(RuntimeError):
    """Something the user must fix; the message says what, and which log file to read."""
