"""Syslog (RFC 3164/5424), auth.log and CEF parsing to SecurityEvent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producers.agent.parse.cef import MalformedCef, cef_doc, parse_cef
from producers.agent.parse.syslog import MalformedMessage, parse_syslog
from producers.agent.pipeline import Finisher
from producers.agent.sources.authlog import authlog_line
from producers.agent.sources.base import Context
from producers.agent.sources.syslog import message_doc
from schemas.event import SecurityEvent

RECEIVED = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
EID = "0" * 32


def event(finisher: Finisher, doc: dict) -> SecurityEvent:
    return SecurityEvent.model_validate_json(finisher.value(doc)[1])


def test_rfc5424_with_structured_data(ctx: Context, finisher: Finisher) -> None:
    frame = (b'<34>1 2025-03-10T11:59:58.123+01:00 fw01.chu.local sshd 4242 ID47 '
             b'[exampleSDID@32473 iut="3" eventSource="App\\"lication"] '
             b'\xef\xbb\xbfFailed password for invalid user admin from 203.0.113.9 port 52200 ssh2')
    msg = parse_syslog(frame, RECEIVED)
    assert (msg.rfc, msg.facility, msg.severity) == ("5424", 4, 2)
    assert msg.structured_data["exampleSDID@32473"]["eventSource"] == 'App"lication'
    assert msg.timestamp == datetime(2025, 3, 10, 10, 59, 58, 123000, tzinfo=UTC)
    ev = event(finisher, message_doc(ctx, frame, RECEIVED, EID))
    assert ev.host and ev.host.name == "fw01.chu.local"
    assert ev.event.category == ["authentication"] and ev.event.outcome == "failure"
    assert ev.user and ev.user.name == "admin"
    assert ev.source and str(ev.source.ip) == "203.0.113.9" and ev.source.port == 52200
    assert ev.process and ev.process.pid == 4242


def test_rfc5424_nil_values(ctx: Context) -> None:
    msg = parse_syslog(b"<165>1 2025-03-10T11:00:00Z - - - - - hello", RECEIVED)
    assert msg.hostname is None and msg.app is None and msg.message == "hello"


def test_rfc3164(ctx: Context, finisher: Finisher) -> None:
    frame = (b"<86>Mar 10 11:58:01 srv-dpi-01 sudo[311]:   dupont : TTY=pts/0 ; "
             b"PWD=/home/dupont ; USER=root ; COMMAND=/usr/bin/systemctl restart dpi")
    msg = parse_syslog(frame, RECEIVED)
    assert (msg.rfc, msg.hostname, msg.app, msg.procid) == ("3164", "srv-dpi-01", "sudo", "311")
    assert msg.timestamp == datetime(2025, 3, 10, 11, 58, 1, tzinfo=UTC)
    ev = event(finisher, message_doc(ctx, frame, RECEIVED, EID))
    assert ev.event.action == "sudo" and ev.user and ev.user.name == "dupont"
    assert ev.process and ev.process.command_line == "/usr/bin/systemctl restart dpi"


def test_rfc3164_december_message_received_in_january() -> None:
    msg = parse_syslog(b"<13>Dec 31 23:59:59 h app: x", datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC))
    assert msg.timestamp.year == 2025


@pytest.mark.parametrize(("frame", "reason"), [
    (b"", "empty"),
    (b"no priority here", "missing_pri"),
    (b"<999>1 2025-03-10T11:00:00Z h a p m - x", "bad_pri"),
    (b"<13>1 yesterday h a p m - x", "bad_timestamp"),
    (b"<13>1 2025-03-10T11:00:00Z h a", "bad_rfc5424_header"),
    (b"<13>1 2025-03-10T11:00:00Z h a p m [broken x", "bad_structured_data"),
    (b"<13>Foo 10 11:00:00 h app: x", "bad_timestamp"),
])
def test_malformed_frames_have_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as exc:
        parse_syslog(frame, RECEIVED)
    assert exc.value.reason == reason


@pytest.mark.parametrize(("line", "outcome", "user", "ip"), [
    (b"Mar 10 11:00:00 bastion sshd[1]: Failed password for root from 198.51.100.7 port 4000",
     "failure", "root", "198.51.100.7"),
    (b"Mar 10 11:00:00 bastion sshd[1]: Accepted publickey for martin from 10.2.3.4 port 5000"
     b" ssh2: ED25519 SHA256:x",
     "success", "martin", "10.2.3.4"),
    (b"2025-03-10T11:00:00.123456+01:00 bastion sshd[1]: Invalid user oracle from 192.0.2.1"
     b" port 22",
     "failure", "oracle", "192.0.2.1"),
])
def test_authlog_sshd(line: bytes, outcome: str, user: str, ip: str, ctx: Context,
                      finisher: Finisher) -> None:
    ev = event(finisher, authlog_line(ctx, line, EID, RECEIVED))
    assert ev.event.category == ["authentication"] and ev.event.outcome == outcome
    assert ev.user and ev.user.name == user
    assert ev.source and str(ev.source.ip) == ip


def test_authlog_other_lines_still_shipped(ctx: Context, finisher: Finisher) -> None:
    ev = event(finisher, authlog_line(ctx, b"Mar 10 11:00:00 h CRON[5]: pam_unix(cron:session): "
                                           b"session opened for user root", EID, RECEIVED))
    assert ev.message and "session opened" in ev.message and ev.event.category == []


def test_cef_firewall(finisher: Finisher) -> None:
    line = ("CEF:0|Fortinet|FortiGate|7.2|13|deny traffic \\| policy 7|7|src=10.1.2.3 spt=51000 "
            "dst=203.0.113.50 dpt=445 proto=TCP act=blocked suser=CHU\\\\dupont "
            "msg=blocked SMB to internet rt=1741604400000")
    ev = event(finisher, cef_doc(line, EID, RECEIVED))
    assert ev.observer and ev.observer.vendor == "Fortinet"
    assert ev.message == "blocked SMB to internet"
    assert ev.source and str(ev.source.ip) == "10.1.2.3" and ev.source.port == 51000
    assert ev.destination and ev.destination.port == 445
    assert ev.event.outcome == "failure" and ev.event.severity == 7
    assert ev.network and ev.network.transport == "tcp"
    assert ev.user and ev.user.name == "CHU\\dupont"
    assert ev.timestamp == datetime(2025, 3, 10, 11, 0, tzinfo=UTC)
    header, _ = parse_cef(line)
    assert header[5] == "deny traffic | policy 7"


def test_cef_in_syslog_and_malformed(ctx: Context, finisher: Finisher) -> None:
    frame = (b"<134>Mar 10 11:00:00 edr01 CEF:0|Vendor|EDR|1|malware|Ransomware blocked|High|"
             b"dhost=pc-urg-01")
    ev = event(finisher, message_doc(ctx, frame, RECEIVED, EID))
    assert ev.event.severity == 8 and ev.host and ev.host.name == "edr01"
    with pytest.raises(MalformedCef):
        cef_doc("CEF:0|only|three", EID, RECEIVED)
