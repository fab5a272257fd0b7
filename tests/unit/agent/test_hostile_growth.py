"""Linear time (issue 13): the worst input we know for each parser, at 1, 4, 16 and 64 KB.

No absolute timing (the test machines are shared): the time *per KB* at 64 KB must stay
under 4 times the time per KB at 1 KB. A quadratic parser multiplies it by 64, the former
``pam_unix`` pattern (cubic) by far more; a linear one keeps it flat (or lower: fixed costs
weigh more on small inputs). Each input is the whole record, parsed by the function the
source calls on it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import pytest

from producers.agent.parse.authlog import enrich
from producers.agent.sources.authlog import authlog_line
from producers.agent.sources.base import Context
from producers.agent.sources.cef import cef_line
from producers.agent.sources.jsonfile import jsonl_parser
from producers.agent.sources.lines import LineParseError
from producers.agent.sources.syslog import message_doc
from tests.unit.agent.conftest import ORG

CTX = Context(ORG.id, "chu-test-01")
RECEIVED = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EID = "0" * 32
SIZES_KB = (1, 4, 16, 64)


def _fill(prefix: bytes, unit: bytes, suffix: bytes, kb: int) -> bytes:
    count = max(1, (kb * 1024 - len(prefix) - len(suffix)) // len(unit))
    return prefix + unit * count + suffix


# A malformed verdict is an outcome too: what counts is how long it took.
def _syslog(record: bytes) -> None:
    with suppress(ValueError):
        message_doc(CTX, record, RECEIVED, EID)


def _authlog(record: bytes) -> None:
    with suppress(ValueError):
        authlog_line(CTX, record, EID, RECEIVED)


def _cef(record: bytes) -> None:
    with suppress(ValueError):
        cef_line(record, EID, RECEIVED)


_JSONL = jsonl_parser(CTX, Path("growth.jsonl"))


def _json(record: bytes) -> None:
    with suppress(LineParseError):
        _JSONL(record, EID)


# (name, parse function, worst input at a size in KB)
WORST: list[tuple[str, Callable[[bytes], object], Callable[[int], bytes]]] = [
    # auth.log pam_unix: spaces then a newline (the 479-byte, 8.8-second line of issue 13)
    ("pam_unix", lambda r: enrich({"event": {}}, "sshd", r.decode()),
     lambda kb: _fill(b"pam_unix(sshd:auth): authentication failure;", b" ", b"\nx", kb)),
    # sudo: "USER=x ; " pairs and no COMMAND= (the former pattern was quadratic on it:
    # 0.3 s at 16 KB, 1.6 s at 64 KB); and separators without any USER=
    ("sudo", lambda r: enrich({"event": {}}, "sudo", r.decode()),
     lambda kb: _fill(b"u : PWD=/ ; ", b"USER=x ; ", b"", kb)),
    ("sudo_no_user", lambda r: enrich({"event": {}}, "sudo", r.decode()),
     lambda kb: _fill(b"u : PWD=", b"x ; ", b"", kb)),
    ("sshd", lambda r: enrich({"event": {}}, "sshd", r.decode()),
     lambda kb: _fill(b"Failed password for ", b"invalid user ", b"x", kb)),
    ("authlog_line", _authlog,
     lambda kb: _fill(b"Mar 10 11:00:00 h sshd[1]: Failed password for ", b"a ", b"", kb)),
    # RFC 5424 structured data that never closes: every parameter is matched, then refused
    ("rfc5424_sd", _syslog,
     lambda kb: _fill(b"<13>1 2026-03-10T11:00:00Z h a p m [id", b' a="\\"b"', b" x", kb)),
    ("rfc5424_header", _syslog, lambda kb: _fill(b"<13>1 ", b"a", b"", kb)),
    ("rfc3164", _syslog, lambda kb: _fill(b"<13>Mar 10 11:00:00 h ", b"[", b"", kb)),
    # CEF: spaces before words that are almost keys; escapes in values
    ("cef_keys", _cef, lambda kb: _fill(b"CEF:0|a|b|c|d|e|5|k=", b" a-b.c", b"", kb)),
    ("cef_escapes", _cef, lambda kb: _fill(b"CEF:0|a|b|c|d|e|5|msg=", b"\\=\\\\", b"", kb)),
    ("cef_header", _cef, lambda kb: _fill(b"CEF:", b"\\|", b"", kb)),
    # JSON: nesting, long strings with escapes
    ("json_deep", _json, lambda kb: _fill(b"", b"[", b"", kb)),
    ("json_escapes", _json, lambda kb: _fill(b'{"winlog": "', b"\\u00e9\\\"", b'"}', kb)),
]


def _seconds(parse: Callable[[bytes], object], record: bytes, repeat: int) -> float:
    """Best of seven runs of ``repeat`` parses, per parse (the least disturbed run)."""
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(repeat):
            parse(record)
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


@pytest.mark.parametrize(("name", "parse", "worst"), WORST, ids=[w[0] for w in WORST])
def test_time_per_kb_stays_flat(name: str, parse: Callable[[bytes], object],
                                worst: Callable[[int], bytes]) -> None:
    per_kb = {}
    for kb in SIZES_KB:
        record = worst(kb)
        assert abs(len(record) - kb * 1024) < 64, len(record)
        per_kb[kb] = _seconds(parse, record, repeat=max(4, 256 // kb)) / kb
    assert per_kb[64] < 4 * per_kb[1], {kb: f"{t * 1e6:.1f} us/KB" for kb, t in per_kb.items()}
    assert per_kb[16] < 4 * per_kb[1], {kb: f"{t * 1e6:.1f} us/KB" for kb, t in per_kb.items()}


def test_json_sample_is_really_refused() -> None:
    """The worst JSON inputs above are verdicts, not silent successes."""
    with pytest.raises(LineParseError) as exc:
        _JSONL(b"[" * 65536, EID)
    assert exc.value.reason == "too_deep"
    assert json.loads(b"[" * 10 + b"]" * 10)  # a shallow one parses
