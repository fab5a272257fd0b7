"""SecurityEvent: one security-relevant fact seen in an establishment.

Field names are those of the Elastic Common Schema (ECS) wherever ECS has one, so that SOC
operators find ``source.ip`` and ``process.command_line`` where Kibana and their habits expect
them. Windows records keep their raw ``System`` and ``EventData`` fields under ``winlog.*``,
exactly as Winlogbeat does, because Sigma rules match on those names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from schemas._base import WireModel
from schemas.limits import (
    MAX_LIST_ITEMS,
    MAX_MAP_ENTRIES,
    MAX_MAP_VALUE_CHARS,
    CommandLine,
    Keyword,
    Name,
    Text,
)
from schemas.organization import Organization
from schemas.taxonomy import Category

Port = Annotated[int, Field(ge=0, le=65535)]
EventId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
Labels = Annotated[list[Keyword], Field(max_length=64)]

# ECS allowed values for event.category / event.outcome; others are refused so that
# dashboards built on these values stay truthful.
EcsCategory = Literal[
    "api",
    "authentication",
    "configuration",
    "database",
    "driver",
    "email",
    "file",
    "host",
    "iam",
    "intrusion_detection",
    "library",
    "malware",
    "network",
    "package",
    "process",
    "registry",
    "session",
    "threat",
    "vulnerability",
    "web",
]
Outcome = Literal["success", "failure", "unknown"]


# Free-form maps (``winlog.event_data``, ``user_data``): bounded in entries, key length, value
# size and nesting (4 levels below the map), with pydantic-core's own constraints rather than
# a Python validator, which walked every map of every event (a few µs per event).
_MapScalar = Annotated[str, StringConstraints(max_length=MAX_MAP_VALUE_CHARS)] | bool | int \
    | float | None


def _nested(inner: Any) -> Any:
    return (_MapScalar | Annotated[list[inner], Field(max_length=MAX_LIST_ITEMS)]
            | Annotated[dict[str, inner], Field(max_length=MAX_MAP_ENTRIES)])


MapValue = _nested(_nested(_nested(_nested(_MapScalar))))
"""A value of a free-form map: text, number, boolean, null, or lists and maps of them,
nested at most four levels."""
FreeMap = Annotated[dict[Annotated[str, StringConstraints(max_length=256)], MapValue],  # type: ignore[valid-type]
                    Field(max_length=MAX_MAP_ENTRIES)]

# IP addresses as the text the agent sent, checked by a pattern pydantic-core runs natively:
# IPv4 dotted quads (no leading zeros) and IPv6 in any of its textual forms, what Python's
# ``ipaddress`` and Elasticsearch's ``ip`` type accept. ``ipaddress`` objects cost a Python
# parse per address (and, for the union of v4 and v6, often two).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9a-fA-F]{1,4}"
_V6 = "|".join([
    rf"(?:{_H}:){{7}}{_H}",
    rf"(?:{_H}:){{1,7}}:",
    rf"(?:{_H}:){{1,6}}:{_H}",
    rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
    rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
    rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
    rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
    rf"{_H}:(?::{_H}){{1,6}}",
    rf":(?:(?::{_H}){{1,7}}|:)",
    rf"(?:{_H}:){{6}}{_V4}",
    rf"(?:{_H}:){{1,5}}:{_V4}",
    rf"(?:{_H}:){{1,4}}(?::{_H}){{1,1}}:{_V4}",
    rf"(?:{_H}:){{1,3}}(?::{_H}){{1,2}}:{_V4}",
    rf"(?:{_H}:){{1,2}}(?::{_H}){{1,3}}:{_V4}",
    rf"{_H}:(?::{_H}){{1,4}}:{_V4}",
    rf"::(?:{_H}:){{0,5}}{_V4}",
])
IP_PATTERN = rf"^(?:{_V4}|{_V6})$"
IP = Annotated[str, StringConstraints(max_length=45, pattern=IP_PATTERN)]


class EventInfo(WireModel):
    """ECS ``event.*``: what happened, as a category an analyst can filter on."""

    id: EventId
    kind: Literal["event", "alert", "state", "signal"] = "event"
    category: list[EcsCategory] = Field(default_factory=list, max_length=8)
    type: list[Keyword] = Field(default_factory=list, max_length=8)
    action: Keyword | None = None
    outcome: Outcome | None = None
    code: Keyword | None = None
    provider: Keyword | None = None
    module: Keyword | None = None
    dataset: Keyword | None = None
    severity: Annotated[int, Field(ge=0, le=1000)] | None = None
    created: AwareDatetime | None = None
    ingested: AwareDatetime | None = None
    original: CommandLine | None = None


class HostOs(WireModel):
    family: Keyword | None = None
    name: Keyword | None = None
    version: Keyword | None = None


class Host(WireModel):
    name: Name | None = None
    hostname: Name | None = None
    domain: Name | None = None
    ip: list[IP] = Field(default_factory=list, max_length=64)
    os: HostOs | None = None


class User(WireModel):
    name: Name | None = None
    domain: Name | None = None
    id: Keyword | None = None


class Endpoint(WireModel):
    """ECS ``source`` / ``destination``."""

    ip: IP | None = None
    port: Port | None = None
    domain: Keyword | None = None
    user: User | None = None


class Hashes(WireModel):
    md5: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")] | None = None
    sha1: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{40}$")] | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None


class ParentProcess(WireModel):
    pid: Annotated[int, Field(ge=0)] | None = None
    name: Name | None = None
    executable: CommandLine | None = None
    command_line: CommandLine | None = None


class Process(WireModel):
    pid: Annotated[int, Field(ge=0)] | None = None
    name: Name | None = None
    executable: CommandLine | None = None
    command_line: CommandLine | None = None
    hash: Hashes | None = None
    parent: ParentProcess | None = None


class File(WireModel):
    path: CommandLine | None = None
    name: Name | None = None
    extension: Keyword | None = None
    hash: Hashes | None = None


class Network(WireModel):
    protocol: Keyword | None = None
    transport: Keyword | None = None
    direction: Literal["inbound", "outbound", "internal", "external", "unknown"] | None = None


class Observer(WireModel):
    """The device or software that saw the event (firewall, EDR, domain controller)."""

    name: Name | None = None
    type: Keyword | None = None
    vendor: Keyword | None = None
    product: Keyword | None = None


class Agent(WireModel):
    """ECS ``agent``: the Vigie agent that shipped the event; signatures are checked against it."""

    id: Name
    name: Name | None = None
    type: Keyword = "vigie-agent"
    version: Keyword | None = None


class EmailAddresses(WireModel):
    address: list[Keyword] = Field(default_factory=list, max_length=100)


class Email(WireModel):
    from_: EmailAddresses | None = Field(default=None, alias="from")
    to: EmailAddresses | None = None
    subject: Text | None = None
    message_id: Keyword | None = None


class Url(WireModel):
    domain: Keyword | None = None
    full: CommandLine | None = None


class Winlog(WireModel):
    """Raw Windows fields, named as Winlogbeat names them; Sigma rules match on these."""

    channel: Name
    event_id: Annotated[int, Field(ge=0, le=65535)]
    provider_name: Name | None = None
    computer_name: Name | None = None
    record_id: Annotated[int, Field(ge=0)] | None = None
    task: Keyword | None = None
    opcode: Keyword | None = None
    level: Keyword | None = None
    event_data: FreeMap = Field(default_factory=dict)
    user_data: FreeMap | None = None


class Classification(WireModel):
    """What the processor concluded about the event (absent on ``events.raw``)."""

    category: Category | None = None
    agent_event_id: EventId | None = None
    """The ``event.id`` the agent sent; ``event.id`` itself is the national id
    (:func:`schemas.identity.national_event_id`), bound to the verified establishment."""
    detection_ids: list[EventId] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)


class SecurityEvent(WireModel):
    """One security event from one establishment, in ECS form."""

    timestamp: AwareDatetime = Field(alias="@timestamp")
    event: EventInfo
    organization: Organization
    agent: Agent | None = None
    message: Text | None = None
    host: Host | None = None
    user: User | None = None
    source: Endpoint | None = None
    destination: Endpoint | None = None
    process: Process | None = None
    file: File | None = None
    network: Network | None = None
    observer: Observer | None = None
    email: Email | None = None
    url: Url | None = None
    winlog: Winlog | None = None
    tags: Labels = Field(default_factory=list)
    vigie: Classification | None = None

    @property
    def id(self) -> str:
        """The deterministic ``event.id``: the agent's on ``events.raw``, the national one
        (the Elasticsearch ``_id``) once the processor has classified the event."""
        return self.event.id

    @property
    def when(self) -> datetime:
        return self.timestamp
