"""Reload the Sigma rules on SIGHUP, without a restart and without losing state.

Detection engineers ship rule changes often; restarting the processor would pause the stream
and replay a window of records. On SIGHUP a background thread compiles the configured rule
folders again and swaps the engine in one assignment, so events see either the old rule set
or the new one, never half of each. Faust tables (incidents, correlation windows) are not
touched. A rule set that fails to load is logged and the current one stays. Correlation
rules are read at start only: changing them needs a restart (their windows survive it).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from processors.classify import SigmaClassifier
from processors.detection.engine import Engine

log = logging.getLogger(__name__)


def install_rule_reload(classifier: SigmaClassifier, rule_dirs: list[Path] | None) -> None:
    """Make SIGHUP rebuild ``classifier.engine`` from ``rule_dirs`` (None: the defaults)."""
    busy = threading.Lock()

    def rebuild() -> None:
        if not busy.acquire(blocking=False):
            log.warning("SIGHUP ignored: a rule reload is already running")
            return
        try:
            began = time.monotonic()
            engine = Engine.from_paths(rule_dirs)
            report = engine.report()
            classifier.engine = engine
            log.info("Sigma rules reloaded: %d rules compiled, %d skipped, %.1f s",
                     report.rules_loaded, len(report.skipped), time.monotonic() - began)
        except Exception:
            log.exception("Sigma rule reload failed; the previous rules stay in force")
        finally:
            busy.release()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=rebuild, name="sigma-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, on_hup)
