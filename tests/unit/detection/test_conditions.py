"""Condition constructs from the Sigma rules specification."""

from __future__ import annotations

import pytest

from .conftest import matches

A = {"Image|endswith": "\\a.exe"}
B = {"CommandLine|contains": "bee"}
C = {"User": "carol"}


def det(condition: str | list[str], **selections: dict[str, object]) -> dict[str, object]:
    return {**selections, "condition": condition}


@pytest.mark.parametrize(
    ("condition", "fields", "expected"),
    [
        ("a and b", {"Image": "x\\a.exe", "CommandLine": "bee"}, True),
        ("a and b", {"Image": "x\\a.exe"}, False),
        ("a or b", {"CommandLine": "a bee"}, True),
        ("a or b", {"User": "carol"}, False),
        ("a and not b", {"Image": "x\\a.exe"}, True),
        ("a and not b", {"Image": "x\\a.exe", "CommandLine": "bee"}, False),
        ("not a", {}, True),
        ("not a", {"Image": "x\\a.exe"}, False),
        # "and" binds tighter than "or"
        ("a or b and c", {"Image": "x\\a.exe"}, True),
        ("(a or b) and c", {"Image": "x\\a.exe"}, False),
        ("(a or b) and c", {"CommandLine": "bee", "User": "carol"}, True),
        ("not (a or b)", {"User": "carol"}, True),
        ("not (a or b)", {"CommandLine": "bee"}, False),
        ("not a and not b", {"User": "carol"}, True),
    ],
)
def test_boolean_operators(condition: str, fields: dict[str, str], expected: bool) -> None:
    assert matches(det(condition, a=A, b=B, c=C), **fields) is expected


@pytest.mark.parametrize(
    ("condition", "fields", "expected"),
    [
        ("1 of sel_*", {"CommandLine": "bee"}, True),
        ("1 of sel_*", {"User": "carol"}, False),  # c is not a sel_*
        ("all of sel_*", {"Image": "x\\a.exe"}, False),
        ("all of sel_*", {"Image": "x\\a.exe", "CommandLine": "bee"}, True),
        ("1 of them", {"User": "carol"}, True),
        ("all of them", {"Image": "x\\a.exe", "CommandLine": "bee"}, False),
        ("all of them", {"Image": "x\\a.exe", "CommandLine": "bee", "User": "carol"}, True),
        ("any of sel_*", {"Image": "x\\a.exe"}, True),
        ("sel_a and not 1 of filter*", {"Image": "x\\a.exe"}, True),
        ("sel_a and not 1 of filter*", {"Image": "x\\a.exe", "User": "carol"}, False),
    ],
)
def test_selectors(condition: str, fields: dict[str, str], expected: bool) -> None:
    selections = {"sel_a": A, "sel_b": B}
    selections["filter_c" if "filter" in condition else "other_c"] = C
    assert matches(det(condition, **selections), **fields) is expected


def test_fields_of_one_map_are_anded() -> None:
    detection = det("sel", sel={**A, **B})
    assert matches(detection, Image="x\\a.exe", CommandLine="bee")
    assert not matches(detection, Image="x\\a.exe")


def test_list_of_maps_is_ored() -> None:
    detection = det("sel", sel=[A, B])
    assert matches(detection, CommandLine="bee")
    assert not matches(detection, User="carol")


def test_several_conditions_are_ored() -> None:
    detection = det(["a", "b"], a=A, b=B)
    assert matches(detection, CommandLine="bee")
    assert not matches(detection, User="carol")


class TestKeywords:
    def test_keyword_list_is_ored_over_all_values(self) -> None:
        detection = det("keywords", keywords=["mimikatz", "sekurlsa"])
        assert matches(detection, CommandLine="x SEKURLSA::logonpasswords")
        assert matches(detection, ParentCommandLine="mimikatz.exe")
        assert not matches(detection, CommandLine="whoami")

    def test_keywords_with_wildcards(self) -> None:
        assert matches(det("k", k="*logon*pass*"), CommandLine="sekurlsa::logonpasswords")

    def test_keywords_with_all(self) -> None:
        detection = det("k", k={"|all": ["alpha", "beta"]})
        assert matches(detection, CommandLine="alpha", Image="beta")
        assert not matches(detection, CommandLine="alpha")

    def test_keywords_search_user_data(self) -> None:
        from .conftest import make_event

        event = make_event(user_data={"Operation": "ExecMethod ClearEventLog"})
        assert matches(det("k", k=["cleareventlog"]), event=event)

    def test_keywords_combined_with_fields(self) -> None:
        detection = det("sel and k", sel=A, k=["evil"])
        assert matches(detection, Image="x\\a.exe", CommandLine="evil")
        assert not matches(detection, Image="x\\b.exe", CommandLine="evil")
