"""``vigie``: one command, a subcommand per job. Each calls into the package that owns it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from runtime import metrics
from runtime.logs import setup_logging
from runtime.settings import Settings, load_settings

app = typer.Typer(
    help="Vigie: national cybersurveillance pipeline for health establishments.\n\n"
    "Agents publish security events to Kafka, the processor validates and classifies them, "
    "the sink indexes them into Elasticsearch. Configuration: --config FILE (YAML) or "
    "VIGIE_CONFIG, overridden by VIGIE_* environment variables (see README).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
stack_app = typer.Typer(help="The local Kafka and Elasticsearch (deploy/local, no Docker).",
                        no_args_is_help=True)
schemas_app = typer.Typer(help="Wire formats (schemas/).", no_args_is_help=True)
registry_app = typer.Typer(help="The national registry of establishments.",
                           no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(schemas_app, name="schemas")
app.add_typer(registry_app, name="registry")


def _mount_agent_apps() -> None:
    """The hospital agent's commands live with the agent (producers/agent/cli.py)."""
    from producers.agent.cli import agent_app, agents_app

    app.add_typer(agent_app, name="agent", help="The hospital log agent (producers/agent).")
    app.add_typer(agents_app, name="agents",
                  help="The national registry of enrolled agents (add, revoke, list).")


_mount_agent_apps()

console = Console(stderr=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file",
                                                exists=True, dir_okay=False)]


def _settings(config: Path | None, **overrides: object) -> Settings:
    settings = load_settings(config, **overrides)
    setup_logging(settings.log_level, settings.log_json)
    return settings


# ---------------------------------------------------------------- stack
@stack_app.command("up")
def stack_up(timeout: Annotated[float, typer.Option(help="Seconds to wait for both")] = 240):
    """Fetch (first time), start and wait for Kafka and Elasticsearch. Idempotent."""
    from deploy.local import stack

    setup_logging()
    try:
        _print_status(stack.up(timeout=timeout))
    except stack.StackError as exc:
        console.print(f"[red]stack up failed:[/red] {exc}")
        raise typer.Exit(1) from None


@stack_app.command("down")
def stack_down():
    """Stop what `vigie stack up` started, and nothing else."""
    from deploy.local import stack

    setup_logging()
    for line in stack.down():
        console.print(line)


@stack_app.command("status")
def stack_status():
    """What runs where, and which log to read."""
    from deploy.local import stack

    statuses = stack.status()
    _print_status(statuses)
    if not all(s.answering for s in statuses):
        raise typer.Exit(3)


def _print_status(statuses: list) -> None:  # type: ignore[type-arg]
    for s in statuses:
        state = "answering" if s.answering else ("running, not answering" if s.running
                                                 else "stopped")
        pid = f"pid {s.pid}" if s.pid else "no pid"
        print(f"{s.name:<14} {s.version:<8} {s.url:<24} {pid:<10} {state:<22} log {s.log}")
        if getattr(s, "detail", ""):
            print(f"{'':<14} {s.detail}")


# ---------------------------------------------------------------- schemas / registry
@schemas_app.command("export")
def schemas_export(directory: Path):
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
):
    """Generate a synthetic registry of FINESS-like establishments over the 18 regions."""
    from producers.simulator.registry import generate_registry
    from runtime.registry import write_registry

    settings = _settings(config)
    path = out or settings.registry
    written = write_registry(path, generate_registry(count, seed))
    console.print(f"{written} establishments written to {path}")


# ---------------------------------------------------------------- pipeline jobs
@app.command()
def simulate(
    events: Annotated[int | None, typer.Option(help="Number of records to produce")] = None,
    duration: Annotated[float | None, typer.Option(help="Paced run of this many seconds")] = None,
    rate: Annotated[float | None, typer.Option(help="Events/s for --duration")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same events")] = 0,
    scenarios: Annotated[str, typer.Option(
        help="Comma-separated attack scenarios, or 'none' for benign only")] =
        "brute_force,malware,phishing",
    malformed: Annotated[int, typer.Option(help="Malformed records mixed in")] = 0,
    truth: Annotated[Path | None, typer.Option(help="Write ground truth (JSON lines)")] = None,
    establishments: Annotated[int, typer.Option(
        help="Registry size when the registry file does not exist yet")] = 3036,
    config: ConfigOpt = None,
):
    """Produce simulated national traffic (benign + attacks) to events.raw."""
    from producers.simulator.run import registry_for
    from producers.simulator.run import simulate as run

    settings = _settings(config)
    names = [] if scenarios.strip() == "none" else [s.strip() for s in scenarios.split(",")]
    if events is None and duration is None:
        events = 10_000
    report = run(kafka=settings.kafka,
                 registry=registry_for(settings.registry, establishments), seed=seed,
                 events=events, duration=duration, rate=rate, scenarios=names,
                 malformed=malformed, truth=truth,
                 progress=lambda n, total: console.print(f"produced {n}/{total}", end="\r"))
    console.print()
    print(json.dumps({"produced": report.produced, "valid": report.valid,
                      "malformed": dict(report.malformed), "scenarios": dict(report.by_scenario),
                      "delivered": report.delivery.delivered, "failed": report.delivery.failed,
                      "seconds": round(report.seconds, 2)}))
    if report.delivery.failed:
        raise typer.Exit(1)


@app.command()
def process(
    config: ConfigOpt = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (default 9402)")] =
        None,
):
    """Run the stream processor (Faust): validate, classify, route to DLQ. Stop with SIGTERM."""
    from processors.app import run_processor

    settings = _settings(config, metrics_port=metrics_port)
    sys.argv = [sys.argv[0]]  # Faust's worker parses argv; ours are already consumed
    run_processor(settings)


@app.command()
def sink(
    config: ConfigOpt = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (default 9403)")] =
        None,
    idle_exit: Annotated[float | None, typer.Option(
        help="Exit after this many seconds without records (batch jobs)")] = None,
):
    """Index the pipeline's topics into Elasticsearch. Stop with SIGTERM (flushes first)."""
    from sinks.run import run_sink

    settings = _settings(config, metrics_port=metrics_port)
    stats = run_sink(settings, idle_exit_s=idle_exit)
    print(json.dumps(stats.__dict__))


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="Records to simulate")] = 30_000,
    malformed: Annotated[int, typer.Option(help="Malformed records among them")] = 200,
    seed: Annotated[int | None, typer.Option(help="Seed (default: from the clock)")] = None,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] =
        240,
    config: ConfigOpt = None,
):
    """Start the stack if needed, run simulator → processor → sink, print a reconciled summary."""
    from deploy.demo import run_demo

    settings = _settings(config)
    ok = run_demo(settings, events=events, malformed=malformed, seed=seed, timeout=timeout,
                  config=config)
    if not ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------- operators (issue 6)
incidents_app = typer.Typer(help="Search and read incidents in Elasticsearch.",
                            no_args_is_help=True)
kibana_app = typer.Typer(help="Kibana saved objects (deploy/kibana).", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
app.add_typer(kibana_app, name="kibana")

RegionOpt = Annotated[str | None, typer.Option(help="Region slug, e.g. bretagne")]
EstablishmentOpt = Annotated[str | None, typer.Option(help="FINESS id or words of the name")]
SeverityOpt = Annotated[str | None, typer.Option(help="Minimum severity (low … critical)")]
StatusOpt = Annotated[str | None, typer.Option(help="open or resolved")]
CategoryOpt = Annotated[str | None, typer.Option(help="Category, e.g. malicious_code")]
DeclarableOpt = Annotated[bool | None, typer.Option("--declarable/--not-declarable",
                                                    help="Only (non-)declarable incidents")]
SinceOpt = Annotated[str | None, typer.Option(
    help="Active since: ISO date/time or a duration back from now (24h, 7d)")]
ScopeOpt = Annotated[str | None, typer.Option(help="establishment or national_campaign")]
LimitOpt = Annotated[int, typer.Option(help="At most this many incidents")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")]


def _incident_filter(region, establishment, severity, status, category, declarable, since,
                     scope):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from schemas.taxonomy import Severity
    from soc.incidents import IncidentFilter
    from soc.retention import parse_duration

    when = None
    if since:
        try:
            when = datetime.now(UTC) - parse_duration(since)
        except ValueError:
            when = datetime.fromisoformat(since)
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return IncidentFilter(region=region, establishment=establishment,
                          min_severity=Severity(severity) if severity else None,
                          status=status, category=category, declarable=declarable,
                          since=when, scope=scope)


def _print_incidents(total: int, found: list, as_json: bool) -> None:  # type: ignore[type-arg]
    from soc.render import print_table

    if as_json:
        for incident in found:
            print(json.dumps(incident, ensure_ascii=False))
        return
    print_table(Console(), found, total)


@incidents_app.command("list")
def incidents_list(region: RegionOpt = None, establishment: EstablishmentOpt = None,
                   severity: SeverityOpt = None, status: StatusOpt = None,
                   category: CategoryOpt = None, declarable: DeclarableOpt = None,
                   since: SinceOpt = None, scope: ScopeOpt = None, limit: LimitOpt = 50,
                   as_json: JsonOpt = False, config: ConfigOpt = None):
    """Incidents matching the filters, most recently active first."""
    from runtime.elasticsearch import make_client
    from soc.incidents import find_incidents

    f = _incident_filter(region, establishment, severity, status, category, declarable, since,
                         scope)
    total, found = find_incidents(make_client(_settings(config)), f, limit=limit)
    _print_incidents(total, found, as_json)


@incidents_app.command("search")
def incidents_search(text: Annotated[str, typer.Argument(help="Words, an id, a technique…")],
                     region: RegionOpt = None, establishment: EstablishmentOpt = None,
                     severity: SeverityOpt = None, status: StatusOpt = None,
                     category: CategoryOpt = None, declarable: DeclarableOpt = None,
                     since: SinceOpt = None, scope: ScopeOpt = None, limit: LimitOpt = 50,
                     as_json: JsonOpt = False, config: ConfigOpt = None):
    """Full-text search (title, establishment, reasons, indicator, techniques) plus filters."""
    from runtime.elasticsearch import make_client
    from soc.incidents import find_incidents

    f = _incident_filter(region, establishment, severity, status, category, declarable, since,
                         scope)
    total, found = find_incidents(make_client(_settings(config)), f, text, limit=limit)
    _print_incidents(total, found, as_json)


@incidents_app.command("show")
def incidents_show(incident_id: str, as_json: JsonOpt = False, config: ConfigOpt = None):
    """One incident in full, with the establishment incidents a campaign links."""
    from runtime.elasticsearch import make_client
    from soc.incidents import AmbiguousId, get_incident, linked_incidents
    from soc.render import incident_page

    es = make_client(_settings(config))
    try:
        incident = get_incident(es, incident_id)
    except AmbiguousId as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if incident is None:
        console.print(f"[red]no incident {incident_id}[/red]")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(incident, ensure_ascii=False, indent=2))
        return
    Console().print(incident_page(incident, linked_incidents(es, incident)))


@app.command()
def retention(
    older_than: Annotated[str, typer.Option(help="Delete monthly indices whose whole month "
                                                 "is older than this (180d, 26w)")] = "180d",
    dry_run: Annotated[bool, typer.Option(help="Only say what would be deleted")] = False,
    config: ConfigOpt = None,
):
    """Delete whole monthly indices (events, detections, alerts) older than the limit."""
    from runtime.elasticsearch import make_client
    from soc.retention import apply_retention, parse_duration

    try:
        limit = parse_duration(older_than)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    plan = apply_retention(make_client(_settings(config)), limit, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for index in plan.delete:
        print(f"{verb} {index.name}")
    console.print(f"cutoff {plan.cutoff.isoformat(timespec='seconds')}: {len(plan.delete)} "
                  f"{verb}, {len(plan.keep)} kept")


@app.command()
def report(
    from_: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD), included")],
    to: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD), excluded")],
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    format_: Annotated[str, typer.Option("--format", help="html or json")] = "html",
    config: ConfigOpt = None,
):
    """The national report: incidents, malicious share, who reports, trends, with charts."""
    from datetime import date

    from runtime.elasticsearch import make_client
    from soc.report import national_report

    if format_ not in ("html", "json"):
        raise typer.BadParameter("--format is html or json")
    figures = national_report(make_client(_settings(config)), date.fromisoformat(from_),
                              date.fromisoformat(to))
    if format_ == "json":
        text = json.dumps(figures.to_dict(), indent=2, ensure_ascii=False)
    else:
        from soc.report_html import render_html

        text = render_html(figures)
    if out is None:
        print(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"report written to {out} ({figures.incidents} incidents)")


@app.command("simulate-declarations")
def simulate_declarations(
    year: Annotated[int, typer.Option(help="Calendar year of the declarations")] = 2026,
    seed: Annotated[int, typer.Option(help="Same seed, same incidents (same ids)")] = 0,
    config: ConfigOpt = None,
):
    """A year of declared incidents calibrated to the 2019 article, to the incidents topic."""
    from producers.simulator.declarations import declarations, produce_declarations, summary
    from producers.simulator.run import registry_for

    settings = _settings(config)
    year_ = declarations(registry_for(settings.registry), year, seed)
    result = produce_declarations(settings.kafka, year_.incidents)
    print(json.dumps({"year": year, "seed": seed, **dict(summary(year_.incidents)),
                      "delivered": result.delivery.delivered,
                      "failed": result.delivery.failed}))
    if result.delivery.failed:
        raise typer.Exit(1)


@kibana_app.command("import")
def kibana_import(
    url: Annotated[str, typer.Option(help="Kibana base URL, e.g. http://localhost:5601")],
    file: Annotated[Path | None, typer.Option(help="NDJSON (default: deploy/kibana)")] = None,
    space: Annotated[str | None, typer.Option(help="Kibana space id")] = None,
    username: Annotated[str | None, typer.Option(envvar="KIBANA_USERNAME")] = None,
    password: Annotated[str | None, typer.Option(envvar="KIBANA_PASSWORD")] = None,
):
    """Load the data views, searches, visualisations and dashboard (overwrite=true)."""
    from deploy.kibana.importer import DEFAULT_FILE, KibanaImportError, import_saved_objects

    try:
        result = import_saved_objects(url, file or DEFAULT_FILE, space=space,
                                      username=username, password=password)
    except KibanaImportError as exc:
        console.print(f"[red]import failed:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"{result.success_count} saved objects imported into {url}")


# ---------------------------------------------------------------- detection
rules_app = typer.Typer(help="Sigma rule sets (processors/detection).", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
RuleDirs = Annotated[list[Path] | None, typer.Option(
    "--rules", help="Rule folder (repeatable; default: the SigmaHQ folders in ../shared)")]


@rules_app.command("check")
def rules_check(
    dirs: Annotated[list[Path] | None, typer.Argument(help="Rule folders")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Full report as JSON")] = False,
):
    """How many rules load, how many are skipped and why."""
    from soc.hunt import check_rules

    setup_logging("WARNING")
    report = check_rules(dirs)
    if as_json:
        print(json.dumps(report, indent=2, default=str))
        return
    print(f"rule files: {report.get('files')}  rules compiled: {report.get('rules_loaded')}  "
          f"correlations: {report.get('correlations')}  skipped: {len(report.get('skipped', []))}")
    for reason, count in sorted((report.get("skipped_by_reason") or {}).items(),
                                key=lambda kv: -kv[1]):
        print(f"  {count:5d}  {reason}")


@app.command()
def detect(
    files: Annotated[list[Path], typer.Argument(help=".evtx, .json or .jsonl Windows events")],
    rules: RuleDirs = None,
):
    """Run the Sigma engine over event files; one JSON line per detection on stdout."""
    from soc.hunt import detect as run_detect

    setup_logging("WARNING")
    count = run_detect(rules, files, sys.stdout)
    console.print(f"{count} detections")


# ---------------------------------------------------------------- incidents & alerts
@app.command()
def notify(
    alertmanager: Annotated[str, typer.Option(help="Alertmanager base URL")] =
        "http://localhost:9093",
    idle_exit: Annotated[float | None, typer.Option(
        help="Exit after this many seconds without alerts")] = None,
    config: ConfigOpt = None,
):
    """Post alerts (the alerts topic) to Prometheus Alertmanager's API v2, with resolves."""
    from sinks.alertmanager import Notifier

    settings = _settings(config)
    metrics.serve_metrics("notifier", settings.metrics_port)
    posted = Notifier(settings.kafka, alertmanager,
                      group=settings.notifier_group).run(idle_exit_s=idle_exit)
    console.print(f"{posted} alerts posted")


@app.command()
def evaluate(
    truth: Annotated[Path, typer.Option(help="Ground truth written by `vigie simulate --truth`",
                                        exists=True, dir_okay=False)],
    config: ConfigOpt = None,
):
    """Precision and recall of the incidents in Elasticsearch against a simulation's truth."""
    from runtime.elasticsearch import make_client
    from soc.truth import evaluate as run_evaluate

    settings = _settings(config)
    print(json.dumps(run_evaluate(make_client(settings), truth), indent=2))


def main() -> None:
    from runtime.errors import VigieError

    try:
        app()
    except VigieError as exc:
        console.print(f"[red]vigie:[/red] {exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
