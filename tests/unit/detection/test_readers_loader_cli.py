"""Windows event readers, the rule loader's accounting, and the CLI functions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from processors.detection import Engine, load_rules
from producers.windows import from_xml_json, read_events
from producers.windows.readers import RecordError
from soc.hunt import check_rules, detect

REGRESSION = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "sigma" / "regression"
WMI_SAMPLE = REGRESSION / "rules/windows/builtin/wmi/win_wmi_activity_nteventlogfile_cleareventlog"

XML_JSON = {
    "Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
            "EventID": 1,
            "Level": 4,
            "Task": 1,
            "Opcode": 0,
            "TimeCreated": {"#attributes": {"SystemTime": "2025-10-24T23:41:48.497170Z"}},
            "EventRecordID": 42,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": "ws01",
        },
        "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami"},
    }
}

RULE = """
title: Whoami
id: 11111111-2222-3333-4444-555555555555
status: test
author: Tester
level: medium
tags: [attack.discovery, attack.t1033]
logsource: {product: windows, category: process_creation}
detection:
    sel:
        Image|endswith: '\\\\whoami.exe'
    condition: sel
"""


class TestNormalise:
    def test_xml_json_becomes_winlogbeat_shape(self) -> None:
        event = from_xml_json(XML_JSON)
        assert event["@timestamp"] == "2025-10-24T23:41:48.497170Z"
        assert event["winlog"] == {
            "channel": "Microsoft-Windows-Sysmon/Operational",
            "event_id": 1,
            "provider_name": "Microsoft-Windows-Sysmon",
            "computer_name": "ws01",
            "record_id": 42,
            "event_data": {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami"},
            "user_data": None,
            "task": "1",
            "opcode": "0",
            "level": "4",
        }

    def test_event_id_with_qualifiers_and_unnamed_data(self) -> None:
        record = json.loads(json.dumps(XML_JSON))
        record["Event"]["System"]["EventID"] = {"#attributes": {"Qualifiers": 0}, "#text": 400}
        record["Event"]["EventData"] = {"Data": {"#text": ["Available", "HostName=ConsoleHost"]}}
        event = from_xml_json(record)
        assert event["winlog"]["event_id"] == 400
        assert event["winlog"]["event_data"] == {
            "param1": "Available",
            "param2": "HostName=ConsoleHost",
        }

    @pytest.mark.skipif(not WMI_SAMPLE.is_dir(), reason="shared regression data not present")
    def test_user_data_is_flattened_with_its_element_name(self) -> None:
        ((_, event),) = list(read_events(next(WMI_SAMPLE.glob("*.evtx"))))
        user_data = event["winlog"]["user_data"]
        assert user_data["xml_name"] == "Operation_ClientFailure"
        assert "cleareventlog" in user_data["Operation"]
        assert event["winlog"]["event_data"] == {}


class TestReaders:
    def test_concatenated_json_objects(self, tmp_path: Path) -> None:
        path = tmp_path / "export.json"
        path.write_text(json.dumps(XML_JSON, indent=2) + "\n" + json.dumps(XML_JSON))
        assert [index for index, _ in read_events(path)] == [0, 1]

    def test_jsonl_and_winlogbeat_documents(self, tmp_path: Path) -> None:
        beat = {
            "@timestamp": "2025-01-01T00:00:00Z",
            "host": {"name": "ws01"},
            "winlog": {
                "channel": "Security",
                "event_id": "4688",
                "record_id": "7",
                "event_data": {"NewProcessName": "C:\\x.exe"},
            },
        }
        path = tmp_path / "events.jsonl"
        path.write_text(json.dumps(XML_JSON) + "\n\n" + json.dumps(beat) + "\n")
        events = list(read_events(path))
        assert [index for index, _ in events] == [0, 1]
        winlog = events[1][1]["winlog"]
        assert (winlog["event_id"], winlog["record_id"], winlog["channel"]) == (4688, 7, "Security")

    def test_bad_records_are_reported_not_skipped(self, tmp_path: Path) -> None:
        path = tmp_path / "events.jsonl"
        path.write_text(json.dumps(XML_JSON) + "\n{broken\n" + json.dumps({"x": 1}) + "\n")
        errors: list[tuple[int, str]] = []
        events = list(read_events(path, on_error=lambda i, r: errors.append((i, r))))
        assert [index for index, _ in events] == [0]
        assert [index for index, _ in errors] == [1, 2]
        with pytest.raises(RecordError, match="record 1"):
            list(read_events(path))

    @pytest.mark.skipif(not REGRESSION.is_dir(), reason="shared regression data not present")
    def test_evtx_and_json_renderings_agree(self) -> None:
        for sample in sorted(REGRESSION.rglob("*.evtx"))[:20]:
            from_evtx = [event for _, event in read_events(sample)]
            from_json = [event for _, event in read_events(sample.with_suffix(".json"))]
            assert from_evtx == from_json, sample


class TestLoader:
    def test_broken_rules_are_skipped_with_file_and_reason(self, tmp_path: Path) -> None:
        (tmp_path / "good.yml").write_text(RULE)
        (tmp_path / "bad_yaml.yml").write_text("title: [unclosed\n")
        (tmp_path / "bad_rule.yml").write_text(RULE.replace("condition: sel", "condition: nope"))
        (tmp_path / "bad_modifier.yml").write_text(RULE.replace("|endswith", "|sideways"))
        rule_set = load_rules([tmp_path])
        assert rule_set.files == 4
        engine = Engine.from_rule_set(rule_set)
        assert [r.info.title for r in engine.rules] == ["Whoami"]
        reasons = {Path(s.path).name: s.reason for s in engine.skipped}
        assert set(reasons) == {"bad_yaml.yml", "bad_rule.yml", "bad_modifier.yml"}
        assert reasons["bad_yaml.yml"].startswith("unreadable")
        assert "nope" in reasons["bad_rule.yml"]
        assert "sideways" in reasons["bad_modifier.yml"]

    def test_correlation_rules_are_counted_not_evaluated(self, tmp_path: Path) -> None:
        (tmp_path / "rules.yml").write_text(
            RULE.replace("title: Whoami", "title: Whoami\nname: whoami")
            + "---\n"
            + "title: Many whoami\nid: 99999999-2222-3333-4444-555555555555\n"
            "correlation:\n  type: event_count\n  rules: [whoami]\n  group-by: [Computer]\n"
            "  timespan: 5m\n  condition: {gte: 10}\nlevel: high\n"
        )
        rule_set = load_rules([tmp_path])
        assert len(rule_set.rules) == 1
        assert [c.rule.title for c in rule_set.correlations] == ["Many whoami"]
        assert Engine.from_rule_set(rule_set).report().correlations == 1


class TestCli:
    def test_check_rules_reports_loaded_and_skipped(self, tmp_path: Path) -> None:
        (tmp_path / "good.yml").write_text(RULE)
        (tmp_path / "linux.yml").write_text(RULE.replace("product: windows", "product: linux"))
        report = check_rules([tmp_path])
        assert (report["rules_loaded"], report["rules_skipped"]) == (1, 1)
        assert report["skipped_by_reason"] == {"unsupported log source": 1}
        assert report["skipped"][0]["file"].endswith("linux.yml")

    def test_detect_prints_one_json_line_per_detection(self, tmp_path: Path) -> None:
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "good.yml").write_text(RULE)
        events = tmp_path / "events.json"
        other = json.loads(json.dumps(XML_JSON))
        other["Event"]["EventData"]["Image"] = "C:\\notepad.exe"
        events.write_text(json.dumps(other) + json.dumps(XML_JSON))
        out = io.StringIO()
        assert detect([tmp_path / "rules"], [events], out) == 1
        (line,) = [json.loads(text) for text in out.getvalue().splitlines()]
        assert line["rule_id"] == "11111111-2222-3333-4444-555555555555"
        assert line["rule_title"] == "Whoami"
        assert line["level"] == "medium"
        assert line["tags"] == ["attack.discovery", "attack.t1033"]
        assert line["techniques"] == ["T1033"]
        assert (line["file"], line["record"], line["record_id"]) == (str(events), 1, 42)
        assert line["matched_fields"] == {"Image": "C:\\Windows\\System32\\whoami.exe"}
