"""SIGHUP swaps in a freshly compiled rule set; a broken one leaves the current rules."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from processors.classify import SigmaClassifier
from processors.detection.engine import Engine
from processors.reload import install_rule_reload

RULE = """
title: Test reload rule
id: {id}
status: test
level: high
logsource: {{product: windows, category: process_creation}}
detection:
  selection: {{CommandLine|contains: '{needle}'}}
  condition: selection
"""


def _event(command_line: str) -> dict:
    return {"@timestamp": "2026-01-01T00:00:00Z",
            "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": 1,
                       "event_data": {"CommandLine": command_line, "Image": "C:\\\\x.exe"}}}


def _wait_for(predicate, timeout: float = 30) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sighup_reloads_rules(tmp_path: Path) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(RULE.format(id="11111111-1111-1111-1111-111111111111", needle="alpha"))
    classifier = SigmaClassifier(Engine.from_paths([tmp_path]))
    old = classifier.engine
    assert classifier.engine.evaluate(_event("run alpha"))
    install_rule_reload(classifier, [tmp_path])
    try:
        rule.write_text(RULE.format(id="22222222-2222-2222-2222-222222222222", needle="beta"))
        os.kill(os.getpid(), signal.SIGHUP)
        assert _wait_for(lambda: classifier.engine is not old)
        assert classifier.engine.evaluate(_event("run beta"))
        assert not classifier.engine.evaluate(_event("run alpha"))

        current = classifier.engine
        rule.write_text("title: [unclosed")  # a broken rule is skipped, not fatal
        os.kill(os.getpid(), signal.SIGHUP)
        assert _wait_for(lambda: classifier.engine is not current)
        assert classifier.engine.report().skipped
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
