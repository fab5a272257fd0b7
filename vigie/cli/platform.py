"""National platform operations: the local stack, the registries, simulation, and the
long-running stages (process, sink, notify), plus the enrolled agents and Kibana.

Thin: each command parses its options, imports the package that does the work in its body
(see :mod:`vigie.cli.common` for why) and prints the outcome.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runtime.logs import setup_logging
from vigie.cli.common import ConfigOpt, console, settings
from vigie.cli.es import EsApiKeyOpt, EsCaOpt, elasticsearch

if TYPE_CHECKING:  # imported for real inside the commands
    from deploy.local.stack import ServiceStatus
    from runtime.agents_store import AgentsStore
    from schemas.enrolment import AgentEntry

PANEL = "National platform"

commands = typer.Typer()
stack_app = typer.Typer(help="The local Kafka and Elasticsearch (deploy/local, no Docker).",
                        no_args_is_help=True)
schemas_app = typer.Typer(help="Wire formats (schemas/).", no_args_is_help=True)
registry_app = typer.Typer(help="The national registry of establishments.",
                           no_args_is_help=True)
agents_app = typer.Typer(
    help="National registry of enrolled agents (which public key speaks for which "
         "establishment), on the topic vigie.agents that every processor follows: changes "
         "apply within seconds, without a restart. The processor rejects events whose "
         "signature does not verify against it.", no_args_is_help=True)
kibana_app = typer.Typer(help="Kibana saved objects (deploy/kibana).", no_args_is_help=True)
security_app = typer.Typer(help="Kafka ACLs against deploy/security/kafka-acls.yaml.",
                           no_args_is_help=True)
es_app = typer.Typer(help="Elasticsearch security (deploy/security).", no_args_is_help=True)
api_key_app = typer.Typer(
    help="API keys, each limited to one role of deploy/security/elasticsearch-roles.yaml.",
    no_args_is_help=True)
es_app.add_typer(api_key_app, name="api-key")
commands.add_typer(stack_app, name="stack", rich_help_panel=PANEL)
commands.add_typer(schemas_app, name="schemas", rich_help_panel=PANEL)
commands.add_typer(registry_app, name="registry", rich_help_panel=PANEL)
commands.add_typer(agents_app, name="agents", rich_help_panel=PANEL,
                   help="The national registry of enrolled agents (add, revoke, list, "
                        "history, import, export).")
enrolment_app = typer.Typer(
    help="The enrolment service: agents trade a one-time token (`vigie agents issue-token`) "
         "for their Kafka credential over HTTPS.", no_args_is_help=True)
commands.add_typer(enrolment_app, name="enrolment", rich_help_panel=PANEL)
commands.add_typer(kibana_app, name="kibana", rich_help_panel=PANEL)
commands.add_typer(security_app, name="security", rich_help_panel=PANEL)
commands.add_typer(es_app, name="es", rich_help_panel=PANEL)


# ---------------------------------------------------------------- stack
@stack_app.command("up")
def stack_up(timeout: Annotated[float, typer.Option(help="Seconds to wait for both")] = 240,
             ) -> None:
    """Fetch (first time), start and wait for Kafka and Elasticsearch. Idempotent."""
    from deploy.local import stack

    setup_logging()
    _print_status(stack.up(timeout=timeout))


@stack_app.command("down")
def stack_down() -> None:
    """Stop what `vigie stack up` started, and nothing else."""
    from deploy.local import stack

    setup_logging()
    for line in stack.down():
        console.print(line)


@stack_app.command("status")
def stack_status() -> None:
    """What runs where, and which log to read."""
    from deploy.local import stack

    statuses = stack.status()
    _print_status(statuses)
    if not all(s.answering for s in statuses):
        raise typer.Exit(3)


def _print_status(statuses: list[ServiceStatus]) -> None:
    for s in statuses:
        state = "answering" if s.answering else ("running, not answering" if s.running
                                                 else "stopped")
        pid = f"pid {s.pid}" if s.pid else "no pid"
        print(f"{s.name:<14} {s.version:<8} {s.url:<24} {pid:<10} {state:<22} log {s.log}")
        if getattr(s, "detail", ""):
            print(f"{'':<14} {s.detail}")


# ---------------------------------------------------------------- schemas / registries
@schemas_app.command("export")
def schemas_export(directory: Path) -> None:
    """Write JSON Schema files of every wire model, for agent authors in other languages."""
    from schemas.export import export_json_schemas

    for path in export_json_schemas(directory):
        print(path)


@registry_app.command("generate")
def registry_generate(
    out: Annotated[Path | None, typer.Option(help="Registry file (default: settings)")] = None,
    count: Annotated[int, typer.Option(help="Number of establishments")] = 3036,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same registry")] = 0,
    config: ConfigOpt = None,
) -> None:
    """Generate a synthetic registry of FINESS-like establishments over the 18 regions."""
    from producers.simulator.registry import generate_registry
    from runtime.registry import write_registry

    path = out or settings(config).registry
    written = write_registry(path, generate_registry(count, seed))
    console.print(f"{written} establishments written to {path}")


FileOpt = Annotated[Path | None, typer.Option(
    "--file", help="Work on a registry file (JSON lines or YAML: the import/export format) "
    "instead of the live registry (topic vigie.agents)", dir_okay=False)]
ByOpt = Annotated[str | None, typer.Option(
    "--by", help="Who makes the change, for the audit (default: user@host)")]


def _agents_store(file: Path | None, config: Path | None) -> AgentsStore:
    from runtime.agents_store import FileStore, TopicStore

    return FileStore(file) if file is not None else TopicStore(settings(config).kafka)


def _actor(by: str | None) -> str:
    from runtime.agents_store import default_actor

    return by or default_actor()


CredentialOutOpt = Annotated[Path | None, typer.Option(
    "--credential-out", help="Where to write the agent's Kafka client block (0600, never "
    "overwritten; default ./<agent-id>.kafka.yaml)", dir_okay=False)]
AgentBootstrapOpt = Annotated[str | None, typer.Option(
    "--agent-bootstrap", help="Brokers as the agents reach them (default: this connection's)")]
AgentCaOpt = Annotated[Path | None, typer.Option(
    "--agent-ca", help="The brokers' CA file as named on the agent's host (default: this "
    "connection's ssl_cafile; relative: next to the agent's configuration)")]


@agents_app.command("add")
def agents_add(agent_id: Annotated[str, typer.Option(help="Agent id")],
               establishment: Annotated[str, typer.Option(help="FINESS id it speaks for")],
               public_key: Annotated[str, typer.Option(help="Base64 raw Ed25519 public key, "
                                                            "as `vigie agent enroll` prints")],
               reason: Annotated[str, typer.Option(help="Why, for the audit")] = "enrolment",
               credential: Annotated[bool, typer.Option(
                   "--credential/--no-credential",
                   help="Create the agent's Kafka SCRAM-SHA-512 user and ACLs (--no-credential: "
                        "a site whose agent identity is managed elsewhere)")] = True,
               credential_out: CredentialOutOpt = None,
               agent_bootstrap: AgentBootstrapOpt = None, agent_ca: AgentCaOpt = None,
               by: ByOpt = None, file: FileOpt = None, config: ConfigOpt = None) -> None:
    """Enroll an agent: every processor accepts its signed events for that establishment
    within seconds. Refused if the agent id or the key is enrolled already or was ever
    revoked (one key, one agent; revocations are permanent). Also creates its Kafka
    credential (user agent-<id>, a generated password, the ACLs of kafka-acls.yaml's
    agent_template: write events.raw, read nothing) and writes the agent's `kafka:` section
    to --credential-out; the password is never printed. Not with --file (offline registry):
    issue it later with `vigie agents credential`."""
    from runtime.agents_store import enroll

    store = _agents_store(file, config)
    if not credential or file is not None:
        enroll(store, agent_id, establishment, public_key, actor=_actor(by), reason=reason)
        typer.echo(f"enrolled {agent_id} for {establishment} in {store.where}")
        typer.echo("no Kafka credential created" + (
            " (offline registry file: `vigie agents credential` issues it once the agent is "
            "in the live registry)" if file is not None and credential else ""))
        return

    from deploy.security.agent_credentials import default_credential_file, enrol_with_credential

    kafka = settings(config).kafka
    _, issued = enrol_with_credential(
        store, kafka.admin(), kafka, agent_id, establishment, public_key,
        credential_out or default_credential_file(agent_id), actor=_actor(by), reason=reason,
        bootstrap=agent_bootstrap, ca=agent_ca)
    typer.echo(f"enrolled {agent_id} for {establishment} in {store.where}")
    _print_issued(issued.user, issued.acls, issued.path)


def _print_issued(user: str, acls: int, path: Path) -> None:
    typer.echo(f"Kafka user {user} (SCRAM-SHA-512) created with {acls} ACL(s); its client "
               f"settings, password included, written to {path} (0600): copy its kafka: "
               "section into the agent's configuration, then delete the file")


@agents_app.command("credential")
def agents_credential(agent_id: Annotated[str, typer.Argument(help="An active agent's id")],
                      credential_out: CredentialOutOpt = None,
                      agent_bootstrap: AgentBootstrapOpt = None, agent_ca: AgentCaOpt = None,
                      config: ConfigOpt = None) -> None:
    """Issue an active agent's Kafka credential again (a new password replaces the old one,
    its ACLs are set): a lost credential file, a rotation, or an agent imported or added
    with --file."""
    from deploy.security.agent_credentials import default_credential_file, issue_credential
    from runtime.agents_registry import AgentsRegistryError
    from runtime.agents_store import TopicStore
    from schemas.enrolment import AgentStatus

    kafka = settings(config).kafka
    store = TopicStore(kafka)
    entry = store.entries().get(agent_id)
    if entry is None or entry.status is not AgentStatus.ACTIVE:
        state = "unknown" if entry is None else "revoked"
        raise AgentsRegistryError(f"agent {agent_id} is {state}: a credential is only issued "
                                  "to an active agent", source=store.where)
    issued = issue_credential(kafka.admin(), kafka, agent_id,
                              credential_out or default_credential_file(agent_id),
                              bootstrap=agent_bootstrap, ca=agent_ca)
    _print_issued(issued.user, issued.acls, issued.path)


@agents_app.command("issue-token")
def agents_issue_token(agent_id: Annotated[str, typer.Option(help="Agent id to enrol")],
                       establishment: Annotated[str, typer.Option(
                           help="FINESS id it will speak for")],
                       ttl: Annotated[str, typer.Option(
                           help="Validity: 30m, 24h, 7d (at most 30 days)")] = "24h",
                       by: ByOpt = None, config: ConfigOpt = None) -> None:
    """Issue a one-time enrolment token for a new agent, shown once: give it to the
    hospital's admin, who runs `vigie agent enroll --token T --server URL`. Only its hash,
    the agent id, the establishment and the expiry are kept (topic vigie.enrolment-tokens).
    Refused if the agent id is enrolled already or was revoked."""
    from deploy.security.enrolment_tokens import TopicTokenStore, issue, parse_ttl
    from runtime.agents_registry import AgentsRegistryError
    from runtime.agents_store import TopicStore

    lifetime = parse_ttl(ttl)
    kafka = settings(config).kafka
    store = TopicStore(kafka)
    existing = store.entries().get(agent_id)
    if existing is not None:
        raise AgentsRegistryError(f"agent {agent_id} is {existing.status.value} already: a "
                                  "token enrols a new agent id", source=store.where)
    token, record = issue(TopicTokenStore(kafka), agent_id, establishment,
                          issued_by=_actor(by), ttl=lifetime)
    typer.echo(f"enrolment token for {agent_id} ({establishment}), valid until "
               f"{record.expires_at.isoformat(timespec='seconds')}, once:", err=True)
    typer.echo(token)


@agents_app.command("revoke")
def agents_revoke(agent_id: Annotated[str, typer.Argument(help="Agent id to revoke")],
                  reason: Annotated[str, typer.Option(
                      help="Why (stolen key, retired server...): shown with every refused "
                           "record")],
                  by: ByOpt = None, file: FileOpt = None, config: ConfigOpt = None) -> None:
    """Revoke an agent, for good: every running processor refuses its records (revoked_agent)
    within 10 seconds, without a restart. Its id and key can never be enrolled again. Its
    Kafka credential and ACLs are deleted too (it can no longer connect); none is not an
    error. With --file (offline registry) Kafka is not touched."""
    from runtime.agents_store import revoke

    store = _agents_store(file, config)
    if file is not None:
        revoke(store, agent_id, actor=_actor(by), reason=reason)
        typer.echo(f"revoked {agent_id} in {store.where} (offline registry file: Kafka "
                   "credential not touched)")
        return

    from deploy.security.agent_credentials import revoke_with_credential

    _, removed = revoke_with_credential(store, settings(config).kafka.admin(), agent_id,
                                        actor=_actor(by), reason=reason)
    typer.echo(f"revoked {agent_id} in {store.where}")
    typer.echo(f"Kafka user {removed.user}: " + (
        "credential deleted" if removed.had_credential else "had no credential here")
        + f", {removed.acls} ACL(s) deleted")


@agents_app.command("list")
def agents_list(simulated: Annotated[bool, typer.Option(
                    "--simulated", help="The simulated agents (demo mode's registry)")] = False,
                file: FileOpt = None, config: ConfigOpt = None) -> None:
    """Agents: id, establishment, status, enrolment date, revocation date and reason."""
    entries = _agent_entries(simulated, file, config)
    for entry in entries:
        revoked = (f"\t{entry.revoked_at.isoformat()}\t{entry.revoked_reason or ''}"
                   if entry.revoked_at else "")
        typer.echo(f"{entry.agent_id}\t{entry.establishment_id}\t{entry.status.value}\t"
                   f"{entry.enrolled_at.isoformat()}{revoked}")


def _agent_entries(simulated: bool, file: Path | None,
                   config: Path | None) -> list[AgentEntry]:
    if simulated:
        from runtime.agents_topic import simulated_entries

        return list(simulated_entries(settings(config).kafka).values())
    return list(_agents_store(file, config).entries().values())


@agents_app.command("history")
def agents_history(agent_id: Annotated[str | None, typer.Argument(
                       help="Only this agent's changes")] = None,
                   config: ConfigOpt = None) -> None:
    """The audit journal (topic vigie.agents.audit): every change, who, when and why."""
    from runtime.agents_topic import read_changes

    for change in read_changes(settings(config).kafka):
        if agent_id is None or change.agent_id == agent_id:
            typer.echo(f"{change.at.isoformat()}\t{change.action.value}\t{change.agent_id}\t"
                       f"{change.entry.establishment_id}\t{change.actor}\t{change.reason}")


@agents_app.command("import")
def agents_import(file: Annotated[Path, typer.Argument(
                      help="Registry file (JSON lines, or YAML list) of an older deployment",
                      dir_okay=False)],
                  reason: Annotated[str, typer.Option(help="Why, for the audit")] =
                      "import of a registry file",
                  by: ByOpt = None, config: ConfigOpt = None) -> None:
    """Load a registry file into the live registry, all or nothing, under the same rules as
    `add` (revoked entries are imported revoked); agents already there as is are skipped."""
    from runtime.agents_store import TopicStore, import_file

    store = TopicStore(settings(config).kafka)
    changes = import_file(store, file, actor=_actor(by), reason=reason)
    typer.echo(f"{len(changes)} change(s) from {file} written to {store.where}")


@agents_app.command("export")
def agents_export(file: Annotated[Path, typer.Argument(
                      help="File to write (.jsonl, or .yaml)", dir_okay=False)],
                  simulated: Annotated[bool, typer.Option(
                      "--simulated", help="The simulated agents instead")] = False,
                  config: ConfigOpt = None) -> None:
    """Write the live registry to a file (backup, review, import elsewhere)."""
    from runtime.agents_registry import save_agents

    count = save_agents(file, _agent_entries(simulated, None, config))
    typer.echo(f"{count} agents written to {file}")


# ---------------------------------------------------------------- enrolment service
@enrolment_app.command("serve")
def enrolment_serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS port (0: any free port)")] = 8443,
    cert: Annotated[Path | None, typer.Option(
        help="Server certificate (PEM, chain after it); default <home>/pki/enrolment.pem, "
             "made by the local stack's CA when missing", dir_okay=False)] = None,
    key: Annotated[Path | None, typer.Option(help="Its private key (PEM)", dir_okay=False)]
        = None,
    agent_bootstrap: AgentBootstrapOpt = None,
    agent_ca: Annotated[Path | None, typer.Option(
        "--agent-ca", help="CA of the brokers sent to the agents, inline (default: this "
        "connection's ssl_cafile)", dir_okay=False, exists=True)] = None,
    rate: Annotated[int, typer.Option(help="Attempts per minute from one address")] = 10,
    by: ByOpt = None, config: ConfigOpt = None,
) -> None:
    """Serve POST /api/v1/enrol over HTTPS until interrupted: a valid token and a public key
    in, the agent enrolled (registry, Kafka credential and ACLs) and its Kafka client block
    out. Runs with the admin connection of the settings (it creates SCRAM users)."""
    from deploy.security.enrolment_service import (
        EnrolmentService,
        RateLimiter,
        kafka_enroller,
        make_server,
    )
    from deploy.security.enrolment_tokens import TopicTokenStore

    setup_logging()
    loaded = settings(config)
    if cert is None or key is None:
        from deploy.local.pki import Pki
        from runtime.errors import ConfigurationError

        pki = Pki(loaded.home / "pki", servers=("enrolment",))
        if not pki.ca_cert.is_file():
            raise ConfigurationError("no --cert/--key and no local stack CA to make them: give "
                                     "the service's certificate and key", source=str(pki.root))
        files = pki.ensure().server("enrolment")
        cert, key = cert or files.cert, key or files.key
    service = EnrolmentService(
        TopicTokenStore(loaded.kafka),
        kafka_enroller(loaded.kafka, actor=_actor(by), agent_bootstrap=agent_bootstrap,
                       agent_ca_pem=agent_ca.read_text(encoding="ascii") if agent_ca else None),
        RateLimiter(limit=rate))
    server = make_server(service, host, port, cert, key)
    bound_host, bound_port = server.server_address[:2]
    print(f"enrolment service on https://{bound_host!s}:{bound_port} (certificate {cert})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ---------------------------------------------------------------- security
@security_app.command("acls")
def security_acls(
    apply: Annotated[bool, typer.Option(
        "--apply", help="Make the changes (default: only list them)")] = False,
    keep_agent: Annotated[list[str] | None, typer.Option(
        "--keep-agent", help="An agent whose ACLs stay though it is not active in the "
        "registry (the local stack's local-agent); repeatable")] = None,
    config: ConfigOpt = None,
) -> None:
    """Compare the broker's ACLs with kafka-acls.yaml and the live agents registry: `+`
    missing bindings, `-` ALLOW bindings granted but not declared (fixed principals), or of
    an agent that is not active (revoked, unknown). Exit 1 if they differ, unless --apply."""
    from deploy.security.kafka_acls import apply_acls, check_acls
    from runtime.agents_store import TopicStore
    from schemas.enrolment import AgentStatus

    kafka = settings(config).kafka
    active = [e.agent_id for e in TopicStore(kafka).entries().values()
              if e.status is AgentStatus.ACTIVE]
    kept = keep_agent or []
    admin = kafka.admin()
    plan = (apply_acls(admin, agent_ids=kept, active_agents=active) if apply
            else check_acls(admin, agent_ids=kept, active_agents=active))
    for line in plan.lines():
        typer.echo(line)
    verb = "applied" if apply else "to apply"
    typer.echo(f"{len(plan.add)} binding(s) to create, {len(plan.remove)} to delete: "
               + ("in sync" if plan.in_sync else verb))
    if not apply and not plan.in_sync:
        raise typer.Exit(1)


# ---------------------------------------------------------------- pipeline jobs
@commands.command(rich_help_panel=PANEL)
def simulate(
    events: Annotated[int | None, typer.Option(help="Number of events to produce")] = None,
    duration: Annotated[float | None, typer.Option(help="Paced run of this many seconds")] = None,
    rate: Annotated[float | None, typer.Option(help="Events/s for --duration")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same events")] = 0,
    scenarios: Annotated[str, typer.Option(
        help="Comma-separated attack scenarios, or 'none' for benign only")] =
        "brute_force,malware,phishing",
    malformed: Annotated[int, typer.Option(
        help="Malformed events mixed in (dead-lettered one by one)")] = 0,
    truth: Annotated[Path | None, typer.Option(help="Write ground truth (JSON lines)")] = None,
    establishments: Annotated[int, typer.Option(
        help="Registry size when the registry file does not exist yet")] = 3036,
    config: ConfigOpt = None,
) -> None:
    """Produce simulated national traffic (benign + attacks) to events.raw, signed by
    simulated agents (registered on vigie.agents.simulated only: a processor trusts them in
    demo mode only, `vigie process --demo`).

    Each establishment's agent sends its events in envelopes (one signed record for many
    events), as a real agent does: an envelope leaves when full (512 KiB) or 1 s after its
    first event. --events, --rate and the figures printed count EVENTS, not Kafka records
    ("records" says how many records carried them). --malformed events travel inside their
    establishment's envelope, and the processor dead-letters each alone (its dead letter
    names the envelope's offset and the event's index); one too large for an envelope is
    sent alone."""
    from producers.simulator.run import registry_for
    from producers.simulator.run import simulate as run

    loaded = settings(config)
    names = [] if scenarios.strip() == "none" else [s.strip() for s in scenarios.split(",")]
    if events is None and duration is None:
        events = 10_000
    report = run(kafka=loaded.kafka,
                 registry=registry_for(loaded.registry, establishments), seed=seed,
                 events=events, duration=duration, rate=rate, scenarios=names,
                 malformed=malformed, truth=truth,
                 progress=lambda n, total: console.print(f"produced {n}/{total}", end="\r"))
    console.print()
    print(json.dumps({"produced": report.produced, "records": report.records,
                      "valid": report.valid,
                      "malformed": dict(report.malformed), "scenarios": dict(report.by_scenario),
                      "delivered": report.delivery.delivered, "failed": report.delivery.failed,
                      "seconds": round(report.seconds, 2)}))
    if report.delivery.failed:
        raise typer.Exit(1)


@commands.command("simulate-declarations", rich_help_panel=PANEL)
def simulate_declarations(
    year: Annotated[int, typer.Option(help="Calendar year of the declarations")] = 2026,
    seed: Annotated[int, typer.Option(help="Same seed, same incidents (same ids)")] = 0,
    config: ConfigOpt = None,
) -> None:
    """A year of declared incidents calibrated to the 2019 article, to the incidents topic."""
    from producers.simulator.declarations import declarations, produce_declarations, summary
    from producers.simulator.run import registry_for

    loaded = settings(config)
    year_ = declarations(registry_for(loaded.registry), year, seed)
    result = produce_declarations(loaded.kafka, year_.incidents)
    print(json.dumps({"year": year, "seed": seed, **dict(summary(year_.incidents)),
                      "delivered": result.delivery.delivered,
                      "failed": result.delivery.failed}))
    if result.delivery.failed:
        raise typer.Exit(1)


@commands.command(rich_help_panel=PANEL)
def process(
    config: ConfigOpt = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (default 9402)")] =
        None,
    demo: Annotated[bool, typer.Option(
        "--demo", help="Demo mode: also trust the simulated agents (never in production; "
        "same as VIGIE_DEMO_MODE=true)")] = False,
) -> None:
    """Run the stream processor (Faust): validate, classify, route to DLQ. Stop with SIGTERM."""
    from processors.app import run_processor

    loaded = settings(config, metrics_port=metrics_port, demo_mode=True if demo else None)
    sys.argv = [sys.argv[0]]  # Faust's worker parses argv; ours are already consumed
    run_processor(loaded)


@commands.command(rich_help_panel=PANEL)
def sink(
    config: ConfigOpt = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (default 9403)")] =
        None,
    idle_exit: Annotated[float | None, typer.Option(
        help="Exit after this many seconds without records (batch jobs)")] = None,
) -> None:
    """Index the pipeline's topics into Elasticsearch. Stop with SIGTERM (flushes first)."""
    from sinks.run import run_sink

    stats = run_sink(settings(config, metrics_port=metrics_port), idle_exit_s=idle_exit)
    print(json.dumps(stats.__dict__))


@commands.command(rich_help_panel=PANEL)
def notify(
    alertmanager: Annotated[str | None, typer.Option(
        help="Alertmanager base URL (default: the alertmanager_url setting, "
             "http://localhost:9093); TLS and credentials come from the alertmanager_* "
             "settings")] = None,
    idle_exit: Annotated[float | None, typer.Option(
        help="Exit after this many seconds without alerts")] = None,
    config: ConfigOpt = None,
) -> None:
    """Post alerts (the alerts topic) to Prometheus Alertmanager's API v2, with resolves."""
    from runtime import metrics
    from sinks.alertmanager import AlertmanagerEndpoint, Notifier

    loaded = settings(config, alertmanager_url=alertmanager)
    endpoint = AlertmanagerEndpoint.from_settings(loaded)
    metrics.serve_metrics("notifier", loaded.metrics_port, host=loaded.metrics_host,
                          tls=loaded.metrics_tls)
    posted = Notifier(loaded.kafka, endpoint,
                      group=loaded.notifier_group).run(idle_exit_s=idle_exit)
    console.print(f"{posted} alerts posted")


@commands.command(rich_help_panel=PANEL)
def demo(
    events: Annotated[int, typer.Option(help="Records to simulate")] = 30_000,
    malformed: Annotated[int, typer.Option(help="Malformed records among them")] = 200,
    seed: Annotated[int | None, typer.Option(help="Seed (default: from the clock)")] = None,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] =
        240,
    config: ConfigOpt = None,
) -> None:
    """Start the stack if needed, run simulator → processor → sink, print a reconciled summary."""
    from deploy.demo import run_demo

    ok = run_demo(settings(config), events=events, malformed=malformed, seed=seed,
                  timeout=timeout, config=config)
    if not ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------- Elasticsearch API keys
KeyNameOpt = Annotated[str, typer.Option("--name", help="Key name (who or what holds it)")]


@api_key_app.command("create")
def api_key_create(
    role: Annotated[str, typer.Option(help="A role of elasticsearch-roles.yaml, e.g. "
                                           "vigie_regional_operator_bretagne")],
    name: KeyNameOpt,
    expiration: Annotated[str | None, typer.Option(
        help="Lifetime: 30d, 12h… (default: never expires)")] = None,
    config: ConfigOpt = None,
    es_api_key: EsApiKeyOpt = None,
    es_ca: EsCaOpt = None,
) -> None:
    """Create a key limited to ROLE; prints its encoded value (VIGIE_ES_API_KEY) on stdout.
    Run as a user that may manage API keys (the admin settings of `vigie stack up`)."""
    from deploy.security.elasticsearch_api_keys import check_expiration, create_api_key

    check_expiration(expiration)  # a usage error before Elasticsearch is contacted
    key = create_api_key(elasticsearch(config, es_api_key, es_ca), name, role,
                         expiration=expiration)
    print(key.encoded.get_secret_value())
    console.print(f"API key {key.name!r} (id {key.id}) created with role {key.role}, "
                  + (f"expires in {expiration}" if expiration else "no expiry")
                  + "; Elasticsearch will not show it again")


@api_key_app.command("invalidate")
def api_key_invalidate(name: KeyNameOpt, config: ConfigOpt = None,
                       es_api_key: EsApiKeyOpt = None, es_ca: EsCaOpt = None) -> None:
    """Invalidate every active key called NAME (a leaked or retired key)."""
    from deploy.security.elasticsearch_api_keys import invalidate_api_keys

    count = invalidate_api_keys(elasticsearch(config, es_api_key, es_ca), name)
    console.print(f"{count} API key(s) named {name!r} invalidated")


# ---------------------------------------------------------------- Kibana
@kibana_app.command("import")
def kibana_import(
    url: Annotated[str, typer.Option(help="Kibana base URL, e.g. http://localhost:5601")],
    file: Annotated[Path | None, typer.Option(help="NDJSON (default: deploy/kibana)")] = None,
    space: Annotated[str | None, typer.Option(help="Kibana space id")] = None,
    username: Annotated[str | None, typer.Option(envvar="KIBANA_USERNAME")] = None,
    password: Annotated[str | None, typer.Option(envvar="KIBANA_PASSWORD")] = None,
) -> None:
    """Load the data views, searches, visualisations and dashboard (overwrite=true)."""
    from deploy.kibana.importer import DEFAULT_FILE, import_saved_objects

    result = import_saved_objects(url, file or DEFAULT_FILE, space=space,
                                  username=username, password=password)
    console.print(f"{result.success_count} saved objects imported into {url}")
