"""Must-show: every record of every SigmaHQ regression .evtx is parsed, and its
``winlog.event_data`` equals the .json rendering of the same sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evtx import PyEvtxParser

from producers.agent.pipeline import Finisher
from producers.agent.sources.base import Context
from producers.agent.sources.evtx import WindowsFileSource
from producers.windows.normalize import from_xml_json
from producers.windows.readers import iter_json_values
from schemas.event import SecurityEvent

REGRESSION = Path(__file__).resolve().parents[4] / "shared" / "data" / "sigma" / "regression"
SAMPLES = sorted(REGRESSION.rglob("*.evtx"))


def _expected_event_data(reference: dict) -> dict:
    """EventData of the reference JSON, named as Winlogbeat names it (``param1..`` for
    unnamed ``Data``), by the same normaliser the detection engine uses."""
    return from_xml_json(reference)["winlog"]["event_data"]


def test_samples_present() -> None:
    assert len(SAMPLES) >= 100, f"SigmaHQ regression samples not found under {REGRESSION}"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem[:8])
def test_every_record_parsed_and_matches_reference(sample: Path, ctx: Context,
                                                   finisher: Finisher) -> None:
    expected_count = sum(1 for _ in PyEvtxParser(str(sample)).records())
    source = WindowsFileSource("evtx", [str(sample)], ctx)
    docs = []
    while batch := source.poll(1000):
        docs.extend(batch)
    assert len(docs) == expected_count
    assert not ctx.malformed
    references = list(iter_json_values(
        sample.with_suffix(".json").read_text(encoding="utf-8-sig")))
    by_record = {r["Event"]["System"]["EventRecordID"]: r for r in references}
    for doc in docs:
        event = SecurityEvent.model_validate_json(finisher.value(doc)[1])
        assert event.winlog is not None
        reference = by_record[event.winlog.record_id]
        # The reference renderings trim blanks around values (see parse/windows.py).
        expected = {k: v.strip() if isinstance(v, str) else v
                    for k, v in _expected_event_data(reference).items()}
        assert event.winlog.event_data == expected
        raw = reference["Event"].get("EventData") or {}
        for name, value in raw.items():  # and against the raw rendering, field by field
            if name not in ("#attributes", "Data") and isinstance(value, str | int):
                assert event.winlog.event_data[name] == value
        assert event.winlog.event_id == from_xml_json(reference)["winlog"]["event_id"]
        assert event.event.code == str(event.winlog.event_id)


def test_json_and_evtx_of_a_sample_give_the_same_event(ctx: Context, finisher: Finisher) -> None:
    """The same Windows record read from the .evtx and from its JSON export: same event id,
    same fields (so a re-import of either is an overwrite)."""
    sample = SAMPLES[0]
    evtx_docs = WindowsFileSource("a", [str(sample)], ctx).poll(1000)
    json_docs = WindowsFileSource("b", [str(sample.with_suffix(".json"))], ctx).poll(1000)
    assert [finisher.value(d)[1] for d in evtx_docs] == [finisher.value(d)[1] for d in json_docs]


def test_dry_run_prints_json_lines(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vigie.cli.agent import agent_app

    result = CliRunner().invoke(agent_app, ["ingest", "--dry-run", str(SAMPLES[0])])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines and all(json.loads(line)["winlog"] for line in lines)


def test_direct_json_is_the_schema_s_event(ctx: Context, key) -> None:  # type: ignore[no-untyped-def]
    """The agent writes JSON directly instead of a pydantic round trip per event: on every
    regression sample (pseudonymised, as shipped), those bytes are the standard library's
    compact JSON of the document, they validate, to the very event the schema's own
    canonical dump gives, and the in-agent check agrees."""
    from producers.agent.pseudonymise import Pseudonymiser
    from producers.signing import Signer

    from .conftest import ORG

    finisher = Finisher(ORG, Signer("chu-test-01", key), Pseudonymiser(b"k" * 32))
    assert finisher.validate_every == 1  # every event, by default
    source = WindowsFileSource("evtx", [str(p) for p in SAMPLES], ctx)
    checked = 0
    while batch := source.poll(1000):
        for doc in batch:
            eid, value = finisher.value(doc)
            assert value == json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
            event = SecurityEvent.model_validate_json(value)
            assert event.id == eid
            assert SecurityEvent.model_validate_json(event.to_json_bytes()) == event
            checked += 1
    assert checked >= len(SAMPLES)
    assert finisher.invalid == 0


def test_misfit_is_caught_by_the_default_check(key) -> None:  # type: ignore[no-untyped-def]
    from producers.signing import Signer

    from .conftest import ORG

    finisher = Finisher(ORG, Signer("chu-test-01", key), None)
    finisher.value({"@timestamp": "2024-01-01T00:00:00Z", "event": {"id": "a" * 32}})
    assert finisher.invalid == 0
    finisher.value({"@timestamp": "2024-01-01T00:00:00Z",
                    "event": {"id": "b" * 32, "category": ["not-ecs"]}})
    finisher.value({"@timestamp": "2024-01-01T00:00:00Z", "event": {"id": "c" * 32},
                    "unknown_field": 1})
    assert finisher.invalid == 2


def _copy(sample: Path, to: Path) -> Path:
    to.write_bytes(sample.read_bytes())
    return to


def _multi_record_sample() -> Path:
    for sample in SAMPLES:
        if sum(1 for _ in PyEvtxParser(str(sample)).records_json()) >= 2:
            return sample
    pytest.skip("no regression sample holds two records")


def test_evtx_source_positions(tmp_path: Path, ctx: Context) -> None:
    """Files named as they are (one ``stat``, no directory listing) or by glob; a finished
    file is not read again unless it changes; a restart resumes mid-file; a file replaced by
    another one is read from its start."""
    many = _multi_record_sample()
    records = sum(1 for _ in PyEvtxParser(str(many)).records_json())
    literal = _copy(many, tmp_path / "a.evtx")
    (tmp_path / "sub").mkdir()
    _copy(SAMPLES[0], tmp_path / "sub" / "b.evtx")
    patterns = [str(literal), str(tmp_path / "sub" / "*.evtx"), str(tmp_path / "gone.evtx")]
    source = WindowsFileSource("evtx", patterns, ctx)
    source.rescan_s = 0
    first = source.poll(1)
    assert len(first) == 1
    position = source.position()
    assert position[str(literal)]["next"] == 1 and position[str(literal)]["size"] == -1

    resumed = WindowsFileSource("evtx", patterns, ctx, position)
    resumed.rescan_s = 0
    rest = resumed.poll(1000)
    ids = [d["event"]["id"] for d in first + rest]
    assert len(ids) == len(set(ids)) == records + 1
    assert resumed.poll(1000) == []  # nothing changed: nothing read again
    done = resumed.position()[str(literal)]
    assert done["next"] == records and done["size"] == literal.stat().st_size

    literal.unlink()
    _copy(SAMPLES[0], literal)  # another file under the same name: read from its start
    again = resumed.poll(1000)
    assert len(again) == sum(1 for _ in PyEvtxParser(str(SAMPLES[0])).records_json())
    assert ctx.malformed == {}


def test_misfit_is_counted_and_still_sent(key) -> None:  # type: ignore[no-untyped-def]
    from producers.signing import Signer

    from .conftest import ORG

    finisher = Finisher(ORG, Signer("chu-test-01", key), None)
    finisher.validate_every = 1
    doc = {"@timestamp": "not a date", "event": {"id": "a" * 32}}
    eid, value = finisher.value(doc)
    assert eid == "a" * 32 and json.loads(value)["@timestamp"] == "not a date"
    assert finisher.invalid == 1
