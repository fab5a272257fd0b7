"""Starting and stopping Vigie's own processes (processor, sink) for the demo and the tests.

Each process connects as its own principal: ``vigie process`` with the processor's settings
file (``<home>/clients/processor.yaml``, written by ``vigie stack up``), ``vigie sink`` with
the sink's, ``vigie notify`` with the notifier's, so the demo and the tests run under the same
ACLs and roles as production. An explicit ``VIGIE_CONFIG`` (or ``--config``) still wins.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: What a Faust worker logs once it has joined its group and sought to its committed offsets.
PROCESSOR_READY = "[^Worker]: Ready"

#: The principal (client settings file) each long-running command connects as.
PRINCIPAL_OF_COMMAND = {"process": "processor", "sink": "sink", "notify": "notifier"}


def client_config(args: list[str], env: dict[str, str]) -> dict[str, str]:
    """``VIGIE_CONFIG`` naming the settings file of the principal that runs ``args``, when the
    local stack wrote one and nothing chose a file already."""
    role = PRINCIPAL_OF_COMMAND.get(args[0]) if args else None
    if role is None or env.get("VIGIE_CONFIG") or "--config" in args:
        return {}
    from runtime.settings import load_settings

    path = load_settings().home / "clients" / f"{role}.yaml"
    return {"VIGIE_CONFIG": str(path)} if path.is_file() else {}


class Service:
    """A ``vigie <command>`` child process with its log file; stopped with SIGTERM."""

    def __init__(self, name: str, args: list[str], log_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        merged = {**os.environ, **(env or {})}
        self.env = {**merged, **client_config(args, merged)}
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
