"""Envelope: many events of one agent in one signed Kafka record of ``events.raw``.

Why: one signature verification and one Kafka message per event made both the processor's
and the agent's cost per event (issue 14: ~100 µs of Ed25519 and ~150 µs of Faust/aiokafka
machinery per record). An envelope pays both once for hundreds of events.

Wire form (the value of an ``events.raw`` record), UTF-8 lines separated by ``\\n``:

- line 0, the envelope header (:class:`EnvelopeHeader`), compact JSON that begins with
  exactly ``{"vigie_envelope":1,`` (:data:`MARKER`): the signing agent, the establishment,
  the agent's sequence number of the envelope, and the number of events;
- lines 1 to ``count``: one event each (the ``security-event`` schema), compact JSON. A JSON
  serialiser never writes a raw newline (it escapes it inside strings as ``\\n``), so the
  framing needs no escaping of its own;
- no trailing newline.

The Kafka key is the establishment id, as for a single event; the Kafka headers are those
of a single event (``vigie-agent``, ``vigie-sequence``, ``vigie-signature``, see
:mod:`schemas.enrolment`): the one signature covers the sequence and the whole value,
header line included, and the header line's ``agent``, ``establishment`` and ``sequence``
must equal the signer, the key and ``vigie-sequence``. A record that does not begin with the
marker is a single event: an envelope of one, so a third-party agent stays simple.

What the processor does with it (``processors.classify``): a forged, replayed, truncated or
malformed envelope is dead-lettered whole; a malformed event inside a valid envelope is
dead-lettered alone, named by the envelope's Kafka coordinates and its index in it.

Hand-written framing rather than a JSON array: the processor needs each event's exact bytes
(to validate them with pydantic's strict JSON mode, to keep them in a dead letter), and
splitting on newlines gives them for a fraction of a microsecond per event, where a JSON
array would be parsed once and serialised again per event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Literal

from pydantic import Field, ValidationError

from schemas._base import WireModel
from schemas.enrolment import MAX_SEQUENCE
from schemas.limits import MAX_RECORD_BYTES, Name

#: The first bytes of every envelope, and of nothing else on ``events.raw``.
MARKER = b'{"vigie_envelope":1,'
#: What producers aim for: an envelope is closed at this size (or at ``MAX_EVENTS``, or when
#: its time is up: one second for the agent, one transaction).
TARGET_BYTES = 512 * 1024
#: Largest envelope accepted (``events.raw`` accepts messages of 2 MiB).
MAX_BYTES = 2 * 1024 * 1024 - 64 * 1024
#: Most events in one envelope.
MAX_EVENTS = 10_000


class EnvelopeHeader(WireModel):
    """The first line of an envelope: who sent the events that follow, for whom, under which
    number. The events follow, one compact JSON ``security-event`` per line (see the module
    documentation of ``schemas.envelope`` for the framing)."""

    vigie_envelope: Literal[1]
    agent: Annotated[str, Field(min_length=1, max_length=128)]
    establishment: Name
    sequence: int = Field(ge=1, le=MAX_SEQUENCE)
    count: int = Field(ge=1, le=MAX_EVENTS)


class EnvelopeError(ValueError):
    """An envelope that cannot be opened; the message says why (a dead letter's detail)."""


def is_envelope(value: bytes | None) -> bool:
    return value is not None and value.startswith(MARKER)


def pack(agent: str, establishment: str, sequence: int, events: Sequence[bytes]) -> bytes:
    """The envelope of ``events`` (each one event's compact JSON, without newline)."""
    if not events:
        raise ValueError("an envelope holds at least one event")
    if any(b"\n" in event for event in events):
        raise ValueError("an event holds a raw newline: not compact JSON")
    header = (b'%s"agent":%s,"establishment":%s,"sequence":%d,"count":%d}'
              % (MARKER, json.dumps(agent).encode(), json.dumps(establishment).encode(),
                 sequence, len(events)))
    return b"\n".join([header, *events])


def unpack(value: bytes) -> tuple[EnvelopeHeader, list[bytes]]:
    """The header and the events' bytes; raises ``EnvelopeError`` when the envelope itself
    is broken (its events are not validated here)."""
    if len(value) > MAX_BYTES:
        raise EnvelopeError(f"envelope of {len(value)} bytes, at most {MAX_BYTES} allowed")
    lines = value.split(b"\n")
    try:
        header = EnvelopeHeader.model_validate_json(lines[0])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<header>'}: {e['msg']}"
                             for e in exc.errors(include_url=False, include_input=False)[:5])
        raise EnvelopeError(f"envelope header: {problems}") from None
    events = lines[1:]
    if len(events) != header.count:
        raise EnvelopeError(f"envelope announces {header.count} events and holds "
                            f"{len(events)} (truncated or altered)")
    return header, events


def chunks(events: Iterable[bytes], max_bytes: int = TARGET_BYTES,
           max_events: int = MAX_EVENTS) -> Iterator[list[bytes]]:
    """``events`` cut into envelope-sized runs, in order. An event that could not travel in
    an envelope (larger than one, or holding a raw newline) comes alone: the producer sends
    it as a single record, and the processor says what is wrong with it."""
    run: list[bytes] = []
    size = 0
    for event in events:
        alone = len(event) > min(max_bytes, MAX_RECORD_BYTES) or b"\n" in event
        if run and (alone or size + len(event) + 1 > max_bytes or len(run) >= max_events):
            yield run
            run, size = [], 0
        if alone:
            yield [event]
            continue
        run.append(event)
        size += len(event) + 1
    if run:
        yield run


def frame(agent: str, establishment: str, sequence: int, run: Sequence[bytes]) -> bytes:
    """The record value for one run of :func:`chunks`: its envelope, or the event itself
    when it cannot be framed (then the processor refuses it as a single event, with why)."""
    if len(run) == 1 and (b"\n" in run[0] or len(run[0]) > MAX_RECORD_BYTES):
        return run[0]
    return pack(agent, establishment, sequence, run)
