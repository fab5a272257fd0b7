"""ArcSight Common Event Format (firewalls, EDR, proxies) → ECS.

``CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|key=value key=value...``
Header fields escape ``|`` and ``\\``; extension values escape ``=``, ``\\`` and newlines, and
may contain spaces (a value runs until the next `` key=``). Hand-written because the PyPI CEF
parsers are unmaintained and silently mangle escaped separators. A CEF record may arrive alone
(a file line) or as the message of a syslog frame.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from producers.agent.parse.common import Doc, clip, put
from producers.ecs_values import int_or_none, ip_or_none, port_or_none
from runtime.errors import DataError

# A value runs until the next unescaped " key=": the look-ahead's key is possessive, so each
# space costs at most the length of the word after it (linear over the line).
_NEXT_KEY = re.compile(r"(?<!\\) (?=[A-Za-z0-9_.\[\]-]++=)")
_VALUE_ESCAPE = re.compile(r"\\([=\\nr])")
#: Epoch milliseconds between 1970 and 9999: more digits than this is no time.
_MAX_EPOCH_MS = 253402300799999
_SEVERITY_WORDS = {"unknown": 0, "low": 3, "medium": 5, "high": 8, "very-high": 10,
                   "very high": 10}
_OUTCOMES = {"success": "success", "succeeded": "success", "allowed": "success",
             "failure": "failure", "failed": "failure", "blocked": "failure",
             "denied": "failure"}

# CEF extension key → ECS path (and a converter).
_MAP: dict[str, tuple[str, Any]] = {
    "src": ("source.ip", ip_or_none), "c6a2": ("source.ip", ip_or_none),
    "spt": ("source.port", port_or_none),
    "dst": ("destination.ip", ip_or_none), "c6a3": ("destination.ip", ip_or_none),
    "dpt": ("destination.port", port_or_none),
    "suser": ("source.user.name", str), "duser": ("destination.user.name", str),
    "shost": ("source.domain", str), "dhost": ("destination.domain", str),
    "dvchost": ("observer.name", str), "act": ("event.action", str),
    "proto": ("network.transport", lambda v: v.lower()), "app": ("network.protocol", str),
    "request": ("url.full", str), "msg": ("message", lambda v: clip(v, 8192)),
    "fname": ("file.name", str), "filePath": ("file.path", str),
    "fileHash": ("file.hash.sha256", lambda v: v.lower() if len(v) == 64 else None),
    "sproc": ("process.name", str), "dproc": ("process.name", str),
    "spid": ("process.pid", int_or_none), "dpid": ("process.pid", int_or_none),
}


class MalformedCef(DataError, ValueError):
    """A line that is not CEF; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _split_header(text: str) -> list[str]:
    fields: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == "|" and len(fields) < 7:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def _unescape_value(value: str) -> str:
    return _VALUE_ESCAPE.sub(lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), value)


def parse_extension(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in _NEXT_KEY.split(text.strip()):
        key, sep, value = part.partition("=")
        if sep and key:
            out[key] = _unescape_value(value.rstrip())
    return out


def parse_cef(text: str) -> tuple[list[str], dict[str, str]]:
    """(header fields [version, vendor, product, version, signature, name, severity], ext)."""
    start = text.find("CEF:")
    if start < 0:
        raise MalformedCef("not_cef", text[:60])
    fields = _split_header(text[start + 4:])
    if len(fields) < 7:
        raise MalformedCef("bad_cef_header", f"{len(fields)} header fields, 7 expected")
    header = fields[:7]
    extension = parse_extension(fields[7]) if len(fields) > 7 else {}
    return header, extension


def _severity(value: str) -> int | None:
    value = value.strip().lower()
    if value in _SEVERITY_WORDS:
        return _SEVERITY_WORDS[value]
    number = int_or_none(value)
    return number if number is not None and number <= 10 else None


def _timestamp(ext: dict[str, str]) -> str | None:
    """``rt``/``end``: epoch milliseconds or ``MMM dd yyyy HH:mm:ss`` (UTC assumed)."""
    for key in ("rt", "end", "start"):
        value = ext.get(key)
        if not value:
            continue
        if value.isascii() and value.isdigit():
            # Bounded before converting: rt=99999999999999999999 raised OSError and
            # rt=253402300800000 ValueError, which nothing caught (issue 13).
            if len(value) > 15 or int(value) > _MAX_EPOCH_MS:
                raise MalformedCef("bad_timestamp", f"{key}={value[:40]}: out of range")
            return datetime.fromtimestamp(int(value) / 1000, UTC).isoformat().replace(
                "+00:00", "Z")
        for fmt in ("%b %d %Y %H:%M:%S", "%b %d %Y %H:%M:%S.%f"):
            try:
                return datetime.strptime(value, fmt).replace(tzinfo=UTC).isoformat().replace(
                    "+00:00", "Z")
            except ValueError:
                continue
    return None


def cef_doc(text: str, event_id: str, received: datetime) -> Doc:
    """ECS document of one CEF record; raises ``MalformedCef``."""
    header, ext = parse_cef(text)
    _version, vendor, product, _dev_version, signature, name, severity = header
    doc: Doc = {
        "@timestamp": _timestamp(ext) or received.astimezone(UTC).isoformat().replace(
            "+00:00", "Z"),
        "event": {"id": event_id, "kind": "event", "module": "cef",
                  "code": clip(signature, 1024)},
        "message": clip(name, 8192),
    }
    put(doc, "event.severity", _severity(severity))
    put(doc, "event.dataset", clip(f"cef.{vendor}.{product}".lower().replace(" ", "_"), 1024))
    put(doc, "observer.vendor", clip(vendor, 1024))
    put(doc, "observer.product", clip(product, 1024))
    for key, value in ext.items():
        target = _MAP.get(key)
        if target and value:
            path, convert = target
            put(doc, path, convert(value))
    outcome = _OUTCOMES.get(ext.get("outcome", "").lower()) or _OUTCOMES.get(
        ext.get("act", "").lower())
    put(doc, "event.outcome", outcome)
    if "source" in doc or "destination" in doc:
        doc["event"]["category"] = ["network"]
    user = doc.get("source", {}).get("user", {}).get("name")
    put(doc, "user.name", user)
    return doc
