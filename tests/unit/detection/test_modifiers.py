"""Every value modifier, from the Sigma modifiers appendix: positive and negative cases."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

import pytest

from processors.detection import Engine

from .conftest import make_event, make_rule, matches


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestPlainStrings:
    def test_equality_is_case_insensitive(self) -> None:
        assert matches(
            {"sel": {"Image": "C:\\Windows\\cmd.exe"}, "condition": "sel"},
            Image="c:\\WINDOWS\\CMD.EXE",
        )

    def test_equality_is_whole_value(self) -> None:
        assert not matches(
            {"sel": {"Image": "cmd.exe"}, "condition": "sel"}, Image="C:\\Windows\\cmd.exe"
        )

    def test_list_values_are_ored(self) -> None:
        detection = {"sel": {"Image": ["a.exe", "b.exe"]}, "condition": "sel"}
        assert matches(detection, Image="B.EXE")
        assert not matches(detection, Image="c.exe")

    def test_missing_field_does_not_match(self) -> None:
        assert not matches({"sel": {"Image": "a.exe"}, "condition": "sel"}, CommandLine="a.exe")

    def test_empty_string_matches_only_empty(self) -> None:
        detection = {"sel": {"CommandLine": ""}, "condition": "sel"}
        assert matches(detection, CommandLine="")
        assert not matches(detection, CommandLine="x")
        assert not matches(detection, Image="x")


class TestWildcards:
    def test_star_matches_any_run(self) -> None:
        detection = {"sel": {"CommandLine": "powershell*-enc*"}, "condition": "sel"}
        assert matches(detection, CommandLine="PowerShell.exe -nop -ENC abc")
        assert not matches(detection, CommandLine="cmd /c powershell -enc")

    def test_star_matches_empty(self) -> None:
        assert matches({"sel": {"Image": "*cmd.exe*"}, "condition": "sel"}, Image="cmd.exe")

    def test_question_mark_matches_exactly_one_character(self) -> None:
        detection = {"sel": {"Image": "c?d.exe"}, "condition": "sel"}
        assert matches(detection, Image="CMD.exe")
        assert not matches(detection, Image="cd.exe")
        assert not matches(detection, Image="cmmd.exe")

    def test_lone_star_matches_any_present_value(self) -> None:
        detection = {"sel": {"Image": "*"}, "condition": "sel"}
        assert matches(detection, Image="")
        assert not matches(detection, CommandLine="x")

    def test_escaped_star_and_question_mark_are_literal(self) -> None:
        detection = {"sel": {"CommandLine": "a\\*b\\?"}, "condition": "sel"}
        assert matches(detection, CommandLine="a*b?")
        assert not matches(detection, CommandLine="axxb?")
        assert not matches(detection, CommandLine="a*bc")

    def test_escaped_backslash_before_wildcard(self) -> None:
        # "\\\\*" in YAML is the Sigma value \\* : a literal backslash, then a wildcard.
        detection = {"sel": {"Image": "C:\\Temp\\\\*"}, "condition": "sel"}
        assert matches(detection, Image="C:\\Temp\\evil.exe")
        assert not matches(detection, Image="C:\\Tempo")

    def test_plain_backslashes_are_literal(self) -> None:
        detection = {"sel": {"Image": "C:\\Windows\\System32\\cmd.exe"}, "condition": "sel"}
        assert matches(detection, Image="c:\\windows\\system32\\cmd.exe")

    def test_inner_wildcards_keep_order(self) -> None:
        detection = {"sel": {"CommandLine": "*a*b*c*"}, "condition": "sel"}
        assert matches(detection, CommandLine="xaxbxcx")
        assert not matches(detection, CommandLine="cba")
        assert (
            matches({"sel": {"CommandLine": "ab*ba"}, "condition": "sel"}, CommandLine="aba")
            is False
        )


class TestContainsStartsEnds:
    @pytest.mark.parametrize(
        ("modifier", "value", "expected"),
        [
            ("contains", "xx -EncodedCommand yy", True),
            ("contains", "-encoded", False),
            ("startswith", "-encodedcommand yy", True),
            ("startswith", "x -encodedcommand", False),
            ("endswith", "yy -ENCODEDCOMMAND", True),
            ("endswith", "-encodedcommand yy", False),
        ],
    )
    def test_modifier(self, modifier: str, value: str, expected: bool) -> None:
        detection = {"sel": {f"CommandLine|{modifier}": "-EncodedCommand"}, "condition": "sel"}
        assert matches(detection, CommandLine=value) is expected

    def test_contains_keeps_explicit_wildcards(self) -> None:
        detection = {"sel": {"CommandLine|contains": "net*user"}, "condition": "sel"}
        assert matches(detection, CommandLine="cmd /c NET  USER admin")
        assert not matches(detection, CommandLine="user net")

    def test_all_requires_every_value(self) -> None:
        detection = {
            "sel": {"CommandLine|contains|all": ["vssadmin", "delete"]},
            "condition": "sel",
        }
        assert matches(detection, CommandLine="vssadmin.exe Delete Shadows")
        assert not matches(detection, CommandLine="vssadmin list shadows")

    def test_many_suffixes(self) -> None:
        detection = {
            "sel": {"Image|endswith": ["\\a.exe", "\\b.exe", "\\c.exe"]},
            "condition": "sel",
        }
        assert matches(detection, Image="C:\\x\\C.exe")
        assert not matches(detection, Image="C:\\x\\d.exe")


class TestCased:
    def test_cased_is_case_sensitive(self) -> None:
        detection = {"sel": {"CommandLine|cased": "ABC"}, "condition": "sel"}
        assert matches(detection, CommandLine="ABC")
        assert not matches(detection, CommandLine="abc")

    def test_cased_with_contains(self) -> None:
        detection = {"sel": {"CommandLine|contains|cased": "ABC"}, "condition": "sel"}
        assert matches(detection, CommandLine="xABCx")
        assert not matches(detection, CommandLine="xabcx")


class TestRegularExpressions:
    def test_re_is_case_sensitive(self) -> None:
        detection = {"sel": {"CommandLine|re": "-[Ee]nc\\b"}, "condition": "sel"}
        assert matches(detection, CommandLine="powershell -enc abc")
        assert not matches(detection, CommandLine="powershell -ENC abc")

    def test_re_searches_unanchored(self) -> None:
        assert matches({"sel": {"CommandLine|re": "b+c"}, "condition": "sel"}, CommandLine="abbbcd")

    def test_re_anchors(self) -> None:
        detection = {"sel": {"CommandLine|re": "^abc$"}, "condition": "sel"}
        assert matches(detection, CommandLine="abc")
        assert not matches(detection, CommandLine="xabc")

    def test_re_i_flag(self) -> None:
        detection = {"sel": {"CommandLine|re|i": "^powershell"}, "condition": "sel"}
        assert matches(detection, CommandLine="POWERSHELL -nop")

    def test_re_m_flag(self) -> None:
        assert matches(
            {"sel": {"CommandLine|re|m": "^second$"}, "condition": "sel"},
            CommandLine="first\nsecond\nthird",
        )
        assert not matches(
            {"sel": {"CommandLine|re": "^second$"}, "condition": "sel"},
            CommandLine="first\nsecond\nthird",
        )

    def test_re_s_flag(self) -> None:
        assert matches({"sel": {"CommandLine|re|s": "a.b"}, "condition": "sel"}, CommandLine="a\nb")
        assert not matches(
            {"sel": {"CommandLine|re": "a.b"}, "condition": "sel"}, CommandLine="a\nb"
        )

    def test_re_on_numbers(self) -> None:
        assert matches({"sel": {"ProcessId|re": "^4[0-9]{3}$"}, "condition": "sel"}, ProcessId=4321)

    @pytest.mark.parametrize(
        ("pattern", "value", "expected"),
        [
            # Values shorter than any match are answered without RE2: the bound must hold
            # at its edge and count characters, not bytes, for multi-byte text.
            (".{5,}", "abcd", False),
            (".{5,}", "abcde", True),
            (".{3}", "éé", False),
            (".{3}", "ééé", True),
            ("\\s[a-f0-9]{4}\\s", " abcd ", True),
            ("\\s[a-f0-9]{4}\\s", " abc ", False),
            ("(a|bcdef)x?", "a", True),
            # POSIX classes mean something else to Python's parser: no bound taken from it.
            ("^[[:alpha:]]$", "a", True),
        ],
    )
    def test_re_width_bound_never_loses_a_match(
        self, pattern: str, value: str, expected: bool
    ) -> None:
        detection = {"sel": {"CommandLine|re": pattern}, "condition": "sel"}
        assert matches(detection, CommandLine=value) is expected


class TestEncodings:
    def test_base64(self) -> None:
        detection = {"sel": {"CommandLine|base64": "whoami"}, "condition": "sel"}
        assert matches(detection, CommandLine=b64(b"whoami"))
        assert not matches(detection, CommandLine="whoami")

    def test_base64_contains(self) -> None:
        detection = {"sel": {"CommandLine|base64|contains": "http://"}, "condition": "sel"}
        assert matches(detection, CommandLine="x " + b64(b"http://") + " y")

    @pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc"])
    def test_base64offset_finds_any_alignment(self, prefix: bytes) -> None:
        detection = {
            "sel": {"CommandLine|base64offset|contains": "Invoke-Mimikatz"},
            "condition": "sel",
        }
        encoded = b64(prefix + b"Invoke-Mimikatz -Dump" + b"zz")
        assert matches(detection, CommandLine=f"powershell -enc {encoded}")

    def test_base64offset_negative(self) -> None:
        detection = {
            "sel": {"CommandLine|base64offset|contains": "Invoke-Mimikatz"},
            "condition": "sel",
        }
        assert not matches(detection, CommandLine=b64(b"Invoke-Something-Else"))

    @pytest.mark.parametrize("modifier", ["wide", "utf16le"])
    def test_wide_base64offset(self, modifier: str) -> None:
        detection = {
            "sel": {f"CommandLine|{modifier}|base64offset|contains": "ping"},
            "condition": "sel",
        }
        assert matches(detection, CommandLine=b64("x ping y".encode("utf-16-le")))
        assert not matches(detection, CommandLine=b64(b"x ping y"))

    def test_utf16be(self) -> None:
        detection = {"sel": {"CommandLine|utf16be|base64": "ab"}, "condition": "sel"}
        assert matches(detection, CommandLine=b64("ab".encode("utf-16-be")))

    def test_utf16_has_bom(self) -> None:
        detection = {"sel": {"CommandLine|utf16|base64": "ab"}, "condition": "sel"}
        assert matches(detection, CommandLine=b64(b"\xff\xfe" + "ab".encode("utf-16-le")))
        assert not matches(detection, CommandLine=b64("ab".encode("utf-16-le")))


class TestWindash:
    @pytest.mark.parametrize("dash", ["-", "/", "\u2013", "\u2014", "\u2015"])
    def test_every_dash_form(self, dash: str) -> None:
        detection = {"sel": {"CommandLine|windash|contains": " -exec bypass"}, "condition": "sel"}
        assert matches(detection, CommandLine=f"powershell {dash}exec bypass")

    def test_other_characters_do_not_match(self) -> None:
        detection = {"sel": {"CommandLine|windash|contains": " -exec"}, "condition": "sel"}
        assert not matches(detection, CommandLine="powershell +exec")

    def test_windash_with_all_keeps_each_expansion_ored(self) -> None:
        detection = {"sel": {"CommandLine|windash|contains|all": ["-a", "-b"]}, "condition": "sel"}
        assert matches(detection, CommandLine="x /a -b")
        assert not matches(detection, CommandLine="x /a")


class TestCidr:
    def test_ipv4(self) -> None:
        detection = {
            "sel": {"DestinationIp|cidr": ["10.0.0.0/8", "192.168.0.0/16"]},
            "condition": "sel",
        }
        assert matches(detection, DestinationIp="10.1.2.3")
        assert matches(detection, DestinationIp="192.168.77.1")
        assert not matches(detection, DestinationIp="11.0.0.1")
        assert not matches(detection, DestinationIp="not an ip")

    def test_ipv6(self) -> None:
        detection = {"sel": {"DestinationIp|cidr": "fe80::/10"}, "condition": "sel"}
        assert matches(detection, DestinationIp="fe80:0:0:0:1:2:3:4")
        assert not matches(detection, DestinationIp="2001:db8::1")
        assert not matches(detection, DestinationIp="10.0.0.1")


class TestNumbers:
    def test_number_matches_number_or_text(self) -> None:
        detection = {"sel": {"ProcessId": 4}, "condition": "sel"}
        assert matches(detection, ProcessId=4)
        assert matches(detection, ProcessId="4")
        assert not matches(detection, ProcessId="40")

    @pytest.mark.parametrize(
        ("modifier", "value", "expected"),
        [
            ("lt", 9, True),
            ("lt", 10, False),
            ("lte", 10, True),
            ("lte", 11, False),
            ("gt", 11, True),
            ("gt", 10, False),
            ("gte", 10, True),
            ("gte", 9, False),
            ("gt", "12", True),
            ("gt", "0x20", True),
            ("gt", "abc", False),
        ],
    )
    def test_comparisons(self, modifier: str, value: object, expected: bool) -> None:
        detection = {"sel": {f"LogonType|{modifier}": 10}, "condition": "sel"}
        assert matches(detection, LogonType=value) is expected

    def test_boolean(self) -> None:
        detection = {"sel": {"Signed": True}, "condition": "sel"}
        assert matches(detection, Signed=True)
        assert matches(detection, Signed="true")
        assert not matches(detection, Signed="false")


class TestFieldChecks:
    def test_null_matches_absent_or_null(self) -> None:
        detection = {
            "sel": {"Image|endswith": "\\a.exe"},
            "nul": {"CommandLine": None},
            "condition": "sel and nul",
        }
        assert matches(detection, Image="c:\\a.exe")
        assert matches(detection, Image="c:\\a.exe", CommandLine=None)
        assert not matches(detection, Image="c:\\a.exe", CommandLine="")

    @pytest.mark.parametrize(
        ("expected", "present", "result"),
        [(True, True, True), (True, False, False), (False, False, True), (False, True, False)],
    )
    def test_exists(self, expected: bool, present: bool, result: bool) -> None:
        detection = {"sel": {"Image": "a.exe", "Hashes|exists": expected}, "condition": "sel"}
        fields = {"Image": "a.exe", **({"Hashes": ""} if present else {})}
        assert matches(detection, **fields) is result

    def test_fieldref_equality_is_case_insensitive(self) -> None:
        detection = {"sel": {"Image|fieldref": "ParentImage"}, "condition": "sel"}
        assert matches(detection, Image="C:\\A.exe", ParentImage="c:\\a.EXE")
        assert not matches(detection, Image="C:\\A.exe", ParentImage="C:\\B.exe")
        assert not matches(detection, Image="C:\\A.exe")

    def test_fieldref_with_startswith_endswith_contains(self) -> None:
        assert matches(
            {"sel": {"CommandLine|fieldref|startswith": "Image"}, "condition": "sel"},
            CommandLine="c:\\a.exe /x",
            Image="C:\\a.exe",
        )
        assert matches(
            {"sel": {"CommandLine|fieldref|endswith": "User"}, "condition": "sel"},
            CommandLine="runas bob",
            User="BOB",
        )
        assert matches(
            {"sel": {"CommandLine|fieldref|contains": "User"}, "condition": "sel"},
            CommandLine="x bob y",
            User="bob",
        )
        assert not matches(
            {"sel": {"CommandLine|fieldref|contains": "User"}, "condition": "sel"},
            CommandLine="x alice y",
            User="bob",
        )

    def test_neq(self) -> None:
        detection = {"sel": {"Image|endswith": ".exe", "User|neq": "SYSTEM"}, "condition": "sel"}
        assert matches(detection, Image="a.exe", User="bob")
        assert not matches(detection, Image="a.exe", User="system")


class TestTimestampParts:
    def test_hour(self) -> None:
        detection = {"sel": {"UtcTime|hour": 23}, "condition": "sel"}
        assert matches(detection, UtcTime="2025-10-24 23:41:48.482")
        assert not matches(detection, UtcTime="2025-10-24 22:41:48.482")
        assert not matches(detection, UtcTime="not a date")


class TestExpand:
    DETECTION: ClassVar[dict[str, Any]] = {
        "sel": {"Image|endswith": "\\a.exe"},
        "known": {"Computer|expand": "%dcs%"},
        "condition": "sel and not known",
    }

    def test_placeholder_values_come_from_the_engine(self) -> None:
        engine = Engine([make_rule(self.DETECTION)], placeholders={"dcs": ["WS01.example.org"]})
        event = make_event(Image="c:\\a.exe")
        assert engine.evaluate(event) == []
        event["winlog"]["computer_name"] = "ws02"
        assert len(engine.evaluate(event)) == 1

    def test_missing_placeholder_values_skip_the_rule_with_the_reason(self) -> None:
        engine = Engine([make_rule(self.DETECTION)])
        assert not engine.rules
        assert "%dcs%" in engine.skipped[0].reason


class TestPrefilterAnchors:
    """The literal each matcher tells the prefilter must be in every value it matches."""

    @pytest.mark.parametrize(
        ("pattern", "anchor"),
        [
            ("\\\\[a-z]{1,3}\\.exe$", {".exe"}),
            ("xy(z)?abcd+", {"abc"}),
            ("ab|cd", None),
            ("(?i)abc", {"abc"}),
            ("(?i)ABC", {"abc"}),
            ("(?i)PowerShell", {"power"}),  # s, k end runs: they fold to ſ and K too
            ("(?i)sk", None),
            ("[0-9]+", None),
        ],
    )
    def test_regex_anchor(self, pattern: str, anchor: set[str] | None) -> None:
        from sigma.types import SigmaRegularExpression

        from processors.detection.modifiers import RegexMatcher

        assert RegexMatcher(SigmaRegularExpression(pattern)).anchors() == anchor

    @pytest.mark.parametrize(
        ("pattern", "value"),
        [("(?i)powershell", "POWERſHELL"), ("(?i)kill", "\u212aILL"), ("(?i)abc", "xAbC")],
    )
    def test_case_insensitive_regex_anchor_is_sound(self, pattern: str, value: str) -> None:
        """Whatever RE2's case folding matches, the anchor is in the lower-cased value."""
        from sigma.types import SigmaRegularExpression

        from processors.detection.modifiers import RegexMatcher

        matcher = RegexMatcher(SigmaRegularExpression(pattern))
        assert matcher.test(value)
        assert all(anchor in value.lower() for anchor in matcher.anchors() or ())

    def test_string_anchor_is_longest_literal(self) -> None:
        from sigma.types import SigmaString

        from processors.detection.modifiers import StringMatcher

        # Sigma value *\Temp\\*.EXE : an escaped backslash before the inner wildcard.
        matcher = StringMatcher([SigmaString(r"*\Temp\\*.EXE"), SigmaString("abc")])
        assert matcher.anchors() == {"\\temp\\", "abc"}
        assert StringMatcher([SigmaString("*"), SigmaString("abc")]).anchors() is None
