"""Property-based fuzzing of every parser through the path records really take (issue 13).

For any input — random bytes, or a valid prefix followed by hostile text — the source that
reads it (a followed file, the syslog listener's queue, an EVTX file) raises nothing, and
every record comes out either as an event (which the finisher serialises) or as a counted
malformed record with a reason, written to the quarantine: ``events + malformed == records``.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.agent.pipeline import Finisher
from producers.agent.quarantine import Quarantine, read_quarantine
from producers.agent.sources.authlog import authlog_source
from producers.agent.sources.base import Context
from producers.agent.sources.cef import cef_source
from producers.agent.sources.evtx import WindowsFileSource
from producers.agent.sources.jsonfile import json_source
from producers.agent.sources.lines import LineFileSource
from producers.agent.sources.syslog import SyslogServer, SyslogSource
from tests.unit.agent.conftest import ORG

FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# Characters that matter to the grammars: separators, escapes, quotes, brackets, digits.
_SPECIAL = [*' []"\\=:;|<>-.+0123456789TZz\t\r{},\x00é\u2028', "ab", "CEF:", "USER=", " ; ",
            "pam_unix(", "rt="]
hostile_text = st.lists(st.sampled_from(_SPECIAL), max_size=120).map("".join)
junk = st.one_of(st.binary(max_size=400), hostile_text.map(str.encode))


def _prefixed(prefixes: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(junk, st.tuples(st.sampled_from(prefixes), junk).map(b"".join))


def _line(data: bytes) -> bytes:
    """One non-blank line of a followed file (a newline would make two records)."""
    line = data.replace(b"\n", b" ").replace(b"\r", b" ")
    return line if line.strip() else b"x"


def _check(ctx: Context, finisher: Finisher, docs: list[dict], records: int,
           quarantine: Path) -> None:
    for doc in docs:
        finisher.value(doc, "fuzz")  # serialisable, whatever the input
    malformed = sum(ctx.malformed.values())
    assert len(docs) + malformed == records
    assert ctx.quarantine is not None
    ctx.quarantine.close()
    entries = read_quarantine(quarantine)
    assert len(entries) == malformed
    assert all(e["reason"] and e["position"] for e in entries)
    assert Counter(e["reason"] for e in entries) == Counter(
        {reason: n for (_, reason), n in ctx.malformed.items()})


def _through_file(make: Callable[[Context, Path], LineFileSource], records: list[bytes],
                  finisher: Finisher, suffix: str = ".log") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        lines = [_line(r) for r in records]
        path.write_bytes(b"\n".join(lines) + b"\n")
        quarantine = Path(tmp) / "q.jsonl"
        ctx = Context(ORG.id, "chu-test-01", quarantine=Quarantine(quarantine))
        source = make(ctx, path)
        docs = source.poll(10_000)
        source.close()
        _check(ctx, finisher, docs, len(lines), quarantine)


SYSLOG_PREFIXES = [b"<34>1 2026-03-10T11:59:58Z host app 1 ID ", b"<34>1 - h a p m [x",
                   b"<13>Mar 10 11:00:00 host sshd[1]: ", b"<13>2026-03-10T11:00:00Z h sudo: ",
                   b"<134>Mar 10 11:00:00 fw CEF:0|a|b|c|d|e|", b"<13>1 2026-03-10T11:00:00Z "
                   b'h a p m [id a="', b"<13>Mar 10 11:00:00 h x: pam_unix(sshd:auth): "
                   b"authentication failure;"]


@FUZZ
@given(frames=st.lists(_prefixed(SYSLOG_PREFIXES), min_size=1, max_size=20))
def test_syslog_frames(frames: list[bytes], finisher: Finisher) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        quarantine = Path(tmp) / "q.jsonl"
        ctx = Context(ORG.id, "chu-test-01", quarantine=Quarantine(quarantine))
        server = SyslogServer("net", "udp", "127.0.0.1", 0, ctx, max_frame=1000)
        for frame in frames:
            server.offer_datagram(frame, "10.0.0.1:514")
        _check(ctx, finisher, SyslogSource(server).poll(1000), len(frames), quarantine)


AUTH_PREFIXES = [b"Mar 10 11:00:00 bastion sshd[1]: Failed password for ",
                 b"Mar 10 11:00:00 bastion sudo[2]: u : ", b"Mar 10 11:00:00 b sudo: u : PWD=",
                 b"Mar 10 11:00:00 b x: pam_unix(sshd:auth): authentication failure;",
                 b"2026-03-10T11:00:00.1+01:00 b sshd[1]: Invalid user ", b"Feb 29 "]


@FUZZ
@given(records=st.lists(_prefixed(AUTH_PREFIXES), min_size=1, max_size=20))
def test_authlog_lines(records: list[bytes], finisher: Finisher) -> None:
    _through_file(lambda ctx, path: authlog_source("auth", path, ctx, max_record_bytes=1024),
                  records, finisher)


CEF_PREFIXES = [b"CEF:0|Vendor|Product|1|sig|name|5|", b"CEF:0|V|P|1|s|n|High|rt=",
                b"CEF:0|V|P|1|s|n|5|src=1.2.3.4 msg=", b"CEF:0|a\\|b|c\\\\|", b"x CEF:"]


@FUZZ
@given(records=st.lists(_prefixed(CEF_PREFIXES), min_size=1, max_size=20))
def test_cef_lines(records: list[bytes], finisher: Finisher) -> None:
    _through_file(lambda ctx, path: cef_source("cef", path, ctx, max_record_bytes=1024),
                  records, finisher)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["winlog", "Event", "System", "EventData", "event_id",
                                       "channel", "record_id", "EventID", "Channel",
                                       "@timestamp", "computer_name", "event_data", "x"]),
                      children, max_size=5), max_leaves=20)
JSON_PREFIXES = [b'{"winlog": {"event_id": ', b'{"Event": {"System": {"EventID": ',
                 b'{"winlog": {"channel": "Security", "event_id": "4625", "event_data": ',
                 b"[" * 2000]


@FUZZ
@given(records=st.lists(st.one_of(_prefixed(JSON_PREFIXES),
                          json_values.map(lambda v: json.dumps(v).encode())),
                min_size=1, max_size=20))
def test_json_lines(records: list[bytes], finisher: Finisher) -> None:
    def make(ctx: Context, path: Path) -> LineFileSource:
        source = json_source("json", [str(path)], ctx, max_record_bytes=4096)
        assert isinstance(source, LineFileSource)
        return source
    _through_file(make, records, finisher, suffix=".jsonl")


def _evtx_sample() -> bytes:
    samples = sorted((Path(__file__).resolve().parents[4] / "shared" / "data" / "sigma"
                      / "regression").rglob("*.evtx"))
    if not samples:
        pytest.skip("SigmaHQ regression samples not found")
    return samples[0].read_bytes()


@FUZZ
@given(case=st.one_of(
    st.binary(max_size=5000).map(lambda b: ("raw", b, [])),
    st.tuples(st.integers(0, 69631), st.binary(min_size=1, max_size=64)).map(
        lambda t: ("patch", b"", [t])),
    st.integers(0, 69631).map(lambda n: ("cut", b"", [(n, b"")])),
))
def test_evtx_bytes(case: tuple[str, bytes, list[tuple[int, bytes]]],
                    finisher: Finisher) -> None:
    """Random bytes, a real file with some bytes overwritten, a real file cut short: the
    reader raises nothing, and a file that yields no event is counted as malformed."""
    kind, raw, edits = case
    data = raw
    if kind != "raw":
        data = _evtx_sample()
        for at, patch in edits:
            data = data[:at] if kind == "cut" else data[:at] + patch + data[at + len(patch):]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.evtx"
        path.write_bytes(data)
        quarantine = Path(tmp) / "q.jsonl"
        ctx = Context(ORG.id, "chu-test-01", quarantine=Quarantine(quarantine))
        docs = WindowsFileSource("evtx", [str(path)], ctx).poll(1000)
        for doc in docs:
            finisher.value(doc, "evtx")
        if kind == "cut" or not docs:
            assert sum(ctx.malformed.values()) >= 1, (kind, len(data))
        assert ctx.quarantine is not None
        ctx.quarantine.close()
        assert len(read_quarantine(quarantine)) == sum(ctx.malformed.values())
