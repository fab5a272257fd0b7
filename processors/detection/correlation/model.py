"""Compiled Sigma correlation rules: what the stream evaluates, resolved once at start-up.

pySigma parses the correlation documents (``SigmaCorrelationRule``); this module turns them
into small frozen objects the evaluator can run without pySigma: rule references resolved to
rule ids (by ``id`` or ``name``), ``aliases`` resolved per referenced rule, the condition as
one comparison. A correlation that cannot be run is skipped with its file and reason, never a
crash, never a silent skip (like base rules in ``processors.detection.loader``).

Publication follows the specification's ``generate``: a rule referenced by correlations is
only published on its own when one of those correlations says ``generate: true``; otherwise it
only feeds the correlation (the spec's default, which keeps "one failed logon" out of the SOC's
way while "twenty in five minutes" reaches it).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionItem,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)

from processors.detection.loader import LoadedCorrelation, load_rules
from processors.detection.model import RuleInfo, SkippedRule

EVENT_COUNT = "event_count"
VALUE_COUNT = "value_count"
TEMPORAL = "temporal"
TEMPORAL_ORDERED = "temporal_ordered"
SUPPORTED_TYPES = (EVENT_COUNT, VALUE_COUNT, TEMPORAL, TEMPORAL_ORDERED)

#: Events a group remembers per correlation: bounds the state a Faust changelog carries.
MAX_ENTRIES = 1000

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
    "eq": operator.eq, "neq": operator.ne,
}
#: Conditions a growing count can only start to satisfy: they fire as soon as they hold.
#: The others ("fewer than N") can only be judged once the window is over.
MONOTONE = frozenset({"gt", "gte"})


@dataclass(frozen=True, slots=True)
class Condition:
    """``count <op> threshold``; ``expression`` is a temporal boolean expression instead."""

    op: str
    threshold: float
    field: str | None = None
    expression: Any = None  # pySigma parse tree of an extended (and/or/not) condition

    @property
    def monotone(self) -> bool:
        if self.expression is not None:  # and/or only grow true as rules are seen; not can't
            return not _has_not(self.expression)
        return self.op in MONOTONE

    def holds(self, count: float) -> bool:
        return _OPERATORS[self.op](count, self.threshold)

    def holds_for(self, seen: set[str]) -> bool:
        """An extended condition on the set of rule ids seen in the window."""
        return _evaluate_expression(self.expression, seen)


@dataclass(frozen=True, slots=True)
class CompiledCorrelation:
    """One correlation rule, ready for ``processors.detection.correlation.evaluate``."""

    info: RuleInfo
    type: str
    rules: tuple[str, ...]  # referenced rule ids, in the order the rule lists them
    group_by: tuple[str, ...]
    fields: Mapping[str, Mapping[str, str]]  # referenced rule id → group-by name → event field
    timespan_s: float
    condition: Condition
    published: bool  # whether its matches go to ``detections`` (see ``generate``)

    def group_values(self, rule_id: str, fields: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The group-by values of a signal of ``rule_id`` (None: a value is missing, so the
        event belongs to no group, as a SIEM's ``stats ... by`` drops null groups)."""
        names = self.fields.get(rule_id, {})
        values = []
        for group in self.group_by:
            value = fields.get(names.get(group, group))
            if value is None or value == "" or value == "-":
                return None
            values.append(value if isinstance(value, str) else str(value))
        return tuple(values)

    def needed_fields(self, rule_id: str) -> set[str]:
        """Event fields a signal of ``rule_id`` must carry for this correlation."""
        names = self.fields.get(rule_id, {})
        wanted = {names.get(group, group) for group in self.group_by}
        if self.condition.field:
            wanted.add(self.condition.field)
        return wanted


@dataclass
class CorrelationSet:
    """Every runnable correlation, indexed by the rule ids that feed it."""

    correlations: list[CompiledCorrelation] = field(default_factory=list)
    skipped: list[SkippedRule] = field(default_factory=list)
    #: rule id → correlations it feeds, in file order (a stable evaluation order).
    consumers: dict[str, list[CompiledCorrelation]] = field(default_factory=dict)
    #: rule ids (base or correlation) whose matches are not published on their own.
    hidden: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.correlations)

    def by_id(self, rule_id: str) -> CompiledCorrelation | None:
        return next((c for c in self.correlations if c.info.id == rule_id), None)

    def feeds(self, rule_id: str) -> bool:
        return rule_id in self.consumers

    def published(self, rule_id: str) -> bool:
        return rule_id not in self.hidden

    def signal_fields(self, rule_id: str) -> list[str]:
        """Event fields to copy into a signal of ``rule_id`` (sorted: deterministic output)."""
        wanted: set[str] = set()
        for correlation in self.consumers.get(rule_id, ()):
            wanted |= correlation.needed_fields(rule_id)
        return sorted(wanted)

    @classmethod
    def compile(cls, loaded: Sequence[LoadedCorrelation],
                names: Mapping[str, str] | None = None,
                base_ids: Iterable[str] = ()) -> CorrelationSet:
        """Resolve references (``names``: rule name → id; ``base_ids``: known rule ids)."""
        known = dict(names or {})
        for item in loaded:  # correlations may reference correlations, by id or by name
            if item.rule.name and item.rule.id is not None:
                known[item.rule.name] = str(item.rule.id)
        ids = set(base_ids) | set(known.values()) | {
            str(item.rule.id) for item in loaded if item.rule.id is not None}
        result = cls()
        generated: set[str] = set()
        referenced: set[str] = set()
        for item in loaded:
            try:
                compiled = _compile(item, known, ids)
            except _Unsupported as error:
                result.skipped.append(SkippedRule(
                    str(item.path), f"unsupported correlation: {error}",
                    None if item.rule.id is None else str(item.rule.id), item.rule.title))
                continue
            result.correlations.append(compiled)
            referenced.update(compiled.rules)
            if item.rule.generate:
                generated.update(compiled.rules)
            for rule_id in dict.fromkeys(compiled.rules):
                result.consumers.setdefault(rule_id, []).append(compiled)
        result.hidden = frozenset(referenced - generated)
        published = {c.info.id: c for c in result.correlations}
        for compiled in result.correlations:
            if compiled.info.id in result.hidden:
                published[compiled.info.id] = _replace_published(compiled, False)
        result.correlations = [published[c.info.id] for c in result.correlations]
        result.consumers = {
            rule_id: [published[c.info.id] for c in consumers]
            for rule_id, consumers in result.consumers.items()
        }
        return result

    @classmethod
    def from_engine(cls, engine: Any) -> CorrelationSet:
        """The correlations an ``Engine`` loaded, names resolved from the files beside them.

        The engine keeps rule ids, not Sigma ``name``s; names are read again from the
        folders holding correlation files (the spec's usage: a correlation and the rules it
        names ship together). References by id resolve anywhere.
        """
        loaded: list[LoadedCorrelation] = list(engine.correlations)
        folders = sorted({item.path.parent for item in loaded if item.path.exists()})
        names: dict[str, str] = {}
        for rule in load_rules(folders).rules:
            if rule.rule.name and rule.rule.id is not None:
                names[rule.rule.name] = str(rule.rule.id)
        return cls.compile(loaded, names, (r.info.id for r in engine.rules))


class _Unsupported(Exception):
    """Why one correlation rule cannot run. Private control flow, deliberately not a
    ``VigieError``: ``compile`` catches it at once and records the rule as skipped with this
    reason; it never reaches a caller, let alone the command line."""


def _replace_published(compiled: CompiledCorrelation, published: bool) -> CompiledCorrelation:
    from dataclasses import replace

    return replace(compiled, published=published)


def _resolve(reference: SigmaRuleReference | str, known: Mapping[str, str], ids: set[str]) -> str:
    name = reference.reference if isinstance(reference, SigmaRuleReference) else reference
    if name in known:
        return known[name]
    if name in ids:
        return name
    raise _Unsupported(f"referenced rule {name!r} not loaded")


def _compile(item: LoadedCorrelation, known: Mapping[str, str],
             ids: set[str]) -> CompiledCorrelation:
    from processors.detection.compiler import rule_info

    rule: SigmaCorrelationRule = item.rule
    kind = str(rule.type.name).lower() if isinstance(rule.type, SigmaCorrelationType) else str(
        rule.type)
    if kind not in SUPPORTED_TYPES:
        raise _Unsupported(f"type {kind} (Vigie runs {', '.join(SUPPORTED_TYPES)})")
    if rule.id is None:
        raise _Unsupported("no id: a correlation's detections need a stable rule id")
    references = list(rule.rules or [])
    if not references and isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        references = [SigmaRuleReference(r) for r in rule.condition.get_referenced_rules()]
    rules = tuple(_resolve(r, known, ids) for r in references)
    if not rules:
        raise _Unsupported("no referenced rules")
    if str(rule.id) in rules:
        raise _Unsupported("references itself")
    group_by = tuple(rule.group_by or ())
    fields: dict[str, dict[str, str]] = {}
    for alias in rule.aliases:
        for reference, event_field in alias.mapping.items():
            fields.setdefault(_resolve(reference, known, ids), {})[alias.alias] = event_field
    condition = _condition(rule, kind, len(set(rules)), known, ids)
    return CompiledCorrelation(
        info=rule_info(rule, str(item.path)),
        type=kind,
        rules=rules,
        group_by=group_by,
        fields=fields,
        timespan_s=float(rule.timespan.seconds),
        condition=condition,
        published=True,
    )


def _condition(rule: SigmaCorrelationRule, kind: str, distinct: int,
               known: Mapping[str, str], ids: set[str]) -> Condition:
    raw = rule.condition
    if isinstance(raw, SigmaExtendedCorrelationCondition):
        if kind != TEMPORAL:
            raise _Unsupported("extended conditions are run for temporal only")
        return Condition("gte", 1, expression=_resolved_tree(raw.parsed, known, ids))
    assert isinstance(raw, SigmaCorrelationCondition)
    op = raw.op.name.lower()
    if kind == VALUE_COUNT and not isinstance(raw.fieldref, str):
        raise _Unsupported("value_count needs one condition field")
    if kind in (TEMPORAL, TEMPORAL_ORDERED):
        default = raw.op is SigmaCorrelationConditionOperator.GTE and raw.count == 1
        if default:
            # The spec: "all events defined by the rules ... must occur"; pySigma fills in
            # gte 1 when the rule gives no condition, which would make temporal an OR.
            return Condition("gte", distinct)
        if kind == TEMPORAL_ORDERED and not (op in MONOTONE and raw.count >= distinct - (
                op == "gt")):
            raise _Unsupported("temporal_ordered runs with all its rules in order only")
    if kind in (EVENT_COUNT, VALUE_COUNT) and raw.count >= MAX_ENTRIES and op in MONOTONE:
        raise _Unsupported(f"threshold {raw.count} above the state bound {MAX_ENTRIES}")
    return Condition(op, raw.count, raw.fieldref if isinstance(raw.fieldref, str) else None)


def _resolved_tree(node: Any, known: Mapping[str, str], ids: set[str]) -> Any:
    """The extended condition with rule names replaced by ids: ("and"|"or"|"not", args) or id."""
    if isinstance(node, SigmaRuleReference):
        return _resolve(node, known, ids)
    if isinstance(node, CorrelationConditionItem):
        kind = ("and" if isinstance(node, CorrelationConditionAND) else
                "or" if isinstance(node, CorrelationConditionOR) else
                "not" if isinstance(node, CorrelationConditionNOT) else None)
        if kind is None:
            raise _Unsupported(f"condition operator {type(node).__name__}")
        return (kind, tuple(_resolved_tree(arg, known, ids) for arg in node.args))
    raise _Unsupported(f"condition item {node!r}")


def _has_not(node: Any) -> bool:
    if isinstance(node, str):
        return False
    return node[0] == "not" or any(_has_not(arg) for arg in node[1])


def _evaluate_expression(node: Any, seen: set[str]) -> bool:
    if isinstance(node, str):
        return node in seen
    kind, args = node
    if kind == "and":
        return all(_evaluate_expression(a, seen) for a in args)
    if kind == "or":
        return any(_evaluate_expression(a, seen) for a in args)
    return not _evaluate_expression(args[0], seen)

