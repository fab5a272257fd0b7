"""``vigie agent …`` (run in the hospital) and ``vigie agents …`` (national registry admin).

Thin: every command parses options, then calls the module that does the work.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from schemas.enrolment import (
    AgentEntry,
    AgentsRegistryError,
    AgentStatus,
    load_agents,
    registry_line,
    save_agents,
)

agent_app = typer.Typer(
    help="The hospital agent: reads Windows event logs, syslog, auth.log and CEF, "
         "pseudonymises identities, signs every event and ships it to the national platform "
         "through a durable spool. Configure it with a YAML file (see docs/agent.md).",
    no_args_is_help=True)
agents_app = typer.Typer(
    help="National registry of enrolled agents (which public key speaks for which "
         "establishment). The processor rejects events whose signature does not verify "
         "against it.", no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Agent YAML configuration",
                                         exists=True, dir_okay=False)]
RegistryOpt = Annotated[Path | None, typer.Option(
    "--registry", help="Agents registry file (default: VIGIE_AGENTS_REGISTRY or "
    ".vigie/registry/agents.jsonl)")]


def _setup(config: Path | None) -> object:
    from producers.agent.config import ConfigError, load_config
    from runtime.logs import setup_logging

    setup_logging("INFO")
    if config is None:
        return None
    try:
        return load_config(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


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
    from producers.signing import AgentKeyError

    cfg = _setup(config)
    try:
        raise typer.Exit(run_agent(cfg, drain=drain))  # type: ignore[arg-type]
    except AgentKeyError as exc:
        _fail(str(exc))


@agent_app.command("ingest")
def ingest(paths: Annotated[list[Path], typer.Argument(help="Files: .evtx, .json, .jsonl, "
                                                            "auth.log, CEF", exists=True,
                                                       dir_okay=False)],
           config: Annotated[Path | None, typer.Option("--config", "-c", exists=True,
                                                       dir_okay=False,
                                                       help="Agent YAML (needed to send)")]
           = None,
           dry_run: Annotated[bool, typer.Option(help="Print the events as JSON lines "
                                                      "instead of sending them")] = False,
           fmt: Annotated[str, typer.Option("--format", help="auto, evtx, json, authlog, cef")]
           = "auto") -> None:
    """Import files once (e.g. EVTX exported from a domain controller after an incident).

    With --dry-run nothing is sent: the parsed (and, with --config, pseudonymised) events are
    printed, one JSON document a line, to check what would leave the hospital.
    """
    from producers.agent.config import AgentConfig
    from producers.agent.pipeline import Finisher
    from producers.agent.run import dry_run_docs, make_pseudonymiser
    from producers.agent.run import ingest as do_ingest
    from producers.agent.sources.base import Context
    from producers.signing import Signer, load_key

    cfg = _setup(config)
    if dry_run:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from schemas.organization import Organization

        if isinstance(cfg, AgentConfig):
            org, agent_id = cfg.establishment, cfg.agent_id
            pseudo = make_pseudonymiser(cfg)
            signer = Signer(agent_id, load_key(cfg.key_path))
        else:
            typer.echo("no --config: placeholder establishment 000000000, no pseudonymisation",
                       err=True)
            org = Organization(id="000000000", name="dry-run", type="hospital",
                               region="ile-de-france")
            agent_id, pseudo = "dry-run", None
            signer = Signer(agent_id, Ed25519PrivateKey.generate())
        finisher = Finisher(org, signer, pseudo)
        ctx = Context(org.id, agent_id)
        count = 0
        for value in dry_run_docs(paths, finisher, ctx, fmt):
            sys.stdout.buffer.write(value + b"\n")
            count += 1
        typer.echo(f"{count} events parsed", err=True)
        return
    if not isinstance(cfg, AgentConfig):
        _fail("sending needs --config (establishment, agent key, Kafka); or use --dry-run")
        return
    read, left = do_ingest(cfg, list(paths), fmt)
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
    from producers.signing import AgentKeyError, generate_key, public_key_b64

    try:
        key = generate_key(out)
    except AgentKeyError as exc:
        _fail(str(exc))
        return
    public = public_key_b64(key)
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

    cfg = _setup(config)
    result = agent_status(cfg)  # type: ignore[arg-type]
    typer.echo(json.dumps(result, indent=1) if as_json else format_status(result))


def _registry_path(registry: Path | None) -> Path:
    if registry is not None:
        return registry
    from runtime.settings import load_settings

    return load_settings().agents_registry


def _load(path: Path) -> dict[str, AgentEntry]:
    if not path.exists():
        return {}
    try:
        return load_agents(path)
    except AgentsRegistryError as exc:
        _fail(str(exc))
        raise


@agents_app.command("add")
def agents_add(agent_id: Annotated[str, typer.Option(help="Agent id")],
               establishment: Annotated[str, typer.Option(help="FINESS id it speaks for")],
               public_key: Annotated[str, typer.Option(help="Base64 raw Ed25519 public key, "
                                                            "as `vigie agent enroll` prints")],
               registry: RegistryOpt = None) -> None:
    """Enroll an agent: from now on its signed events are accepted for that establishment."""
    path = _registry_path(registry)
    agents = _load(path)
    if agent_id in agents and agents[agent_id].status is AgentStatus.ACTIVE:
        _fail(f"agent {agent_id} is already enrolled; revoke it first to replace its key")
    try:
        entry = AgentEntry(agent_id=agent_id, establishment_id=establishment,
                           public_key=public_key)
    except ValueError as exc:
        _fail(str(exc))
        return
    agents[agent_id] = entry
    save_agents(path, agents.values())
    typer.echo(f"enrolled {agent_id} for {establishment} in {path}")


@agents_app.command("revoke")
def agents_revoke(agent_id: Annotated[str, typer.Argument(help="Agent id to revoke")],
                  registry: RegistryOpt = None) -> None:
    """Revoke an agent (stolen key, decommissioned server): its events are rejected as
    unknown_agent. The entry stays, so past rejections remain explainable."""
    path = _registry_path(registry)
    agents = _load(path)
    if agent_id not in agents:
        _fail(f"no agent {agent_id} in {path}")
    agents[agent_id] = agents[agent_id].model_copy(
        update={"status": AgentStatus.REVOKED, "revoked_at": datetime.now(UTC)})
    save_agents(path, agents.values())
    typer.echo(f"revoked {agent_id}; restart (or reload) the processors to apply it")


@agents_app.command("list")
def agents_list(registry: RegistryOpt = None) -> None:
    """Enrolled agents: id, establishment, status, enrolment date."""
    path = _registry_path(registry)
    for entry in _load(path).values():
        typer.echo(f"{entry.agent_id}\t{entry.establishment_id}\t{entry.status.value}\t"
                   f"{entry.enrolled_at.isoformat()}")
