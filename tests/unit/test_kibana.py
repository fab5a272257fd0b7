"""Kibana saved objects: well-formed, self-contained, and only using fields that exist.

Kibana cannot run here, so the NDJSON is checked structurally, and the import request is
checked against a tiny HTTP server standing in for Kibana's saved-objects API.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from deploy.kibana import build
from deploy.kibana.importer import DEFAULT_FILE, KibanaImportError, import_saved_objects
from sinks.elasticsearch.templates import MAPPINGS

KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*:")


def _objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEFAULT_FILE.read_text().splitlines() if line]


def _fields(mapping: dict[str, Any], prefix: str = "") -> set[str]:
    """Every searchable path of a mapping, multi-fields included (``title.keyword``)."""
    out: set[str] = set()
    for name, spec in mapping.get("properties", {}).items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            out |= _fields(spec, f"{path}.")
            continue
        out.add(path)
        out |= {f"{path}.{sub}" for sub in spec.get("fields", {})}
    return out


FIELDS_BY_VIEW = {view: _fields(MAPPINGS[family])
                  for view, (family, _, _) in build.DATA_VIEWS.items()}


def test_committed_ndjson_is_what_build_generates() -> None:
    assert DEFAULT_FILE.read_text(encoding="utf-8") == build.render(), (
        "run `python -m deploy.kibana.build` and commit deploy/kibana/saved_objects.ndjson")


def test_every_object_has_type_id_attributes_and_unique_id() -> None:
    objects = _objects()
    assert objects
    for obj in objects:
        assert obj["type"] and obj["id"] and isinstance(obj["attributes"], dict), obj
        assert obj["attributes"].get("title")
    assert len({(o["type"], o["id"]) for o in objects}) == len(objects)
    kinds = {o["type"] for o in objects}
    assert {"index-pattern", "search", "lens", "dashboard"} <= kinds


def test_data_views_cover_every_family() -> None:
    titles = {o["attributes"]["title"] for o in _objects() if o["type"] == "index-pattern"}
    assert titles == {"vigie-events", "vigie-detections", "vigie-incidents", "vigie-alerts",
                      "vigie-dlq"}


def test_every_reference_points_to_an_object_in_the_file() -> None:
    objects = _objects()
    present = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        for ref in obj.get("references", []):
            assert (ref["type"], ref["id"]) in present, f"{obj['id']} → {ref}"


def test_dashboard_panels_resolve_to_their_references() -> None:
    board = next(o for o in _objects() if o["type"] == "dashboard")
    names = {r["name"] for r in board["references"]}
    panels = json.loads(board["attributes"]["panelsJSON"])
    assert len(panels) >= 5
    for panel in panels:
        assert f"{panel['panelIndex']}:{panel['panelRefName']}" in names
    titles = {o["id"]: o["attributes"]["title"] for o in _objects()}
    shown = {titles[r["id"]] for r in board["references"]}
    assert {"Incidents over time by category", "Incidents by region",
            "Incidents by establishment type", "Malicious share",
            "Top ATT&CK techniques"} <= shown


def _view_of(obj: dict[str, Any]) -> str:
    return next(r["id"] for r in obj["references"] if r["type"] == "index-pattern")


def _used_fields(obj: dict[str, Any]) -> set[str]:
    attrs = obj["attributes"]
    if obj["type"] == "lens":
        layers = attrs["state"]["datasourceStates"]["formBased"]["layers"]
        return {col["sourceField"] for layer in layers.values()
                for col in layer["columns"].values() if col["sourceField"] != build.RECORDS}
    if obj["type"] == "search":
        source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
        used = set(attrs["columns"]) | {field for field, _ in attrs["sort"]}
        return used | set(KQL_FIELD.findall(source["query"]["query"]))
    if obj["type"] == "index-pattern":
        return {attrs["timeFieldName"]}
    return set()


@pytest.mark.parametrize("obj", [o for o in _objects() if o["type"] != "dashboard"],
                         ids=lambda o: o["id"])
def test_every_field_used_exists_in_the_index_template(obj: dict[str, Any]) -> None:
    view = obj["id"] if obj["type"] == "index-pattern" else _view_of(obj)
    used = _used_fields(obj)
    assert used, "each object should use at least one field"
    missing = used - FIELDS_BY_VIEW[view]
    assert not missing, f"{obj['id']} uses fields absent from the {view} template: {missing}"


def test_lens_columns_are_consistent() -> None:
    for obj in (o for o in _objects() if o["type"] == "lens"):
        state = obj["attributes"]["state"]
        for layer_id, layer in state["datasourceStates"]["formBased"]["layers"].items():
            assert set(layer["columnOrder"]) == set(layer["columns"])
            assert f"indexpattern-datasource-layer-{layer_id}" in {
                r["name"] for r in obj["references"]}
        text = json.dumps(state["visualization"])
        columns = {c for layer in state["datasourceStates"]["formBased"]["layers"].values()
                   for c in layer["columns"]}
        for accessor in re.findall(r'"(?:xAccessor|splitAccessor)": "([^"]+)"', text):
            assert accessor in columns


# ------------------------------------------------------------------------ import
class _Kibana(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
        parts = list(message.iter_parts())
        headers = {k.lower(): v for k, v in self.headers.items()}  # names are case-blind
        self.received.append({"path": self.path, "headers": headers,
                              "parts": [(p.get_param("name", header="content-disposition"),
                                         p.get_filename(), p.get_content_type(),
                                         p.get_payload(decode=True)) for p in parts]})
        ok = self.headers.get("kbn-xsrf") and len(parts) == 1
        count = len([line for line in parts[0].get_payload(decode=True).splitlines() if line])
        answer = ({"success": True, "successCount": count, "errors": []} if ok
                  else {"statusCode": 400, "error": "Bad Request"})
        data = json.dumps(answer).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def kibana() -> Iterator[str]:
    _Kibana.received = []
    server = HTTPServer(("127.0.0.1", 0), _Kibana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_import_posts_the_ndjson_as_multipart_with_kbn_xsrf(kibana: str) -> None:
    result = import_saved_objects(kibana, space="soc", username="elastic", password="pw")
    assert result.success_count == len(_objects())
    [request] = _Kibana.received
    assert request["path"] == "/s/soc/api/saved_objects/_import?overwrite=true"
    assert request["headers"]["kbn-xsrf"] == "true"
    assert request["headers"]["authorization"].startswith("Basic ")
    assert request["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    [(name, filename, content_type, payload)] = request["parts"]
    assert (name, filename, content_type) == ("file", "saved_objects.ndjson",
                                              "application/ndjson")
    assert payload == DEFAULT_FILE.read_bytes()


def test_import_failure_is_explained(kibana: str, tmp_path: Path) -> None:
    class Refusing(_Kibana):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            data = json.dumps({"success": False, "successCount": 0, "errors": [
                {"type": "lens", "id": "x", "error": {"type": "missing_references"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = HTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(KibanaImportError, match="missing_references"):
            import_saved_objects(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(KibanaImportError, match="cannot reach"):
        import_saved_objects("http://127.0.0.1:1", timeout=2)
