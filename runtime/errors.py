"""Every error Vigie raises on purpose, under one root, in families that decide the exit code.

An operator, a systemd unit or a cron script reacts to the *kind* of failure: fix the
configuration, fix the input, wait for Kafka to come back. So each exception belongs to one
family below, the family fixes the process exit code (the BSD ``sysexits.h`` numbers, which
supervisors and shell scripts already know), and ``vigie``'s ``main()`` is the one place that
prints ``vigie: error: <str(error)>`` and exits with ``error.exit_code``.

=====================  ====  ==========================================================
family                 code  when
=====================  ====  ==========================================================
UsageError               64  the command line is wrong: unknown command or option, a bad
                             date or duration, an incident id that matches nothing
DataError                65  input data is wrong: a malformed record, rule or registry line
InputMissing             66  an input file does not exist or cannot be read
ServiceUnavailable       69  Kafka, Elasticsearch, Alertmanager or Kibana does not answer,
                             or the local stack cannot start
(unexpected exception)   70  a bug: ``main()`` prints one line and how to get the traceback
CannotWrite              73  an output file cannot be created (e.g. would overwrite a key)
PermissionDenied         77  the user may not read or write a file the command needs, or a
                             service refuses the credentials or the request (401, 403)
ConfigurationError       78  the configuration (settings file, agent YAML, keys) is wrong
=====================  ====  ==========================================================

Like pySigma's ``SigmaError``, an error carries *where* it happened in ``source`` (a file and
line, a URL, Kafka coordinates) apart from *what* happened, so that ``str(error)`` is one line
``"<source>: <message>"``. Longer context (a validation report, the tail of a server log)
goes in ``details``, which ``main()`` prints indented under that line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

#: Exit code of an exception that is not a :class:`VigieError` (``EX_SOFTWARE``).
INTERNAL_ERROR = 70


class VigieError(Exception):
    """A failure with a known cause and remedy; its family (subclass) gives the exit code.

    ``message`` says what happened (its first line only: further lines of a message, such as
    pydantic's per-field report, move to ``details``), ``source`` says where.
    """

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str = "", *, source: str | None = None,
                 details: str = "") -> None:
        first, _, rest = str(message).strip().partition("\n")
        super().__init__(first)
        self.message = first
        self.source = source
        self.details = "\n".join(part for part in (rest.strip("\n"), details) if part)

    def __str__(self) -> str:
        message = getattr(self, "message", None)
        if message is None:  # a subclass that bypassed our __init__
            message = super().__str__()
        source = getattr(self, "source", None)
        return f"{source}: {message}" if source else message


class UsageError(VigieError):
    """The command line is wrong (``EX_USAGE``)."""

    exit_code = 64


class DataError(VigieError):
    """Input data is malformed or inconsistent (``EX_DATAERR``)."""

    exit_code = 65


class InputMissing(VigieError):
    """An input file does not exist or cannot be read (``EX_NOINPUT``)."""

    exit_code = 66


class ServiceUnavailable(VigieError):
    """Kafka, Elasticsearch, Alertmanager or Kibana does not answer (``EX_UNAVAILABLE``)."""

    exit_code = 69


class CannotWrite(VigieError):
    """An output file cannot be created (``EX_CANTCREAT``)."""

    exit_code = 73


class PermissionDenied(VigieError):
    """The user may not read or write a file the command needs (``EX_NOPERM``)."""

    exit_code = 77


class ConfigurationError(VigieError):
    """The configuration is missing or wrong (``EX_CONFIG``)."""

    exit_code = 78


#: Turns a third-party exception into the VigieError that explains it, or returns None.
Translation = Callable[[BaseException], VigieError | None]
_translations: list[Translation] = []


def register_translation(translation: Translation) -> None:
    """Let the module that owns a client explain that client's failures.

    ``runtime.elasticsearch`` registers one for "connection refused" when it is imported, so
    that ``main()`` can say "Elasticsearch does not answer at URL" without importing the
    Elasticsearch client itself (the hospital agent runs where it is not installed).
    """
    if translation not in _translations:
        _translations.append(translation)


def _file_error(error: BaseException) -> VigieError | None:
    """A file the command was pointed at is absent or forbidden: the user can fix that."""
    if not isinstance(error, OSError) or error.filename is None:
        return None
    source = str(error.filename)
    if isinstance(error, PermissionError):
        return PermissionDenied(error.strerror or "permission denied", source=source)
    if isinstance(error, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return InputMissing(error.strerror or "no such file", source=source)
    return None


def explain(error: BaseException) -> VigieError | None:
    """``error`` as a VigieError: itself, a registered translation of it, or None (a bug)."""
    if isinstance(error, VigieError):
        return error
    file_error = _file_error(error)
    if file_error is not None:
        return file_error
    for translation in _translations:
        explained = translation(error)
        if explained is not None:
            return explained
    return None
