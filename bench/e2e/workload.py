"""The records every figure of the benchmark is measured with.

Ceilings and pipeline use the very same bytes: the simulator's events, in envelopes signed by
their establishment's simulated agent as ``vigie simulate`` sends them, so a ratio between
two figures compares two ways of moving the same data, not two data sets.

How full an envelope is decides much of the processor's cost per event (one signature, one
Kafka record per envelope), so the bench does not pick the size that flatters it: an
envelope holds what one establishment's agent sends in one second (its time bound) at the
national peak, 90,000 events/s over 3,036 establishments, ~30 events
(:data:`ENVELOPE_EVENTS`, ``--envelope-events``). At half load an agent's second holds half
as many: the paced latency runs use envelopes of that size.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from processors.classify import Document, PassThrough
from processors.validate import Validator
from producers.signing import Signer
from producers.simulator.envelopes import Envelopes
from producers.simulator.fleet import register_simulated_agents, simulated_agents
from producers.simulator.run import AGENT_SEED, registry_for
from producers.simulator.simulation import Simulation
from runtime.kafka import KafkaConnection
from schemas.envelope import is_envelope, unpack
from schemas.organization import Organization

Headers = list[tuple[str, bytes]]

#: The national peak the envelopes are sized for (issue 14), and the establishments sharing it.
PEAK_EVENTS_PER_S = 90_000
NATIONAL_ESTABLISHMENTS = 3036
#: Events in one agent's envelope at the peak: what it sends in one second (its time bound).
ENVELOPE_EVENTS = round(PEAK_EVENTS_PER_S / NATIONAL_ESTABLISHMENTS)


@dataclass(frozen=True)
class Record:
    """One record for ``events.raw`` (an envelope, or an event sent alone): key, value,
    signature headers and the national ids of the events it carries (``event.id`` and
    ``_id`` in Elasticsearch), in order."""

    key: bytes
    value: bytes
    headers: Headers
    event_ids: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.event_ids)

    def events(self) -> list[bytes]:
        """Each event's bytes (the envelope opened)."""
        return unpack(self.value)[1] if is_envelope(self.value) else [self.value]


def event_count(batch: list[Record]) -> int:
    return sum(rec.count for rec in batch)


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


def records(reg: Registry, seed: int, total: int,
            envelope_events: int = ENVELOPE_EVENTS) -> list[Record]:
    """``total`` valid events (benign background plus attack scenarios), dated over the last
    ten minutes so that no clock-skew rule refuses them, in envelopes of
    ``envelope_events`` from one establishment each (1: one signed record per event). Each
    establishment's events are consecutive, as its agent gathers them for one second; an
    envelope interrupted by scenario events is completed by the establishment's next ones, or
    sent short at the end (a handful per batch)."""
    scenarios = ["brute_force", "malware", "phishing"] if reg.count >= 18 else []
    now = datetime.now(UTC)
    sim = Simulation(reg.orgs, seed=seed, total=total, start=now - timedelta(minutes=10),
                     span=timedelta(minutes=9), scenarios=scenarios, malformed=0,
                     burst=envelope_events)
    # No time bound: the batch is produced later, as fast as Kafka takes it or paced.
    envelopes = Envelopes(reg.signers, max_wait=math.inf, max_events=envelope_events)
    out = []
    for sent in [s for rec in sim for s in envelopes.add(rec)] + envelopes.flush():
        assert sent.headers is not None
        ids = tuple(r.document_id for r in sent.records if r.document_id is not None)
        assert len(ids) == len(sent.records)
        out.append(Record(sent.key, sent.value, sent.headers, ids))
    return out


def classified_documents(reg: Registry, batch: list[Record]) -> list[tuple[str, str, str]]:
    """(index, _id, source) of what the sink indexes for ``batch`` (validated and stamped as
    the processor does, without detection: the same fields and size class)."""
    validator = Validator({o.id: o for o in reg.orgs}, timedelta(seconds=300))
    stamp = PassThrough()
    docs = []
    for rec in batch:
        for raw in rec.events():
            event = stamp.classify(Document(validator.validate(raw, rec.key),
                                            json.loads(raw))).event
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
