"""Writes the hostile corpus of the agent's parsers (run it again after changing it).

``python -m tests.data.hostile.make_corpus`` from the project root. One folder per parser;
each holds the input file(s) and ``expected.json``: how many good records the file holds,
and how many bad ones, by the reason the agent must give. Good records are interleaved with
the bad ones, so the tests also show that what follows a bad record is still read.

Everything here once stopped or froze the agent, or left it without a trace (issue 13).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX = 64 * 1024  # the default max_record_bytes / max_frame

# --- auth.log (syslog lines without PRI, sshd/sudo/pam semantics) -------------------------
GOOD_AUTH = [
    b"Mar 10 11:00:00 bastion sshd[1]: Failed password for root from 198.51.100.7 port 4000",
    b"Mar 10 11:00:01 bastion sshd[1]: Accepted publickey for martin from 10.2.3.4 port 5000",
    b"Mar 10 11:00:02 bastion sudo[9]:   dupont : TTY=pts/0 ; PWD=/home/dupont ; USER=root ; "
    b"COMMAND=/usr/bin/systemctl restart dpi",
    # was catastrophic backtracking (8.8 s for 479 bytes): now a plain line
    b"Mar 10 11:00:03 bastion sshd[1]: pam_unix(sshd:auth): authentication failure;"
    + b" " * 2000 + b"ruser= rhost=10.9.9.9 user=bob",
    # was quadratic in the sudo pattern
    b"Mar 10 11:00:04 bastion sudo[9]:   u : PWD=" + b"x ; " * 4000,
    b"Mar 10 11:00:05 bastion app: invalid UTF-8 is replaced, not refused: \xff\xfe\xc3",
]
BAD_AUTH = [
    (b"no timestamp at all on this line", "bad_timestamp"),
    (b"Feb 30 11:00:00 bastion sshd[1]: a day no calendar has", "bad_timestamp"),
    # was OverflowError (year 1 moved to UTC), escaping the parser
    (b"0001-01-01T00:00:00+01:00 bastion sshd[1]: before the first UTC instant",
     "bad_timestamp"),
    (b"Mar 10 11:00:06 ", "missing_hostname"),
    (b"Mar 10 11:00:07 bastion sshd[1]: " + b"A" * (MAX + 10), "oversized"),
]

# --- CEF files ------------------------------------------------------------------------------
GOOD_CEF = [
    b"CEF:0|Fortinet|FortiGate|7.2|13|deny|7|src=10.1.2.3 spt=51000 dst=203.0.113.50 dpt=445 "
    b"act=blocked rt=1741604400000",
    b"CEF:0|Vendor|EDR|1|malware|Ransomware blocked|High|dhost=pc-urg-01 " + b"k=v " * 8000,
    b"CEF:0|Vendor|Proxy|1|url|blocked|3|msg=" + b"a\\=b " * 5000,
]
BAD_CEF = [
    # were OSError and ValueError, uncaught: one datagram killed the agent
    (b"CEF:0|Fortinet|FortiGate|7.2|13|deny|7|src=10.1.2.3 rt=99999999999999999999",
     "bad_timestamp"),
    (b"CEF:0|Fortinet|FortiGate|7.2|13|deny|7|src=10.1.2.3 rt=253402300800000",
     "bad_timestamp"),
    (b"this is not CEF", "not_cef"),
    (b"CEF:0|only|three", "bad_cef_header"),
    (b"CEF:0|a|b|c|d|e|5|msg=" + b"x" * (MAX + 10), "oversized"),
]

# --- JSON Lines (Winlogbeat and XML-JSON Windows records) ------------------------------------
_SYSTEM = {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
           "EventID": 4625, "Level": 0, "Channel": "Security", "Computer": "dc01.chu.local",
           "TimeCreated": {"#attributes": {"SystemTime": "2026-03-10T11:00:00.000000Z"}}}


def _xml_json(record_id: int) -> bytes:
    system = {**_SYSTEM, "EventRecordID": record_id}
    data = {"TargetUserName": "dupont", "IpAddress": "10.2.3.4", "LogonType": 3}
    return json.dumps({"Event": {"System": system, "EventData": data}}).encode()


def _winlogbeat(record_id: int) -> bytes:
    return json.dumps({"@timestamp": "2026-03-10T11:00:01.000Z", "winlog": {
        "channel": "Security", "event_id": "4624", "record_id": record_id,
        "computer_name": "dc01.chu.local", "provider_name": "Microsoft-Windows-Security-Auditing",
        "event_data": {"TargetUserName": "martin", "LogonType": "10"}}}).encode()


GOOD_JSON = [_xml_json(1), _winlogbeat(2), _xml_json(3), _winlogbeat(4), _xml_json(5)]
BAD_JSON = [
    (b"[" * 100_000 + b"]" * 100_000, "oversized"),
    (b"[" * 30_000 + b"]" * 30_000, "too_deep"),  # was RecursionError, uncaught
    (b'{"winlog": {"event_id": NaN}}', "non_finite_number"),  # was shipped as null
    (b'{"winlog": {"event_id": Infinity}}', "non_finite_number"),
    (b'{"winlog": {"event_id": 1e400}}', "non_finite_number"),
    (b'{"Event": "\xff\xfe not UTF-8"}', "invalid_utf8"),  # was UnicodeDecodeError
    (b'{"Event": ', "invalid_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'{"neither": "winlog nor Event"}', "not_windows_event"),
]

# --- syslog frames (UDP/TCP listeners): RFC 5424, RFC 3164, CEF over syslog ------------------
GOOD_SYSLOG = [
    b'<34>1 2026-03-10T11:59:58.123+01:00 fw01.chu.local sshd 4242 ID47 '
    b'[exampleSDID@32473 iut="3"] Failed password for invalid user admin from 203.0.113.9 '
    b'port 52200 ssh2',
    b"<86>Mar 10 11:58:01 srv-dpi-01 sudo[311]:   dupont : TTY=pts/0 ; PWD=/home/dupont ; "
    b"USER=root ; COMMAND=/usr/bin/systemctl restart dpi",
    # the 479-byte frame that froze the agent for 8.8 s (a newline inside a datagram)
    b"<38>Mar 10 11:58:02 bastion sshd[1]: pam_unix(sshd:auth): authentication failure;"
    + b" " * 400 + b"\nx",
    b"<134>Mar 10 11:58:03 edr01 CEF:0|Vendor|EDR|1|malware|Ransomware blocked|High|"
    b"dhost=pc-urg-01",
    b'<13>1 2026-03-10T11:00:00Z h a p m [id' + b' a="b"' * 5000 + b"] many parameters",
]
BAD_SYSLOG = [
    (b"<134>Mar 10 11:00:00 fw CEF:0|F|G|7|13|deny|7|rt=99999999999999999999",
     "bad_timestamp"),
    (b"<134>Mar 10 11:00:00 fw CEF:0|F|G|7|13|deny|7|rt=253402300800000", "bad_timestamp"),
    (b"no priority here", "missing_pri"),
    (b"<999>1 2026-03-10T11:00:00Z h a p m - x", "bad_pri"),
    (b"<13>1 0001-01-01T00:00:00+01:00 h a p m - before UTC began", "bad_timestamp"),
    (b'<13>1 2026-03-10T11:00:00Z h a p m [id' + b' a="b"' * 5000 + b" never closed",
     "bad_structured_data"),
    (b"<13>1 2026-03-10T11:00:00Z h a", "bad_rfc5424_header"),
]


def _write_lines(folder: str, name: str, fmt: str, good: list[bytes],
                 bad: list[tuple[bytes, str]]) -> None:
    """Good and bad records interleaved: good, bad, good, bad..., the rest at the end."""
    out = HERE / folder
    out.mkdir(exist_ok=True)
    records: list[bytes] = []
    for index in range(max(len(good), len(bad))):
        if index < len(good):
            records.append(good[index])
        if index < len(bad):
            records.append(bad[index][0])
    (out / name).write_bytes(b"\n".join(records) + b"\n")
    expected = {"file": name, "format": fmt, "good": len(good),
                "malformed": dict(Counter(reason for _, reason in bad))}
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


def _write_frames() -> None:
    """Syslog frames may hold newlines: one JSON object a line, the frame in base64."""
    out = HERE / "syslog"
    out.mkdir(exist_ok=True)
    lines = []
    for index in range(max(len(GOOD_SYSLOG), len(BAD_SYSLOG))):
        if index < len(GOOD_SYSLOG):
            lines.append({"frame_b64": base64.b64encode(GOOD_SYSLOG[index]).decode(),
                          "reason": None})
        if index < len(BAD_SYSLOG):
            frame, reason = BAD_SYSLOG[index]
            lines.append({"frame_b64": base64.b64encode(frame).decode(), "reason": reason})
    (out / "frames.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    expected = {"file": "frames.jsonl", "format": "syslog", "good": len(GOOD_SYSLOG),
                "malformed": dict(Counter(reason for _, reason in BAD_SYSLOG))}
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


def _write_evtx() -> None:
    """EVTX: a file cut after its first 5000 bytes (its header announces one 64 KiB chunk)
    and a file of garbage with an .evtx name. The good .evtx files the tests put around
    them are the SigmaHQ regression samples (not copied here)."""
    out = HERE / "evtx"
    out.mkdir(exist_ok=True)
    header = bytearray(4096)
    header[0:8] = b"ElfFile\x00"
    header[24:32] = (2).to_bytes(8, "little")  # next record id
    header[32:36] = (128).to_bytes(4, "little")  # header size
    header[36:38] = (2).to_bytes(2, "little")  # minor version
    header[38:40] = (3).to_bytes(2, "little")  # major version
    header[40:42] = (4096).to_bytes(2, "little")  # header block size
    header[42:44] = (1).to_bytes(2, "little")  # chunks
    chunk_start = b"ElfChnk\x00" + bytes(900)
    (out / "truncated.evtx").write_bytes(bytes(header) + chunk_start)
    (out / "garbage.evtx").write_bytes(bytes(range(256)) * 8)
    expected = {"files": ["truncated.evtx", "garbage.evtx"], "format": "evtx", "good": 0,
                "malformed": {"truncated_evtx": 1, "unreadable_file": 1}}
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


def main() -> None:
    _write_lines("authlog", "auth.log", "authlog", GOOD_AUTH, BAD_AUTH)
    _write_lines("cef", "firewall.cef", "cef", GOOD_CEF, BAD_CEF)
    _write_lines("json", "winlogbeat.jsonl", "json", GOOD_JSON, BAD_JSON)
    _write_frames()
    _write_evtx()


if __name__ == "__main__":
    main()
