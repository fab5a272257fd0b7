"""The classification stage without Faust: a raw record becomes a classified event keyed by
its establishment, or a dead letter that says why and where it was read."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from processors.classify import Classified, ClassifyStage, PassThrough, Rejected
from processors.validate import Coordinates, Validator
from producers.simulator.simulation import Simulation
from schemas.deadletter import Reason
from schemas.organization import Organization


@pytest.fixture()
def stage(registry: list[Organization]) -> ClassifyStage:
    return ClassifyStage(Validator({o.id: o for o in registry}, timedelta(minutes=5)),
                         PassThrough())


def test_a_valid_record_is_classified_under_its_establishment(
        stage: ClassifyStage, simulation: Simulation) -> None:
    record = next(r for r in simulation if r.event_id)
    [result] = stage.handle(record.value, Coordinates("events.raw", 3, 42, record.key)).results
    assert isinstance(result, Classified)
    assert result.key == record.key and result.verdict.event.id == record.document_id
    # The agent's id is kept beside the national one, for the hospital's side of the story.
    assert result.verdict.event.vigie and \
        result.verdict.event.vigie.agent_event_id == record.event_id
    assert result.verdict.event.event.ingested is not None


def test_a_refused_record_becomes_a_dead_letter_with_its_reason(
        stage: ClassifyStage, simulation: Simulation) -> None:
    record = next(r for r in simulation if r.event_id)
    doc = json.loads(record.value)
    doc["organization"]["id"] = "999999999"
    [result] = stage.handle(json.dumps(doc).encode(),
                            Coordinates("events.raw", 3, 42, b"x")).results
    assert isinstance(result, Rejected)
    assert result.letter.reason == Reason.UNKNOWN_ESTABLISHMENT
    assert (result.letter.origin.partition, result.letter.origin.offset) == (3, 42)


def test_a_record_the_stage_crashed_on_is_kept_for_replay() -> None:
    result = ClassifyStage.failed(b"{}", Coordinates("events.raw", 0, 7, b"750000001"),
                                  RuntimeError("bug"))
    assert result.letter.reason == Reason.PROCESSING_ERROR and result.key == b"750000001"
    assert "bug" in result.letter.detail and result.letter.original == b"{}"
