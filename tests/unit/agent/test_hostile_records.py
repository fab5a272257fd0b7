"""The pieces that keep a bad record from stopping the agent: the quarantine file, oversized
lines in followed files (refused whole, position past them), the bounded syslog queue, and
the agent's sense of time (host zone by default, events from the future counted)."""

from __future__ import annotations

import os
import queue
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from producers.agent.clock import FutureCheck, host_timezone, resolve_timezone
from producers.agent.follow import Follower
from producers.agent.parse.authlog import pam_failure_fields, sudo_fields
from producers.agent.quarantine import Quarantine, read_quarantine
from producers.agent.sources.authlog import authlog_line, authlog_source
from producers.agent.sources.base import Context
from producers.agent.sources.syslog import FrameQueue
from tests.unit.agent.conftest import ORG

GOOD = b"Mar 10 11:00:00 bastion sshd[1]: Failed password for root from 10.0.0.1 port 22"


def test_quarantine_file_is_private_bounded_and_rotated(tmp_path: Path) -> None:
    path = tmp_path / "state" / "quarantine.jsonl"
    quarantine = Quarantine(path, max_bytes=4096, keep=2, head_bytes=16)
    for index in range(100):
        quarantine.add("net", "oversized", position={"peer": f"10.0.0.{index}:514"},
                       data=b"X" * 70_000, detail="frame of 70000 bytes")
    quarantine.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size <= 4096
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "quarantine.jsonl", "quarantine.jsonl.1", "quarantine.jsonl.2"]
    last = read_quarantine(path)[-1]
    assert last["position"] == {"peer": "10.0.0.99:514"} and last["size"] == 70_000
    assert last["head_b64"] == "WFhYWFhYWFhYWFhYWFhYWA=="  # 16 bytes, not 70,000


def test_quarantine_never_follows_a_symlink_and_never_raises(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    path = tmp_path / "quarantine.jsonl"
    path.symlink_to(target)
    quarantine = Quarantine(path)
    quarantine.add("auth", "bad_timestamp", data=b"secret line")  # must not raise
    assert target.read_text() == "" and quarantine.failed == 1


def test_oversized_line_is_refused_whole_and_skipped(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(GOOD + b"\n" + b"Mar 10 11:00:01 h x: " + b"A" * 5000 + b"\n" + GOOD + b"\n")
    quarantine = Quarantine(tmp_path / "q.jsonl")
    ctx = Context(ORG.id, "chu-test-01", quarantine=quarantine)
    source = authlog_source("auth", log, ctx, max_record_bytes=1024)
    docs = source.poll(100)
    assert len(docs) == 2  # the good lines around it; its tail did not become a line
    assert ctx.malformed == {("auth", "oversized"): 1}
    [entry] = read_quarantine(tmp_path / "q.jsonl")
    assert entry["position"]["offset"] == len(GOOD) + 1 and entry["size"] == 5021
    assert source.position()["offset"] == log.stat().st_size  # a restart reads nothing again
    again = authlog_source("auth", log, ctx, source.position(), max_record_bytes=1024)
    assert again.poll(100) == []


def test_oversized_line_written_in_pieces(tmp_path: Path) -> None:
    """A long line still being written: memory stays bounded, and it is refused once, when
    its end arrives; the line after it is read normally."""
    log = tmp_path / "app.log"
    log.write_bytes(b"x" * 3000)
    follower = Follower(log, max_line=1024, head_bytes=8)
    assert follower.read() == []
    assert follower.buffer == b"" and follower.long is not None  # head kept, not 3000 bytes
    with log.open("ab") as out:
        out.write(b"y" * 3000 + b"\nnext line\n")
    lines = follower.read()
    assert [(line.oversized, line.size, line.data) for line in lines] == [
        (True, 6000, b"xxxxxxxx"), (False, 9, b"next line")]
    assert follower.pos is not None and follower.pos.offset == 6011


def test_per_record_exception_becomes_a_malformed_record(tmp_path: Path) -> None:
    """Whatever a parser raises (here: a bug simulated by a parser that fails on one line)
    costs that line only; the position moves past it."""
    log = tmp_path / "auth.log"
    log.write_bytes(GOOD + b"\nBOOM\n" + GOOD + b"\n")
    ctx = Context(ORG.id, "chu-test-01", quarantine=Quarantine(tmp_path / "q.jsonl"))
    source = authlog_source("auth", log, ctx)

    def parse(line: bytes, eid: str) -> dict:
        if line == b"BOOM":
            raise RecursionError("maximum recursion depth exceeded")
        return authlog_line(ctx, line, eid)
    source.parse = parse
    assert len(source.poll(10)) == 2
    assert ctx.malformed == {("auth", "too_deep"): 1}
    assert source.position()["offset"] == log.stat().st_size


def test_frame_queue_is_bounded_in_bytes_too() -> None:
    frames = FrameQueue(max_frames=1000, max_bytes=100_000)
    now = datetime.now(UTC)
    frames.put_nowait((b"x" * 60_000, now, "a"))
    with pytest.raises(queue.Full):
        frames.put_nowait((b"x" * 60_000, now, "b"))
    assert frames.get_nowait()[2] == "a"
    frames.put_nowait((b"x" * 200_000, now, "c"))  # one frame larger than the bound: alone
    assert frames.bytes == 200_000


def test_default_zone_is_the_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    assert resolve_timezone(None) == ZoneInfo("Europe/Paris")
    assert resolve_timezone("America/Cayenne") == ZoneInfo("America/Cayenne")
    monkeypatch.delenv("TZ")
    zone = host_timezone()
    if os.path.exists("/etc/localtime"):
        # the host's own rules (summer time included), not a fixed offset of today
        winter, summer = datetime(2026, 1, 15, 12), datetime(2026, 7, 15, 12)
        assert winter.replace(tzinfo=zone).utcoffset() == winter.astimezone().utcoffset()
        assert summer.replace(tzinfo=zone).utcoffset() == summer.astimezone().utcoffset()


def test_paris_auth_log_line_is_not_in_the_future() -> None:
    """Issue 13: read as UTC, a Paris line was 1-2 h in the future and dead-lettered."""
    paris = ZoneInfo("Europe/Paris")
    now = datetime.now(paris).replace(microsecond=0)
    line = now.strftime("%b %d %H:%M:%S").encode() + b" bastion sshd[1]: hello"
    ctx = Context(ORG.id, "chu-test-01", paris)
    doc = authlog_line(ctx, line, "0" * 32)
    assert not FutureCheck().check(doc["@timestamp"], "auth")
    wrong = authlog_line(Context(ORG.id, "chu-test-01", ZoneInfo("America/Los_Angeles")),
                         line, "0" * 32)  # a zone west of the writer's: hours ahead
    check = FutureCheck()
    assert check.check(wrong["@timestamp"], "auth") and check.count == 1


_FORMS = {
    "utc_z": lambda t: t.isoformat().replace("+00:00", "Z"),
    "utc_offset": lambda t: t.isoformat(timespec="seconds"),
    "paris_offset": lambda t: t.astimezone(ZoneInfo("Europe/Paris")).isoformat(),
}


@pytest.mark.parametrize("form", sorted(_FORMS))
def test_future_check_reads_every_iso_form(form: str) -> None:
    timestamp = _FORMS[form](datetime.now(UTC) + timedelta(hours=2))
    check = FutureCheck(tolerance_s=300)
    assert check.check(timestamp, "s")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert not check.check(past, "s") and check.count == 1


@pytest.mark.parametrize(("message", "expected"), [
    ("dupont : TTY=pts/0 ; PWD=/home/dupont ; USER=root ; COMMAND=/usr/bin/id -a",
     ("dupont", "root", "/usr/bin/id -a", False)),
    ("  dupont : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/a ; b ; USER=root ; "
     "ENV=LANG=C ; CHROOT=/ ; COMMAND=/bin/sh -c 'x ; y'",
     ("dupont", "root", "/bin/sh -c 'x ; y'", True)),
    ("dupont : PWD=/ ; USER=root ; lower=x ; COMMAND=/bin/id", None),
    ("dupont : PWD=/ ; USER=root ; ENV=x", None),
    ("du pont : PWD=/ ; USER=root ; COMMAND=/bin/id", None),
])
def test_sudo_lines_split_by_hand(message: str,
                                  expected: tuple[str, str, str, bool] | None) -> None:
    assert sudo_fields(message) == expected


@pytest.mark.parametrize(("message", "expected"), [
    ("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
     "rhost=10.0.0.9  user=bob", ("sshd", "bob", "10.0.0.9")),
    ("pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0"
     " ruser=alice rhost=", ("sudo", None, None)),
    ("pam_unix(sshd:session): session opened for user root", None),
])
def test_pam_failure_fields(message: str,
                            expected: tuple[str, str | None, str | None] | None) -> None:
    assert pam_failure_fields(message) == expected
