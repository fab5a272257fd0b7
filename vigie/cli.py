"""``vigie``: one command, a subcommand per job. Each calls into the package that owns it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vigie.logs import setup_logging
from vigie.settings import Settings, load_settings

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
    from schemas.registry import write_registry

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
    report = run(bootstrap=settings.kafka_bootstrap,
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
