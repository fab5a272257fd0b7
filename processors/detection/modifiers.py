"""What each Sigma value modifier means at match time: one small matcher per meaning.

pySigma applies the modifiers when it parses a rule and leaves typed values behind; each
type below is matched by one class:

==========================================  ==========================================
modifier(s) in the rule                     value left by pySigma → matcher here
==========================================  ==========================================
(none), ``contains``, ``startswith``,       ``SigmaString`` with ``*``/``?`` wildcards
``endswith``, ``base64``, ``wide``/         → ``StringMatcher`` (case-insensitive)
``utf16``/``utf16le``/``utf16be``
``cased``                                   ``SigmaCasedString`` → ``StringMatcher(cased)``
``windash``, ``base64offset``               ``SigmaExpansion`` → its values, OR-ed
``expand``                                  placeholders → values given to the engine
``re`` (+ ``i`` ``m`` ``s``)                ``SigmaRegularExpression`` → ``RegexMatcher``
``cidr``                                    ``SigmaCIDRExpression`` → ``CidrMatcher``
``lt`` ``lte`` ``gt`` ``gte``               ``SigmaCompareExpression`` → ``CompareMatcher``
``minute`` ``hour`` ``day`` ``week``...     ``SigmaTimestampPart`` → ``TimestampPartMatcher``
``exists``                                  ``SigmaExists`` → ``ExistsCheck``
``fieldref``                                ``SigmaFieldReference`` → ``FieldRefCheck``
(null value)                                ``SigmaNull`` → ``NullCheck``
numbers, booleans                           ``NumberMatcher``, ``BoolMatcher``
``all``, ``neq``                            structure, not values: see ``compiler``
==========================================  ==========================================

A ``ValueMatcher`` tests one value of a field (a field holding a list matches when any value
does); a ``FieldCheck`` needs the whole event (absence, another field). Matchers also tell the
engine's prefilter which literal text a matching value must contain (``anchors``).
"""

from __future__ import annotations

import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import TYPE_CHECKING, Any, Literal

from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.policy import default_policy
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCompareExpression,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from processors.detection.view import EventView, as_number
from runtime.errors import DataError

# The parser behind ``re``, to read literal runs. Typeshed types it under its deprecated
# public names only (``sre_parse``, ``sre_constants``: the same module, plus a warning).
if TYPE_CHECKING:
    import sre_constants as _regex_constants
    import sre_parse as _regex_parser
else:
    import re._constants as _regex_constants
    import re._parser as _regex_parser

# The specification names ``utf16le`` as ``wide``'s alias; pySigma 2.0 knows only ``wide``.
# Registered here (never overriding pySigma) so that rules using the spec's name load.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)

View = Literal["lower", "text", "raw"]
Test = Callable[[Any], bool]


class UnsupportedValue(DataError, ValueError):
    """A rule value the engine cannot evaluate faithfully; the rule is skipped with this."""


class ValueMatcher(ABC):
    """Tests one value of a field. ``view`` says which form of the value it wants.

    ``test`` is a method in most matchers; where it runs millions of times (strings, RE2) it
    is a closure built for the instance, so it is declared as a callable attribute.
    """

    view: View = "lower"
    test: Test

    def anchors(self) -> frozenset[str] | None:
        """Lower-cased literals one of which every matching value contains, or ``None``."""
        return None


class FieldCheck(ABC):
    """A test on a field as a whole (its absence, its relation to another field)."""

    @abstractmethod
    def check(self, view: EventView, field: str | None) -> bool: ...


# --- strings: plain values, contains / startswith / endswith, wildcards, cased -------------


def _literal_runs(parts: Sequence[str | SpecialChars]) -> list[str]:
    runs: list[str] = []
    for part in parts:
        if isinstance(part, str) and part:
            runs.append(part)
    return runs


class _Pattern:
    """One Sigma string pattern, sorted by the cheapest ``str`` operation that decides it."""

    __slots__ = ("anchor", "kind", "payload")

    def __init__(self, parts: Sequence[str | SpecialChars]) -> None:
        parts = self._merge(parts)
        multi, single = SpecialChars.WILDCARD_MULTI, SpecialChars.WILDCARD_SINGLE
        literals = _literal_runs(parts)
        self.anchor: str | None = max(literals, key=len) if literals else None
        shape = tuple("s" if isinstance(p, str) else ("*" if p is multi else "?") for p in parts)
        self.payload: Any
        if single in parts:
            self.kind = "regex"
            self.payload = re.compile(
                "".join(
                    re.escape(p) if isinstance(p, str) else (".*" if p is multi else ".")
                    for p in parts
                ),
                re.DOTALL,
            ).fullmatch
        elif shape in ((), ("s",)):
            self.kind, self.payload = "equals", (parts[0] if parts else "")
            self.anchor = self.payload or None
        elif shape == ("*",):
            self.kind, self.payload = "any", None
        elif shape == ("s", "*"):
            self.kind, self.payload = "prefix", parts[0]
        elif shape == ("*", "s"):
            self.kind, self.payload = "suffix", parts[1]
        elif shape == ("*", "s", "*"):
            self.kind, self.payload = "contains", parts[1]
        else:
            self.kind = "segments"
            head = parts[0] if isinstance(parts[0], str) else ""
            tail = parts[-1] if isinstance(parts[-1], str) else ""
            inner = parts[1:-1] if len(parts) > 1 else []
            middle = tuple(p for p in inner if isinstance(p, str))
            self.payload = (head, middle, tail)

    @staticmethod
    def _merge(parts: Sequence[str | SpecialChars]) -> list[str | SpecialChars]:
        """Adjacent literals join and ``**`` is ``*``: fewer shapes to recognise."""
        merged: list[str | SpecialChars] = []
        for part in parts:
            if isinstance(part, str):
                if not part:
                    continue
                if merged and isinstance(merged[-1], str):
                    merged[-1] = merged[-1] + part
                    continue
            elif part is SpecialChars.WILDCARD_MULTI and merged and merged[-1] is part:
                continue
            merged.append(part)
        return merged


def _segments(head: str, middle: tuple[str, ...], tail: str) -> Test:
    """``a*b*c``: ordered ``find`` calls instead of a regex."""
    fixed = len(head) + len(tail)

    def test(value: str) -> bool:
        if len(value) < fixed or not value.startswith(head) or not value.endswith(tail):
            return False
        position, end = len(head), len(value) - len(tail)
        for segment in middle:
            found = value.find(segment, position, end)
            if found < 0:
                return False
            position = found + len(segment)
        return True

    return test


class StringMatcher(ValueMatcher):
    """Any of several Sigma string patterns (OR), as lower-case ``str`` operations.

    Equality becomes a set lookup, prefixes and suffixes one ``startswith``/``endswith``
    call with a tuple; only patterns with an inner ``?`` need a regular expression.
    """

    def __init__(self, values: Iterable[SigmaString], cased: bool = False) -> None:
        self.cased = cased
        self.view = "text" if cased else "lower"
        patterns = [_Pattern(self._parts(value)) for value in values]
        self.patterns = patterns
        self.equals = frozenset(p.payload for p in patterns if p.kind == "equals")
        self.prefixes = tuple(p.payload for p in patterns if p.kind == "prefix")
        self.suffixes = tuple(p.payload for p in patterns if p.kind == "suffix")
        self.contains = tuple(p.payload for p in patterns if p.kind == "contains")
        self.any = any(p.kind == "any" for p in patterns)
        #: (operation, operand) when one ``str`` operation decides: see ``_build``
        self.single: tuple[str, Any] | None = None
        self.others: tuple[Test, ...] = tuple(
            p.payload if p.kind == "regex" else _segments(*p.payload)
            for p in patterns
            if p.kind in ("regex", "segments")
        )
        self.test = self._build()

    def _parts(self, value: SigmaString) -> list[str | SpecialChars]:
        parts: list[str | SpecialChars] = []
        for part in value.s:
            if isinstance(part, str):
                parts.append(part if self.cased else part.lower())
            elif isinstance(part, SpecialChars):
                parts.append(part)
            else:
                raise UnsupportedValue(f"unresolved placeholder %{part.name}%")
        return parts

    def _build(self) -> Test:
        if self.any:
            return lambda value: True
        equals, prefixes, suffixes = self.equals, self.prefixes, self.suffixes
        contains, others = self.contains, self.others
        # The common single-operation cases get a direct closure: they run millions of times
        # (``single`` lets the compiler inline the operation in the leaf's loop).
        if not (equals or prefixes or others) and suffixes and not contains:
            self.single = ("suffix", suffixes)
            return lambda value: value.endswith(suffixes)
        if not (equals or suffixes or others) and prefixes and not contains:
            self.single = ("prefix", prefixes)
            return lambda value: value.startswith(prefixes)
        if not (equals or prefixes or suffixes or others) and len(contains) == 1:
            (needle,) = contains
            self.single = ("contains", needle)
            return lambda value: needle in value
        if not (prefixes or suffixes or others or contains):
            self.single = ("equals", equals)
            return equals.__contains__

        def test(value: str) -> bool:
            if value in equals:
                return True
            if prefixes and value.startswith(prefixes):
                return True
            if suffixes and value.endswith(suffixes):
                return True
            for needle in contains:
                if needle in value:
                    return True
            return any(other(value) for other in others)

        return test

    def anchors(self) -> frozenset[str] | None:
        literals: set[str] = set()
        for pattern in self.patterns:
            if pattern.anchor is None:
                return None
            literals.add(pattern.anchor.lower())
        return frozenset(literals) or None


def string_matchers(values: Sequence[SigmaString]) -> list[ValueMatcher]:
    """Case-insensitive and ``cased`` values cannot share one lower-cased matcher."""
    folded = [v for v in values if not isinstance(v, SigmaCasedString)]
    cased = [v for v in values if isinstance(v, SigmaCasedString)]
    matchers: list[ValueMatcher] = []
    if folded:
        matchers.append(StringMatcher(folded))
    if cased:
        matchers.append(StringMatcher(cased, cased=True))
    return matchers


# --- re --------------------------------------------------------------------------------------

_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


class RegexMatcher(ValueMatcher):
    """``re``: searched (unanchored, PCRE-like), case-sensitive unless the ``i`` flag is set.

    Compiled with pySigma's policy engine (RE2 by default): linear time whatever an
    attacker puts in a command line, the same engine that validated the rule at load time.
    """

    view = "text"

    def __init__(self, value: SigmaRegularExpression) -> None:
        flags = 0
        for flag in value.flags:
            flags |= _RE_FLAGS[flag]
        self.pattern = str(value.regexp)
        self.flags = flags
        engine = (value.policy or default_policy).regex_engine
        try:
            compiled = engine.compile(self.pattern, flags)
        except engine.error as error:  # pragma: no cover - pySigma validated it already
            raise UnsupportedValue(f"regular expression {self.pattern!r}: {error}") from error
        self._search = compiled.search
        self.test = _re2_test(compiled, self.min_width()) or self._test_generic

    def _test_generic(self, value: Any) -> bool:
        return self._search(value) is not None

    def min_width(self) -> int:
        """Characters every match spans at least (``\\s[a-f0-9]{64}`` needs 65), read from
        Python's regex parser; ``0`` (no bound) for syntax whose meaning may differ in RE2
        (POSIX classes, ``\\p``, ``\\Q``, ``\\C``, ``{,n}``...) or that Python does not know.
        A match spans at least as many UTF-8 bytes as characters: a value whose encoding is
        shorter cannot match, which RE2 need not be asked (``.{1000,}`` is costly to ask)."""
        if any(token in self.pattern for token in _WIDTH_UNSAFE):
            return 0
        try:
            low, _ = _regex_parser.parse(self.pattern, self.flags).getwidth()
        except Exception:
            return 0
        return int(low)

    def anchors(self) -> frozenset[str] | None:
        """The longest run of top-level literal characters is in every match.

        Read from Python's own regex parser (RE2 syntax is a subset here); anything the parser
        does not know gives no anchor. The value is searched lower-cased, so a run must be
        found there whenever the pattern matches: non-ASCII characters end a run (their case
        folding may differ from ``str.lower``), and so do ``s`` and ``k`` in a case-insensitive
        pattern, whose case-fold orbits hold non-ASCII letters (``ſ``, the Kelvin sign) that
        RE2 matches but ``str.lower`` does not map onto them. Other ASCII letters fold only to
        their other case, which ``str.lower`` maps alike.
        """
        if any(token in self.pattern for token in _WIDTH_UNSAFE):
            return None  # ``[[:alpha:]]`` would read as a class then a literal ``]``
        try:
            parsed = _regex_parser.parse(self.pattern, self.flags)
        except Exception:
            return None
        folded = bool((self.flags | parsed.state.flags) & re.IGNORECASE)
        runs: list[str] = []
        run: list[str] = []
        for op, argument in parsed.data:
            if (
                op is _regex_constants.LITERAL
                and isinstance(argument, int)  # always, for a literal: the code point
                and argument < 128
                and not (folded and chr(argument) in _FOLDS_OUTSIDE_ASCII)
            ):
                run.append(chr(argument))
            else:
                runs.append("".join(run))
                run = []
        runs.append("".join(run))
        longest = max(runs, key=len)
        return frozenset({longest.lower()}) if longest else None


#: Pattern text read differently by Python's parser and RE2 (or unknown to one of them):
#: no width bound nor anchor is taken from Python's reading of a pattern holding one.
_WIDTH_UNSAFE = ("[:", "\\p", "\\P", "\\Q", "\\E", "\\C", "\\z", "\\x{", "{,", "(?P=", "\\N")

#: ASCII letters whose case-fold orbit has a non-ASCII member (U+017F, U+212A).
_FOLDS_OUTSIDE_ASCII = frozenset("sSkK")


def _re2_test(compiled: Any, min_bytes: int = 0) -> Test | None:
    """A yes/no RE2 search without the ``re2`` module's Python-level ``Match`` machinery.

    ``re2``'s ``search`` builds a generator, maps byte offsets back to characters and a match
    object for every call, and asks RE2 for every capturing group, which forces RE2 off its
    DFA onto its slower NFA engines. Sigma only needs "does it match": the same pattern is
    recompiled with ``never_capture`` (same syntax, same options otherwise) and RE2's own
    ``Match`` is called on the UTF-8 bytes. ``None`` when the engine is not RE2 (another
    policy): the generic ``search`` is used then.
    """
    try:
        import re2
    except ImportError:  # pragma: no cover - pySigma's default policy needs it
        return None
    if not isinstance(compiled, re2._Regexp):
        return None
    options = re2.Options()
    for name in re2.Options.NAMES:
        setattr(options, name, getattr(compiled.options, name))
    options.never_capture = True
    try:
        regexp = re2.compile(compiled.pattern, options)._regexp
    except re2.error:  # pragma: no cover - same pattern, fewer groups
        return None
    match, unanchored, null_span = regexp.Match, re2._Anchor.UNANCHORED, re2._NULL_SPAN

    def test(value: Any) -> bool:
        encoded = value.encode("utf-8", "surrogatepass")
        size = len(encoded)
        return size >= min_bytes and match(unanchored, encoded, 0, size)[0] != null_span

    return test


# --- numbers, booleans, comparisons, timestamps -------------------------------------------

class NumberMatcher(ValueMatcher):
    """Plain numbers, OR-ed: equal as numbers, whatever the event's spelling."""

    view = "raw"

    def __init__(self, numbers: Iterable[int | float]) -> None:
        self.numbers = frozenset(numbers)

    def test(self, value: Any) -> bool:
        number = as_number(value)
        return number is not None and number in self.numbers

    def event_ids(self) -> frozenset[int]:
        return frozenset(int(n) for n in self.numbers if int(n) == n)


class BoolMatcher(ValueMatcher):
    view = "raw"

    def __init__(self, value: SigmaBool) -> None:
        self.expected = value.boolean

    def test(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value is self.expected
        return isinstance(value, str) and value.strip().lower() == str(self.expected).lower()


_COMPARE: dict[CompareOperators, Callable[[Any, Any], bool]] = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}


class CompareMatcher(ValueMatcher):
    """``lt``/``lte``/``gt``/``gte``: numeric; a value that is not a number never matches."""

    view = "raw"

    def __init__(self, value: SigmaCompareExpression) -> None:
        self.op = _COMPARE[value.op]
        self.number = value.number.number

    def test(self, value: Any) -> bool:
        number = as_number(value)
        return number is not None and self.op(number, self.number)


def _timestamp_part(moment: datetime, part: TimestampPart) -> int:
    if part is TimestampPart.WEEK:
        return moment.isocalendar().week
    return int(getattr(moment, part.name.lower()))


class TimestampPartMatcher(ValueMatcher):
    """``minute``/``hour``/``day``/``week``/``month``/``year`` of a date value."""

    view = "text"

    def __init__(self, value: SigmaTimestampPart) -> None:
        self.part = value.timestamp_part
        self.number = value.number

    def test(self, value: Any) -> bool:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return False
        return _timestamp_part(moment, self.part) == self.number


# --- cidr ------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class CidrMatcher(ValueMatcher):
    """``cidr``: the value is an IP address inside one of the networks (v4 or v6)."""

    view = "text"

    def __init__(self, networks: Iterable[IPv4Network | IPv6Network]) -> None:
        self.networks = tuple(networks)

    def test(self, value: Any) -> bool:
        address = _parse_ip(value)
        if address is None:
            return False
        return any(
            address.version == network.version and address in network for network in self.networks
        )


# --- whole-field checks: null, exists, fieldref -----------------------------------------


class NullCheck(FieldCheck):
    """A null value matches a field that is absent or null (``''`` is a value, not null)."""

    def check(self, view: EventView, field: str | None) -> bool:
        return all(value is None for value in view.raw(field))


class ExistsCheck(FieldCheck):
    """``exists``: presence only, whatever the value (even empty or null)."""

    def __init__(self, expected: bool) -> None:
        self.expected = expected

    def check(self, view: EventView, field: str | None) -> bool:
        return bool(view.raw(field)) is self.expected


class FieldRefCheck(FieldCheck):
    """``fieldref``: the field equals (or, with ``startswith``/``endswith``/``contains``,
    starts/ends with or contains) another field of the same event, case-insensitively."""

    def __init__(self, other: str, starts_with: bool = False, ends_with: bool = False) -> None:
        self.other = other
        if starts_with and ends_with:
            self.relation: Callable[[str, str], bool] = lambda value, ref: ref in value
        elif starts_with:
            self.relation = str.startswith
        elif ends_with:
            self.relation = str.endswith
        else:
            self.relation = operator.eq

    def check(self, view: EventView, field: str | None) -> bool:
        references = view.lower(self.other)
        if not references:
            return False
        relation = self.relation
        for value in view.lower(field):  # loops, not a generator: evaluated on every event
            for reference in references:
                if relation(value, reference):
                    return True
        return False
