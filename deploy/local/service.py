"""What Kafka and Elasticsearch have in common: a pid file, a marker, ports, a probe, a log.

A :class:`Service` knows how to prepare its launch (fetch, configure, pick a JDK), start it
detached, tell whether a pid is really its own, and describe itself as a
:class:`ServiceStatus`. Orchestration across services (waiting for both, stopping both at once)
lives in :mod:`deploy.local.stack`.
"""

from __future__ import annotations

import os
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from deploy.local import procs
from deploy.local.errors import StackError
from deploy.local.fetch import Progress
from deploy.local.layout import Layout


@dataclass
class ServiceStatus:
    """One server of the local stack, as ``vigie stack status`` shows it.

    ``running``: a live process of ours (pid file and marker agree); ``answering``: it serves
    requests (Kafka metadata, Elasticsearch cluster health yellow/green). A server can be
    running without answering while it starts or if it is wedged: read ``log`` then.
    """

    name: str
    version: str
    url: str
    pid: int | None
    running: bool
    answering: bool
    log: Path
    detail: str = ""


@dataclass
class Launch:
    """How to start a server: argv, environment, working directory and (as root) its user."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    user: int | None = None
    group: int | None = None


# Popen objects of the servers this Python process started. Keeping them referenced avoids
# "subprocess still running" ResourceWarnings when they would otherwise be garbage-collected,
# and lets ``poll()`` report an early exit code.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class Service(ABC):
    """Base class of the two local servers."""

    key: ClassVar[str]  # file names and marker: "kafka", "elasticsearch"
    name: ClassVar[str]  # shown to humans
    version: ClassVar[str]

    @property
    @abstractmethod
    def url(self) -> str:
        """Where clients reach it (shown by ``vigie stack status``)."""

    @property
    @abstractmethod
    def ports(self) -> tuple[int, ...]:
        """The ports it listens on (``StackSettings``), checked free before a start."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        # Size of the server log when we started it: failure() reports only this run's lines.
        self._log_offset = 0

    # --- paths -----------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """This service's state directory: ``data/``, ``logs/``, ``config/``."""
        return self.layout.state / self.key

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def pid_file(self) -> Path:
        return self.layout.run / f"{self.key}.pid"

    @property
    @abstractmethod
    def log(self) -> Path:
        """The server's own log, the first file to read when something is wrong."""

    @property
    def out_log(self) -> Path:
        """stdout/stderr of the process: JVM errors printed before logging starts."""
        return self.logs_dir / f"{self.key}.out"

    @property
    def mark(self) -> str:
        return procs.marker(self.key, self.layout.state)

    # --- to implement ----------------------------------------------------------------------
    @abstractmethod
    def looks_like(self, cmdline: str) -> bool:
        """True if ``cmdline`` is one of this server's processes."""

    @abstractmethod
    def prepare(self, progress: Progress) -> Launch:
        """Fetch what is missing, render configuration, and say how to start."""

    @abstractmethod
    def probe(self) -> bool:
        """True if the server answers requests right now (quick, never raises)."""

    def restart_reason(self) -> str | None:
        """Why a server that runs and answers should be restarted to get what ``prepare``
        would give it now (None: nothing). ``up`` says so; it never restarts a running server
        itself, since clients may be using it."""
        return None

    # --- processes -------------------------------------------------------------------------
    def is_ours(self, pid: int) -> bool:
        """``pid`` is alive, looks like this server and carries this checkout's marker."""
        return (
            procs.alive(pid)
            and self.looks_like(procs.cmdline(pid))
            and procs.environ_has(pid, procs.MARKER_VAR, self.mark)
        )

    def pid(self) -> int | None:
        """The leader pid of our running server, or None.

        Trusts the pid file only after :meth:`is_ours`; if the pid file is stale or lost but a
        marked session leader exists (e.g. ``.vigie/run`` was wiped), adopts it again.
        """
        pid = procs.read_pid(self.pid_file)
        if pid is not None and self.is_ours(pid):
            return pid
        for candidate in procs.marked_pids(self.mark):
            if procs.session_id(candidate) == candidate and self.is_ours(candidate):
                procs.write_pid(self.pid_file, candidate)
                return candidate
        if pid is not None:
            self.pid_file.unlink(missing_ok=True)
        return None

    def check_ports(self) -> None:
        """Refuse to start when another program already holds one of our ports."""
        for port in self.ports:
            if procs.port_in_use(port):
                owner = procs.port_owner(port) or "owner unknown (run as root to see it)"
                raise StackError(
                    f"cannot start {self.name}: port {port} is already taken by something "
                    f"vigie did not start ({owner}). Stop it, then retry; "
                    f"{self.name}'s log would be {self.log}"
                )

    def start(self, progress: Progress) -> int:
        """Start the server detached (own session, output to :attr:`out_log`); returns pid."""
        self.check_ports()  # before any fetch or format: fail fast, change nothing
        launch = self.prepare(progress)
        self.check_ports()  # again: a fetch can take a minute
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        env = {**launch.env, procs.MARKER_VAR: self.mark}
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        if self.out_log.exists():  # keep the previous run's output, but out of the way
            self.out_log.replace(self.out_log.with_name(self.out_log.name + ".1"))
        with self.out_log.open("wb") as out:
            if launch.user is not None:
                os.chown(self.out_log, launch.user, launch.group or -1)
            try:
                proc = subprocess.Popen(
                    launch.argv, cwd=launch.cwd, env=env, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                    close_fds=True, user=launch.user, group=launch.group,
                    extra_groups=[] if launch.user is not None else None,
                )
            except OSError as exc:
                raise StackError(f"cannot start {self.name} ({launch.argv[0]}): {exc}") from exc
        _CHILDREN[proc.pid] = proc
        procs.write_pid(self.pid_file, proc.pid)
        return proc.pid

    def exit_code(self, pid: int) -> int | None:
        """Exit code of a server this process started and that has exited, else None."""
        proc = _CHILDREN.get(pid)
        return proc.poll() if proc is not None else None

    def forget(self, pid: int) -> None:
        """Drop our handle on a finished child (reaping it)."""
        proc = _CHILDREN.pop(pid, None)
        if proc is not None:
            proc.poll()

    def failure(self, what: str) -> StackError:
        """A StackError for ``what``, with the tail of both logs and where to read more."""
        parts = [f"{self.name} {what}. Read {self.log}"]
        for path, since in ((self.out_log, 0), (self.log, self._log_offset)):
            text = procs.problems(path, 20, since)
            if text.strip():
                parts.append(f"--- from {path} ---\n{text}")
        return StackError("\n".join(parts))

    def status(self, detail: str = "") -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(
            name=self.name, version=self.version, url=self.url, pid=pid,
            running=pid is not None, answering=pid is not None and self.probe(),
            log=self.log, detail=detail,
        )
