"""The processor's validation: every kind of bad input gets its reason, good input passes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from processors.validate import Coordinates, Refused, Validator, dead_letter, json_depth
from producers.simulator.simulation import Simulation
from schemas.deadletter import Reason
from schemas.organization import Organization


@pytest.fixture()
def validator(registry: list[Organization]) -> Validator:
    return Validator({o.id: o for o in registry}, timedelta(minutes=5))


def _valid(simulation: Simulation) -> tuple[bytes, bytes]:
    record = next(r for r in simulation if r.event_id)
    return record.key, record.value


def test_every_simulated_record_gets_the_expected_verdict(
    simulation: Simulation, validator: Validator
) -> None:
    outcomes: dict[str, int] = {}
    for record in simulation:
        try:
            event = validator.validate(record.value, record.key)
        except Refused as refused:
            assert record.expected_reason == refused.reason, (record.malformed_kind,
                                                              refused.detail)
            outcomes[refused.reason] = outcomes.get(refused.reason, 0) + 1
            continue
        assert record.expected_reason is None
        assert event.id == record.event_id
    assert sum(outcomes.values()) == 160
    assert set(outcomes) >= {Reason.INVALID_JSON, Reason.SCHEMA, Reason.NOT_UTF8,
                             Reason.TOO_DEEP, Reason.OVERSIZE, Reason.UNKNOWN_ESTABLISHMENT}


def test_registry_is_the_authority_on_names(simulation: Simulation, validator: Validator,
                                            registry: list[Organization]) -> None:
    key, value = _valid(simulation)
    doc = json.loads(value)
    doc["organization"]["name"] = "Not the real name"
    doc["organization"]["region"] = "corse"
    event = validator.validate(json.dumps(doc).encode(), key)
    truth = {o.id: o for o in registry}[doc["organization"]["id"]]
    assert event.organization == truth


def test_key_must_be_the_establishment(simulation: Simulation, validator: Validator) -> None:
    _key, value = _valid(simulation)
    with pytest.raises(Refused) as refused:
        validator.validate(value, b"123456789")
    assert refused.value.reason is Reason.KEY_MISMATCH


def test_future_events_are_clock_skew(simulation: Simulation, validator: Validator) -> None:
    key, value = _valid(simulation)
    doc = json.loads(value)
    doc["@timestamp"] = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    with pytest.raises(Refused) as refused:
        validator.validate(json.dumps(doc).encode(), key)
    assert refused.value.reason is Reason.CLOCK_SKEW
    doc["@timestamp"] = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert validator.validate(json.dumps(doc).encode(), key)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, Reason.INVALID_JSON),
        (b"", Reason.INVALID_JSON),
        (b"[1, 2]", Reason.SCHEMA),
        (b"null", Reason.SCHEMA),
        (b"\x00\x01\x02garbage", Reason.INVALID_JSON),
        (b'{"@timestamp": "\xc3\x28"}', Reason.NOT_UTF8),
        (b"[" * 100 + b"]" * 100, Reason.TOO_DEEP),
        (b'{"a": "' + b"x" * (1024 * 1024) + b'"}', Reason.OVERSIZE),
    ],
)
def test_garbage(validator: Validator, raw: bytes | None, reason: Reason) -> None:
    with pytest.raises(Refused) as refused:
        validator.validate(raw, None)
    assert refused.value.reason is reason
    assert refused.value.detail


def test_wrong_types_are_named_in_the_reason(simulation: Simulation,
                                             validator: Validator) -> None:
    key, value = _valid(simulation)
    doc = json.loads(value)
    doc["event"]["severity"] = "high"
    doc["surprise"] = 1
    with pytest.raises(Refused) as refused:
        validator.validate(json.dumps(doc).encode(), key)
    assert "event.severity" in refused.value.detail
    assert "surprise" in refused.value.detail


def test_dead_letter_keeps_original_bytes_and_is_deterministic() -> None:
    raw = b"\xff\xfe not json"
    where = Coordinates("events.raw", 2, 41, b"750000001")
    refused = Refused(Reason.NOT_UTF8, "byte 0")
    first = dead_letter(raw, where, refused)
    again = dead_letter(raw, where, refused)
    assert first.id == again.id
    assert base64.b64decode(first.original_b64) == raw
    assert first.original_size == len(raw)
    assert first.origin.offset == 41


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, {"c": 2}]}') == 3
    assert json_depth(b'{"a": "\\"[[["}') == 1


def test_events_beyond_the_horizon_are_too_old(simulation: Simulation,
                                               registry: list[Organization]) -> None:
    """Year 0001 must not create an index: beyond ``max_event_age_days`` it is a dead letter."""
    validator = Validator({o.id: o for o in registry}, timedelta(minutes=5), timedelta(days=30))
    key, value = _valid(simulation)
    doc = json.loads(value)
    now = datetime.now(UTC)
    for when, refused in ((datetime(1, 1, 1, tzinfo=UTC), True),
                          (now - timedelta(days=31), True),
                          (now - timedelta(days=29), False)):
        doc["@timestamp"] = when.isoformat()
        if refused:
            with pytest.raises(Refused) as exc:
                validator.validate(json.dumps(doc).encode(), key, now=now)
            assert exc.value.reason is Reason.TOO_OLD and "30 days" in exc.value.detail
        else:
            assert validator.validate(json.dumps(doc).encode(), key, now=now).timestamp == when
