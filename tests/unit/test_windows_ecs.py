"""The simulator's Windows events are what an agent ships for the same records.

Every Windows event the simulator emits (benign background and the brute-force, ransomware
and phishing scenarios) is taken apart into its raw record, written to files as agents read
them (Winlogbeat JSON lines, and the XML rendering ``.evtx`` exports give), read back by the
agent's own sources and finished by the agent's own pipeline. The two wire documents must be
the same but for what is each producer's own: the event id and the agent identity.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from producers.agent.pipeline import Finisher
from producers.agent.sources.base import Context
from producers.agent.sources.evtx import WindowsFileSource
from producers.agent.sources.jsonfile import json_source
from producers.signing import Signer
from producers.simulator import events as ev
from producers.simulator.simulation import Simulation
from producers.windows.ecs import SECURITY_CHANNEL, SYSMON_CHANNEL
from schemas.event import SecurityEvent
from schemas.organization import Organization

Doc = dict[str, Any]

#: The Windows events the scenarios need: each must be among those compared.
EXPECTED_KINDS = {(SECURITY_CHANNEL, 4624), (SECURITY_CHANNEL, 4625), (SYSMON_CHANNEL, 1),
                  (SYSMON_CHANNEL, 11)}


def _raw_record(doc: Doc) -> Doc:
    """What a Winlogbeat-shaped export holds for the simulated event: no ECS at all."""
    return {"@timestamp": doc["@timestamp"], "winlog": doc["winlog"]}


def _xml_rendering(doc: Doc) -> Doc:
    """The same record as the ``evtx`` parser renders a Windows event's XML."""
    winlog = doc["winlog"]
    return {"Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider": {"#attributes": {"Name": winlog["provider_name"]}},
            "EventID": winlog["event_id"],
            "TimeCreated": {"#attributes": {"SystemTime": doc["@timestamp"]}},
            "EventRecordID": winlog["record_id"],
            "Channel": winlog["channel"],
            "Computer": winlog["computer_name"],
        },
        "EventData": dict(winlog["event_data"]),
    }}


def _own_parts_removed(doc: Doc) -> Doc:
    """The document without the producer's own fields: event id and agent identity."""
    doc = json.loads(json.dumps(doc))
    del doc["event"]["id"], doc["agent"]
    return doc


class Agent:
    """The hospital agent's reading and finishing path, for one establishment at a time."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.key = Ed25519PrivateKey.generate()
        self.finishers: dict[str, Finisher] = {}

    def _finish(self, org: Organization, docs: list[Doc]) -> list[Doc]:
        finisher = self.finishers.setdefault(
            org.id, Finisher(org, Signer(f"agent-{org.id}", self.key), None))
        shipped = [json.loads(finisher.value(doc)[1]) for doc in docs]
        assert finisher.invalid == 0, "the agent's own wire-schema check refused an event"
        return shipped

    def read_winlogbeat_lines(self, org: Organization, records: list[Doc]) -> list[Doc]:
        path = self.tmp_path / f"{org.id}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        ctx = Context(org.id, f"agent-{org.id}")
        source = json_source("jsonl", [str(path)], ctx)
        docs = source.poll(len(records) + 1)
        source.close()
        assert not ctx.malformed
        return self._finish(org, docs)

    def read_xml_export(self, org: Organization, records: list[Doc]) -> list[Doc]:
        path = self.tmp_path / f"{org.id}.json"
        path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
        ctx = Context(org.id, f"agent-{org.id}")
        docs = WindowsFileSource("export", [str(path)], ctx).poll(len(records) + 1)
        assert not ctx.malformed
        return self._finish(org, docs)


def _windows_docs(simulation: Simulation) -> list[Doc]:
    docs = [json.loads(r.value) for r in simulation if r.event_id is not None]
    return [doc for doc in docs if "winlog" in doc]


def _kind(doc: Doc) -> tuple[str, int]:
    return doc["winlog"]["channel"], doc["winlog"]["event_id"]


@pytest.fixture()
def agent(tmp_path: Path) -> Agent:
    return Agent(tmp_path)


def test_simulated_windows_events_are_what_agents_ship(simulation: Simulation,
                                                       agent: Agent) -> None:
    simulated = _windows_docs(simulation)
    assert {_kind(doc) for doc in simulated} >= EXPECTED_KINDS
    orgs = {org.id: org for org in simulation.registry}
    by_org: dict[str, list[Doc]] = {}
    for doc in simulated:
        by_org.setdefault(doc["organization"]["id"], []).append(doc)
    compared: set[tuple[str, int]] = set()
    for org_id, docs in by_org.items():
        org = orgs[org_id]
        from_lines = agent.read_winlogbeat_lines(org, [_raw_record(d) for d in docs])
        from_export = agent.read_xml_export(org, [_xml_rendering(d) for d in docs])
        assert len(from_lines) == len(from_export) == len(docs)
        for sim_doc, line_doc, export_doc in zip(docs, from_lines, from_export, strict=True):
            expected = _own_parts_removed(sim_doc)
            assert _own_parts_removed(line_doc) == expected, _kind(sim_doc)
            assert _own_parts_removed(export_doc) == expected, _kind(sim_doc)
            compared.add(_kind(sim_doc))
    assert compared >= EXPECTED_KINDS


def test_simulated_windows_events_fit_the_wire_schema(simulation: Simulation) -> None:
    for doc in _windows_docs(simulation):
        event = SecurityEvent.model_validate_json(json.dumps(doc))
        assert event.winlog is not None and event.event.action, _kind(doc)


def test_sysmon_process_creation_action_is_the_agents(agent: Agent,
                                                      registry: list[Organization]) -> None:
    """Regression: the simulator once called Sysmon 1 "Process Create (rule: ProcessCreate)"
    where agents ship "process-created", so a query on one missed the other's events."""
    from datetime import UTC, datetime

    org = registry[0]
    simulated = ev.sysmon_process(
        org, datetime(2026, 11, 1, 8, 30, tzinfo=UTC), "e" * 32, host="PC-URG-07",
        user="dupont.a", image=r"C:\Windows\System32\vssadmin.exe",
        command_line="vssadmin.exe delete shadows /all /quiet",
        parent_image=r"C:\Users\Public\svch0st.exe", record=42, sha256="ab" * 32)
    [shipped] = agent.read_winlogbeat_lines(org, [_raw_record(simulated)])
    assert simulated["event"]["action"] == shipped["event"]["action"] == "process-created"
    assert simulated["event"]["category"] == shipped["event"]["category"] == ["process"]
    assert simulated["process"] == shipped["process"]
    assert shipped["process"]["hash"] == {"sha256": "ab" * 32}
    assert shipped["process"]["parent"]["name"] == "svch0st.exe"
