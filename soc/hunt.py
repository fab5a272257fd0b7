"""Plain functions behind the ``vigie`` CLI's detection commands (the CLI owns the parsing).

``check_rules`` says what a rule set gives the engine; ``detect`` runs files of Windows
events through it and prints one JSON line per detection.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from processors.detection.engine import Engine, EngineReport
from processors.detection.loader import default_rule_dirs, load_rules
from producers.windows import read_events

PathLike = str | Path


def _rule_dirs(dirs: Iterable[PathLike] | None) -> list[Path]:
    chosen = [Path(d) for d in dirs] if dirs else default_rule_dirs()
    if not chosen:
        raise FileNotFoundError("no rule folder given and none found under ../shared/data/sigma")
    return chosen


def build_engine(rule_dirs: Iterable[PathLike] | None = None) -> Engine:
    return Engine.from_rule_set(load_rules(_rule_dirs(rule_dirs)))


def check_rules(dirs: Iterable[PathLike] | None = None) -> dict[str, Any]:
    """How many rules load, how many are skipped, by reason, and each skipped file + reason."""
    report: EngineReport = build_engine(dirs).report()
    return {"rule_dirs": [str(d) for d in _rule_dirs(dirs)], **report.to_dict()}


def detect(
    rule_dirs: Iterable[PathLike] | None,
    files: Iterable[PathLike],
    out: TextIO,
    *,
    engine: Engine | None = None,
    errors: TextIO | None = None,
) -> int:
    """Evaluate every record of ``files``; one JSON line per detection on ``out``.

    Unreadable records are reported on ``errors`` (stderr by default) with file, record and
    reason, and the run goes on. Returns the number of detections printed.
    """
    engine = engine or build_engine(rule_dirs)
    errors = errors or sys.stderr
    printed = 0
    for file in files:
        path = Path(file)

        def on_error(index: int, reason: str, path: Path = path) -> None:
            errors.write(json.dumps({"file": str(path), "record": index, "error": reason}) + "\n")

        for index, event in read_events(path, on_error=on_error):
            for match in engine.evaluate(event):
                line = {
                    **match.to_dict(),
                    "file": str(path),
                    "record": index,
                    "record_id": event["winlog"].get("record_id"),
                    "channel": event["winlog"].get("channel"),
                    "event_id": event["winlog"].get("event_id"),
                    "@timestamp": event.get("@timestamp"),
                }
                out.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
                printed += 1
    return printed
