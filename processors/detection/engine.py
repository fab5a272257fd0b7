"""The detection engine: every loaded Sigma rule, evaluated on each event as it streams.

An event must not cost thousands of rule checks. Two indexes make that so:

1. **Routing** — rules are indexed by the (channel, EventID) their log source and detection
   allow (``logsource.event_slots`` + ``Node.event_ids``); an event only meets its bucket's rules.
2. **Literal prefilter** — in a bucket, each rule has *anchor groups*: sets of (field,
   literal) pairs, one of each set being in any matching event (one set per AND-ed
   selection that has literals; an OR of selections gives the product of theirs). One
   Aho-Corasick automaton per field finds every literal present in a single pass over the
   value; only rules with a literal of every group present are evaluated. Rules without
   anchors (pure regex, fieldref, negations) are always evaluated.

Both indexes only use necessary conditions, so they change the cost, never the result.
Field values are resolved and lower-cased once per event (``EventView``), shared by all rules.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any

import ahocorasick
from sigma.filters import SigmaFilter
from sigma.rule import SigmaRule

from processors.detection.compiler import (
    NUMBER_MARK,
    Anchor,
    CompiledRule,
    InvalidRule,
    Placeholders,
    UnsupportedRule,
    anchor_number,
    compile_rule,
)
from processors.detection.fieldmap import DEFAULT_FIELDMAP, FieldMap
from processors.detection.loader import (
    LoadedCorrelation,
    LoadedRule,
    RuleSet,
    default_rule_dirs,
    load_rules,
)
from processors.detection.logsource import EventSlot, UnsupportedLogSource, event_key, event_slots
from processors.detection.model import Match, SkippedRule
from processors.detection.view import EventView

log = logging.getLogger(__name__)

#: (channel, EventID) pairs whose bucket is remembered; past it, lookups recompute the key's
#: rule list (a set union) and still share the compiled bucket.
MAX_REMEMBERED_KEYS = 50_000


#: Prefilter answers remembered (``_Memo``): at most this many, field values at most
#: ``MEMO_MAX_LENGTH`` characters long (some 20 MB at worst, the keys of the candidate tables
#: being sets of anchor numbers). Past the count, the memo restarts empty: a stream's working
#: set of values is learnt again in a few events.
MEMO_ENTRIES = 8_192
MEMO_MAX_LENGTH = 512

_second = itemgetter(1)
_Table = dict[str, frozenset[int]]
_NONE: frozenset[int] = frozenset()


class _Memo:
    """The anchor numbers an automaton finds in a field value, remembered by value.

    Windows events repeat their field values (``Image``, ``ParentImage``, ``User``,
    ``IntegrityLevel``, ``Hashes``, the command lines of services): the same value scanned
    by the same automaton always gives the same numbers, so the scan is skipped. One table
    per automaton (an automaton belongs to one bucket and one field), and per way of reading
    the value: raw (a string straight from event_data, lower-cased only to be scanned) or
    already lower-cased (the resolver's values). Each bucket also remembers its candidate
    rules by the set of anchors present (``_Bucket.candidates``). Every answer is a pure
    function of its key within its table. All tables share one budget of entries; past it,
    they all restart empty.
    """

    __slots__ = ("count", "limit", "tables")

    def __init__(self, limit: int = MEMO_ENTRIES) -> None:
        self.tables: list[dict[Any, Any]] = []
        self.limit = limit
        self.count = 0

    def table(self) -> dict[Any, Any]:
        table: dict[Any, Any] = {}
        self.tables.append(table)
        return table

    def remember(self, table: dict[Any, Any], key: Any, found: Any) -> None:
        """Keep ``found`` as ``table``'s answer for ``key``, within the budget (field values
        longer than ``MEMO_MAX_LENGTH`` are not kept)."""
        if self.limit <= 0 or (type(key) is str and len(key) > MEMO_MAX_LENGTH):
            return
        if self.count >= self.limit:
            for each in self.tables:
                each.clear()
            self.count = 0
        table[key] = found
        self.count += 1


class _Bucket:
    """The rules one (channel, EventID) can trigger, with their literal prefilter.

    Each distinct (field, literal) anchor of the bucket gets a number; one Aho-Corasick
    automaton per field finds, in a single C-level pass over the lower-cased value, every
    anchor literal present (overlapping ones included), its answer remembered by value
    (``_Memo``). A rule is a candidate when its most selective anchor group has a literal
    present *and* each of its other groups too (the groups are necessary conditions of the
    rule's AND-ed selections).
    """

    def __init__(
        self, rules: Sequence[CompiledRule], fieldmap: FieldMap, memo: _Memo, event_id: int
    ) -> None:
        self.rules = rules
        self.memo = memo
        self.always: list[int] = []
        numbers: dict[Anchor, int] = {}
        # anchor number → positions of the rules whose first group holds it
        self.triggers: dict[int, list[int]] = defaultdict(list)
        # rule position → its other groups, as sets of anchor numbers
        self.rest: dict[int, tuple[frozenset[int], ...]] = {}
        for position, rule in enumerate(rules):
            groups = rule.anchor_groups_for(event_id)
            if groups is None:  # its detection requires other EventIDs: never a candidate
                continue
            if not groups:
                self.always.append(position)
                continue
            numbered = [
                frozenset(numbers.setdefault(anchor, len(numbers)) for anchor in group)
                for group in groups
            ]
            for number in numbered[0]:
                self.triggers[number].append(position)
            if len(numbered) > 1:
                self.rest[position] = tuple(numbered[1:])
        self.triggers = dict(self.triggers)  # plain dict: ``in`` must not insert
        self.rest_keys = frozenset(self.rest)
        by_field: dict[str | None, list[tuple[str, int]]] = defaultdict(list)
        # field → its value as a number → anchor numbers (``LogonType: 10``)
        self.numeric: dict[str, dict[int | float, list[int]]] = {}
        for (field_name, literal), number in numbers.items():
            if literal.startswith(NUMBER_MARK) and field_name is not None:
                table = self.numeric.setdefault(field_name, {})
                table.setdefault(anchor_number(literal), []).append(number)
            else:
                by_field[field_name].append((literal, number))
        self.keywords: Any = None  # the unkeyed literals' automaton
        # Fields read first from event_data: field → (automaton, memo of raw values, memo of
        # lower-cased ones)
        self.data: dict[str, tuple[Any, _Table, _Table]] = {}
        self.others: list[tuple[str, Any, _Table]] = []  # the other fields, lower-cased memo
        for field_name, literals in by_field.items():
            automaton = ahocorasick.Automaton()
            for literal, number in literals:
                # The same literal may anchor nothing else in this field: one number per key.
                automaton.add_word(literal, number)
            automaton.make_automaton()
            if field_name is None:
                self.keywords = automaton
            elif fieldmap.is_data_name(field_name):
                self.data[field_name] = (automaton, memo.table(), memo.table())
            else:
                self.others.append((field_name, automaton, memo.table()))
        self.data_names = frozenset(self.data)
        self.chosen: dict[frozenset[int], tuple[int, ...]] = memo.table()
        # Data names with somewhere else to look when absent from event_data (audit alias,
        # ECS): Image, CommandLine... The data-only ones are then absent (without user_data).
        self.elsewhere = tuple(name for name in self.data if not fieldmap.is_data_only(name))

    def _values(self, view: EventView, field_name: str, automaton: Any, table: _Table
                ) -> frozenset[int]:
        """The general case: the field's values through the view (resolver, lists...)."""
        values = view.lower(field_name)
        if not values:
            return _NONE
        # Several values (lists) are searched as one string: a literal spanning two values
        # only adds a candidate, it never loses one.
        value = values[0] if len(values) == 1 else "\x00".join(values)
        found = table.get(value)
        if found is None:
            found = frozenset(map(_second, automaton.iter(value)))
            self.memo.remember(table, value, found)
        return found

    def present(self, view: EventView) -> frozenset[int]:
        """Numbers of the anchors whose literal occurs in its field's lower-cased values."""
        parts: list[Iterable[int]] = []
        add = parts.append
        fields = self.data
        data = view.event_data
        if data is None:
            for name, (automaton, _, lowered) in fields.items():
                add(self._values(view, name, automaton, lowered))
        else:
            # A string in event_data is the field's value (``FieldMap.is_data_name``): it is
            # the memo key as read, lower-cased only when it must be scanned.
            remember = self.memo.remember if self.memo.limit > 0 else None
            cache = view.lowered
            for name in self.data_names & data.keys():
                automaton, raw, lowered = fields[name]
                value = data[name]
                if type(value) is str:
                    hit = raw.get(value)
                    if hit is None:
                        text = value.lower()
                        cache[name] = (text,)  # what ``view.lower`` gives; rules read it
                        hit = frozenset(map(_second, automaton.iter(text)))
                        if remember is not None:
                            remember(raw, value, hit)
                    if hit:
                        add(hit)
                else:
                    add(self._values(view, name, automaton, lowered))
            for name in self.elsewhere:
                if name not in data:
                    automaton, _, lowered = fields[name]
                    add(self._values(view, name, automaton, lowered))
            if view.has_user_data:  # data-only names absent from event_data may be there
                for name, (automaton, _, lowered) in fields.items():
                    if name not in data and name not in self.elsewhere:
                        add(self._values(view, name, automaton, lowered))
        for numeric_field, table in self.numeric.items():
            for reading in view.numbers(numeric_field):
                add(table.get(reading, ()))
        for field_name, automaton, lowered in self.others:
            add(self._values(view, field_name, automaton, lowered))
        if self.keywords is not None:
            # Never remembered: the keyword text holds per-event values (GUIDs, times).
            add(map(_second, self.keywords.iter(view.keyword_text())))
        return frozenset(chain.from_iterable(parts))

    def candidates(self, view: EventView) -> tuple[int, ...]:
        """Positions of the rules worth evaluating on this event, in rule order: a pure
        function of the anchors present, remembered by them (events of one kind meet the
        same few literals, the memo's budget bounds the rest)."""
        present = self.present(view)
        chosen = self.chosen.get(present)
        if chosen is None:
            chosen = self._choose(present)
            if self.memo.limit > 0:
                self.memo.remember(self.chosen, present, chosen)
        return chosen

    def _choose(self, present: frozenset[int]) -> tuple[int, ...]:
        hit = set(chain.from_iterable(map(self.triggers.get, present, repeat(()))))
        if hit:
            rest = self.rest
            for position in hit & self.rest_keys:
                for group in rest[position]:
                    if present.isdisjoint(group):
                        hit.discard(position)
                        break
        hit.update(self.always)
        return tuple(sorted(hit))


@dataclass
class EngineReport:
    """How the rule set loaded: what runs, what does not and why."""

    files: int
    rules_loaded: int
    correlations: int
    skipped: list[SkippedRule] = field(default_factory=list)

    @property
    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(s.category for s in self.skipped).most_common())

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "rules_loaded": self.rules_loaded,
            "rules_skipped": len(self.skipped),
            "correlations": self.correlations,
            "skipped_by_reason": self.skipped_by_reason,
            "skipped": [
                {"file": s.path, "rule_id": s.rule_id, "title": s.title, "reason": s.reason}
                for s in self.skipped
            ],
        }


class Engine:
    """Compile rules once; ``evaluate(event)`` returns the rules the event triggers."""

    def __init__(
        self,
        rules: Iterable[LoadedRule | SigmaRule],
        *,
        fieldmap: FieldMap | None = None,
        placeholders: Placeholders | None = None,
        filters: Sequence[SigmaFilter] = (),
        correlations: Sequence[LoadedCorrelation] = (),
        skipped: Sequence[SkippedRule] = (),
        files: int = 0,
        memo_entries: int = MEMO_ENTRIES,
    ) -> None:
        self.fieldmap = fieldmap or DEFAULT_FIELDMAP
        self.correlations = list(correlations)
        self.skipped: list[SkippedRule] = list(skipped)
        self.files = files
        self.rules: list[CompiledRule] = []
        self.errors: Counter[str] = Counter()  # rule id → evaluation errors (never raised)
        self._by_key: dict[tuple[str, int], list[int]] = defaultdict(list)
        self._by_channel: dict[str, list[int]] = defaultdict(list)
        self._anywhere: list[int] = []
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        # One bucket per distinct rule list: a channel's rules (or the rules that apply to
        # every event) are compiled once, however many EventIDs arrive on it. Keys are
        # remembered up to a bound, so junk EventIDs or channels cannot grow memory.
        self._by_rules: dict[tuple[tuple[int, ...], int | None], _Bucket] = {}
        self._mentioned: dict[tuple[int, ...], frozenset[int]] = {}  # rule list → EventIDs
        self._memo = _Memo(memo_entries)  # 0: nothing remembered (the bench's cold figure)
        self._empty = _Bucket((), self.fieldmap, self._memo, 0)
        for item in rules:
            loaded = item if isinstance(item, LoadedRule) else LoadedRule(item, Path("<memory>"))
            self._add(loaded, placeholders or {}, filters)
        for key in list(self._by_key):  # built now: no latency spike on a stream's first events
            self._bucket(key)

    @classmethod
    def from_rule_set(cls, rule_set: RuleSet, **options: Any) -> Engine:
        return cls(
            rule_set.rules,
            filters=rule_set.filters,
            correlations=rule_set.correlations,
            skipped=rule_set.skipped,
            files=rule_set.files,
            **options,
        )

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path] | None = None, **options: Any) -> Engine:
        """Load and compile every rule under ``paths`` (default: the shared SigmaHQ folders)."""
        return cls.from_rule_set(
            load_rules(default_rule_dirs() if paths is None else paths), **options
        )

    # --- building -------------------------------------------------------------------------

    def _add(
        self, loaded: LoadedRule, placeholders: Placeholders, filters: Sequence[SigmaFilter]
    ) -> None:
        rule, path = loaded.rule, str(loaded.path)
        rule_id = None if rule.id is None else str(rule.id)

        def skip(reason: str) -> None:
            self.skipped.append(SkippedRule(path, reason, rule_id, rule.title))

        try:
            routes = event_slots(rule.logsource)
        except UnsupportedLogSource as error:
            skip(f"unsupported log source: {error}")
            return
        for sigma_filter in filters:
            # pySigma annotates the union of the rule kinds it takes, not that it returns the
            # kind it was given (a SigmaRule here): its annotation is too wide.
            rule = sigma_filter.apply_on_rule(rule)  # type: ignore[assignment]
        try:
            compiled = compile_rule(rule, path, placeholders)
        except InvalidRule as error:
            skip(f"parse error: {error}")
            return
        except UnsupportedRule as error:
            skip(f"unsupported detection: {error}")
            return
        keys = self._keys(routes, compiled.event_ids)
        if not keys:
            skip(
                "never matches: detection requires EventID "
                f"{sorted(compiled.event_ids or [])}, not recorded by its log source"
            )
            return
        position = len(self.rules)
        self.rules.append(compiled)
        for key in keys:
            if key.channel is None:
                self._anywhere.append(position)
            elif key.event_id is None:
                self._by_channel[key.channel].append(position)
            else:
                self._by_key[(key.channel, key.event_id)].append(position)

    @staticmethod
    def _keys(routes: frozenset[EventSlot], event_ids: frozenset[int] | None) -> set[EventSlot]:
        """Routes narrowed by the EventIDs the detection itself requires."""
        if event_ids is None:
            return set(routes)
        keys: set[EventSlot] = set()
        for each in routes:
            if each.channel is None:
                keys.add(each)
            elif each.event_id is None:
                keys.update(EventSlot(each.channel, event_id) for event_id in event_ids)
            elif each.event_id in event_ids:
                keys.add(each)
        return keys

    def _bucket(self, key: tuple[str, int]) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            positions = tuple(sorted(
                {*self._by_key.get(key, ()), *self._by_channel.get(key[0], ()), *self._anywhere}
            ))
            if not positions:  # unknown events share one empty bucket, never cached per key
                return self._empty
            rules = [self.rules[p] for p in positions]
            # Rules whose OR-ed selections require different EventIDs get each EventID's
            # anchors (``CompiledRule.anchor_groups_for``); EventIDs no rule names share one.
            mentioned = self._mentioned.get(positions)
            if mentioned is None:
                mentioned = frozenset().union(*(r.mentioned_event_ids for r in rules))
                self._mentioned[positions] = mentioned
            shared = (positions, key[1] if key[1] in mentioned else None)
            bucket = self._by_rules.get(shared)
            if bucket is None:
                bucket = _Bucket(rules, self.fieldmap, self._memo, key[1])
                self._by_rules[shared] = bucket
            if len(self._buckets) < MAX_REMEMBERED_KEYS:
                self._buckets[key] = bucket
        return bucket

    # --- evaluating -----------------------------------------------------------------------

    def candidates(self, event: Mapping[str, Any]) -> list[CompiledRule]:
        """The rules the indexes let through for this event (for tests and benchmarks)."""
        key = event_key(event)
        if key is None:
            return []
        bucket = self._bucket(key)
        view = EventView(event, self.fieldmap)
        return [bucket.rules[p] for p in bucket.candidates(view)]

    def evaluate(self, event: Mapping[str, Any]) -> list[Match]:
        """The rules ``event`` (normalised, Winlogbeat-shaped) triggers, in rule order."""
        key = event_key(event)
        if key is None:
            return []
        bucket = self._bucket(key)
        rules = bucket.rules
        if not rules:
            return []
        view = EventView(event, self.fieldmap)
        matches: list[Match] = []
        for position in bucket.candidates(view):
            rule = rules[position]
            try:
                if rule.matches(view):
                    matches.append(Match(rule.info, rule.matched_fields(view)))
            except Exception:  # one faulty rule must not stop the stream
                self.errors[rule.info.id] += 1
                log.exception("rule %s failed on an event", rule.info.id)
        return matches

    # --- reporting ------------------------------------------------------------------------

    def report(self) -> EngineReport:
        return EngineReport(
            files=self.files,
            rules_loaded=len(self.rules),
            correlations=len(self.correlations),
            skipped=list(self.skipped),
        )
