"""The simulation itself: which record goes at which position, deterministically.

A run is ``total`` slots over a time ``span``. Scripted attack events take the slots their
scenario plans; malformed records take seeded random slots; everything else is benign
background from a random establishment. The same seed and registry give the same records
(same ids, same content) except for timestamps, which are anchored at the run's start.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from producers.simulator import events as ev
from producers.simulator.malformed import EXPECTED_REASON, KINDS, malformed
from producers.simulator.scenarios import SCENARIOS, Planned, ScenarioInstance
from schemas.deadletter import Reason
from schemas.identity import event_id, national_event_id
from schemas.organization import Organization


@dataclass(frozen=True)
class SimRecord:
    """One record for ``events.raw`` and what the pipeline must make of it."""

    slot: int
    key: bytes
    value: bytes
    event_id: str | None  # None for malformed records: they have no valid id
    expected_reason: Reason | None
    malformed_kind: str | None = None
    scenario: str | None = None

    @property
    def document_id(self) -> str | None:
        """The national id the processor will give the event (``event.id`` and ``_id`` in
        Elasticsearch), bound to its establishment; None for a malformed record."""
        if self.event_id is None:
            return None
        return national_event_id(self.key.decode(), self.event_id)


class Simulation:
    """Deterministic record stream for one run."""

    def __init__(self, registry: list[Organization], *, seed: int, total: int,
                 start: datetime, span: timedelta, scenarios: list[str],
                 malformed: int = 0, burst: int = 1) -> None:
        """``burst``: background events come from one establishment ``burst`` slots in a
        row (1: each from its own random draw). The benchmarks use it to give each
        establishment the events its agent sends in one second at the national peak, so
        that envelopes are as full as they would be then."""
        if total < 1:
            raise ValueError("total must be at least 1")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.burst = burst
        unknown = set(scenarios) - set(SCENARIOS)
        if unknown:
            raise ValueError(f"unknown scenarios {sorted(unknown)}; known: {sorted(SCENARIOS)}")
        self.registry = registry
        self.seed = seed
        self.total = total
        self.start = start
        self.span = span
        self.rng = random.Random(f"simulation:{seed}")
        self.instances = self._plan_scenarios(scenarios)
        self._planned: dict[int, Planned] = {}
        for inst in self.instances:
            for planned in inst.planned:
                slot = min(int(planned.fraction * total), total - 1)
                while slot in self._planned:
                    slot = (slot + 1) % total
                self._planned[slot] = planned
        if len(self._planned) + malformed > total:
            raise ValueError(
                f"{total} events cannot hold {len(self._planned)} scenario events "
                f"and {malformed} malformed records")
        free = [s for s in range(total) if s not in self._planned]
        self._malformed = {
            slot: KINDS[i % len(KINDS)]
            for i, slot in enumerate(sorted(self.rng.sample(free, malformed)))
        }
        self._scenario_of = {p.event_id: i.scenario for i in self.instances for p in i.planned}

    def _plan_scenarios(self, names: list[str]) -> list[ScenarioInstance]:
        pool = self.rng.sample(self.registry, min(len(self.registry), 6 * max(1, len(names))))
        out = []
        for name in names:
            build, needed, where = SCENARIOS[name]
            if len(pool) < needed:
                raise ValueError(f"scenario {name} needs {needed} establishments")
            chosen, pool = pool[:needed], pool[needed:]
            out.append(build(self.rng, chosen, self.seed, where))
        return out

    def when(self, slot: int) -> datetime:
        return self.start + self.span * (slot / self.total)

    def __iter__(self) -> Iterator[SimRecord]:
        rng = random.Random(f"records:{self.seed}")
        org = self.registry[0]
        for slot in range(self.total):
            # Draw the background org and event even when the slot is taken, so that
            # adding a scenario does not reshuffle the whole background (nor does a burst).
            drawn = rng.choice(self.registry)
            if slot % self.burst == 0:
                org = drawn
            bg_rng = random.Random(rng.getrandbits(64))
            when = self.when(slot)
            planned = self._planned.get(slot)
            if planned is not None:
                doc = planned.build(when)
                yield SimRecord(slot, doc["organization"]["id"].encode(), _dump(doc),
                                planned.event_id, None,
                                scenario=self._scenario_of[planned.event_id])
                continue
            eid = event_id(org.id, f"sim:{self.seed}", slot)
            doc = ev.benign(org, when, eid, bg_rng, record=slot)
            kind = self._malformed.get(slot)
            if kind is None:
                yield SimRecord(slot, org.id.encode(), _dump(doc), eid, None)
            else:
                value = malformed(kind, doc, bg_rng)
                yield SimRecord(slot, org.id.encode(), value, None, EXPECTED_REASON[kind],
                                malformed_kind=kind)


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
