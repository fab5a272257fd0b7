"""Must-show (issue 13): the hostile corpus through ``vigie agent ingest --dry-run``.

Each parser's corpus (``tests/data/hostile/<parser>/``, written by its ``make_corpus.py``)
goes through the real command in a subprocess: it exits 0, every good record around the bad
ones is printed, every bad one is counted and is in the quarantine file, once, with the
reason it must get and where it was; and the syslog frames go through the listener's parse
path with the same outcome.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from producers.agent.quarantine import Quarantine, read_quarantine
from producers.agent.sources.base import Context
from producers.agent.sources.syslog import SyslogServer, SyslogSource
from producers.signing import generate_key

HOSTILE = Path(__file__).resolve().parents[2] / "data" / "hostile"
ROOT = Path(__file__).resolve().parents[3]
REGRESSION = ROOT.parent / "shared" / "data" / "sigma" / "regression"


def _expected(parser: str) -> dict:
    return json.loads((HOSTILE / parser / "expected.json").read_text())


def _config(tmp_path: Path) -> Path:
    key = tmp_path / "agent.key"
    generate_key(key)
    config = {"establishment": {"id": "750712184", "name": "CHU Test",
                                "type": "university_hospital", "region": "ile-de-france"},
              "agent_id": "chu-test-01", "key_path": str(key),
              "state_dir": str(tmp_path / "state")}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _dry_run(tmp_path: Path, files: list[Path], fmt: str) -> tuple[list[dict], str]:
    result = subprocess.run(
        [sys.executable, "-m", "vigie.cli", "agent", "ingest", "--dry-run", "--format", fmt,
         "--config", str(_config(tmp_path)), *map(str, files)],
        capture_output=True, cwd=ROOT, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return events, result.stderr.decode(errors="replace")


@pytest.mark.parametrize("parser", ["authlog", "cef", "json"])
def test_line_corpus_through_dry_run(parser: str, tmp_path: Path) -> None:
    expected = _expected(parser)
    source_file = HOSTILE / parser / expected["file"]
    events, stderr = _dry_run(tmp_path, [source_file], expected["format"])
    assert len(events) == expected["good"], stderr[-2000:]
    quarantined = read_quarantine(tmp_path / "state" / "quarantine.jsonl")
    assert Counter(q["reason"] for q in quarantined) == expected["malformed"]
    bad_total = sum(expected["malformed"].values())
    assert f"{bad_total} malformed records" in stderr
    # each entry says where the record was: distinct offsets that start a line of the file
    data = source_file.read_bytes()
    offsets = [q["position"]["offset"] for q in quarantined]
    assert len(set(offsets)) == bad_total
    assert all(o == 0 or data[o - 1:o] == b"\n" for o in offsets)
    for entry in quarantined:
        head = base64.b64decode(entry["head_b64"])
        assert data[entry["position"]["offset"]:].startswith(head)
        assert entry["size"] >= len(head) and entry["source"].startswith("ingest0")
    mode = stat.S_IMODE((tmp_path / "state" / "quarantine.jsonl").stat().st_mode)
    assert mode == 0o600


def test_evtx_corpus_through_dry_run(tmp_path: Path) -> None:
    expected = _expected("evtx")
    good = sorted(REGRESSION.rglob("*.evtx"))[:2]
    if len(good) < 2:
        pytest.skip("SigmaHQ regression samples not found")
    files = [good[0], *(HOSTILE / "evtx" / name for name in expected["files"]), good[1]]
    events, stderr = _dry_run(tmp_path, files, "evtx")
    assert len(events) >= 2, stderr[-2000:]  # the good files around the bad ones
    quarantined = read_quarantine(tmp_path / "state" / "quarantine.jsonl")
    assert Counter(q["reason"] for q in quarantined) == expected["malformed"]
    assert {Path(q["position"]["file"]).name for q in quarantined} == set(expected["files"])


def test_syslog_frames_through_the_listener_parse_path(tmp_path: Path) -> None:
    """The frames as the network thread queues them; what the agent's thread makes of them."""
    expected = _expected("syslog")
    frames = [json.loads(line) for line in
              (HOSTILE / "syslog" / "frames.jsonl").read_text().splitlines()]
    quarantine = Quarantine(tmp_path / "quarantine.jsonl")
    ctx = Context("750712184", "chu-test-01", quarantine=quarantine)
    server = SyslogServer("net", "udp", "127.0.0.1", 0, ctx)
    for index, frame in enumerate(frames):
        server.offer_datagram(base64.b64decode(frame["frame_b64"]), f"10.0.0.{index}:514")
    docs = SyslogSource(server).poll(1000)
    assert len(docs) == expected["good"]
    quarantine.close()
    quarantined = read_quarantine(tmp_path / "quarantine.jsonl")
    assert Counter(q["reason"] for q in quarantined) == expected["malformed"]
    bad_peers = {f"10.0.0.{i}:514" for i, f in enumerate(frames) if f["reason"]}
    assert {q["position"]["peer"] for q in quarantined} == bad_peers
    assert all(datetime.fromisoformat(q["time"]) <= datetime.now(UTC) for q in quarantined)
