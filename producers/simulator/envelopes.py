"""What each simulated agent sends: its establishment's events, in envelopes.

A real agent does not send one Kafka record per event: it gathers its events and sends an
envelope (``schemas.envelope``) when it is full or one second after its first event. The
simulator imitates that per establishment, so that what reaches the processor has the shape
of the national traffic (many small envelopes when the load is low, full ones at the peak)
and not a shape that flatters or penalises the pipeline.

Pure logic, with the clock passed in: the unit tests drive it with a fake one.

Malformed records the simulator injects travel in their establishment's envelope like any
event (the processor then dead-letters them alone, named by the envelope's coordinates and
their index); those that cannot be framed at all (larger than an envelope) leave alone, as a
single signed record, and are refused as such.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from producers.signing import Signer
from producers.simulator.simulation import SimRecord
from schemas.envelope import MAX_EVENTS, TARGET_BYTES, chunks, frame, is_envelope

Headers = list[tuple[str, bytes]]

#: The agent's time bound: an envelope leaves at most this long after its first event.
MAX_WAIT_S = 1.0


@dataclass(frozen=True)
class Outgoing:
    """One Kafka record ready to send, and the simulated records it carries."""

    key: bytes
    value: bytes
    headers: Headers | None
    records: list[SimRecord]

    @property
    def framed(self) -> bool:
        """An envelope (its records are named by their index), not a single event."""
        return is_envelope(self.value)

    def index(self, position: int) -> int | None:
        """What the processor calls the record at ``position``: its index in the envelope,
        or None when the record travelled alone."""
        return position if self.framed else None


@dataclass
class _Pending:
    records: list[SimRecord] = field(default_factory=list)
    size: int = 0
    since: float = 0.0


class Envelopes:
    """Per-establishment buffers; each call returns the records to send now, in order.

    ``add`` returns what a full buffer releases, ``due`` what has waited ``max_wait``,
    ``flush`` everything (end of run). Sequence numbers come from each establishment's
    ``Signer.clock`` (one per Kafka record), the headers from ``Signer.headers``. An
    establishment without a signer (none in a normal run) sends its records alone, unsigned:
    the processor refuses them, as it should."""

    def __init__(self, signers: dict[str, Signer], *, max_wait: float = MAX_WAIT_S,
                 max_bytes: int = TARGET_BYTES, max_events: int = MAX_EVENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.signers = signers
        self.max_wait = max_wait
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.clock = clock
        # Insertion order is the order of first events: the oldest buffer is first.
        self._pending: dict[bytes, _Pending] = {}

    def __len__(self) -> int:
        """Records waiting in buffers."""
        return sum(len(p.records) for p in self._pending.values())

    def add(self, record: SimRecord) -> list[Outgoing]:
        out: list[Outgoing] = []
        pending = self._pending.get(record.key)
        if pending is not None and pending.size + len(record.value) + 1 > self.max_bytes:
            out += self._release(record.key)
            pending = None
        if pending is None:
            pending = self._pending[record.key] = _Pending(since=self.clock())
        pending.records.append(record)
        pending.size += len(record.value) + 1
        if pending.size >= self.max_bytes or len(pending.records) >= self.max_events:
            out += self._release(record.key)
        return out

    def due(self) -> list[Outgoing]:
        """The buffers whose first event has waited ``max_wait`` or more."""
        now = self.clock()
        late = []
        for key, pending in self._pending.items():
            if now - pending.since < self.max_wait:
                break
            late.append(key)
        return [sent for key in late for sent in self._release(key)]

    def next_deadline(self) -> float | None:
        """When the oldest buffer is due (``clock`` time), None when nothing waits."""
        for pending in self._pending.values():
            return pending.since + self.max_wait
        return None

    def flush(self) -> list[Outgoing]:
        return [sent for key in list(self._pending) for sent in self._release(key)]

    def _release(self, key: bytes) -> list[Outgoing]:
        records = self._pending.pop(key).records
        establishment = key.decode("utf-8", "replace")
        signer = self.signers.get(establishment)
        if signer is None:
            return [Outgoing(key, r.value, None, [r]) for r in records]
        out = []
        position = 0
        for run in chunks([r.value for r in records], self.max_bytes, self.max_events):
            sequence = signer.clock.next()
            value = frame(signer.agent_id, establishment, sequence, run)
            out.append(Outgoing(key, value, signer.headers(value, sequence),
                                records[position:position + len(run)]))
            position += len(run)
        return out
