"""``vigie``: one command, its subcommands grouped by who runs them.

- :mod:`vigie.cli.agent`: hospital IT (``vigie agent run|ingest|enroll|status``);
- :mod:`vigie.cli.platform`: national platform operations (stack, registries, simulation,
  process, sink, notify, agents, kibana, demo);
- :mod:`vigie.cli.soc`: the SOC (incidents, report, retention, evaluate, detect, rules).

:func:`main` is the one place where an error becomes what the user sees: one line
``vigie: error: <where>: <what>`` on stderr and the exit code of its family
(:mod:`runtime.errors`); commands raise, they never format errors themselves.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer

from runtime.errors import (
    INTERNAL_ERROR,
    InputMissing,
    UsageError,
    VigieError,
    explain,
)
from vigie.cli import agent


def _personas() -> list[Any]:
    """The command groups installed: all three with ``vigie-sante``; only ``agent`` with the
    hospital agent's distribution (``deploy/agent``), which ships neither of the others."""
    found: list[Any] = [agent]
    for name in ("platform", "soc"):
        try:
            found.append(importlib.import_module(f"vigie.cli.{name}"))
        except ModuleNotFoundError as error:
            if error.name != f"vigie.cli.{name}":
                raise
    return found


app = typer.Typer(
    help="Vigie: national cybersurveillance pipeline for health establishments.\n\n"
    "Agents publish security events to Kafka, the processor validates and classifies them, "
    "the sink indexes them into Elasticsearch. Configuration: --config FILE (YAML) or "
    "VIGIE_CONFIG, overridden by VIGIE_* environment variables (see README).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for persona in _personas():
    app.add_typer(persona.commands)

# Recent typer carries its own copy of click (``typer._click``), older typer uses click itself:
# the usage errors to catch live wherever ``typer.BadParameter`` comes from.
_click: Any = importlib.import_module(typer.BadParameter.__module__)
_ABORTS: tuple[type[BaseException], ...] = (typer.Abort, getattr(_click, "Abort", typer.Abort))


def _show_version(wanted: bool) -> None:
    if wanted:
        from vigie import __version__

        typer.echo(f"vigie {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Log at DEBUG (sets VIGIE_LOG_LEVEL) and show the traceback of errors."
    )] = False,
) -> None:
    if debug:
        os.environ["VIGIE_LOG_LEVEL"] = "DEBUG"


def _debugging() -> bool:
    return os.environ.get("VIGIE_LOG_LEVEL", "").upper() == "DEBUG"


def _fail(error: VigieError) -> NoReturn:
    """Print ``error`` as one line (its details indented below) and exit with its code."""
    print(f"vigie: error: {error}", file=sys.stderr)
    for line in error.details.splitlines():
        print(f"  {line}", file=sys.stderr)
    raise SystemExit(error.exit_code)


def _from_click(error: Any) -> VigieError:
    """Click's own errors (unknown command, bad option value, unreadable file) as ours."""
    message = error.format_message()
    if isinstance(error, _click.UsageError):
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        return UsageError(message + hint)
    if isinstance(error, _click.FileError):
        return InputMissing(message, source=error.filename)
    return VigieError(message)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``vigie`` with ``argv`` (default: ``sys.argv[1:]``) and exit with its status."""
    try:
        outcome = app(args=argv, prog_name="vigie", standalone_mode=False)
    except _click.NoArgsIsHelpError as error:
        error.show()  # the help of the group given without a subcommand
        raise SystemExit(UsageError.exit_code) from None
    except _click.ClickException as error:
        _fail(_from_click(error))
    except _ABORTS:
        print("vigie: aborted", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as error:
        if _debugging():
            traceback.print_exc()
        explained = explain(error)
        if explained is not None:
            _fail(explained)
        first_line = (str(error).strip().splitlines() or [""])[0]
        print(f"vigie: error: unexpected {type(error).__name__}: {first_line}", file=sys.stderr)
        if not _debugging():
            print("vigie: run with --debug (or VIGIE_LOG_LEVEL=DEBUG) for the traceback",
                  file=sys.stderr)
        raise SystemExit(INTERNAL_ERROR) from None
    raise SystemExit(outcome if isinstance(outcome, int) else 0)
