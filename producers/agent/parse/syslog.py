"""Syslog messages, RFC 5424 and RFC 3164 (BSD), → a ``SyslogMessage`` → wire document.

Hand-written: the maintained Python syslog parsers cover one RFC each (or only 5424) and none
handles the BSD format's missing year and time zone, nor reports *why* a frame is rejected,
which the agent must count and show. The grammar is small and fully covered by unit tests.

A frame without a ``<PRI>`` is what authlog files contain; ``parse_syslog(..., require_pri=
False)`` accepts it for them. Anything else that does not parse raises ``MalformedMessage``
with a short reason (the metric label).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from producers.agent.parse.common import Doc, clip, put
from producers.ecs_values import int_or_none
from runtime.errors import DataError

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    start=1)}

# Linear time whatever the frame: anchored patterns whose variable parts are possessive
# (``\S++``) or bounded, and structured data matched element by element with atomic groups
# (see :mod:`producers.agent.parse.authlog` for the rules; the growth test holds them).
_PRI = re.compile(rb"<(\d{1,3})>")
_RFC5424 = re.compile(
    r"1 (?P<ts>\S++) (?P<host>\S++) (?P<app>\S++) (?P<procid>\S++) (?P<msgid>\S++) "
    r"(?P<rest>.*)", re.S)
_BSD_TS = re.compile(r"(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) "
                     r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2}) ")
_ISO_TS = re.compile(r"(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d++)?"
                     r"(?:Z|[+-]\d{2}:\d{2})) ")
_TAG = re.compile(r"(?P<app>[^\s:\[]{1,48})(?:\[(?P<pid>[^\]\s]{1,32})\])?: ?")
_SD_ELEMENT = re.compile(
    r'\[(?P<id>[^\s\]=]++)(?P<params>(?> [^\s=\]]++="(?>\\.|[^"\\]++)*+")*+)\]', re.S)
_SD_PARAM = re.compile(r'([^\s=\]]++)="((?>\\.|[^"\\]++)*+)"', re.S)
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')


class MalformedMessage(DataError, ValueError):
    """A frame that is not a syslog message; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class SyslogMessage:
    timestamp: datetime
    message: str
    rfc: str  # "5424", "3164" or "none" (no PRI: plain log file line)
    facility: int | None = None
    severity: int | None = None
    hostname: str | None = None
    app: str | None = None
    procid: str | None = None
    msgid: str | None = None
    structured_data: dict[str, dict[str, str]] = field(default_factory=dict)


def _nil(value: str) -> str | None:
    return None if value == "-" else value


def _parse_sd(rest: str) -> tuple[dict[str, dict[str, str]], str]:
    if rest.startswith("-"):
        return {}, rest[2:] if rest.startswith("- ") else rest[1:]
    data: dict[str, dict[str, str]] = {}
    position = 0
    while position < len(rest) and rest[position] == "[":
        match = _SD_ELEMENT.match(rest, position)
        if not match:
            raise MalformedMessage("bad_structured_data", rest[position:position + 60])
        data[match["id"]] = {k: _SD_UNESCAPE.sub(r"\1", v)
                             for k, v in _SD_PARAM.findall(match["params"])}
        position = match.end()
    if not data:
        raise MalformedMessage("bad_structured_data", rest[:60])
    return data, rest[position + 1:] if rest[position:position + 1] == " " else rest[position:]


def _iso_utc(ts: str) -> datetime:
    """An RFC 3339 time with its zone, in UTC; ``bad_timestamp`` for anything else, including
    times a calendar has but UTC has not (``0001-01-01T00:00:00+01:00``)."""
    try:
        when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise MalformedMessage("bad_timestamp", f"{ts[:40]} has no time zone")
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise MalformedMessage("bad_timestamp", ts[:40]) from None


def _parse_5424(text: str, pri: int) -> SyslogMessage:
    match = _RFC5424.match(text)
    if not match:
        raise MalformedMessage("bad_rfc5424_header", text[:80])
    ts = match["ts"]
    if ts == "-":
        raise MalformedMessage("bad_timestamp", "NILVALUE timestamp")
    when = _iso_utc(ts)
    sd, message = _parse_sd(match["rest"])
    if message.startswith("\ufeff"):  # the BOM RFC 5424 puts before UTF-8 messages
        message = message[1:]
    return SyslogMessage(when, message, "5424", pri >> 3, pri & 7,
                         _nil(match["host"]), _nil(match["app"]), _nil(match["procid"]),
                         _nil(match["msgid"]), sd)


def _parse_bsd(text: str, pri: int | None, received: datetime, tz: tzinfo) -> SyslogMessage:
    iso_ts = _ISO_TS.match(text)
    if iso_ts:  # rsyslog's RFC3339 file format (Debian ≥ 12 auth.log)
        when = _iso_utc(iso_ts["ts"])
        rest = text[iso_ts.end():]
    else:
        match = _BSD_TS.match(text)
        if not match:
            raise MalformedMessage("bad_timestamp", text[:40])
        local_now = received.astimezone(tz)
        try:
            when = datetime(local_now.year, _MONTHS[match["mon"]], int(match["day"]),
                            int(match["h"]), int(match["m"]), int(match["s"]), tzinfo=tz)
        except (KeyError, ValueError):
            raise MalformedMessage("bad_timestamp", text[:20]) from None
        # No year in RFC 3164: a December message received in January is last year's.
        if (when - local_now).days > 31:
            when = when.replace(year=when.year - 1)
        when = when.astimezone(UTC)
        rest = text[match.end():]
    host, _, rest = rest.partition(" ")
    if not host:
        raise MalformedMessage("missing_hostname", text[:60])
    tag = None if rest.startswith("CEF:") else _TAG.match(rest)  # CEF has no tag
    app = pid = None
    if tag:
        app, pid = tag["app"], tag["pid"]
        rest = rest[tag.end():]
    return SyslogMessage(when, rest, "3164" if pri is not None else "none",
                         None if pri is None else pri >> 3, None if pri is None else pri & 7,
                         host, app, pid)


def parse_syslog(frame: bytes, received: datetime, tz: tzinfo = UTC, *,
                 require_pri: bool = True) -> SyslogMessage:
    """Parse one frame (already de-framed: no length prefix, no trailing newline)."""
    frame = frame.rstrip(b"\r\n\x00")
    if not frame:
        raise MalformedMessage("empty", "empty frame")
    pri: int | None = None
    match = _PRI.match(frame)
    if match:
        pri = int(match[1])
        if pri > 191:
            raise MalformedMessage("bad_pri", f"PRI {pri} > 191")
        frame = frame[match.end():]
    elif require_pri:
        raise MalformedMessage("missing_pri", frame[:40].decode("utf-8", "replace"))
    text = frame.decode("utf-8", "replace")
    if pri is not None and text.startswith("1 "):
        return _parse_5424(text, pri)
    return _parse_bsd(text, pri, received, tz)


def syslog_doc(msg: SyslogMessage, event_id: str, *, module: str = "syslog") -> Doc:
    """ECS document of a syslog message (authlog and CEF parsers refine it)."""
    doc: Doc = {
        "@timestamp": msg.timestamp.isoformat().replace("+00:00", "Z"),
        "event": {"id": event_id, "kind": "event", "module": module},
        "message": clip(msg.message, 8192),
    }
    put(doc, "event.dataset", f"{module}.{msg.app}" if msg.app else None)
    put(doc, "event.severity", msg.severity)
    put(doc, "event.code", msg.msgid)
    put(doc, "host.name", msg.hostname)
    put(doc, "process.name", msg.app)
    put(doc, "process.pid", int_or_none(msg.procid))
    return doc
