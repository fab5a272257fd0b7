"""Incident classification shared by detections, incidents and reports.

Categories follow the ENISA Reference Security Incident Taxonomy, plus the non-malicious
causes that the French health incident reports count (the observatory separates them because
43 % of declared incidents were malicious and the rest were failures and errors).
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """ENISA RSIT top-level classes, then the health reports' non-malicious causes."""

    MALICIOUS_CODE = "malicious_code"
    INTRUSION = "intrusion"
    INTRUSION_ATTEMPTS = "intrusion_attempts"
    INFORMATION_GATHERING = "information_gathering"
    AVAILABILITY = "availability"
    INFORMATION_CONTENT_SECURITY = "information_content_security"
    FRAUD = "fraud"
    ABUSIVE_CONTENT = "abusive_content"
    VULNERABLE = "vulnerable"
    OTHER = "other"
    HARDWARE_OR_SOFTWARE_FAILURE = "hardware_or_software_failure"
    HUMAN_ERROR = "human_error"
    SUPPLIER_FAILURE = "supplier_failure"
    ENVIRONMENT = "environment"


NON_MALICIOUS: frozenset[Category] = frozenset(
    {
        Category.HARDWARE_OR_SOFTWARE_FAILURE,
        Category.HUMAN_ERROR,
        Category.SUPPLIER_FAILURE,
        Category.ENVIRONMENT,
    }
)


class Origin(StrEnum):
    """Whether an incident was caused on purpose: the first split of the national report."""

    MALICIOUS = "malicious"
    NON_MALICIOUS = "non_malicious"
    UNKNOWN = "unknown"


def origin_of(category: Category) -> Origin:
    """Origin implied by a category; ``other`` stays unknown until a human qualifies it."""
    if category in NON_MALICIOUS:
        return Origin.NON_MALICIOUS
    if category is Category.OTHER:
        return Origin.UNKNOWN
    return Origin.MALICIOUS


class Severity(StrEnum):
    """Sigma's levels, reused for incidents so that one scale runs through the pipeline."""

    INFORMATIONAL = "informational"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order for comparisons: severity only ever goes up on new evidence."""
        return _RANK[self]


_RANK = {s: i for i, s in enumerate(Severity)}
