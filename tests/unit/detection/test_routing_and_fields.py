"""Log source routing and the Sigma field map."""

from __future__ import annotations

import pytest
from sigma.rule import SigmaLogSource

from processors.detection import DEFAULT_FIELDMAP, Engine
from processors.detection.logsource import EventSlot, UnsupportedLogSource, event_slots

from .conftest import SYSMON, make_event, make_rule

SYSMON_L = SYSMON.lower()


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("process_creation", {EventSlot(SYSMON_L, 1), EventSlot("security", 4688)}),
        ("file_event", {EventSlot(SYSMON_L, 11)}),
        ("registry_set", {EventSlot(SYSMON_L, 13)}),
        ("registry_event",
         {EventSlot(SYSMON_L, 12), EventSlot(SYSMON_L, 13), EventSlot(SYSMON_L, 14)}),
        ("image_load", {EventSlot(SYSMON_L, 7)}),
        ("process_access", {EventSlot(SYSMON_L, 10)}),
        ("network_connection", {EventSlot(SYSMON_L, 3)}),
        ("dns_query", {EventSlot(SYSMON_L, 22)}),
    ],
)
def test_categories(category: str, expected: set[EventSlot]) -> None:
    assert event_slots(SigmaLogSource(product="windows", category=category)) == expected


@pytest.mark.parametrize(
    ("service", "channel"),
    [
        ("security", "security"),
        ("wmi", "microsoft-windows-wmi-activity/operational"),
        ("system", "system"),
        ("sysmon", SYSMON_L),
    ],
)
def test_services_route_to_their_channel(service: str, channel: str) -> None:
    slots = event_slots(SigmaLogSource(product="windows", service=service))
    assert slots == {EventSlot(channel, None)}


@pytest.mark.parametrize(
    "logsource",
    [
        SigmaLogSource(product="linux", category="process_creation"),
        SigmaLogSource(category="proxy"),
        SigmaLogSource(product="windows", category="file_access"),
        SigmaLogSource(product="windows", service="no-such-service"),
    ],
)
def test_unroutable_log_sources_say_why(logsource: SigmaLogSource) -> None:
    with pytest.raises(UnsupportedLogSource, match=r"\w"):
        event_slots(logsource)


def test_rule_only_meets_events_of_its_log_source() -> None:
    engine = Engine(
        [
            make_rule(
                {"sel": {"Image|endswith": "\\a.exe"}, "condition": "sel"},
                logsource={"product": "windows", "category": "file_event"},
            )
        ]
    )
    assert not engine.evaluate(make_event(event_id=1, Image="c:\\a.exe"))
    assert engine.evaluate(make_event(event_id=11, Image="c:\\a.exe"))


def test_service_rules_are_narrowed_to_the_event_ids_they_require() -> None:
    rule = make_rule(
        {"sel": {"EventID": [4624, 4625], "LogonType": 10}, "condition": "sel"},
        logsource={"product": "windows", "service": "security"},
    )
    engine = Engine([rule])
    assert engine.rules[0].event_ids == {4624, 4625}
    assert engine.evaluate(make_event(channel="Security", event_id=4625, LogonType="10"))
    assert not engine.candidates(make_event(channel="Security", event_id=4688, LogonType="10"))


def test_linux_rule_is_skipped_with_reason() -> None:
    engine = Engine(
        [
            make_rule(
                {"sel": {"Image": "/bin/sh"}, "condition": "sel"},
                logsource={"product": "linux", "category": "process_creation"},
            )
        ]
    )
    assert not engine.rules
    assert engine.skipped[0].reason.startswith("unsupported log source")


class TestFieldMap:
    def test_system_fields(self) -> None:
        event = make_event(channel="Security", event_id=4688)
        assert DEFAULT_FIELDMAP.values(event, "EventID") == (4688,)
        assert DEFAULT_FIELDMAP.values(event, "Channel") == ("Security",)
        assert DEFAULT_FIELDMAP.values(event, "Computer") == ("ws01.example.org",)
        assert DEFAULT_FIELDMAP.values(event, "Provider_Name") == ("Microsoft-Windows-Sysmon",)

    def test_level_is_the_number_whatever_the_spelling(self) -> None:
        event = make_event()
        event["winlog"]["level"] = "4"
        assert DEFAULT_FIELDMAP.values(event, "Level") == ("4",)
        event["winlog"]["level"] = "Information"
        assert DEFAULT_FIELDMAP.values(event, "Level") == (4,)

    def test_provider_is_a_data_field_not_the_system_provider(self) -> None:
        event = make_event(user_data={"Provider": "SCM Event Provider"})
        assert DEFAULT_FIELDMAP.values(event, "Provider") == ("SCM Event Provider",)

    def test_event_data_then_user_data(self) -> None:
        event = make_event(Image="a", user_data={"Operation": "op"})
        assert DEFAULT_FIELDMAP.values(event, "Image") == ("a",)
        assert DEFAULT_FIELDMAP.values(event, "Operation") == ("op",)
        assert DEFAULT_FIELDMAP.values(event, "Missing") == ()

    def test_security_audit_names_serve_process_creation_rules(self) -> None:
        rule = make_rule({"sel": {"Image|endswith": "\\whoami.exe"}, "condition": "sel"})
        event = make_event(
            channel="Security", event_id=4688, NewProcessName="C:\\Windows\\System32\\whoami.exe"
        )
        assert Engine([rule]).evaluate(event)

    def test_ecs_fields_are_a_fallback(self) -> None:
        event = make_event()
        event["process"] = {"command_line": "whoami /all"}
        assert DEFAULT_FIELDMAP.values(event, "CommandLine") == ("whoami /all",)
        event["winlog"]["event_data"]["CommandLine"] = "raw"
        assert DEFAULT_FIELDMAP.values(event, "CommandLine") == ("raw",)

    def test_dotted_names_are_paths(self) -> None:
        event = make_event(Image="a")
        assert DEFAULT_FIELDMAP.values(event, "winlog.event_data.Image") == ("a",)

    def test_classic_data_field_reads_unnamed_params(self) -> None:
        event = make_event(
            channel="Windows PowerShell",
            event_id=400,
            param1="Available",
            param2="HostName=ConsoleHost",
        )
        assert DEFAULT_FIELDMAP.values(event, "Data") == ("Available", "HostName=ConsoleHost")


def test_match_reports_rule_metadata_and_matched_fields() -> None:
    rule = make_rule(
        {
            "sel": {"Image|endswith": "\\a.exe", "CommandLine|contains": "evil"},
            "filter": {"User": "SYSTEM"},
            "condition": "sel and not filter",
        },
        tags=["attack.execution", "attack.t1059.001", "attack.defense_evasion", "attack.g0016"],
        author="Someone",
        level="critical",
    )
    (match,) = Engine([rule]).evaluate(
        make_event(Image="C:\\A.exe", CommandLine="x EVIL", User="bob")
    )
    assert match.matched_fields == {"Image": "C:\\A.exe", "CommandLine": "x EVIL"}
    assert match.rule.tactics == ["execution", "defense-evasion"]
    assert match.rule.techniques == ["T1059.001"]
    assert match.level == "critical"
    assert match.to_dict()["author"] == "Someone"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10", True), (10, True), ("0xA", True), (" 10 ", True), ("3", False), (None, False),
     ("ten", False)],
)
def test_numeric_anchor_prefilter_follows_the_number_matcher(value: object,
                                                             expected: bool) -> None:
    """``LogonType: 10`` is looked up by number in the prefilter: every spelling the matcher
    accepts (text, int, hex) still reaches the rule, and events the number excludes skip it."""
    rule = make_rule(
        {"sel": {"EventID": 4624, "LogonType": 10}, "condition": "sel"},
        logsource={"product": "windows", "service": "security"},
    )
    engine = Engine([rule])
    event = make_event(channel="Security", event_id=4624, LogonType=value)
    assert bool(engine.evaluate(event)) is expected
    assert bool(engine.candidates(event)) is expected


def test_junk_event_ids_share_one_compiled_bucket() -> None:
    """Rules for a whole channel (here a keyword rule, routed to every Windows event) are
    compiled once: a flood of unknown EventIDs must not compile a bucket per EventID."""
    engine = Engine([make_rule({"keywords": ["mimikatz"], "condition": "keywords"},
                               logsource={"product": "windows"})])
    found = [engine.evaluate(make_event(event_id=n, CommandLine=f"run {n}"))
             for n in range(1000, 3000)]
    assert not any(found)
    assert engine.evaluate(make_event(event_id=4242, CommandLine="mimikatz.exe"))
    assert len({id(bucket) for bucket in engine._buckets.values()}) == 1
    assert len(engine._by_rules) == 1


def _metasploit_like() -> Engine:
    """Two OR-ed selections for different EventIDs, the second without any literal."""
    return Engine([make_rule(
        {
            "selection1": {"EventID": [4624, 4625], "AuthenticationPackageName": "NTLM"},
            "selection2": {"EventID": 4776, "Workstation|re": "^[A-Z]{3}$"},
            "condition": "1 of selection*",
        },
        logsource={"product": "windows", "service": "security"},
    )])


def test_each_event_id_gets_the_anchors_of_its_own_selection() -> None:
    engine = _metasploit_like()
    kerberos = make_event(channel="Security", event_id=4624, AuthenticationPackageName="Kerberos",
                          Workstation="ABC")
    ntlm = make_event(channel="Security", event_id=4624, AuthenticationPackageName="NTLM")
    # On 4624 the literal-free selection2 cannot hold: NTLM's literal is necessary there.
    assert not engine.candidates(kerberos)
    assert not engine.evaluate(kerberos)
    assert engine.evaluate(ntlm)
    # On 4776 only selection2 can hold: always evaluated, and it matches.
    validation = make_event(channel="Security", event_id=4776, Workstation="ABC")
    assert engine.evaluate(validation)
    assert not engine.evaluate(make_event(channel="Security", event_id=4776, Workstation="ABCD"))


@pytest.mark.parametrize("event_id", [4624, "4624", " 4624"])
def test_event_id_restriction_reads_the_event_id_as_routing_does(event_id: object) -> None:
    engine = _metasploit_like()
    event = make_event(channel="Security", event_id=4625, AuthenticationPackageName="ntlm")
    event["winlog"]["event_id"] = event_id
    assert engine.evaluate(event)


def test_a_negated_event_id_is_not_used_to_drop_a_rule() -> None:
    engine = Engine([make_rule(
        {"sel": {"TargetUserName": "admin"}, "not4625": {"EventID": 4625},
         "condition": "sel and not not4625"},
        logsource={"product": "windows", "service": "security"},
    )])
    assert engine.evaluate(make_event(channel="Security", event_id=4624, TargetUserName="Admin"))
    assert not engine.evaluate(
        make_event(channel="Security", event_id=4625, TargetUserName="Admin"))
