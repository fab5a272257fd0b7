"""The incident scoring configuration (``scoring.yaml``), typed and validated at start-up.

A typo in a weight file must stop the processor with a clear message rather than score every
incident wrongly for weeks.
"""

from __future__ import annotations

import fnmatch
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from schemas.taxonomy import Category, Severity

DEFAULT_PATH = Path(__file__).with_name("scoring.yaml")
IMPACTS = ("care_safety", "confidentiality", "integrity", "availability")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Windows(_Strict):
    inactivity_minutes: float = Field(gt=0)
    resolve_after_minutes: float = Field(gt=0)


class AssetPattern(_Strict):
    pattern: str
    asset: str


class Campaigns(_Strict):
    min_establishments: int = Field(ge=2)
    window_minutes: float = Field(gt=0)
    indicators: list[str]
    rule_min_level: Severity


class ScoringConfig(_Strict):
    windows: Windows
    open_min_level: Severity
    level_points: dict[Severity, float]
    count_points_per_doubling: float
    count_points_max: float
    points_per_extra_host: float
    hosts_points_max: float
    impact_points: dict[str, float]
    severity_thresholds: dict[Severity, float]
    asset_points: dict[str, float]
    asset_patterns: list[AssetPattern]
    impacts_by_category: dict[Category, list[str]]
    care_safety_assets: list[str]
    health_data_assets: list[str]
    declarable_min_severity: Severity
    spreading_categories: list[Category]
    compatible_categories: list[tuple[Category, Category]]
    campaigns: Campaigns

    def asset_of(self, host: str) -> str:
        """Asset class of a host name (first matching pattern)."""
        lowered = host.lower()
        for rule in self.asset_patterns:
            if fnmatch.fnmatchcase(lowered, rule.pattern):
                return rule.asset
        return "workstation"

    @cached_property
    def _compatible(self) -> set[frozenset[Category]]:
        return {frozenset(pair) for pair in self.compatible_categories}

    def compatible(self, a: Category, b: Category) -> bool:
        return a == b or frozenset((a, b)) in self._compatible


def load_scoring(path: Path | None = None) -> ScoringConfig:
    """The scoring file at ``path`` (the ``scoring`` setting), or the one shipped with Vigie."""
    chosen = path or DEFAULT_PATH
    with chosen.open(encoding="utf-8") as handle:
        return ScoringConfig.model_validate(yaml.safe_load(handle))
