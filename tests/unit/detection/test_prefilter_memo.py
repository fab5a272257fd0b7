"""The prefilter remembers what each automaton found in a field value (``engine._Memo``).

A memo keyed too loosely (by value alone, across fields or buckets, or mixing raw and
lower-cased values) would hand one automaton's anchor numbers to another, and a rule would
silently stop matching on the second event that repeats a value. These tests replay values
across fields, buckets and spellings and check every match is still found, in either order.
"""

from __future__ import annotations

from typing import Any

import pytest

from processors.detection import Engine
from processors.detection.engine import MEMO_MAX_LENGTH

from .conftest import make_event, make_rule

COMMAND = "C:\\Tools\\x.exe --alpha --beta"


def _rules() -> list[Any]:
    # Literals numbered in different orders in each field and bucket, so that a number
    # carried over from another automaton names another anchor.
    return [
        make_rule({"sel": {"CommandLine|contains": ["--zeta", "--alpha"]}, "condition": "sel"},
                  rule_id="00000000-0000-0000-0000-00000000000a", title="command alpha"),
        make_rule({"sel": {"ParentCommandLine|contains": ["--beta"]}, "condition": "sel"},
                  rule_id="00000000-0000-0000-0000-00000000000b", title="parent beta"),
        make_rule({"sel": {"CommandLine|contains": ["--beta"]}, "condition": "sel"},
                  logsource={"product": "windows", "category": "file_event"},
                  rule_id="00000000-0000-0000-0000-00000000000c", title="file beta"),
        make_rule({"sel": {"Image|endswith": "\\x.exe"}, "condition": "sel"},
                  rule_id="00000000-0000-0000-0000-00000000000d", title="image x"),
    ]


def _titles(engine: Engine, event: dict[str, Any]) -> set[str]:
    return {match.title for match in engine.evaluate(event)}


EVENTS = {
    "command": (make_event(CommandLine=COMMAND), {"command alpha"}),
    "parent": (make_event(ParentCommandLine=COMMAND), {"parent beta"}),
    "file": (make_event(event_id=11, CommandLine=COMMAND), {"file beta"}),
    "upper": (make_event(CommandLine=COMMAND.upper()), {"command alpha"}),
    "list": (make_event(CommandLine=["nothing", COMMAND]), {"command alpha"}),
    "image": (make_event(Image=COMMAND.split(" ")[0]), {"image x"}),
    # The same text through the audit alias (4688's NewProcessName) and through ECS.
    "alias": (make_event(channel="Security", event_id=4688,
                         NewProcessName=COMMAND.split(" ")[0]), {"image x"}),
    "ecs": ({**make_event(), "process": {"executable": COMMAND.split(" ")[0]}}, {"image x"}),
    "user_data": (make_event(user_data={"Image": COMMAND.split(" ")[0]}), {"image x"}),
    # Absent from event_data, present under its other paths: never taken for absent.
    "ecs_command": ({**make_event(), "process": {"command_line": COMMAND}}, {"command alpha"}),
    "no_image": (make_event(CommandLine="--gamma"), set()),
}


@pytest.mark.parametrize("order", [list(EVENTS), list(reversed(EVENTS))])
def test_a_value_seen_in_one_field_or_bucket_matches_as_it_should_in_another(
    order: list[str],
) -> None:
    engine = Engine(_rules())
    for _ in range(3):  # first sight scans, the repeats come from the memo
        for name in order:
            event, expected = EVENTS[name]
            assert _titles(engine, event) == expected, name


def test_repeated_events_give_the_answers_of_a_fresh_engine() -> None:
    warm = Engine(_rules())
    for event, _ in EVENTS.values():
        warm.evaluate(event)
    for name, (event, _) in EVENTS.items():
        assert _titles(warm, event) == _titles(Engine(_rules()), event), name


def test_the_memo_stays_within_its_budget_and_still_answers() -> None:
    engine = Engine(_rules())
    engine._memo.limit = 5
    for index in range(50):
        assert _titles(engine, make_event(CommandLine=f"{index} --alpha")) == {"command alpha"}
        assert not _titles(engine, make_event(CommandLine=f"{index} --gamma"))
        assert engine._memo.count <= 5
    assert sum(map(len, engine._memo.tables)) <= 5


def test_values_too_long_to_remember_are_still_searched() -> None:
    engine = Engine(_rules())
    long_command = "x" * (MEMO_MAX_LENGTH + 1) + " --alpha"
    for _ in range(2):
        assert _titles(engine, make_event(CommandLine=long_command)) == {"command alpha"}
    assert not any(long_command in table for table in engine._memo.tables)
