"""A parsed Sigma rule → a fast Python predicate over an ``EventView``.

pySigma already resolves the condition (``1 of selection_*``, ``all of them``, ``not``,
parentheses) into a tree of AND/OR/NOT over field = value leaves
(``rule.detection.parsed_condition``). This module turns that tree into our own small node
tree, merging the OR-ed values of one field into a single matcher (``Image|endswith: [...]``
becomes one ``str.endswith(tuple)`` call), then into nested closures.

The node tree also answers two questions the engine's index asks, both *necessary*
conditions so that indexing never loses a match:

- ``event_ids()``: the EventIDs the rule can match at all (routes service rules);
- ``anchors()``: (field, literal) pairs one of which must appear in any matching event
  (the substring prefilter).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from math import prod
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaLogSource, SigmaRule, SigmaRuleBase
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from processors.detection.model import RuleInfo
from processors.detection.modifiers import (
    BoolMatcher,
    CidrMatcher,
    CompareMatcher,
    ExistsCheck,
    FieldCheck,
    FieldRefCheck,
    NullCheck,
    NumberMatcher,
    RegexMatcher,
    StringMatcher,
    TimestampPartMatcher,
    UnsupportedValue,
    ValueMatcher,
    string_matchers,
)
from processors.detection.view import EventView
from runtime.errors import DataError

Evaluator = Callable[[EventView], bool]
Anchor = tuple[str | None, str]  # (Sigma field or None for keywords, lower-case literal)

#: Marks a numeric anchor: the field's value, read as a number, is this number. It cannot be
#: a literal (event text never holds NUL), and the prefilter looks such anchors up in a dict
#: instead of searching text (``LogonType: 10`` rules are otherwise evaluated on every 4624).
NUMBER_MARK = "\x00#"


def number_anchor(number: int | float) -> str:
    return NUMBER_MARK + repr(number)


def anchor_number(anchor: str) -> int | float:
    text = anchor[len(NUMBER_MARK) :]
    try:
        return int(text)
    except ValueError:
        return float(text)
Placeholders = Mapping[str, Sequence[str]]

EVENT_ID_FIELD = "EventID"


class UnsupportedRule(DataError, ValueError):
    """The rule cannot be evaluated faithfully; the engine skips it with this reason."""


class InvalidRule(UnsupportedRule):
    """The rule itself is wrong (e.g. its condition names an undefined selection)."""


# --- nodes -------------------------------------------------------------------------------------


class Node(ABC):
    @abstractmethod
    def evaluator(self) -> Evaluator: ...

    @abstractmethod
    def anchors(self) -> frozenset[Anchor] | None: ...

    def anchor_groups(self) -> list[frozenset[Anchor]]:
        """Necessary anchors in conjunctive form: a matching event holds one anchor of *each*
        group. Several groups let the prefilter drop a rule whose first literal is there but
        whose other selections cannot hold; ``[]`` means no literal is necessary."""
        anchors = self.anchors()
        return [anchors] if anchors else []

    def event_ids(self) -> frozenset[int] | None:
        return None

    def positive_leaves(self) -> Iterator[Leaf]:
        return iter(())

    def restrict(self, event_id: int) -> Node | None:
        """This node as it evaluates on events of ``event_id``: ``None`` when it cannot hold
        there, an OR without the alternatives that require another EventID (``selection1``
        for 4624, ``selection2`` for 4776: each EventID's bucket gets the literals of its own
        alternative as anchors). Negations are kept whole. Routing reads the EventID the way
        EventID leaves do (``event_key``), so the result is the node on those events."""
        return self

    def mentioned_event_ids(self) -> frozenset[int]:
        """The EventIDs ``restrict`` can tell apart (others all give the same node)."""
        return frozenset()


@dataclass(eq=False)
class Leaf(Node):
    """One field (``None``: keywords) tested by one matcher or whole-field check."""

    field: str | None
    test: ValueMatcher | FieldCheck

    def evaluator(self) -> Evaluator:
        field, test = self.field, self.test
        if isinstance(test, FieldCheck):
            check = test.check
            return lambda view: check(view, field)
        if isinstance(test, NumberMatcher):  # one parse per event and field, shared
            numbers = test.numbers
            return lambda view: not numbers.isdisjoint(view.numbers(field))
        match = test.test
        if test.view == "lower" and isinstance(test, StringMatcher) and test.single:
            return _lower_single(field, *test.single)
        if test.view == "lower":

            def lower(view: EventView) -> bool:
                values = view.lowered.get(field)  # most fields are read by several rules
                if values is None:
                    values = view.lower(field)
                for value in values:  # noqa: SIM110 - hot path, no generator
                    if match(value):
                        return True
                return False

            return lower
        if test.view == "text":

            def text(view: EventView) -> bool:
                for value in view.text(field):  # noqa: SIM110 - hot path, no generator
                    if match(value):
                        return True
                return False

            return text

        def raw(view: EventView) -> bool:
            for value in view.raw(field):  # noqa: SIM110 - hot path, no generator
                if value is not None and match(value):
                    return True
            return False

        return raw

    def anchors(self) -> frozenset[Anchor] | None:
        if (
            isinstance(self.test, NumberMatcher)
            and self.field not in (None, EVENT_ID_FIELD)  # EventID: routing already did it
            and self.test.numbers
        ):
            return frozenset((self.field, number_anchor(n)) for n in self.test.numbers)
        if isinstance(self.test, ValueMatcher):
            literals = self.test.anchors()
            if literals:
                return frozenset((self.field, literal) for literal in literals)
        return None

    def event_ids(self) -> frozenset[int] | None:
        if self.field != EVENT_ID_FIELD:
            return None
        if isinstance(self.test, NumberMatcher):
            return self.test.event_ids()
        if isinstance(self.test, StringMatcher) and not self.test.cased:
            patterns = self.test.patterns
            if all(p.kind == "equals" and str(p.payload).isdigit() for p in patterns):
                return frozenset(int(p.payload) for p in patterns)
        return None

    def positive_leaves(self) -> Iterator[Leaf]:
        yield self

    def restrict(self, event_id: int) -> Node | None:
        ids = self.event_ids()
        return None if ids is not None and event_id not in ids else self

    def mentioned_event_ids(self) -> frozenset[int]:
        return self.event_ids() or frozenset()

    def reporter(self) -> Callable[[EventView], Any]:
        """The event value(s) behind a match of this leaf, for the analyst (``None`` when the
        leaf does not hold: for a value test, no value passing it is the same thing), as a
        closure built once per rule: a match reports its fields
        on the hot path, with the same cached field values the evaluation used."""
        field, test = self.field, self.test
        if isinstance(test, FieldCheck):
            check = test.check

            def checked(view: EventView) -> Any:
                return _reported(view.raw(field)) if check(view, field) else None

            return checked
        match = test.test
        if test.view == "lower":

            def lowered(view: EventView) -> Any:
                seen = view.lowered.get(field)  # filled by the evaluation, usually
                if seen is None:
                    seen = view.lower(field)
                if len(seen) == 1:  # the usual single value: no tuple to build
                    return view.text(field)[0] if match(seen[0]) else None
                # Report the value as written, not lower-cased.
                return _reported(
                    tuple(
                        original
                        for value, original in zip(seen, view.text(field), strict=False)
                        if match(value)
                    )
                )

            return lowered
        if test.view == "text":
            return lambda view: _reported(tuple(v for v in view.text(field) if match(v)))
        return lambda view: _reported(
            tuple(v for v in view.raw(field) if v is not None and match(v))
        )


def _lower_single(field: str | None, operation: str, operand: Any) -> Evaluator:
    """A lower-case leaf decided by one ``str`` operation, inlined in the loop over the
    field's values (one Python call less per value than ``match(value)``)."""

    def suffix(view: EventView) -> bool:
        values = view.lowered.get(field)
        if values is None:
            values = view.lower(field)
        for value in values:  # noqa: SIM110 - hot path, no generator
            if value.endswith(operand):
                return True
        return False

    def prefix(view: EventView) -> bool:
        values = view.lowered.get(field)
        if values is None:
            values = view.lower(field)
        for value in values:  # noqa: SIM110 - hot path, no generator
            if value.startswith(operand):
                return True
        return False

    def contains(view: EventView) -> bool:
        values = view.lowered.get(field)
        if values is None:
            values = view.lower(field)
        for value in values:  # noqa: SIM110 - hot path, no generator
            if operand in value:
                return True
        return False

    def equals(view: EventView) -> bool:
        values = view.lowered.get(field)
        if values is None:
            values = view.lower(field)
        for value in values:  # noqa: SIM110 - hot path, no generator
            if value in operand:
                return True
        return False

    return {"suffix": suffix, "prefix": prefix, "contains": contains, "equals": equals}[
        operation
    ]


def _reported(values: tuple[Any, ...]) -> Any:
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


@dataclass(eq=False)
class And(Node):
    children: list[Node]

    def evaluator(self) -> Evaluator:
        tests = tuple(child.evaluator() for child in self.children)
        if len(tests) == 2:
            first, second = tests
            return lambda view: first(view) and second(view)

        def all_of(view: EventView) -> bool:
            for test in tests:  # noqa: SIM110 - hot path, no generator
                if not test(view):
                    return False
            return True

        return all_of

    def anchors(self) -> frozenset[Anchor] | None:
        """Any child's anchors are necessary; keep the most selective (longest shortest
        literal, then fewest alternatives)."""
        best: frozenset[Anchor] | None = None
        for child in self.children:
            anchors = child.anchors()
            if anchors and (best is None or _selectivity(anchors) > _selectivity(best)):
                best = anchors
        return best

    def anchor_groups(self) -> list[frozenset[Anchor]]:
        """Every child is necessary, so every child's groups are; most selective first."""
        groups = {group for child in self.children for group in child.anchor_groups()}
        ordered = sorted(groups, key=lambda group: sorted(map(repr, group)))  # deterministic
        return sorted(ordered, key=_selectivity, reverse=True)

    def event_ids(self) -> frozenset[int] | None:
        result: frozenset[int] | None = None
        for child in self.children:
            ids = child.event_ids()
            if ids is not None:
                result = ids if result is None else result & ids
        return result

    def positive_leaves(self) -> Iterator[Leaf]:
        for child in self.children:
            yield from child.positive_leaves()

    def restrict(self, event_id: int) -> Node | None:
        children: list[Node] = []
        for child in self.children:
            kept = child.restrict(event_id)
            if kept is None:
                return None
            children.append(kept)
        return self if children == self.children else And(children)

    def mentioned_event_ids(self) -> frozenset[int]:
        return frozenset().union(*(child.mentioned_event_ids() for child in self.children))


@dataclass(eq=False)
class Or(Node):
    children: list[Node]

    def evaluator(self) -> Evaluator:
        tests = tuple(child.evaluator() for child in self.children)
        if len(tests) == 2:
            first, second = tests
            return lambda view: first(view) or second(view)

        def any_of(view: EventView) -> bool:
            for test in tests:  # noqa: SIM110 - hot path, no generator
                if test(view):
                    return True
            return False

        return any_of

    def anchor_groups(self) -> list[frozenset[Anchor]]:
        """Distributed over the alternatives' groups, ``(A1 ∧ A2) ∨ B = (A1 ∨ B) ∧ (A2 ∨ B)``:
        one group per choice of a group in each alternative, so that ``1 of selection_*``
        keeps the literals of *every* selection's fields, not just the longest one's.
        Only the most selective groups of each alternative are kept when that grows large."""
        per_child = [child.anchor_groups() for child in self.children]
        if not all(per_child):
            return []  # an alternative without a necessary literal: none is necessary here
        while prod(map(len, per_child)) > _MAX_GROUPS:
            longest = max(per_child, key=len)
            del longest[-1]  # the least selective (groups come most selective first)
        groups = {frozenset().union(*choice) for choice in product(*per_child)}
        ordered = sorted(groups, key=lambda group: sorted(map(repr, group)))  # deterministic
        return sorted(ordered, key=_selectivity, reverse=True)

    def anchors(self) -> frozenset[Anchor] | None:
        """Necessary only if every alternative has anchors: then one of their union must hold."""
        union: set[Anchor] = set()
        for child in self.children:
            anchors = child.anchors()
            if not anchors:
                return None
            union |= anchors
        return frozenset(union)

    def event_ids(self) -> frozenset[int] | None:
        union: set[int] = set()
        for child in self.children:
            ids = child.event_ids()
            if ids is None:
                return None
            union |= ids
        return frozenset(union)

    def positive_leaves(self) -> Iterator[Leaf]:
        for child in self.children:
            yield from child.positive_leaves()

    def restrict(self, event_id: int) -> Node | None:
        kept = [node for node in (child.restrict(event_id) for child in self.children) if node]
        if not kept:
            return None
        if len(kept) == 1:
            return kept[0]
        return self if kept == self.children else Or(kept)

    def mentioned_event_ids(self) -> frozenset[int]:
        return frozenset().union(*(child.mentioned_event_ids() for child in self.children))


@dataclass(eq=False)
class Not(Node):
    child: Node

    def evaluator(self) -> Evaluator:
        test = self.child.evaluator()
        return lambda view: not test(view)

    def anchors(self) -> frozenset[Anchor] | None:
        return None


class Never(Node):
    """A detection emptied by pySigma (nothing left to match)."""

    def evaluator(self) -> Evaluator:
        return lambda view: False

    def anchors(self) -> frozenset[Anchor] | None:
        return None

    def restrict(self, event_id: int) -> Node | None:
        return None


#: At most this many anchor groups from one OR (each costs a set test per candidate).
_MAX_GROUPS = 16


def _selectivity(anchors: frozenset[Anchor]) -> tuple[int, int]:
    return min(len(literal) for _, literal in anchors), -len(anchors)


# --- values → leaves ------------------------------------------------------------------------


def _expand_placeholders(value: SigmaString, placeholders: Placeholders) -> list[SigmaString]:
    def values_of(placeholder: Placeholder) -> Iterator[str]:
        if placeholder.name not in placeholders:
            raise UnsupportedValue(
                f"expand: no values configured for placeholder %{placeholder.name}%"
            )
        yield from placeholders[placeholder.name]

    return value.replace_placeholders(values_of)


def _flatten(values: Sequence[SigmaType], placeholders: Placeholders) -> list[SigmaType]:
    """Expansions (``windash``, ``base64offset``) and placeholders are OR-ed alternatives."""
    flat: list[SigmaType] = []
    for value in values:
        if isinstance(value, SigmaExpansion):
            flat.extend(_flatten(value.values, placeholders))
        elif isinstance(value, SigmaString) and value.contains_placeholder():
            flat.extend(_expand_placeholders(value, placeholders))
        elif isinstance(value, SigmaRegularExpression) and value.contains_placeholder():
            raise UnsupportedValue("expand: placeholders inside regular expressions")
        else:
            flat.append(value)
    return flat


def leaves_for(
    field: str | None, values: Sequence[SigmaType], placeholders: Placeholders
) -> list[Leaf]:
    """The leaves testing ``field`` against OR-ed ``values``, merged by kind."""
    flat = _flatten(values, placeholders)
    strings = [v for v in flat if isinstance(v, SigmaString)]
    if field is None:
        strings = [_as_search_term(v) for v in strings]
    numbers = [
        v.number
        for v in flat
        if isinstance(v, SigmaNumber) and not isinstance(v, SigmaTimestampPart)
    ]
    networks = [v.network for v in flat if isinstance(v, SigmaCIDRExpression)]
    tests: list[ValueMatcher | FieldCheck] = list(string_matchers(strings))
    if numbers:
        tests.append(NumberMatcher(numbers))
    if networks:
        tests.append(CidrMatcher(networks))
    for value in flat:
        if isinstance(value, SigmaString | SigmaCIDRExpression):
            continue
        if isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
            continue
        tests.append(_single_test(field, value))
    return [Leaf(field, test) for test in tests]


def _as_search_term(value: SigmaString) -> SigmaString:
    """Unkeyed values are searched in the event's text, as backends run them (a full-text
    term): a keyword matches anywhere in a value, like ``contains``."""
    if not value.startswith(SpecialChars.WILDCARD_MULTI):
        value = SpecialChars.WILDCARD_MULTI + value
    if not value.endswith(SpecialChars.WILDCARD_MULTI):
        value = value + SpecialChars.WILDCARD_MULTI
    return value


def _single_test(field: str | None, value: SigmaType) -> ValueMatcher | FieldCheck:
    if isinstance(value, SigmaRegularExpression):
        return RegexMatcher(value)
    if isinstance(value, SigmaTimestampPart):
        return TimestampPartMatcher(value)
    if isinstance(value, SigmaBool):
        return BoolMatcher(value)
    if isinstance(value, SigmaCompareExpression):
        return CompareMatcher(value)
    if field is None and isinstance(value, SigmaNull | SigmaExists | SigmaFieldReference):
        raise UnsupportedValue(f"{type(value).__name__} needs a field")
    if isinstance(value, SigmaNull):
        return NullCheck()
    if isinstance(value, SigmaExists):
        return ExistsCheck(value.exists)
    if isinstance(value, SigmaFieldReference):
        return FieldRefCheck(value.field, value.starts_with, value.ends_with)
    raise UnsupportedValue(f"value type {type(value).__name__} ({value!r})")


# --- condition tree → nodes -----------------------------------------------------------------

_Leafish = ConditionFieldEqualsValueExpression | ConditionValueExpression


def _field_of(item: _Leafish) -> str | None:
    return item.field if isinstance(item, ConditionFieldEqualsValueExpression) else None


def _one(nodes: list[Node], kind: type[And] | type[Or]) -> Node:
    return nodes[0] if len(nodes) == 1 else kind(nodes)


def convert(condition: Any, placeholders: Placeholders) -> Node:
    """pySigma's postprocessed condition tree → our nodes."""
    if condition is None:
        return Never()
    if isinstance(condition, _Leafish):
        return _one(list(leaves_for(_field_of(condition), [condition.value], placeholders)), Or)
    if isinstance(condition, ConditionNOT):
        return Not(convert(condition.args[0], placeholders))
    if isinstance(condition, ConditionAND):
        children: list[Node] = []
        for arg in condition.args:
            node = convert(arg, placeholders)
            children.extend(node.children if isinstance(node, And) else [node])
        return _one(children, And)
    if isinstance(condition, ConditionOR):
        return _convert_or(condition, placeholders)
    raise UnsupportedRule(f"condition element {type(condition).__name__}")


def _convert_or(condition: ConditionOR, placeholders: Placeholders) -> Node:
    by_field: dict[str | None, list[SigmaType]] = {}
    children: list[Node] = []
    for arg in condition.args:
        if isinstance(arg, _Leafish):
            by_field.setdefault(_field_of(arg), []).append(arg.value)
            continue
        node = convert(arg, placeholders)
        children.extend(node.children if isinstance(node, Or) else [node])
    merged: list[Node] = []
    for field, values in by_field.items():
        merged.extend(leaves_for(field, values, placeholders))
    return _one(merged + children, Or)


# --- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A rule ready to run: its metadata, predicate and index hints."""

    info: RuleInfo
    logsource: SigmaLogSource
    root: Node
    matches: Evaluator
    anchors: frozenset[Anchor] | None
    event_ids: frozenset[int] | None
    anchor_groups: tuple[frozenset[Anchor], ...] = ()
    #: (Sigma field or "keywords", reporter) of the positive leaves, in rule order
    reporters: tuple[tuple[str, Callable[[EventView], Any]], ...] = ()
    #: the EventIDs whose anchors may differ (``Node.mentioned_event_ids``)
    mentioned_event_ids: frozenset[int] = frozenset()

    def anchor_groups_for(self, event_id: int) -> tuple[frozenset[Anchor], ...] | None:
        """The prefilter's anchor groups on events of ``event_id`` (``Node.restrict``);
        ``None`` when the rule cannot match those events."""
        if not self.mentioned_event_ids:
            return self.anchor_groups or ((self.anchors,) if self.anchors else ())
        restricted = self.root.restrict(event_id)
        if restricted is None:
            return None
        anchors = restricted.anchors()
        return tuple(restricted.anchor_groups()) or ((anchors,) if anchors else ())

    def matched_fields(self, view: EventView) -> dict[str, Any]:
        """The positive leaves that hold on this event: Sigma field → event value (the first
        leaf of a field that holds gives it)."""
        fields: dict[str, Any] = {}
        for name, report in self.reporters:
            if name not in fields:
                value = report(view)
                if value is not None:
                    fields[name] = value
        return fields


def rule_info(rule: SigmaRuleBase, path: str | None = None) -> RuleInfo:
    identifier = str(rule.id) if rule.id is not None else (rule.name or rule.title)
    return RuleInfo(
        id=identifier,
        title=rule.title,
        level=None if rule.level is None else rule.level.name.lower(),
        status=None if rule.status is None else rule.status.name.lower(),
        author=rule.author,
        tags=tuple(str(tag) for tag in rule.tags),
        path=path,
    )


def compile_rule(
    rule: SigmaRule, path: str | None = None, placeholders: Placeholders | None = None
) -> CompiledRule:
    """Compile one rule; ``UnsupportedRule`` says why it cannot run."""
    try:
        trees = [condition.parsed for condition in rule.detection.parsed_condition]
        nodes = [convert(tree, placeholders or {}) for tree in trees]
    except UnsupportedValue as error:
        raise UnsupportedRule(str(error)) from error
    except SigmaError as error:
        raise InvalidRule(f"condition: {error}") from error
    root = _one(nodes, Or)
    leaves = tuple(root.positive_leaves())
    return CompiledRule(
        info=rule_info(rule, path),
        logsource=rule.logsource,
        root=root,
        matches=root.evaluator(),
        anchors=root.anchors(),
        event_ids=root.event_ids(),
        anchor_groups=tuple(root.anchor_groups()),
        reporters=tuple((leaf.field or "keywords", leaf.reporter()) for leaf in leaves),
        mentioned_event_ids=root.mentioned_event_ids(),
    )
