"""Pages reach a real Alertmanager: right labels, one per incident and severity step, resolves.

The test starts Debian's prometheus-alertmanager with a webhook receiver served here, runs the
processor with a short resolution time, and compares what Alertmanager delivered with the
alerts Vigie published.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import TopicPartition
from elasticsearch import Elasticsearch

from deploy.local.pipeline import PROCESSOR_READY, Service
from processors.incidents.config import DEFAULT_PATH
from producers.simulator.run import simulate
from runtime.kafka import KafkaConnection
from runtime.settings import Settings
from runtime.topics import end_offsets, start_group_at_end
from schemas.organization import Organization
from schemas.topics import ALERTS
from soc.truth import evaluate
from tests.integration.fresh import (
    delete_leftovers,
    fresh_env,
    notifier_group,
    processor_group,
    sink_group,
)
from tests.integration.incidents_support import incidents_in_es

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", _free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", received
    server.shutdown()


@pytest.fixture()
def alertmanager(webhook: tuple[str, list], tmp_path: Path) -> Iterator[str]:
    if ALERTMANAGER is None:
        pytest.fail("prometheus-alertmanager is not installed (make install-system)")
    config = {
        "route": {"receiver": "pager", "group_by": ["incident_id", "alertname"],
                  "group_wait": "1s", "group_interval": "2s", "repeat_interval": "4h"},
        "receivers": [{"name": "pager", "webhook_configs": [
            {"url": webhook[0], "send_resolved": True}]}],
    }
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    proc = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={tmp_path / 'am.yml'}",
         f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=(tmp_path / "am.log").open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/-/ready", timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, (tmp_path / "am.log").read_text()
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(10)


def _published_alerts(kafka: KafkaConnection, start: dict[int, int]) -> list[dict[str, Any]]:
    consumer = kafka.consumer("vigie-test-reader")
    end = end_offsets(kafka, ALERTS.name)
    consumer.assign([TopicPartition(ALERTS.name, p, o) for p, o in start.items()])
    out, remaining = [], {p: end[p] - o for p, o in start.items() if end[p] > o}
    while remaining:
        for m in consumer.consume(500, timeout=2):
            if m.error():
                continue
            out.append(json.loads(m.value()))
            if m.offset() >= end[m.partition()] - 1:
                remaining.pop(m.partition(), None)
    consumer.close()
    return out


def test_pages_arrive_once_per_step_and_resolve(
    stack: Settings, es: Elasticsearch, national_registry: list[Organization],
    alertmanager: str, webhook: tuple[str, list], tmp_path: Path,
) -> None:
    scoring = yaml.safe_load(DEFAULT_PATH.read_text())
    scoring["windows"]["resolve_after_minutes"] = 0.4
    (tmp_path / "scoring.yaml").write_text(yaml.safe_dump(scoring))
    # Groups of their own, starting at the end of every topic: the processor and the notifier
    # see only this run. Behind a backlog (earlier tests' records on a fresh machine), the
    # notifier would post a step's firing and its resolve together, and Alertmanager never
    # pages a step that is over before its group_wait: nothing would be delivered for it.
    name = f"alerting-{int(time.time() * 1000)}"
    env = {"VIGIE_SCORING": str(tmp_path / "scoring.yaml"), "VIGIE_INCIDENT_TICK_S": "3",
           **fresh_env(name), "APP_DATADIR": str(tmp_path / "faust-data")}
    for group in (processor_group(name), sink_group(name), notifier_group(name)):
        start_group_at_end(stack.kafka, group)
    alerts_start = end_offsets(stack.kafka, ALERTS.name)
    services = {
        "processor": Service("processor", ["process", "--demo"], tmp_path, env).start(),
        "sink": Service("sink", ["sink"], tmp_path, env).start(),
        "notifier": Service("notifier", ["notify", "--alertmanager", alertmanager],
                            tmp_path, env).start(),
    }
    try:
        assert services["processor"].wait_for_log(PROCESSOR_READY), services["processor"].tail()
        truth = tmp_path / "truth.jsonl"
        simulate(kafka=stack.kafka, registry=national_registry,
                 seed=int(time.time()) % 10**6 + 21, events=2000, duration=20, rate=100,
                 scenarios=["brute_force", "malware", "phishing"], malformed=0, truth=truth)
        # Wait for this run's establishment incidents to be resolved in Elasticsearch.
        deadline = time.monotonic() + 420
        while True:
            result = evaluate(es, truth)
            ids = _run_incident_ids(es, truth)
            found = incidents_in_es(es, ids)
            if (ids and result["overall"]["recall"] == 1.0
                    and all(d["status"] == "resolved" for d in found.values())):
                break
            for service in services.values():
                assert service.alive, service.tail(40)
            assert time.monotonic() < deadline, (result, {i: d["status"] for i, d in
                                                          found.items()})
            time.sleep(3)
        # Then until Vigie has published every step's resolve and Alertmanager has delivered
        # them (the notifier and Alertmanager's group_interval trail the incidents).
        deadline = time.monotonic() + 180
        while True:
            steps, delivered, labels_of = _collect(stack.kafka, alerts_start, ids,
                                                   webhook[1])
            settled = steps and all(v[-1:] == ["resolved"] for v in steps.values()) and (
                set(delivered) == set(steps)
                and all("resolved" in v for v in delivered.values()))
            if settled or time.monotonic() > deadline:
                break
            time.sleep(3)
    finally:
        for service in services.values():
            service.stop()
        delete_leftovers(stack.kafka, name)

    assert steps, "the run's incidents paged nobody"
    # Vigie publishes each (incident, rule, severity) step once, then its resolve once.
    assert all(statuses == ["firing", "resolved"] for statuses in steps.values()), steps
    assert set(delivered) == set(steps), "Alertmanager must page exactly Vigie's alerts"
    # Every step ends resolved. A step whose resolve reached Alertmanager within its
    # group_wait is never paged as firing: Alertmanager does not page what is already over.
    assert all("resolved" in v for v in delivered.values()), delivered
    assert any("firing" in v for v in delivered.values()), "no page was sent while firing"
    by_id = incidents_in_es(es, ids)
    for (incident_id, _, _), labels in labels_of.items():
        org = by_id[incident_id]["organizations"][0]
        assert labels["region"] == org["region"]
        assert labels["establishment"] == org["id"]
    assert any(k[1] == "VigieCareSafetyAtRisk" for k in delivered), "brute force on the EHR"


def _collect(kafka: KafkaConnection, alerts_start: dict[int, int], ids: set[str],
             notifications: list[dict[str, Any]]) -> tuple[dict, dict, dict]:
    """(published steps → statuses, delivered steps → statuses, delivered labels)."""
    steps: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for alert in _published_alerts(kafka, alerts_start):
        if alert["incident_id"] in ids:
            key = (alert["incident_id"], alert["rule"], alert["severity"])
            steps[key].append(alert["status"])
    delivered: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    labels_of: dict[tuple[str, str, str], dict[str, str]] = {}
    for notification in list(notifications):
        for alert in notification["alerts"]:
            labels = alert["labels"]
            key = (labels["incident_id"], labels["alertname"], labels["severity"])
            if labels["incident_id"] in ids:
                delivered[key].add(alert["status"])
                labels_of[key] = labels
    return steps, delivered, labels_of


def _run_incident_ids(es: Elasticsearch, truth: Path) -> set[str]:
    """The establishment incidents holding this run's scenario events."""
    from soc.truth import _event_of_detection, _incidents, read_truth

    scenarios, _ = read_truth(truth)
    wanted = {e for s in scenarios for e in s["event_ids"]}
    incidents = [i for i in _incidents(es) if i["scope"] == "establishment"]
    events_of = _event_of_detection(es, [d for i in incidents for d in i["detection_ids"]])
    return {i["id"] for i in incidents
            if {events_of.get(d) for d in i["detection_ids"]} & wanted}
