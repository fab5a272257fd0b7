"""The engine's own result types: what a rule is (for a SOC analyst) and what matched.

Kept free of pySigma and of the wire schemas: the processor turns a ``Match`` into the
shared ``schemas.detection.Detection`` (adding the establishment, event id, category).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_TECHNIQUE = re.compile(r"^t\d{4}(\.\d{3})?$")
# ATT&CK tags that are neither tactics nor techniques: groups, software, campaigns, mitigations...
_OTHER_ATTACK_ID = re.compile(r"^[gsmc]\d{4}$|^ta\d{4}$|^ds\d{4}$")


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A rule's identity and metadata. ``author`` is kept: the Detection Rule License asks it."""

    id: str
    title: str
    level: str | None = None
    status: str | None = None
    author: str | None = None
    tags: tuple[str, ...] = ()
    path: str | None = None
    # Read from the tags once per rule, not once per detection.
    _tactics: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _techniques: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tactics", tuple(attack_tactics(self.tags)))
        object.__setattr__(self, "_techniques", tuple(attack_techniques(self.tags)))

    @property
    def tactics(self) -> list[str]:
        """ATT&CK tactics from ``attack.<tactic>`` tags, hyphenated as ATT&CK spells them
        (older rules write ``attack.defense_evasion``)."""
        return list(self._tactics)

    @property
    def techniques(self) -> list[str]:
        """ATT&CK technique ids (``T1059``, ``T1059.001``) from ``attack.t*`` tags."""
        return list(self._techniques)


def _attack_names(tags: Iterable[str]) -> Iterable[str]:
    for tag in tags:
        namespace, _, name = tag.partition(".")
        if namespace.lower() == "attack" and name:
            yield name.lower()


def attack_tactics(tags: Iterable[str]) -> list[str]:
    tactics: list[str] = []
    for name in _attack_names(tags):
        if _TECHNIQUE.match(name) or _OTHER_ATTACK_ID.match(name):
            continue
        tactic = name.replace("_", "-")
        if tactic not in tactics:
            tactics.append(tactic)
    return tactics


def attack_techniques(tags: Iterable[str]) -> list[str]:
    techniques: list[str] = []
    for name in _attack_names(tags):
        if _TECHNIQUE.match(name):
            technique = name.upper()
            if technique not in techniques:
                techniques.append(technique)
    return techniques


@dataclass(frozen=True, slots=True)
class Match:
    """One rule matching one event, with the event fields that made it match
    (Sigma field name → event value), for the analyst's first look."""

    rule: RuleInfo
    matched_fields: dict[str, Any] = field(default_factory=dict)

    @property
    def rule_id(self) -> str:
        return self.rule.id

    @property
    def title(self) -> str:
        return self.rule.title

    @property
    def level(self) -> str | None:
        return self.rule.level

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the CLI prints it, the processor maps it to ``Detection``)."""
        return {
            "rule_id": self.rule.id,
            "rule_title": self.rule.title,
            "level": self.rule.level,
            "status": self.rule.status,
            "author": self.rule.author,
            "tags": list(self.rule.tags),
            "tactics": self.rule.tactics,
            "techniques": self.rule.techniques,
            "rule_path": self.rule.path,
            "matched_fields": self.matched_fields,
        }


@dataclass(frozen=True, slots=True)
class SkippedRule:
    """A rule file (or one rule of it) the engine does not run, and why."""

    path: str
    reason: str
    rule_id: str | None = None
    title: str | None = None

    @property
    def category(self) -> str:
        """The reason without its specifics, to count skips by kind."""
        return self.reason.split(":", 1)[0]
