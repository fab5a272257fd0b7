"""Detection: one Sigma rule matching one event."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, Field

from schemas._base import WireModel
from schemas.event import EventId, FreeMap
from schemas.limits import Keyword, Name, Text
from schemas.organization import Organization
from schemas.taxonomy import Category, Origin, Severity


class RuleRef(WireModel):
    """The rule that matched. ``author`` is kept: the Detection Rule License requires it."""

    id: Name
    title: Text
    level: Severity
    status: Keyword | None = None
    author: Text | None = None
    tags: list[Keyword] = Field(default_factory=list, max_length=64)


class Threat(WireModel):
    """ATT&CK tactics and techniques, parsed from the rule's ``attack.*`` tags."""

    tactics: list[Keyword] = Field(default_factory=list, max_length=32)
    techniques: list[Annotated[str, Field(pattern=r"^T\d{4}(\.\d{3})?$")]] = Field(
        default_factory=list, max_length=64
    )


class Detection(WireModel):
    """A rule match: the unit the correlation stage turns into incidents."""

    id: EventId
    timestamp: AwareDatetime = Field(alias="@timestamp")
    rule: RuleRef
    threat: Threat = Field(default_factory=Threat)
    category: Category
    origin: Origin
    event_id: EventId
    organization: Organization
    host_name: Name | None = None
    user_name: Name | None = None
    matched: FreeMap = Field(default_factory=dict)
    """Field name → value that made the rule match, for the analyst's first look."""
