"""Starting and stopping Vigie's own processes (processor, sink) for the demo and the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: What a Faust worker logs once it has joined its group and sought to its committed offsets.
PROCESSOR_READY = "[^Worker]: Ready"


class Service:
    """A ``vigie <command>`` child process with its log file; stopped with SIGTERM."""

    def __init__(self, name: str, args: list[str], log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vigie.cli", *self.args],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a crash or the OOM killer does (reliability drills)."""
        if self.proc and self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM, wait for the graceful exit, SIGKILL past ``grace`` seconds."""
        if self.proc is None:
            return None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def wait_for_log(self, text: str, timeout: float = 180.0) -> bool:
        """Wait until ``text`` appears in the log (e.g. Faust's "Worker]: Ready"); False if the
        process died or the time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.tail(400):
                return True
            if not self.alive:
                return False
            time.sleep(0.5)
        return False

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
