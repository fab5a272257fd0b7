"""The records every figure of the benchmark is measured with.

Ceilings and pipeline use the very same bytes: the simulator's records, signed by their
establishment's simulated agent exactly as ``vigie simulate`` sends them, so a ratio between
two figures compares two ways of moving the same data, not two data sets.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from processors.classify import Document, PassThrough
from processors.validate import Validator
from producers.signing import Signer
from producers.simulator.fleet import register_simulated_agents, simulated_agents
from producers.simulator.run import AGENT_SEED, registry_for
from producers.simulator.simulation import Simulation
from runtime.kafka import KafkaConnection
from schemas.organization import Organization

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Record:
    """One record for ``events.raw``: key, value, signature headers and its event id (the
    national one: ``event.id`` and ``_id`` in Elasticsearch)."""

    key: bytes
    value: bytes
    headers: Headers
    event_id: str


@dataclass
class Registry:
    """A registry of ``count`` establishments on disk (what the processor loads)."""

    count: int
    path: Path
    orgs: list[Organization]
    signers: dict[str, Signer]


def registry(home: Path, count: int, kafka: KafkaConnection | None) -> Registry:
    """The bench registry of ``count`` establishments (generated once, seed 0, like the
    national one) under ``home/registry-<count>/``, and its simulated agents, registered on
    the simulated registry (the bench's processors run in demo mode). ``kafka=None`` skips
    the registration: for raw ceilings no processor checks the signatures."""
    path = home / f"registry-{count}" / "establishments.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    orgs = registry_for(path, count)
    if kafka is not None:
        register_simulated_agents(kafka, orgs, AGENT_SEED)
    return Registry(count, path, orgs, simulated_agents(orgs, AGENT_SEED)[1])


def records(reg: Registry, seed: int, total: int) -> list[Record]:
    """``total`` valid signed records (benign background plus attack scenarios), dated over
    the last ten minutes so that no clock-skew rule refuses them."""
    scenarios = ["brute_force", "malware", "phishing"] if reg.count >= 18 else []
    now = datetime.now(UTC)
    sim = Simulation(reg.orgs, seed=seed, total=total, start=now - timedelta(minutes=10),
                     span=timedelta(minutes=9), scenarios=scenarios, malformed=0)
    out = []
    for rec in sim:
        assert rec.document_id is not None
        signer = reg.signers[rec.key.decode()]
        out.append(Record(rec.key, rec.value, signer.headers(rec.value), rec.document_id))
    return out


def classified_documents(reg: Registry, batch: list[Record]) -> list[tuple[str, str, str]]:
    """(index, _id, source) of what the sink indexes for ``batch`` (validated and stamped as
    the processor does, without detection: the same fields and size class)."""
    validator = Validator({o.id: o for o in reg.orgs}, timedelta(seconds=300))
    stamp = PassThrough()
    docs = []
    for rec in batch:
        event = stamp.classify(Document(validator.validate(rec.value, rec.key),
                                           json.loads(rec.value))).event
        docs.append(("", event.event.id, event.to_json_bytes().decode()))
    return docs


def rule_subset(home: Path, size: int, all_dirs: list[Path]) -> Path:
    """A folder holding ``size`` Sigma rule files copied from the Windows process-creation
    rules (the category most simulated events hit), the first ones in name order, so the
    subset is the same on every run."""
    target = home / f"rules-{size}"
    if target.is_dir() and len(list(target.glob("*.yml"))) == size:
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    from processors.detection.engine import Engine

    candidates = sorted(p for d in all_dirs for p in d.rglob("process_creation/*.yml"))
    kept = 0
    for path in candidates:
        if kept == size:
            break
        # Only files the engine compiles count: a skipped rule would shrink the subset.
        if Engine.from_paths([path]).report().rules_loaded == 1:
            shutil.copy(path, target / path.name)
            kept += 1
    return target
