"""Filters at the source: Windows channels and event ids kept or dropped, counted, before
pseudonymisation; other sources untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from producers.agent.config import load_config
from producers.agent.filters import EventFilter, FilteredSource, filtered
from producers.agent.parse.common import Doc
from producers.agent.sources.base import Source


def win(channel: str, event_id: int) -> Doc:
    return {"event": {"code": str(event_id)}, "winlog": {"channel": channel,
                                                           "event_id": event_id}}


SYSLOG: Doc = {"event": {"code": "sshd"}, "message": "Failed password"}


class Listed(Source):
    def __init__(self, docs: list[Doc]) -> None:
        self.name = "dc"
        self.docs = docs
        self.polled = 0

    def poll(self, max_items: int) -> list[Doc]:
        out, self.docs = self.docs[:max_items], self.docs[max_items:]
        self.polled += len(out)
        return out

    def position(self) -> Any:
        return {"read": self.polled}


def config(tmp_path: Path, source: dict[str, Any]) -> Any:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "establishment": {"id": "750712184", "name": "CHU", "type": "university_hospital",
                          "region": "ile-de-france"},
        "agent_id": "chu-test-01", "key_path": "agent.key", "sources": [source]}))
    return load_config(path).sources[0]


def test_default_keeps_security_channels_only(tmp_path: Path) -> None:
    sc = config(tmp_path, {"type": "evtx", "name": "dc", "paths": ["*.evtx"]})
    docs = [win("Security", 4624), win("Application", 1000), win("DNS Server", 256),
            win("Microsoft-Windows-Sysmon/Operational", 1), win("security", 4625),
            win("Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", 21),
            SYSLOG]
    source = filtered(Listed(docs), sc)
    kept = source.poll(100)
    assert [d["winlog"]["event_id"] for d in kept if "winlog" in d] == [4624, 1, 4625, 21]
    assert SYSLOG in kept
    assert isinstance(source, FilteredSource) and source.filter.filtered == 2
    assert source.position() == {"read": 7}  # dropped records still advance the position


def test_event_ids_and_every_channel(tmp_path: Path) -> None:
    sc = config(tmp_path, {"type": "json", "name": "dc", "paths": ["*.json"],
                           "channels": ["*"], "include_event_ids": [4624, 4625, 5156],
                           "exclude_event_ids": [5156]})
    docs = [win("Application", 4624), win("Security", 4625), win("Security", 5156),
            win("Security", 4688)]
    kept = filtered(Listed(docs), sc).poll(10)
    assert [(d["winlog"]["channel"], d["winlog"]["event_id"]) for d in kept] == [
        ("Application", 4624), ("Security", 4625)]


def test_sources_without_windows_channels_are_not_wrapped(tmp_path: Path) -> None:
    sc = config(tmp_path, {"type": "authlog", "name": "auth", "path": "/var/log/auth.log"})
    inner = Listed([SYSLOG])
    assert filtered(inner, sc) is inner


def test_filter_runs_before_anything_else_sees_the_event() -> None:
    event_filter = EventFilter("dc", channels=["Security"], exclude_event_ids=[4634])
    assert event_filter.keep([win("Security", 4634), win("Security", 4624)]) == [
        win("Security", 4624)]
    assert event_filter.filtered == 1


@pytest.mark.parametrize("bad", [{"include_event_ids": ["x"]}, {"channels": "Security"}])
def test_bad_filter_configuration_is_refused(tmp_path: Path, bad: dict[str, Any]) -> None:
    from producers.agent.config import ConfigError

    with pytest.raises(ConfigError):
        config(tmp_path, {"type": "evtx", "name": "dc", "paths": ["*.evtx"], **bad})
