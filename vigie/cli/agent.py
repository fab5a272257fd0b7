"""Hospital IT: ``vigie agent run|ingest|enroll|status``, the log agent of one establishment.

Thin: every command parses its options, then calls the module of ``producers/agent`` that does
the work. Nothing national is imported, here or there: the agent runs on a hospital server
where Faust, aiokafka, Elasticsearch, matplotlib and pySigma are not installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.errors import UsageError
from runtime.logs import setup_logging
from vigie.cli.common import log_level

if TYPE_CHECKING:  # imported for real inside the commands
    from producers.agent.config import AgentConfig

PANEL = "Hospital IT"

agent_app = typer.Typer(
    help="The hospital agent: reads Windows event logs, syslog, auth.log and CEF, "
         "pseudonymises identities, signs every event and ships it to the national platform "
         "through a durable spool. Configure it with a YAML file (see docs/agent.md).",
    no_args_is_help=True)

commands = typer.Typer()
commands.add_typer(agent_app, name="agent", help="The hospital log agent (producers/agent).",
                   rich_help_panel=PANEL)

# Not ``exists=True``: a missing agent configuration is a configuration error (exit 78) that
# load_config reports with its path.
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Agent YAML configuration",
                                         dir_okay=False)]


def _load(config: Path) -> AgentConfig:
    """Logging set up, then the agent configuration of ``config``."""
    from producers.agent.config import load_config

    setup_logging(log_level())
    return load_config(config)


@agent_app.command("run")
def run(config: ConfigOpt,
        drain: Annotated[float, typer.Option(help="On SIGTERM, seconds to wait for Kafka to "
                                                  "acknowledge what is in flight")] = 30.0,
        ) -> None:
    """Run all configured sources until SIGTERM/SIGINT (then flush and exit cleanly).

    Events that cannot be sent (Kafka unreachable) wait in the on-disk spool and are sent in
    order when the link is back; positions in files survive restarts.
    """
    from producers.agent.run import run_agent

    raise typer.Exit(run_agent(_load(config), drain=drain))


@agent_app.command("ingest")
def ingest(paths: Annotated[list[Path], typer.Argument(help="Files: .evtx, .json, .jsonl, "
                                                            "auth.log, CEF", exists=True,
                                                       dir_okay=False)],
           config: Annotated[Path | None, typer.Option("--config", "-c", dir_okay=False,
                                                       help="Agent YAML (needed to send)")]
           = None,
           dry_run: Annotated[bool, typer.Option(help="Print the events as JSON lines "
                                                      "instead of sending them")] = False,
           fmt: Annotated[str, typer.Option("--format", help="auto, evtx, json, authlog, cef")]
           = "auto") -> None:
    """Import files once (e.g. EVTX exported from a domain controller after an incident).

    With --dry-run nothing is sent: the parsed and pseudonymised events are printed, one JSON
    document a line, to check what would leave the hospital (without a pseudonymisation key,
    a throw-away one is used, and said so on stderr).
    """
    setup_logging(log_level())
    cfg = _load(config) if config is not None else None
    if dry_run:
        from producers.agent.preview import PLACEHOLDER, Preview

        preview = Preview(cfg)
        if cfg is None:
            typer.echo(f"no --config: placeholder establishment {PLACEHOLDER.id}", err=True)
        if preview.notice:
            typer.echo(preview.notice, err=True)
        count = 0
        for value in preview.events(paths, fmt):
            sys.stdout.buffer.write(value + b"\n")
            count += 1
        typer.echo(f"{count} events parsed", err=True)
        return
    if cfg is None:
        raise UsageError("sending needs --config (establishment, agent key, Kafka); "
                         "or use --dry-run")
    from producers.agent.run import ingest as send_files

    read, left = send_files(cfg, list(paths), fmt)
    typer.echo(f"{read} events read, {read - left} acknowledged by Kafka"
               + (f", {left} still in the spool" if left else ""), err=True)
    if left:
        raise typer.Exit(1)


@agent_app.command("enroll")
def enroll(out: Annotated[Path, typer.Option(help="Where to write the new private key "
                                                   "(mode 0600, never leaves the hospital)")]
           = Path("agent.key"),
           agent_id: Annotated[str, typer.Option(help="This agent's id (e.g. chu-nantes-01)")]
           = "",
           establishment: Annotated[str, typer.Option(help="FINESS id of the establishment")]
           = "") -> None:
    """Create this agent's Ed25519 key pair and print what the national team must register.

    Send the printed registry line to the national platform team (it contains only the public
    key); they add it with `vigie agents add`. Keep the key file safe: losing it means
    enrolling again.
    """
    from producers.signing import generate_key, public_key_b64
    from schemas.enrolment import AgentEntry, registry_line

    public = public_key_b64(generate_key(out))
    typer.echo(f"private key written to {out} (keep it on this machine, mode 0600)", err=True)
    typer.echo(f"public key: {public}")
    if agent_id and establishment:
        entry = AgentEntry(agent_id=agent_id, establishment_id=establishment, public_key=public)
        typer.echo("registry line for the national team:")
        typer.echo(registry_line(entry))
    else:
        typer.echo("national team: vigie agents add --agent-id ID --establishment FINESS "
                   f"--public-key {public}")


@agent_app.command("status")
def status(config: ConfigOpt,
           as_json: Annotated[bool, typer.Option("--json", help="Machine-readable")] = False
           ) -> None:
    """Spool depth, last positions in each source, send rate, last Kafka error."""
    from producers.agent.status import agent_status, format_status

    result = agent_status(_load(config))
    typer.echo(json.dumps(result, indent=1) if as_json else format_status(result))
