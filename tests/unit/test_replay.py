"""The replay check: a signed record sent twice is dead-lettered ``replayed``; the processor
reading its own input again after a crash, and an agent re-sending what never arrived, are not.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from processors.classify import Classified, ClassifyStage, PassThrough, Rejected
from processors.replay import MAX_GAPS, AgentSequence, EstablishmentSequences, check
from processors.validate import Coordinates, Refused, Validator
from processors.verify import Verifier
from producers.signing import Signer, public_key_b64
from producers.simulator.simulation import Simulation
from schemas.deadletter import Reason
from schemas.enrolment import AgentEntry
from schemas.organization import Organization


def _replayed(stored: AgentSequence | None, sequence: int, offset: int,
              partition: int = 0) -> bool:
    try:
        check(stored, sequence, partition, offset)
    except Refused as refused:
        assert refused.reason is Reason.REPLAYED and "sequence" in refused.detail
        return True
    return False


def _after(stored: AgentSequence | None, sequence: int, offset: int,
           partition: int = 0) -> AgentSequence | None:
    new = check(stored, sequence, partition, offset)
    return stored if new is None else new


def test_a_copy_appended_later_is_a_replay() -> None:
    state = None
    for offset, sequence in enumerate(range(1, 11), start=100):
        state = _after(state, sequence, offset)
    assert state == {"sequence": 10, "partition": 0, "offset": 109, "gaps": []}
    assert _replayed(state, 4, 200)  # byte for byte an old record, at the end of the log
    assert _replayed(state, 10, 110)  # the latest one, sent again right after
    assert not _replayed(state, 11, 110)


def test_reading_again_after_a_crash_accepts_what_was_accepted() -> None:
    """The table may be ahead of the committed offsets: records up to its offset come back."""
    state = None
    for offset, sequence in enumerate(range(1, 6), start=100):
        state = _after(state, sequence, offset)
    for offset, sequence in enumerate(range(1, 6), start=100):
        assert check(state, sequence, 0, offset) is None  # accepted, state unchanged
    # ...but the same offset in another partition is not the same record.
    assert _replayed(state, 3, 102, partition=1)


def test_a_record_resent_after_later_ones_fills_its_gap_once() -> None:
    """Delivery of 3 failed, 4 and 5 got through, 3 is sent again: accepted, once."""
    state = _after(None, 2, 10)
    state = _after(state, 4, 11)
    state = _after(state, 5, 12)
    assert state is not None and state["gaps"] == [[3, 3]]
    state = _after(state, 3, 13)
    assert state is not None and state["gaps"] == [] and state["sequence"] == 5
    assert _replayed(state, 3, 14)


def test_clock_numbered_producers_leave_bounded_gaps() -> None:
    state = None
    for n in range(MAX_GAPS + 10):
        state = _after(state, 1000 * (n + 1), n)
    assert state is not None and len(state["gaps"]) == MAX_GAPS
    # A late record in a remembered gap is taken; one older than every gap is a replay.
    assert not _replayed(state, state["gaps"][-1][0], 10_000)
    assert _replayed(state, 1500, 10_000)


def test_gaps_split_around_the_record_that_fills_them() -> None:
    state = _after(_after(None, 1, 0), 10, 1)
    state = _after(state, 5, 2)
    assert state is not None and state["gaps"] == [[2, 4], [6, 9]]
    assert _replayed(state, 5, 3)


# --------------------------------------------------------------- through the stage
@pytest.fixture()
def signed(registry: list[Organization], simulation: Simulation
           ) -> tuple[ClassifyStage, Signer, bytes, bytes]:
    record = next(r for r in simulation if r.event_id)
    org = record.key.decode()
    key = Ed25519PrivateKey.generate()
    doc = json.loads(record.value)
    doc["agent"] = {"id": "agent-1", "type": "vigie-agent"}
    doc["@timestamp"] = datetime.now(UTC).isoformat()
    stage = ClassifyStage(
        Validator({o.id: o for o in registry}, timedelta(minutes=5), timedelta(days=30)),
        PassThrough(),
        Verifier([AgentEntry(agent_id="agent-1", establishment_id=org,
                             public_key=public_key_b64(key))]))
    return stage, Signer("agent-1", key), record.key, json.dumps(doc).encode()


def test_the_stage_dead_letters_a_byte_for_byte_replay(
        signed: tuple[ClassifyStage, Signer, bytes, bytes]) -> None:
    stage, signer, key, value = signed
    table: dict[str, EstablishmentSequences] = {}
    headers = signer.headers(value, 7)

    def run(offset: int) -> Classified | Rejected:
        judged = stage.handle(value, Coordinates("events.raw", 2, offset, key), headers,
                              table.get)
        if judged.sequences is not None:
            table[key.decode()] = judged.sequences
        [result] = judged.results
        return result

    first = run(40)
    assert isinstance(first, Classified)
    assert table[key.decode()]["agent-1"]["sequence"] == 7
    again = run(41)  # the very same bytes and headers, appended later
    assert isinstance(again, Rejected) and again.letter.reason is Reason.REPLAYED
    assert again.key == key and again.letter.origin.offset == 41
    assert isinstance(run(40), Classified)  # the processor re-reading offset 40: accepted


def test_a_signed_record_without_key_is_refused(
        signed: tuple[ClassifyStage, Signer, bytes, bytes]) -> None:
    """Offsets compare within a partition: the record must be keyed by its establishment."""
    stage, signer, _key, value = signed
    [result] = stage.handle(value, Coordinates("events.raw", 2, 40, None),
                            signer.headers(value, 1), lambda _org: None).results
    assert isinstance(result, Rejected) and result.letter.reason is Reason.KEY_MISMATCH


@pytest.mark.parametrize("reached_kafka", [5, 3, 0])
def test_an_agent_resending_after_a_crash_loses_nothing(reached_kafka: int) -> None:
    """The agent sent 1..5, died before its spool saw the acknowledgements, and sends 1..5
    again (the restart check found nothing, or could not run). The copies of records already
    in Kafka are dead-lettered ``replayed``; each sequence is accepted exactly once."""
    log = [(seq, offset) for offset, seq in enumerate(range(1, reached_kafka + 1))]
    log += [(seq, len(log) + i) for i, seq in enumerate(range(1, 6))]
    state, accepted, replayed = None, [], []
    for seq, offset in log:
        try:
            new = check(state, seq, 0, offset)
        except Refused as refused:
            assert refused.reason is Reason.REPLAYED
            replayed.append(seq)
            continue
        state = new if new is not None else state
        accepted.append(seq)
    assert sorted(accepted) == [1, 2, 3, 4, 5]
    assert replayed == list(range(1, reached_kafka + 1))
