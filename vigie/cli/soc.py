"""The SOC: incidents (list, search, show), the national report, retention, evaluation against
a simulation's truth, and Sigma hunting over event files (detect, rules check).

Thin: each command parses its options, imports the package that does the work in its body
(see :mod:`vigie.cli.common` for why) and prints the outcome. Option values that do not parse
(a date, a duration, a severity) are :class:`UsageError` naming the option, raised before
Elasticsearch is contacted.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from runtime.errors import UsageError
from runtime.logs import setup_logging
from vigie.cli.common import ConfigOpt, console
from vigie.cli.es import EsApiKeyOpt, EsCaOpt, elasticsearch

if TYPE_CHECKING:  # imported for real inside the commands
    from soc.incidents import IncidentFilter

PANEL = "SOC"

commands = typer.Typer()
incidents_app = typer.Typer(help="Search and read incidents in Elasticsearch.",
                            no_args_is_help=True)
rules_app = typer.Typer(help="Sigma rule sets (processors/detection).", no_args_is_help=True)
commands.add_typer(incidents_app, name="incidents", rich_help_panel=PANEL)
commands.add_typer(rules_app, name="rules", rich_help_panel=PANEL)


def _day(text: str, option: str) -> date:
    """A ``YYYY-MM-DD`` option value."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"not a date: {text!r} (YYYY-MM-DD)", source=option) from None


def _since(text: str) -> datetime:
    """``--since``: a duration back from now (24h, 7d) or an ISO date/time (UTC if naive)."""
    from soc.retention import parse_duration

    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"neither a duration (24h, 7d) nor a date/time: {text!r}",
                         source="--since") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ---------------------------------------------------------------- incidents
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


def _incident_filter(region: str | None, establishment: str | None, severity: str | None,
                     status: str | None, category: str | None, declarable: bool | None,
                     since: str | None, scope: str | None) -> IncidentFilter:
    from schemas.taxonomy import Severity
    from soc.incidents import IncidentFilter

    minimum = None
    if severity:
        try:
            minimum = Severity(severity)
        except ValueError:
            known = ", ".join(s.value for s in Severity)
            raise UsageError(f"not a severity: {severity!r} ({known})",
                             source="--severity") from None
    return IncidentFilter(region=region, establishment=establishment, min_severity=minimum,
                          status=status, category=category, declarable=declarable,
                          since=_since(since) if since else None, scope=scope)


def _print_incidents(total: int, found: list[dict[str, Any]], as_json: bool) -> None:
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
                   as_json: JsonOpt = False, config: ConfigOpt = None,
                   es_api_key: EsApiKeyOpt = None, es_ca: EsCaOpt = None) -> None:
    """Incidents matching the filters, most recently active first."""
    from soc.incidents import find_incidents

    f = _incident_filter(region, establishment, severity, status, category, declarable, since,
                         scope)
    total, found = find_incidents(elasticsearch(config, es_api_key, es_ca), f, limit=limit)
    _print_incidents(total, found, as_json)


@incidents_app.command("search")
def incidents_search(text: Annotated[str, typer.Argument(help="Words, an id, a technique…")],
                     region: RegionOpt = None, establishment: EstablishmentOpt = None,
                     severity: SeverityOpt = None, status: StatusOpt = None,
                     category: CategoryOpt = None, declarable: DeclarableOpt = None,
                     since: SinceOpt = None, scope: ScopeOpt = None, limit: LimitOpt = 50,
                     as_json: JsonOpt = False, config: ConfigOpt = None,
                   es_api_key: EsApiKeyOpt = None, es_ca: EsCaOpt = None) -> None:
    """Full-text search (title, establishment, reasons, indicator, techniques) plus filters."""
    from soc.incidents import find_incidents

    f = _incident_filter(region, establishment, severity, status, category, declarable, since,
                         scope)
    es = elasticsearch(config, es_api_key, es_ca)
    total, found = find_incidents(es, f, text, limit=limit)
    _print_incidents(total, found, as_json)


@incidents_app.command("show")
def incidents_show(incident_id: str, as_json: JsonOpt = False, config: ConfigOpt = None,
                   es_api_key: EsApiKeyOpt = None, es_ca: EsCaOpt = None) -> None:
    """One incident in full, with the establishment incidents a campaign links."""
    from soc.incidents import get_incident, linked_incidents
    from soc.render import incident_page

    es = elasticsearch(config, es_api_key, es_ca)
    incident = get_incident(es, incident_id)  # AmbiguousId (a UsageError) for a short prefix
    if incident is None:
        raise UsageError(f"no incident {incident_id}")
    if as_json:
        print(json.dumps(incident, ensure_ascii=False, indent=2))
        return
    Console().print(incident_page(incident, linked_incidents(es, incident)))


# ---------------------------------------------------------------- report, retention, truth
@commands.command(rich_help_panel=PANEL)
def report(
    from_: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD), included")],
    to: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD), excluded")],
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    format_: Annotated[str, typer.Option("--format", help="html or json")] = "html",
    config: ConfigOpt = None,
    es_api_key: EsApiKeyOpt = None,
    es_ca: EsCaOpt = None,
) -> None:
    """The national report: incidents, malicious share, who reports, trends, with charts."""
    from soc.report import national_report

    if format_ not in ("html", "json"):
        raise UsageError(f"{format_!r} is neither html nor json", source="--format")
    start, end = _day(from_, "--from"), _day(to, "--to")
    figures = national_report(elasticsearch(config, es_api_key, es_ca), start, end)
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


@commands.command(rich_help_panel=PANEL)
def retention(
    older_than: Annotated[str, typer.Option(help="Delete monthly indices whose whole month "
                                                 "is older than this (180d, 26w)")] = "180d",
    dry_run: Annotated[bool, typer.Option(help="Only say what would be deleted")] = False,
    config: ConfigOpt = None,
    es_api_key: EsApiKeyOpt = None,
    es_ca: EsCaOpt = None,
) -> None:
    """Delete whole monthly indices (events, detections, alerts) older than the limit."""
    from soc.retention import apply_retention, parse_duration

    try:
        limit = parse_duration(older_than)
    except ValueError as exc:
        raise UsageError(str(exc), source="--older-than") from None
    plan = apply_retention(elasticsearch(config, es_api_key, es_ca), limit, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for index in plan.delete:
        print(f"{verb} {index.name}")
    console.print(f"cutoff {plan.cutoff.isoformat(timespec='seconds')}: {len(plan.delete)} "
                  f"{verb}, {len(plan.keep)} kept")


@commands.command(rich_help_panel=PANEL)
def evaluate(
    truth: Annotated[Path, typer.Option(help="Ground truth written by `vigie simulate --truth`",
                                        exists=True, dir_okay=False)],
    config: ConfigOpt = None,
    es_api_key: EsApiKeyOpt = None,
    es_ca: EsCaOpt = None,
) -> None:
    """Precision and recall of the incidents in Elasticsearch against a simulation's truth."""
    from soc.truth import evaluate as run_evaluate

    print(json.dumps(run_evaluate(elasticsearch(config, es_api_key, es_ca), truth), indent=2))


# ---------------------------------------------------------------- hunting with Sigma
RuleDirs = Annotated[list[Path] | None, typer.Option(
    "--rules", help="Rule folder (repeatable; default: the SigmaHQ folders in ../shared)")]


@rules_app.command("check")
def rules_check(
    dirs: Annotated[list[Path] | None, typer.Argument(help="Rule folders")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Full report as JSON")] = False,
) -> None:
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


@commands.command(rich_help_panel=PANEL)
def detect(
    files: Annotated[list[Path], typer.Argument(help=".evtx, .json or .jsonl Windows events")],
    rules: RuleDirs = None,
) -> None:
    """Run the Sigma engine over event files; one JSON line per detection on stdout."""
    from soc.hunt import detect as run_detect

    setup_logging("WARNING")
    count = run_detect(rules, files, sys.stdout)
    console.print(f"{count} detections")
