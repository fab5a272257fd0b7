"""``vigie demo``: the whole path on the real local stack, then a reconciled summary.

The processor runs in demo mode (``vigie process --demo``): the simulator's agents are
trusted from their own registry, never from the production one, and the processor's log says
so. The summary's figures come from Elasticsearch (the run's event ids, the dead letters of the
run's Kafka offsets), not from the processes' own counters, so what it prints is what an
operator will find.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from deploy.local.pipeline import PROCESSOR_READY, Service
from producers.simulator.fleet import register_simulated_agents
from producers.simulator.run import AGENT_SEED, SimulationReport, registry_for, simulate
from runtime.elasticsearch import make_client
from runtime.settings import Settings
from runtime.topics import end_offsets, ensure_topics
from schemas.topics import EVENTS_RAW
from sinks.elasticsearch.templates import install_templates
from soc.reconcile import dead_letters_for_offsets, event_id_counts
from soc.truth import evaluate

console = Console()

SEARCHES = (
    "# failed logons, per establishment (the brute force stands out)",
    "curl -s $ES'/vigie-events/_search?size=0' -H 'Content-Type: application/json'"
    " -d '{\"query\":{\"bool\":{\"filter\":[{\"term\":{\"event.outcome\":\"failure\"}},"
    "{\"term\":{\"event.category\":\"authentication\"}}]}},"
    "\"aggs\":{\"by_org\":{\"terms\":{\"field\":\"organization.name\"}}}}'",
    "# shadow copies deleted (ransomware), with host and command line",
    "curl -s $ES'/vigie-events/_search?q=process.command_line.text:shadows"
    "&_source=organization.name,host.name,process.command_line'",
    "# open incidents, most recent first (or: vigie incidents list)",
    "curl -s $ES'/vigie-incidents/_search?q=status:open&sort=last_seen:desc"
    "&_source=title,severity,declarable,organizations.name'",
    "# dead letters by reason",
    "curl -s $ES'/vigie-dlq/_search?size=0' -H 'Content-Type: application/json'"
    " -d '{\"aggs\":{\"r\":{\"terms\":{\"field\":\"reason\"}}}}'",
)


def run_demo(settings: Settings, *, events: int, malformed: int, seed: int | None,
             timeout: float, config: Path | None = None) -> bool:
    from deploy.local import stack

    console.rule("[bold]Vigie demo")
    console.print("Starting the local stack (first run downloads Kafka and Elasticsearch)...")
    stack.up()
    seed = seed if seed is not None else int(time.time())
    registry = registry_for(settings.registry)
    ensure_topics(settings.kafka)
    # The simulator signs with simulated agents: registered on their own registry, which only
    # a processor in demo mode trusts (before it starts, so its first read has them).
    register_simulated_agents(settings.kafka, registry, AGENT_SEED)
    es = make_client(settings)
    install_templates(es)
    log_dir = settings.home / "demo"
    extra = ["--config", str(config)] if config else []
    services = [Service("processor", ["process", "--demo", *extra], log_dir).start(),
                Service("sink", ["sink", *extra], log_dir).start()]
    console.print(f"processor and sink started; logs in {log_dir}")
    if not services[0].wait_for_log(PROCESSOR_READY):
        console.print(f"[red]the processor did not start[/red]; its log {services[0].log_path}:"
                      f"\n{services[0].tail()}")
        for service in services:
            service.stop()
        return False
    ok = False
    try:
        before = end_offsets(settings.kafka, EVENTS_RAW.name)
        with _progress() as progress:
            task = progress.add_task("simulator → events.raw", total=events)
            report = simulate(
                kafka=settings.kafka, registry=registry, seed=seed,
                events=events, duration=None, rate=None,
                scenarios=["brute_force", "malware", "phishing"], malformed=malformed,
                truth=log_dir / f"truth-{seed}.jsonl",
                progress=lambda n, _total: progress.update(task, completed=n))
        after = end_offsets(settings.kafka, EVENTS_RAW.name)
        ranges = {p: (before.get(p, 0), hi) for p, hi in after.items()}
        expected = report.valid + sum(report.malformed.values())
        deadline = time.monotonic() + timeout
        with _progress() as progress:
            task = progress.add_task("searchable in Elasticsearch", total=expected)
            while True:
                for service in services:
                    if not service.alive:
                        console.print(f"[red]{service.name} exited[/red]; its log "
                                      f"{service.log_path}:\n{service.tail()}")
                        return False
                counts = event_id_counts(es, report.valid_ids)
                letters = dead_letters_for_offsets(es, ranges)
                progress.update(task, completed=len(counts) + len(letters))
                if len(counts) + len(letters) >= expected or time.monotonic() > deadline:
                    break
                time.sleep(2)
        incidents = _wait_for_incidents(es, log_dir / f"truth-{seed}.jsonl", deadline)
        ok = _summary(report, counts, letters, seed, incidents, settings)
    finally:
        for service in services:
            service.stop()
    return ok


def _wait_for_incidents(es: Elasticsearch, truth: Path, deadline: float) -> dict[str, Any]:
    """The run's incidents per ``vigie evaluate``, once every scenario is recalled."""
    result: dict[str, Any] = {}
    with console.status("correlating detections into incidents..."):
        while True:
            result = evaluate(es, truth)
            if result["overall"]["recall"] == 1.0 or time.monotonic() > deadline:
                return result
            time.sleep(2)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def _es_prefix(settings: Settings) -> str:
    """The shell line that defines ``$ES`` for the searches: TLS with the stack's CA and
    the national operator's read-only user (password in <home>/pki/passwords.json)."""
    ca = f"--cacert {settings.es_ca_certs} " if settings.es_ca_certs else ""
    passwords = settings.home / "pki" / "passwords.json"
    user = (f"-u vigie-national:$(python3 -c \"import json; print(json.load(open("
            f"'{passwords}'))['elasticsearch']['vigie-national'])\") "
            if passwords.is_file() else "")
    return f"ES=\"{ca}{user}{settings.es_url.rstrip('/')}\""


def _summary(report: SimulationReport, counts: Counter[str], letters: list[dict[str, Any]],
             seed: int, incidents: dict[str, Any], settings: Settings) -> bool:
    duplicates = sum(1 for c in counts.values() if c > 1)
    reasons = Counter(letter["reason"] for letter in letters)
    table = Table(title=f"Demo run (seed {seed})", show_header=True)
    table.add_column("")
    table.add_column("produced", justify="right")
    table.add_column("in Elasticsearch", justify="right")
    table.add_row("valid events → vigie-events", str(report.valid), str(len(counts)))
    table.add_row("malformed → vigie-dlq", str(sum(report.malformed.values())),
                  str(len(letters)))
    for reason, n in sorted(reasons.items()):
        table.add_row(f"  dead letters: {reason}", "", str(n))
    table.add_row("events indexed more than once", "", str(duplicates))
    table.add_row("attack scenario events", str(sum(report.by_scenario.values())), "")
    overall = incidents.get("overall", {})
    table.add_row("incidents opened by this run", "", str(overall.get("incidents", 0)))
    for name, scenario in sorted(incidents.get("scenarios", {}).items()):
        table.add_row(f"  {name}: recall / precision", "",
                      f"{scenario['recall']:.2f} / {scenario['precision']:.2f}")
    table.add_row("national campaigns linking them", "", str(overall.get("campaigns", 0)))
    console.print(table)
    ok = (len(counts) == report.valid and duplicates == 0
          and len(letters) == sum(report.malformed.values()))
    console.print("[green]reconciled: every record is in Elasticsearch exactly once or in "
                  "the dead-letter index[/green]" if ok else
                  "[red]NOT reconciled: see the table above and the logs[/red]")
    print("\nTry these searches (Kibana: data views 'vigie-events', 'vigie-incidents', "
          "'vigie-dlq'), as the national operator of the local stack:")
    print(_es_prefix(settings))
    for line in SEARCHES:
        print(line)
    return ok
