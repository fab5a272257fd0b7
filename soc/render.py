"""Terminal rendering of incidents: one dense line per incident, one page per incident.

Severity is coloured the way SOC consoles do (critical red, high orange...), and the
establishment and region come first after the severity because that is who the operator calls.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

SEVERITY_STYLE = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
                  "low": "cyan", "informational": "dim"}


def _orgs(incident: dict[str, Any], limit: int = 2) -> str:
    orgs = incident.get("organizations") or []
    names = [f"{o.get('name', '?')} ({o.get('id', '?')})" for o in orgs[:limit]]
    if len(orgs) > limit:
        names.append(f"+{len(orgs) - limit} more")
    return "\n".join(names)


def _regions(incident: dict[str, Any]) -> str:
    regions = sorted({o.get("region", "?") for o in incident.get("organizations") or []})
    return ", ".join(regions[:3]) + (f" +{len(regions) - 3}" if len(regions) > 3 else "")


def _when(value: str | None) -> str:
    return (value or "")[:16].replace("T", " ")


def incidents_table(incidents: list[dict[str, Any]], total: int) -> Table:
    table = Table(title=f"{len(incidents)} of {total} incidents, most recently active first",
                  show_lines=False, expand=False)
    for name, kw in (("severity", {}), ("status", {}), ("category", {}),
                     ("establishment", {"overflow": "fold"}), ("region", {}),
                     ("last seen (UTC)", {}), ("decl.", {}), ("title", {"overflow": "fold"}),
                     ("id", {"no_wrap": True})):
        table.add_column(name, **kw)
    for inc in incidents:
        severity = inc.get("severity", "?")
        scope = " (campaign)" if inc.get("scope") == "national_campaign" else ""
        table.add_row(
            Text(severity, style=SEVERITY_STYLE.get(severity, "")),
            inc.get("status", "?"),
            inc.get("category", "?") + scope,
            _orgs(inc),
            _regions(inc),
            _when(inc.get("last_seen")),
            "yes" if inc.get("declarable") else "",
            inc.get("title", ""),
            inc.get("id", "")[:12],
        )
    return table


def incident_page(incident: dict[str, Any], linked: list[dict[str, Any]]) -> Panel:
    """Everything an operator needs to call the establishment, on one screen."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    impacts = [k.replace("_", " ") for k, v in (incident.get("impacts") or {}).items() if v]
    counts = incident.get("counts") or {}
    rows = [
        ("id", incident.get("id", "")),
        ("severity", Text(incident.get("severity", "?"),
                          style=SEVERITY_STYLE.get(incident.get("severity", ""), ""))),
        ("status", incident.get("status", "?")),
        ("scope", incident.get("scope", "establishment")),
        ("category / origin", f"{incident.get('category')} / {incident.get('origin')}"),
        ("reported via", incident.get("reported_via", "sensor")),
        ("first → last seen", f"{_when(incident.get('first_seen'))} → "
                              f"{_when(incident.get('last_seen'))} UTC"),
        ("impacts", ", ".join(impacts) or "none established"),
        ("declarable", "yes: " + "; ".join(incident.get("declarable_reasons") or [])
         if incident.get("declarable") else "no"),
        ("ATT&CK", ", ".join(incident.get("techniques") or []) or "-"),
        ("indicator", incident.get("indicator") or "-"),
        ("counts", f"{counts.get('detections', 0)} detections, {counts.get('events', 0)} "
                   f"events, {counts.get('hosts', 0)} hosts"),
        ("version", str(incident.get("version", 1))),
    ]
    for key, value in rows:
        facts.add_row(key, value)
    orgs = Table("establishment", "FINESS", "type", "region", title="Establishments")
    for org in incident.get("organizations") or []:
        orgs.add_row(org.get("name", ""), org.get("id", ""), org.get("type", ""),
                     org.get("region", ""))
    parts: list[Any] = [facts, orgs]
    if linked:
        parts.append(incidents_table(linked, len(linked)))
    return Panel(Group(*parts), title=incident.get("title", "incident"), expand=False)


def print_table(console: Console, incidents: list[dict[str, Any]], total: int) -> None:
    console.print(incidents_table(incidents, total))
