"""Retention: delete whole monthly indices once their whole month is older than the limit.

Deleting an index is instant and frees its disk at once, where deleting documents by query
would rewrite segments for hours; that is why events, detections and alerts are written to
monthly indices. An index is judged by the month in its name (the month its documents are
dated, chosen by the sink from their own timestamp), never by its creation date, which a
replay or a restore changes. The current month is never deleted, whatever the limit.
Non-monthly families (incidents, dead letters) are not touched: an incident is followed for
as long as it matters, and a dead letter waits for a human.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from elasticsearch import Elasticsearch

from schemas import indices
from schemas.indices import IndexFamily

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+)\s*([dwh])\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_duration(text: str) -> timedelta:
    """``180d``, ``26w`` or ``48h`` as a timedelta (months are ambiguous: say days)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 180d, 26w or 48h)")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class MonthlyIndex:
    """A concrete monthly index and the month its name says it holds."""

    name: str
    family: str
    year: int
    month: int

    @property
    def starts(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def ends(self) -> datetime:
        """First instant after the month: every document in the index is dated before it."""
        if self.month == 12:
            return datetime(self.year + 1, 1, 1, tzinfo=UTC)
        return datetime(self.year, self.month + 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RetentionPlan:
    cutoff: datetime
    delete: list[MonthlyIndex]
    keep: list[MonthlyIndex]


def monthly_families() -> list[IndexFamily]:
    return [f for f in indices.ALL_FAMILIES if f.monthly]


def parse_index(name: str, family: IndexFamily) -> MonthlyIndex | None:
    """The month of ``name`` if it is one of ``family``'s monthly indices, else None."""
    match = re.fullmatch(re.escape(family.alias) + r"-(\d{4})\.(\d{2})", name)
    if not match:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        return None
    return MonthlyIndex(name, family.alias, year, month)


def list_monthly(es: Elasticsearch, families: list[IndexFamily]) -> list[MonthlyIndex]:
    """Concrete monthly indices of ``families`` (aliases and stray names are ignored)."""
    found: list[MonthlyIndex] = []
    for family in families:
        names = es.indices.get(index=family.pattern, expand_wildcards="open,closed",
                               allow_no_indices=True, ignore_unavailable=True, features="aliases")
        for name in names:
            parsed = parse_index(name, family)
            if parsed:
                found.append(parsed)
    return sorted(found, key=lambda i: (i.family, i.year, i.month))


def plan(candidates: list[MonthlyIndex], older_than: timedelta,
         now: datetime | None = None) -> RetentionPlan:
    """Which indices hold only documents older than ``now - older_than`` (pure: testable)."""
    now = now or datetime.now(UTC)
    cutoff = now - older_than
    current = (now.year, now.month)
    delete, keep = [], []
    for index in candidates:
        if index.ends <= cutoff and (index.year, index.month) < current:
            delete.append(index)
        else:
            keep.append(index)
    return RetentionPlan(cutoff, delete, keep)


def apply_retention(es: Elasticsearch, older_than: timedelta, *, dry_run: bool = False,
                    now: datetime | None = None,
                    families: list[IndexFamily] | None = None) -> RetentionPlan:
    """Plan, and unless ``dry_run`` delete, one index per request (named, never a wildcard)."""
    result = plan(list_monthly(es, families or monthly_families()), older_than, now)
    if dry_run:
        return result
    for index in result.delete:
        es.indices.delete(index=index.name, ignore_unavailable=True)
        log.info("retention: deleted %s (month ended %s, cutoff %s)", index.name,
                 index.ends.date(), result.cutoff.date())
    return result
