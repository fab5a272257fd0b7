"""Process bookkeeping on Linux ``/proc``: is a pid ours, which processes belong to a service,
who holds a port, and stopping a whole process tree.

Every server we start gets an environment marker (``VIGIE_STACK=<service>@<state dir>``) that
its children inherit (Elasticsearch's launcher forks the server JVM). ``down`` trusts a pid
only if both its command line looks like the service and the marker is present, so a recycled
pid or another checkout's stack is never killed, and it sweeps every marked process so nothing
is left behind even if a pid file was lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path

MARKER_VAR = "VIGIE_STACK"


def marker(service: str, state: Path) -> str:
    """The marker value for ``service`` run from the state directory ``state``."""
    return f"{service}@{state}"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:  # gone, or not ours to read
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state is index 0)."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    return raw[raw.rfind(b")") + 2:].decode().split()


def alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (a dead child nobody has reaped yet)."""
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if fields[0] in ("Z", "X"):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
        return False
    return True


def cmdline(pid: int) -> str:
    """The command line of ``pid`` joined by spaces ('' if unreadable)."""
    raw = _read(f"/proc/{pid}/cmdline")
    return raw.replace(b"\0", b" ").decode(errors="replace").strip() if raw else ""


def environ_has(pid: int, var: str, value: str) -> bool:
    """True if ``pid``'s environment holds ``var=value``."""
    raw = _read(f"/proc/{pid}/environ")
    return raw is not None and f"{var}={value}".encode() in raw.split(b"\0")


def session_id(pid: int) -> int | None:
    """The session id of ``pid`` (``start_new_session`` makes it equal to the leader's pid)."""
    fields = _stat_fields(pid)
    return int(fields[3]) if fields else None


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def marked_pids(mark: str) -> list[int]:
    """Live processes carrying ``VIGIE_STACK=<mark>``, oldest (lowest start time) first."""
    found = [pid for pid in all_pids() if environ_has(pid, MARKER_VAR, mark) and alive(pid)]

    def start_time(pid: int) -> int:
        fields = _stat_fields(pid)
        return int(fields[19]) if fields else 0

    return sorted(found, key=start_time)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_owner(port: int) -> str:
    """'pid N: cmdline' of whoever listens on ``port``, or '' if it cannot be told.

    Reads the listening sockets from ``/proc/net/tcp{,6}`` and finds the process holding the
    inode; other users' processes are only visible to root, hence the best-effort answer.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        raw = _read(table)
        for line in (raw or b"").decode().splitlines()[1:]:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return ""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in all_pids():
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                        cmd = cmdline(pid)
                        # The end of a JVM command line (main class, config) says what it is.
                        return f"pid {pid}: {cmd if len(cmd) <= 200 else '…' + cmd[-200:]}"
    return ""


def tail(path: Path, lines: int = 20, since: int = 0) -> str:
    """The last ``lines`` lines of ``path`` written after byte offset ``since`` ('' if
    missing); reads only the end of big logs."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if since > size:  # rotated or truncated since: everything is new
                since = 0
            fh.seek(max(since, size - 256 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


_PROBLEM = re.compile(r"\b(ERROR|FATAL|SEVERE)\b|Exception\b|^Caused by:|^Error:")


def problems(path: Path, lines: int = 20, since: int = 0) -> str:
    """The last ``lines`` error lines of a log (levels ERROR/FATAL, exceptions, causes),
    or its plain tail if none: a stack trace's frames bury the one line that says why."""
    text = tail(path, 2000, since)
    hits = [line for line in text.splitlines() if _PROBLEM.search(line.strip())]
    return "\n".join(hits[-lines:]) if hits else "\n".join(text.splitlines()[-lines:])


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; returns those still alive at the deadline."""
    pending = list(pids)
    deadline = time.monotonic() + timeout
    while True:
        pending = [pid for pid in pending if alive(pid)]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.2)
