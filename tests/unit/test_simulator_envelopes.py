"""The simulator sends what agents send: per-establishment envelopes, signed once, and the
processor makes of them exactly what the simulator's truth says (every valid event
classified, every malformed one dead-lettered alone under the coordinates the truth names)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from processors.classify import Classified, ClassifyStage, PassThrough, Rejected
from processors.replay import EstablishmentSequences
from processors.validate import Coordinates, Validator
from processors.verify import Verifier
from producers.simulator.envelopes import Envelopes, Outgoing
from producers.simulator.fleet import simulated_agents
from producers.simulator.simulation import SimRecord, Simulation
from schemas.envelope import is_envelope, unpack
from schemas.limits import MAX_RECORD_BYTES
from schemas.organization import Organization


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _send_all(simulation: Simulation, envelopes: Envelopes) -> list[Outgoing]:
    out: list[Outgoing] = []
    for record in simulation:
        out += envelopes.add(record)
        out += envelopes.due()
    return out + envelopes.flush()


def test_the_processor_finds_what_the_truth_says(registry: list[Organization],
                                                 simulation: Simulation) -> None:
    entries, signers = simulated_agents(registry)
    # Small envelopes so that a few hundred records make many, each with several events.
    sent = _send_all(simulation, Envelopes(signers, max_events=25))
    records = list(simulation)
    carried = [r for s in sent for r in s.records]
    assert sorted(r.slot for r in carried) == [r.slot for r in records]  # each once
    for s in sent:  # one establishment per record, its events in production order
        assert {r.key for r in s.records} == {s.key}
        assert [r.slot for r in s.records] == sorted(r.slot for r in s.records)
    framed = [s for s in sent if s.framed]
    assert sum(len(s.records) for s in framed) > 0.95 * len(records)
    assert max(len(s.records) for s in framed) == 25
    stage = ClassifyStage(
        Validator({o.id: o for o in registry}, timedelta(minutes=5), timedelta(days=30)),
        PassThrough(), Verifier(entries))
    table: dict[str, EstablishmentSequences] = {}
    accepted: list[str] = []
    letters: dict[tuple[int, int | None], str] = {}
    truth: dict[tuple[int, int | None], str] = {}
    for offset, s in enumerate(sent):  # one partition is enough: replays compare per agent
        judged = stage.handle(s.value, Coordinates("events.raw", 0, offset, s.key), s.headers,
                              table.get)
        if judged.establishment_id is not None and judged.sequences is not None:
            table[judged.establishment_id] = judged.sequences
        for result in judged.results:
            if isinstance(result, Classified):
                accepted.append(result.verdict.event.event.id)
            else:
                assert isinstance(result, Rejected)
                letters[(result.letter.origin.offset, result.letter.origin.index)] = \
                    result.letter.reason.value
        for position, record in enumerate(s.records):
            if record.event_id is None:
                truth[(offset, s.index(position))] = str(record.expected_reason)
    assert Counter(accepted) == Counter(r.document_id for r in records if r.event_id)
    assert letters == truth
    assert any(index is not None for _, index in truth), "malformed events rode in envelopes"
    assert any(index is None for _, index in truth), "an oversize one was sent alone"


def test_an_envelope_leaves_when_full_or_one_second_after_its_first_event(
        simulation: Simulation) -> None:
    clock = FakeClock()
    signers = simulated_agents(simulation.registry)[1]
    envelopes = Envelopes(signers, max_events=3, clock=clock)
    valid = [r for r in simulation if r.event_id is not None]
    org = valid[0].key
    own = [r for r in valid if r.key == org][:4]
    other = next(r for r in valid if r.key != org)
    assert len(own) == 4
    assert envelopes.add(other) == []
    clock.now += 0.6
    assert envelopes.add(own[0]) == []
    assert envelopes.add(own[1]) == []
    assert envelopes.due() == []  # 0.6 s: nobody waited a second yet
    [full] = envelopes.add(own[2])  # third event: full
    assert full.records == own[:3] and full.key == org
    header, events = unpack(full.value)
    assert (header.agent, header.establishment, header.count) == \
        (signers[org.decode()].agent_id, org.decode(), 3)
    assert events == [r.value for r in own[:3]]
    assert dict(full.headers or [])["vigie-sequence"] == b"%d" % header.sequence
    assert envelopes.add(own[3]) == []
    clock.now += 0.5  # the other establishment's event has waited 1.1 s, own[3] 0.5 s
    [late] = envelopes.due()
    assert late.records == [other]
    assert envelopes.next_deadline() == clock.now + 0.5
    clock.now += 0.5
    [last] = envelopes.due()
    assert last.records == [own[3]] and is_envelope(last.value)
    assert len(envelopes) == 0 and envelopes.next_deadline() is None
    # The establishment's sequence numbers rise from one envelope to the next.
    assert unpack(last.value)[0].sequence > header.sequence


def test_an_event_too_large_for_an_envelope_travels_alone(simulation: Simulation) -> None:
    signers = simulated_agents(simulation.registry)[1]
    envelopes = Envelopes(signers)
    small = next(r for r in simulation if r.event_id is not None)
    padding = b"x" * MAX_RECORD_BYTES
    big = SimRecord(small.slot + 1, small.key, b'{"padding":"' + padding + b'"}', None, None,
                    malformed_kind="oversize_record")
    assert envelopes.add(small) == []
    before, alone = envelopes.add(big)  # the waiting envelope leaves first: order is kept
    assert before.records == [small] and before.framed
    assert alone.records == [big] and not alone.framed and alone.value == big.value
    assert alone.index(0) is None and alone.headers is not None  # signed all the same
