"""Must-show (issue 13): hostile input through ``vigie agent run`` on the real secured Kafka.

One agent process with a UDP syslog listener and a followed CEF file, fed the hostile corpus
(``tests/data/hostile/``): it keeps running; every bad record is counted and in the
quarantine file with its reason; every good record around them reaches ``events.raw``
exactly once (reconciled by ``event.id``); the file's position is past its last line; and a
record sent after the storm is still shipped.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from producers.agent.quarantine import read_quarantine
from runtime.settings import Settings
from runtime.topics import end_offsets
from schemas.organization import Organization
from schemas.topics import EVENTS_RAW

from .support import AgentProcess, read_back, status, write_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

HOSTILE = Path(__file__).resolve().parents[2] / "data" / "hostile"
AFTER = b"<13>Mar 10 12:00:00 bastion sshd[1]: Accepted publickey for late from 10.0.0.9 port 22"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate, agent: AgentProcess, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert agent.proc is not None and agent.proc.poll() is None, agent.tail()
        assert time.monotonic() < deadline, f"timed out\n{agent.tail()}"
        time.sleep(0.5)


def test_hostile_input_is_quarantined_and_the_rest_shipped(
        stack: Settings, national_registry: list[Organization], tmp_path: Path) -> None:
    org = national_registry[5]
    agent_id = f"it-hostile-{int(time.time())}"
    cef_expected = json.loads((HOSTILE / "cef" / "expected.json").read_text())
    syslog_expected = json.loads((HOSTILE / "syslog" / "expected.json").read_text())
    frames = [base64.b64decode(json.loads(line)["frame_b64"]) for line in
              (HOSTILE / "syslog" / "frames.jsonl").read_text().splitlines()]
    cef_file = tmp_path / "firewall.cef"
    shutil.copy(HOSTILE / "cef" / cef_expected["file"], cef_file)
    port = _free_udp_port()
    config = write_config(tmp_path, org, agent_id, stack.kafka, [
        {"type": "syslog", "name": "net", "protocol": "udp", "host": "127.0.0.1", "port": port},
        {"type": "cef", "name": "fw", "path": str(cef_file)},
    ])
    state = tmp_path / "state"
    start = end_offsets(stack.kafka, EVENTS_RAW.name)
    agent = AgentProcess(config, tmp_path / "agent.out").start()
    try:
        _wait(lambda: "listening for syslog" in agent.log.read_text(errors="replace"), agent)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for frame in frames:
                sock.sendto(frame, ("127.0.0.1", port))
                time.sleep(0.01)
        good = cef_expected["good"] + syslog_expected["good"]
        bad = sum(cef_expected["malformed"].values()) + sum(
            syslog_expected["malformed"].values())
        _wait(lambda: status(state).get("delivered", 0) >= good
              and sum(status(state).get("malformed", {}).values()) >= bad, agent)

        # counted, by source and reason
        malformed = status(state)["malformed"]
        assert malformed == {**{f"fw/{r}": n for r, n in cef_expected["malformed"].items()},
                             **{f"net/{r}": n for r, n in syslog_expected["malformed"].items()}}
        # quarantined, each with its reason and where it came from
        quarantined = read_quarantine(state / "quarantine.jsonl")
        assert Counter((q["source"], q["reason"]) for q in quarantined) == Counter(
            {("fw", r): n for r, n in cef_expected["malformed"].items()}
            | {("net", r): n for r, n in syslog_expected["malformed"].items()})
        assert all(q["position"].get("peer", "").startswith("127.0.0.1:")
                   for q in quarantined if q["source"] == "net")
        assert all(q["position"]["file"] == str(cef_file)
                   for q in quarantined if q["source"] == "fw")
        # the file's position is past its last line: a restart reads nothing again
        positions = json.loads((state / "positions.json").read_text())
        assert positions["fw"]["offset"] == cef_file.stat().st_size

        # still alive, still shipping
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(AFTER, ("127.0.0.1", port))
        _wait(lambda: status(state).get("delivered", 0) >= good + 1, agent)
    finally:
        code = agent.stop()
    assert code == 0, agent.tail()
    # every good record in events.raw exactly once
    counts = read_back(stack.kafka, start, agent_id)
    assert len(counts) == good + 1 and set(counts.values()) == {1}, counts.most_common(3)


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stream(port: int, payload: bytes, tls: bool) -> None:
    """One connection carrying ``payload``; over TLS without checking the listener's test
    certificate (what is tested here is the input, not the certificate)."""
    import ssl

    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock: socket.socket = raw
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(raw)
    with sock:
        sock.sendall(payload)
        time.sleep(0.2)


def test_hostile_frames_over_tcp_and_tls_are_quarantined_and_the_rest_shipped(
        stack: Settings, national_registry: list[Organization], tmp_path: Path) -> None:
    """The same hostile frames, octet-counted (RFC 6587) on one TCP and one TLS connection,
    then a connection whose octet count cannot be trusted: each listener counts and
    quarantines every bad frame, closes only the lying connection, ships the rest."""
    from tests.unit.tls_files import write_tls_files

    org = national_registry[6]
    agent_id = f"it-hostile-stream-{int(time.time())}"
    expected = json.loads((HOSTILE / "syslog" / "expected.json").read_text())
    frames = [base64.b64decode(json.loads(line)["frame_b64"]) for line in
              (HOSTILE / "syslog" / "frames.jsonl").read_text().splitlines()]
    counted = b"".join(str(len(f)).encode() + b" " + f for f in frames)
    (tmp_path / "tls").mkdir()
    tls = write_tls_files(tmp_path / "tls")
    tcp_port, tls_port = _free_tcp_port(), _free_tcp_port()
    config = write_config(tmp_path, org, agent_id, stack.kafka, [
        {"type": "syslog", "name": "tcp", "protocol": "tcp", "host": "127.0.0.1",
         "port": tcp_port},
        {"type": "syslog", "name": "tls", "protocol": "tls", "host": "127.0.0.1",
         "port": tls_port, "tls_cert": str(tls.cert), "tls_key": str(tls.key)},
    ])
    state = tmp_path / "state"
    start = end_offsets(stack.kafka, EVENTS_RAW.name)
    agent = AgentProcess(config, tmp_path / "agent.out").start()
    try:
        _wait(lambda: agent.log.read_text(errors="replace").count("listening for syslog") >= 2,
              agent)
        for port, over_tls in ((tcp_port, False), (tls_port, True)):
            _stream(port, counted, over_tls)
            _stream(port, b"99999999999 " + b"x" * 64, over_tls)  # a count nobody can trust
        good = 2 * expected["good"]
        bad = 2 * (sum(expected["malformed"].values()) + 1)
        _wait(lambda: status(state).get("delivered", 0) >= good
              and sum(status(state).get("malformed", {}).values()) >= bad, agent)

        malformed = status(state)["malformed"]
        per_listener = {**expected["malformed"], "bad_octet_count": 1}
        assert malformed == {f"{name}/{r}": n for name in ("tcp", "tls")
                             for r, n in per_listener.items()}
        quarantined = read_quarantine(state / "quarantine.jsonl")
        assert Counter((q["source"], q["reason"]) for q in quarantined) == Counter(
            {(name, r): n for name in ("tcp", "tls") for r, n in per_listener.items()})

        # the listeners still serve after closing the lying connections
        for port, over_tls in ((tcp_port, False), (tls_port, True)):
            _stream(port, str(len(AFTER)).encode() + b" " + AFTER, over_tls)
        _wait(lambda: status(state).get("delivered", 0) >= good + 2, agent)
    finally:
        code = agent.stop()
    assert code == 0, agent.tail()
    counts = read_back(stack.kafka, start, agent_id)
    assert len(counts) == good + 2 and set(counts.values()) == {1}, counts.most_common(3)
