"""Envelopes through the classification stage: one signature for many events, each event
judged on its own, the envelope refused whole only when the envelope itself is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.classify import Classified, ClassifyStage, PassThrough, Rejected
from processors.replay import EstablishmentSequences
from processors.validate import Coordinates, Validator
from processors.verify import Verifier
from producers.signing import Signer, public_key_b64
from producers.simulator.simulation import Simulation
from schemas.deadletter import Reason
from schemas.enrolment import AgentEntry
from schemas.envelope import (
    MARKER,
    EnvelopeError,
    chunks,
    frame,
    is_envelope,
    pack,
    unpack,
)
from schemas.identity import dead_letter_id
from schemas.organization import Organization

AGENT = "agent-1"


@pytest.fixture()
def world(registry: list[Organization], simulation: Simulation
          ) -> tuple[ClassifyStage, Signer, str, list[bytes]]:
    """A stage that verifies, the agent of one establishment, and ten of its valid events."""
    org = next(r.key.decode() for r in simulation if r.event_id)
    key = Ed25519PrivateKey.generate()
    events = []
    for n, record in enumerate(r for r in simulation if r.event_id):
        doc = json.loads(record.value)
        doc["organization"]["id"] = org
        doc["agent"] = {"id": AGENT, "type": "vigie-agent"}
        doc["event"]["id"] = f"{n:032x}"
        doc["@timestamp"] = datetime.now(UTC).isoformat()
        events.append(json.dumps(doc, separators=(",", ":")).encode())
        if len(events) == 10:
            break
    stage = ClassifyStage(
        Validator({o.id: o for o in registry}, timedelta(minutes=5), timedelta(days=30)),
        PassThrough(),
        Verifier([AgentEntry(agent_id=AGENT, establishment_id=org,
                             public_key=public_key_b64(key))]))
    return stage, Signer(AGENT, key), org, events


def test_pack_and_unpack_keep_every_event_byte_for_byte() -> None:
    events = [b'{"a":1}', b'{"b":"x\\ny"}', b"{}"]
    value = pack("agent-9", "750000001", 12, events)
    assert is_envelope(value) and value.startswith(MARKER)
    header, inside = unpack(value)
    assert (header.agent, header.establishment, header.sequence, header.count) == \
        ("agent-9", "750000001", 12, 3)
    assert inside == events


def test_chunks_bound_envelopes_and_send_unframable_events_alone() -> None:
    events = [b"x" * 100] * 25 + [b'{"raw\nnewline"}'] + [b"y" * 100] * 3
    runs = list(chunks(events, max_bytes=1010))
    assert [len(r) for r in runs] == [10, 10, 5, 1, 3]
    assert [e for run in runs for e in run] == events  # order and content kept
    assert frame("a", "750000001", 1, runs[3]) == events[25]  # not framed: a single record
    with pytest.raises(ValueError):
        pack("a", "750000001", 1, [b"a\nb"])


@pytest.mark.parametrize("damage, why", [
    (lambda v: v.rsplit(b"\n", 1)[0], "announces 10 events and holds 9"),
    (lambda v: v.replace(b'"count":10', b'"count":0', 1), "count"),
    (lambda v: v.replace(MARKER, MARKER + b'"extra":1,', 1), "extra"),
])
def test_a_broken_envelope_says_why(world: tuple[ClassifyStage, Signer, str, list[bytes]],
                                    damage, why: str) -> None:  # type: ignore[no-untyped-def]
    stage, signer, org, events = world
    value = damage(pack(AGENT, org, 5, events))
    with pytest.raises(EnvelopeError, match=why):
        unpack(value)
    [result] = stage.handle(value, Coordinates("events.raw", 1, 9, org.encode()),
                            signer.headers(value, 5)).results
    assert isinstance(result, Rejected) and result.letter.reason is Reason.BAD_ENVELOPE
    assert result.letter.original == value  # the whole envelope is kept for an engineer


def test_one_envelope_of_valid_invalid_and_forged_looking_events(
        world: tuple[ClassifyStage, Signer, str, list[bytes]],
        registry: list[Organization]) -> None:
    """The signature is checked once; each event is judged alone; a bad one costs only
    itself, and its dead letter says where it was: the envelope's coordinates, its index."""
    stage, signer, org, events = world
    other_org = next(o.id for o in registry if o.id != org)
    schema_error = json.loads(events[2])
    schema_error["event"]["kind"] = 42
    other_establishment = json.loads(events[5])
    other_establishment["organization"]["id"] = other_org
    other_agent = json.loads(events[7])
    other_agent["agent"]["id"] = "agent-of-someone-else"
    inside = list(events)
    inside[2] = json.dumps(schema_error).encode()
    inside[4] = b"{not json"
    inside[5] = json.dumps(other_establishment).encode()
    inside[7] = json.dumps(other_agent).encode()
    value = pack(AGENT, org, 77, inside)
    table: dict[str, EstablishmentSequences] = {}
    judged = stage.handle(value, Coordinates("events.raw", 3, 500, org.encode()),
                          signer.headers(value, 77), table.get)
    assert len(judged.results) == 10
    reasons = {i: r.letter.reason for i, r in enumerate(judged.results)
               if isinstance(r, Rejected)}
    assert reasons == {2: Reason.SCHEMA, 4: Reason.INVALID_JSON, 5: Reason.WRONG_ESTABLISHMENT,
                       7: Reason.BAD_SIGNATURE}
    for index, result in enumerate(judged.results):
        if isinstance(result, Rejected):
            origin = result.letter.origin
            assert (origin.topic, origin.partition, origin.offset, origin.index) == \
                ("events.raw", 3, 500, index)
            assert result.letter.id == dead_letter_id("events.raw", 3, 500, index)
            assert result.letter.original == inside[index]  # that event's bytes only
        else:
            assert isinstance(result, Classified) and result.key == org.encode()
            assert result.verdict.event.vigie is not None
    # The envelope's sequence was accepted, whatever became of its events.
    assert judged.sequences is not None and judged.sequences[AGENT]["sequence"] == 77


def test_a_forged_or_replayed_envelope_is_refused_whole(
        world: tuple[ClassifyStage, Signer, str, list[bytes]]) -> None:
    stage, signer, org, events = world
    value = pack(AGENT, org, 100, events)
    headers = signer.headers(value, 100)
    table: dict[str, EstablishmentSequences] = {}

    def judge(val: bytes, offset: int, hdrs: list[tuple[str, bytes]]) -> list[Reason | None]:
        judged = stage.handle(val, Coordinates("events.raw", 0, offset, org.encode()), hdrs,
                              table.get)
        if judged.sequences is not None:
            table[org] = judged.sequences
        return [r.letter.reason if isinstance(r, Rejected) else None for r in judged.results]

    assert judge(value, 10, headers) == [None] * 10
    # One event altered in transit: the one signature no longer matches: all refused.
    tampered = value.replace(b'"kind":"event"', b'"kind":"alert"', 1)
    assert tampered != value
    assert judge(tampered, 11, headers) == [Reason.BAD_SIGNATURE]
    # The same envelope appended again later: a replay, refused whole.
    assert judge(value, 12, headers) == [Reason.REPLAYED]
    # Re-read at its own offset (a processor restart): accepted again, same ids.
    assert judge(value, 10, headers) == [None] * 10
    # A header that says another sequence than the signed vigie-sequence.
    renumbered = pack(AGENT, org, 101, events)
    assert judge(renumbered, 13, signer.headers(renumbered, 102)) == [Reason.BAD_SIGNATURE]
    # Another establishment's key on the record.
    [letter] = stage.handle(value, Coordinates("events.raw", 0, 14, b"999999999"),
                            headers).results
    assert isinstance(letter, Rejected) and letter.letter.reason is Reason.KEY_MISMATCH


def test_a_single_event_record_is_an_envelope_of_one(
        world: tuple[ClassifyStage, Signer, str, list[bytes]]) -> None:
    """Third-party agents may send one signed event per record, as before."""
    stage, signer, org, events = world
    single = stage.handle(events[0], Coordinates("events.raw", 0, 1, org.encode()),
                          signer.headers(events[0], 5))
    enveloped = pack(AGENT, org, 6, events[:1])
    wrapped = stage.handle(enveloped, Coordinates("events.raw", 0, 2, org.encode()),
                           signer.headers(enveloped, 6))
    [a], [b] = single.results, wrapped.results
    assert isinstance(a, Classified) and isinstance(b, Classified)
    assert a.verdict.event.id == b.verdict.event.id  # the same national id either way
