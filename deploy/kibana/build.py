"""Generate Vigie's Kibana saved objects (``saved_objects.ndjson``) from Python.

Generated rather than exported from a Kibana UI so that ids, references and field names stay
consistent with ``schemas.indices`` and the index templates, and a unit test can check them.
The format is Kibana 9's saved-objects export (data views, saved searches, Lens
visualisations, one dashboard); Kibana migrates older ``typeMigrationVersion`` values on
import. Run ``python -m deploy.kibana.build`` after changing this file and commit the output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas import indices
from schemas.indices import IndexFamily

OUT = Path(__file__).with_name("saved_objects.ndjson")
CORE_MIGRATION = "8.8.0"
#: Each typeMigrationVersion is one Kibana 9 knows and migrates forward: never a newer one,
#: which Kibana would refuse to import.
RECORDS = "___records___"  # Lens' pseudo-field for "count of records"

#: Data view id → (family, time field, human name).
DATA_VIEWS: dict[str, tuple[IndexFamily, str, str]] = {
    "vigie-events": (indices.EVENTS, "@timestamp", "Vigie events"),
    "vigie-detections": (indices.DETECTIONS, "@timestamp", "Vigie detections"),
    "vigie-incidents": (indices.INCIDENTS, "first_seen", "Vigie incidents"),
    "vigie-alerts": (indices.ALERTS, "@timestamp", "Vigie alerts"),
    "vigie-dlq": (indices.DLQ, "@timestamp", "Vigie dead letters"),
}


def _so(kind: str, id_: str, attributes: dict[str, Any], references: list[dict[str, str]],
        migration: str) -> dict[str, Any]:
    return {"type": kind, "id": id_, "attributes": attributes, "references": references,
            "managed": False, "coreMigrationVersion": CORE_MIGRATION,
            "typeMigrationVersion": migration}


def data_view(id_: str) -> dict[str, Any]:
    family, time_field, name = DATA_VIEWS[id_]
    return _so("index-pattern", id_, {"title": family.alias, "name": name,
                                       "timeFieldName": time_field}, [], "8.0.0")


# ------------------------------------------------------------------------ saved searches
def saved_search(id_: str, title: str, view: str, query: str, columns: list[str],
                 sort: list[list[str]], description: str) -> dict[str, Any]:
    source = {"query": {"query": query, "language": "kuery"}, "filter": [],
              "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
    return _so("search", id_, {
        "title": title, "description": description, "columns": columns, "sort": sort,
        "grid": {}, "hideChart": False, "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)},
    }, [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
         "id": view}], "8.0.0")


INCIDENT_COLUMNS = ["severity", "status", "category", "organizations.name",
                    "organizations.region", "title", "last_seen"]


def searches() -> list[dict[str, Any]]:
    recent = [["last_seen", "desc"]]
    return [
        saved_search("vigie-open-critical-incidents", "Open critical incidents",
                     "vigie-incidents", 'status : "open" and severity : "critical"',
                     INCIDENT_COLUMNS, recent, "Who to call first."),
        saved_search("vigie-declarable-incidents", "Declarable incidents", "vigie-incidents",
                     "declarable : true", [*INCIDENT_COLUMNS, "declarable_reasons"], recent,
                     "Incidents meeting the mandatory-report criteria (care safety, "
                     "confidentiality, integrity, normal functioning, spread)."),
        saved_search("vigie-national-campaigns", "National campaigns", "vigie-incidents",
                     'scope : "national_campaign"',
                     ["severity", "status", "category", "indicator", "title", "last_seen"],
                     recent, "Campaigns: one indicator seen in several establishments."),
        saved_search("vigie-events-of-one-establishment", "Events of one establishment",
                     "vigie-events", 'organization.id : "750000001"',
                     ["organization.name", "host.name", "event.action", "event.outcome",
                      "user.name", "source.ip", "process.command_line"],
                     [["@timestamp", "desc"]],
                     "Replace 750000001 with the establishment's FINESS id."),
        saved_search("vigie-dead-letters", "Dead letters by reason", "vigie-dlq", "",
                     ["stage", "reason", "origin.topic", "establishment_id", "detail"],
                     [["@timestamp", "desc"]], "Records refused by a stage, with the reason."),
    ]


# ------------------------------------------------------------------------ Lens
def _count(col: str) -> dict[str, Any]:
    return {"label": "Incidents", "dataType": "number", "operationType": "count",
            "isBucketed": False, "scale": "ratio", "sourceField": RECORDS,
            "params": {"emptyAsNull": True}, "customLabel": True}


def _terms(field: str, label: str, size: int, order_by: str) -> dict[str, Any]:
    return {"label": label, "dataType": "string", "operationType": "terms", "scale": "ordinal",
            "sourceField": field, "isBucketed": True, "customLabel": True,
            "params": {"size": size, "orderBy": {"type": "column", "columnId": order_by},
                       "orderDirection": "desc", "otherBucket": True, "missingBucket": False,
                       "parentFormat": {"id": "terms"}}}


def _date(field: str) -> dict[str, Any]:
    return {"label": field, "dataType": "date", "operationType": "date_histogram",
            "sourceField": field, "isBucketed": True, "scale": "interval",
            "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False}}


def lens(id_: str, title: str, view: str, kind: str, columns: dict[str, dict[str, Any]],
         visualization: dict[str, Any]) -> dict[str, Any]:
    layer = "layer1"
    state = {
        "datasourceStates": {"formBased": {"layers": {layer: {
            "columns": columns, "columnOrder": list(columns), "incompleteColumns": {},
            "sampling": 1}}}},
        "visualization": visualization,
        "query": {"query": "", "language": "kuery"},
        "filters": [], "internalReferences": [], "adHocDataViews": {},
    }
    return _so("lens", id_, {"title": title, "description": "", "visualizationType": kind,
                             "state": state},
               [{"type": "index-pattern", "id": view,
                 "name": f"indexpattern-datasource-layer-{layer}"}], "8.9.0")


def _xy(series: str, x: str, y: str, split: str | None = None) -> dict[str, Any]:
    layer: dict[str, Any] = {"layerId": "layer1", "layerType": "data", "seriesType": series,
                             "xAccessor": x, "accessors": [y]}
    if split:
        layer["splitAccessor"] = split
    return {"preferredSeriesType": series, "layers": [layer],
            "legend": {"isVisible": True, "position": "right"},
            "valueLabels": "hide", "fittingFunction": "None"}


def bar_by(id_: str, title: str, field: str, label: str, size: int) -> dict[str, Any]:
    return lens(id_, title, "vigie-incidents", "lnsXY",
                {"terms": _terms(field, label, size, "count"), "count": _count("count")},
                _xy("bar_horizontal", "terms", "count"))


def visualisations() -> list[dict[str, Any]]:
    over_time = lens(
        "vigie-incidents-over-time-by-category", "Incidents over time by category",
        "vigie-incidents", "lnsXY",
        {"when": _date("first_seen"), "category": _terms("category", "Category", 14, "count"),
         "count": _count("count")},
        _xy("bar_stacked", "when", "count", split="category"))
    malicious = lens(
        "vigie-incidents-malicious-share", "Malicious share", "vigie-incidents", "lnsPie",
        {"origin": _terms("origin", "Origin", 3, "count"), "count": _count("count")},
        {"shape": "donut", "layers": [{
            "layerId": "layer1", "layerType": "data", "primaryGroups": ["origin"],
            "metrics": ["count"], "numberDisplay": "percent", "categoryDisplay": "default",
            "legendDisplay": "default", "nestedLegend": False}]})
    return [
        over_time,
        bar_by("vigie-incidents-by-region", "Incidents by region", "organizations.region",
               "Region", 18),
        bar_by("vigie-incidents-by-establishment-type", "Incidents by establishment type",
               "organizations.type", "Type of structure", 10),
        malicious,
        bar_by("vigie-incidents-top-techniques", "Top ATT&CK techniques", "techniques",
               "ATT&CK technique", 10),
    ]


# ------------------------------------------------------------------------ dashboard
def dashboard(panels: list[tuple[dict[str, Any], int, int, int, int]]) -> dict[str, Any]:
    """``panels``: (saved object, x, y, w, h) on Kibana's 48-column grid."""
    panels_json, references = [], []
    for n, (obj, x, y, w, h) in enumerate(panels, start=1):
        index = f"p{n}"
        panels_json.append({"type": obj["type"], "panelIndex": index,
                            "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
                            "embeddableConfig": {"enhancements": {}},
                            "panelRefName": f"panel_{index}"})
        references.append({"type": obj["type"], "id": obj["id"],
                           "name": f"{index}:panel_{index}"})
    return _so("dashboard", "vigie-national-situation", {
        "title": "Vigie — national situation",
        "description": "Incidents of French health structures: over time by category, by "
                       "region and type of structure, malicious share, top ATT&CK techniques.",
        "panelsJSON": json.dumps(panels_json),
        "optionsJSON": json.dumps({"useMargins": True, "syncColors": True,
                                   "syncCursor": True, "syncTooltips": False,
                                   "hidePanelTitles": False}),
        "timeRestore": True, "timeFrom": "now-1y", "timeTo": "now",
        "refreshInterval": {"pause": False, "value": 60000},
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
            {"query": {"query": "", "language": "kuery"}, "filter": []})},
    }, references, "8.9.0")


def saved_objects() -> list[dict[str, Any]]:
    """Every object, dependencies first (Kibana resolves references on import either way)."""
    views = [data_view(id_) for id_ in DATA_VIEWS]
    found = searches()
    vis = {v["id"]: v for v in visualisations()}
    critical = next(s for s in found if s["id"] == "vigie-open-critical-incidents")
    board = dashboard([
        (vis["vigie-incidents-over-time-by-category"], 0, 0, 48, 14),
        (vis["vigie-incidents-by-region"], 0, 14, 24, 16),
        (vis["vigie-incidents-by-establishment-type"], 24, 14, 24, 16),
        (vis["vigie-incidents-malicious-share"], 0, 30, 16, 14),
        (vis["vigie-incidents-top-techniques"], 16, 30, 32, 14),
        (critical, 0, 44, 48, 14),
    ])
    return [*views, *found, *vis.values(), board]


def render() -> str:
    return "".join(json.dumps(o, sort_keys=True, ensure_ascii=False) + "\n"
                   for o in saved_objects())


def main() -> None:
    OUT.write_text(render(), encoding="utf-8")
    print(f"{len(saved_objects())} saved objects written to {OUT}")


if __name__ == "__main__":
    main()
