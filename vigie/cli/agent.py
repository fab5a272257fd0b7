"""Hospital IT: ``vigie agent run|ingest|enroll|status``, the log agent of one establishment.

Thin: every command parses its options, then calls the module of ``producers/agent`` that does
the work. Nothing national is imported, here or there: the agent runs on a hospital server
where Faust, aiokafka, Elasticsearch, matplotlib and pySigma are not installed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.errors import UsageError
from runtime.logs import setup_logging

if TYPE_CHECKING:  # imported for real inside the commands
    from producers.agent.checks import Check
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


LogLevelOpt = Annotated[str | None, typer.Option(
    "--log-level", help="DEBUG, INFO, WARNING, ERROR (default: VIGIE_LOG_LEVEL, then the "
                        "configuration's log.level, then INFO)")]
LogFormatOpt = Annotated[str | None, typer.Option(
    "--log-format", help="text or json (default: VIGIE_LOG_FORMAT, then the configuration's "
                         "log.format, then text)")]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")


def _choice(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is None or value == "":
        return None
    normalised = value.upper() if allowed is LEVELS else value.lower()
    if normalised not in allowed:
        raise UsageError(f"{what} {value!r}: use one of {', '.join(allowed)}")
    return normalised


def _setup_logs(cfg: AgentConfig | None, level: str | None = None,
                fmt: str | None = None) -> None:
    """Level and format: the option, else the environment, else the configuration's
    ``log:`` block; librdkafka's lines through the same handler, repeats held back."""
    from producers.agent.kafka_logs import kafka_logger

    chosen_level = (_choice(level, LEVELS, "log level")
                    or _choice(os.environ.get("VIGIE_LOG_LEVEL"), LEVELS, "VIGIE_LOG_LEVEL")
                    or (cfg.log.level if cfg is not None else "INFO"))
    chosen_format = (_choice(fmt, FORMATS, "log format")
                     or _choice(os.environ.get("VIGIE_LOG_FORMAT"), FORMATS, "VIGIE_LOG_FORMAT")
                     or (cfg.log.format if cfg is not None else "text"))
    setup_logging(chosen_level, chosen_format == "json")
    kafka_logger(cfg.log.kafka_repeat_seconds if cfg is not None else None)


def _load(config: Path, level: str | None = None, fmt: str | None = None) -> AgentConfig:
    """The agent configuration of ``config``, then logging set up from it and the options."""
    from producers.agent.config import load_config

    _setup_logs(None, level, fmt)  # until the configuration is read
    cfg = load_config(config)
    _setup_logs(cfg, level, fmt)
    return cfg


@agent_app.command("run")
def run(config: ConfigOpt,
        drain: Annotated[float, typer.Option(help="On SIGTERM, seconds to wait for Kafka to "
                                                  "acknowledge what is in flight")] = 30.0,
        log_level: LogLevelOpt = None, log_format: LogFormatOpt = None) -> None:
    """Run all configured sources until SIGTERM/SIGINT (then flush and exit cleanly).

    Events that cannot be sent (Kafka unreachable) wait in the on-disk spool and are sent in
    order when the link is back; positions in files survive restarts.
    """
    from producers.agent.run import run_agent

    raise typer.Exit(run_agent(_load(config, log_level, log_format), drain=drain))


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
           = "auto", log_level: LogLevelOpt = None, log_format: LogFormatOpt = None) -> None:
    """Import files once (e.g. EVTX exported from a domain controller after an incident).

    With --dry-run nothing is sent: the parsed and pseudonymised events are printed, one JSON
    document a line, to check what would leave the hospital (without a pseudonymisation key,
    a throw-away one is used, and said so on stderr).
    """
    _setup_logs(None, log_level, log_format)
    cfg = _load(config, log_level, log_format) if config is not None else None
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
def enroll(out: Annotated[Path | None, typer.Option(
               help="Where to write the new private key (mode 0600, never leaves the "
                    "hospital; default: the configuration's key_path, else ./agent.key)")]
           = None,
           agent_id: Annotated[str, typer.Option(help="Manual path: this agent's id (e.g. "
                                                      "chu-nantes-01)")] = "",
           establishment: Annotated[str, typer.Option(
               help="Manual path: FINESS id of the establishment")] = "",
           token: Annotated[str | None, typer.Option(
               help="One-time enrolment token from the national team (`vigie agents "
                    "issue-token`); with --server", envvar="VIGIE_ENROLMENT_TOKEN",
               show_envvar=False)] = None,
           server: Annotated[str | None, typer.Option(
               help="The national enrolment service, https://host:port")] = None,
           ca: Annotated[Path | None, typer.Option(
               help="CA that signed the enrolment service's certificate (default: the "
                    "system's trust store)", dir_okay=False, exists=True)] = None,
           config: Annotated[Path | None, typer.Option(
               "--config", "-c", help="Agent configuration: its key_path is used, and a "
               "kafka_file: line naming the received credential is appended", dir_okay=False)]
           = None,
           kafka_out: Annotated[Path | None, typer.Option(
               help="Where to write the received Kafka credential (0600; default: kafka.yaml "
                    "next to --config, else ./kafka.yaml)", dir_okay=False)] = None) -> None:
    """Create this agent's Ed25519 key pair and enrol it with the national platform.

    With --token and --server: the public key is sent with the one-time token over HTTPS
    (verified against --ca); the agent's Kafka credential comes back and is written 0600 to
    --kafka-out, and the configuration names it. Without (air-gapped sites): the public key
    is printed for the national team, who add it with `vigie agents add` and send back the
    Kafka credential file. Keep the key file safe: losing it means enrolling again.
    """
    from producers.signing import generate_key, public_key_b64

    if (token is None) != (server is None):
        raise UsageError("--token and --server go together (or neither: the manual path)")
    key_path = out or _configured_key(config) or Path("agent.key")
    public = public_key_b64(generate_key(key_path))
    typer.echo(f"private key written to {key_path} (keep it on this machine, mode 0600)",
               err=True)
    if token is not None and server is not None:
        _enrol_by_token(token, server, ca, config, kafka_out, key_path, public)
        return
    from schemas.enrolment import AgentEntry, registry_line

    typer.echo(f"public key: {public}")
    if agent_id and establishment:
        entry = AgentEntry(agent_id=agent_id, establishment_id=establishment, public_key=public)
        typer.echo("registry line for the national team:")
        typer.echo(registry_line(entry))
    else:
        typer.echo("national team: vigie agents add --agent-id ID --establishment FINESS "
                   f"--public-key {public}")


def _configured_key(config: Path | None) -> Path | None:
    """The key_path of ``config`` (relative: under its folder), if it names one."""
    if config is None or not config.exists():
        return None
    import yaml

    data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    named = data.get("key_path") if isinstance(data, dict) else None
    if not named:
        return None
    path = Path(str(named))
    return path if path.is_absolute() else config.resolve().parent / path


def _enrol_by_token(token: str, server: str, ca: Path | None, config: Path | None,
                    kafka_out: Path | None, key_path: Path, public: str) -> None:
    """Post the key with the token; write what comes back. A refused or failed request
    removes the key just made (it was never enrolled), so the command can be run again."""
    from producers.agent.enrol_client import KAFKA_FILE, request_enrolment, write_enrolment
    from vigie import __version__

    try:
        response = request_enrolment(server, token, public, ca, agent_version=__version__)
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise
    target = kafka_out or (config.resolve().parent / KAFKA_FILE if config is not None
                           else Path(KAFKA_FILE))
    written = write_enrolment(response, target, config)
    typer.echo(f"enrolled {response.agent_id} for establishment {response.establishment_id} "
               f"at {server}")
    typer.echo(f"Kafka credential (user {written.sasl_username}, "
               f"SASL {response.kafka.sasl_mechanism}, brokers {response.kafka.bootstrap}) "
               f"written to {written.kafka_file} (0600)"
               + (f", brokers' CA to {written.ca_file}" if written.ca_file else ""))
    if written.config_updated:
        typer.echo(f"{config}: kafka_file: {written.kafka_file.name} appended")
    elif config is None:
        typer.echo(f"add `kafka_file: {written.kafka_file}` and `key_path: {key_path}` to the "
                   "agent's configuration")


@agent_app.command("status")
def status(config: ConfigOpt, log_level: LogLevelOpt = None, log_format: LogFormatOpt = None,
           as_json: Annotated[bool, typer.Option("--json", help="Machine-readable")] = False
           ) -> None:
    """Spool depth, last positions in each source, send rate, last Kafka error."""
    from producers.agent.status import agent_status, format_status

    result = agent_status(_load(config, log_level, log_format))
    typer.echo(json.dumps(result, indent=1) if as_json else format_status(result))


test_app = typer.Typer(help="Check the agent before starting it: `test config` (files, keys, "
                            "what it would do), `test output` (the path to Kafka, step by "
                            "step). Exit code: 0, or the family of the first failure "
                            "(78 configuration, 77 permission, 69 Kafka unreachable).",
                       no_args_is_help=True)
agent_app.add_typer(test_app, name="test")


def _report(checks: list[Check]) -> None:
    from producers.agent.checks import exit_code

    for check in checks:
        typer.echo(check.line())
    code = exit_code(checks)
    failures = sum(c.status == "FAIL" for c in checks)
    warnings = sum(c.status == "WARN" for c in checks)
    typer.echo(f"{failures} failed, {warnings} warnings" if failures
               else f"ok, {warnings} warnings", err=True)
    raise typer.Exit(code)


@test_app.command("config")
def test_config(config: ConfigOpt, log_level: LogLevelOpt = None,
                log_format: LogFormatOpt = None) -> None:
    """Validate the configuration file and the key files (owner-only, not links, not weak),
    the state directory, certificates and sources, and print what the agent would do.
    Connects to nothing."""
    from producers.agent.checks import check_config

    _setup_logs(None, log_level, log_format)
    _cfg, checks = check_config(config)
    _report(checks)


@test_app.command("output")
def test_output(config: ConfigOpt, timeout: Annotated[float, typer.Option(
                    help="Seconds each step may take")] = 10.0,
                log_level: LogLevelOpt = None, log_format: LogFormatOpt = None) -> None:
    """Connect to Kafka with the agent's settings and report each step: TCP, TLS handshake,
    SASL and the metadata of events.raw, an idempotent producer's initialisation, the agent's
    position. Sends no event and never fences a running agent."""
    from producers.agent.checks import check_output

    _report(check_output(_load(config, log_level, log_format), timeout=timeout))
