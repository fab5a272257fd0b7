"""Load Sigma rule files with pySigma, one file at a time, and account for every file.

Each file is parsed on its own so that one broken rule costs that rule only and is reported
with its path and reason (never a crash, never a silent skip). YAML is read with libyaml's
C loader when present — same documents as ``yaml.safe_load_all``, five times faster on the
3,000+ SigmaHQ rules — then handed to pySigma's ``SigmaCollection.from_dicts``.
Correlation rules are kept apart: counted and exposed, evaluated by the (stateful)
correlation stage, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule

from processors.detection.model import SkippedRule

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: The SigmaHQ folders shipped in ``../shared/data/sigma`` (relative to the repository root).
RULE_FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting")
#: Vigie's own rules (the correlation rules and the base rules they count), shipped as data.
VIGIE_RULES = Path(__file__).resolve().parent / "rules" / "vigie"


@dataclass(frozen=True, slots=True)
class LoadedRule:
    """A parsed detection rule and the file it came from."""

    rule: SigmaRule
    path: Path


@dataclass(frozen=True, slots=True)
class LoadedCorrelation:
    rule: SigmaCorrelationRule
    path: Path


@dataclass
class RuleSet:
    """Everything found under the given paths, sorted by outcome."""

    rules: list[LoadedRule] = field(default_factory=list)
    correlations: list[LoadedCorrelation] = field(default_factory=list)
    filters: list[SigmaFilter] = field(default_factory=list)
    skipped: list[SkippedRule] = field(default_factory=list)
    files: int = 0

    def extend(self, other: RuleSet) -> None:
        self.rules.extend(other.rules)
        self.correlations.extend(other.correlations)
        self.filters.extend(other.filters)
        self.skipped.extend(other.skipped)
        self.files += other.files


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_rule_dirs(root: Path | None = None) -> list[Path]:
    """The SigmaHQ rule folders under ``<repo>/../shared/data/sigma`` that exist, then
    Vigie's own rules (SigmaHQ ships no correlation rules)."""
    base = (root or repo_root()) / ".." / "shared" / "data" / "sigma"
    shared = [(base / name).resolve() for name in RULE_FOLDERS if (base / name).is_dir()]
    return shared + ([VIGIE_RULES] if VIGIE_RULES.is_dir() else [])


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _rule_id(rule: SigmaRule | SigmaCorrelationRule) -> str | None:
    return None if rule.id is None else str(rule.id)


def load_rule_file(path: str | Path) -> RuleSet:
    """Parse one YAML file (which may hold several documents) into a ``RuleSet``."""
    path = Path(path)
    result = RuleSet(files=1)
    try:
        documents = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader))
        collection = SigmaCollection.from_dicts(
            documents,
            collect_errors=True,
            source=SigmaRuleLocation(path),
            collect_filters=True,
            resolve_references=False,
        )
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        result.skipped.append(SkippedRule(str(path), f"unreadable: {_describe(error)}"))
        return result
    except (SigmaError, ValueError, TypeError, KeyError, AttributeError) as error:
        result.skipped.append(SkippedRule(str(path), f"parse error: {_describe(error)}"))
        return result
    for problem in collection.errors:  # not ``error``: the name the ``except`` above unbinds
        result.skipped.append(SkippedRule(str(path), f"parse error: {_describe(problem)}"))
    for rule in collection.rules:
        if rule.errors:
            reason = "; ".join(_describe(error) for error in rule.errors)
            result.skipped.append(
                SkippedRule(str(path), f"parse error: {reason}", _rule_id(rule), rule.title)
            )
        elif isinstance(rule, SigmaCorrelationRule):
            result.correlations.append(LoadedCorrelation(rule, path))
        else:
            result.rules.append(LoadedRule(rule, path))
    result.filters.extend(collection.filters)
    return result


def iter_rule_files(paths: Iterable[str | Path]) -> Iterable[Path]:
    """Files as given, directories recursed for ``*.yml``/``*.yaml``, in a stable order."""
    for entry in paths:
        entry = Path(entry)
        if entry.is_dir():
            yield from sorted(
                p for p in entry.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()
            )
        else:
            yield entry


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """Load every rule file under ``paths`` (files or directories)."""
    result = RuleSet()
    for path in iter_rule_files(paths):
        result.extend(load_rule_file(path))
    return result
