"""The local stack: real Kafka and Elasticsearch on this machine, without containers.

Public API (used by ``vigie stack up|down|status`` and by the integration tests)::

    up(timeout=180) -> list[ServiceStatus]    # start what is not running, wait until it answers
    down(grace=30) -> list[str]               # stop what up() started, leave nothing behind
    status() -> list[ServiceStatus]           # what runs, what answers, where the logs are

Both servers start in the background in their own session (they outlive the caller), write
their pid to ``$VIGIE_HOME/run/<service>.pid`` and carry an environment marker, so ``down``
and ``status`` work from any later process and never touch a process that is not ours.
``up`` and ``down`` hold a lock file so two callers (a test session and a shell) cannot race.
"""

from __future__ import annotations

import contextlib
import fcntl
import signal
import sys
import time
from collections.abc import Callable, Iterator

from deploy.local import procs
from deploy.local.credentials import LocalSecurity, local_security
from deploy.local.elasticsearch import Elasticsearch
from deploy.local.errors import StackError
from deploy.local.kafka import Kafka
from deploy.local.layout import Layout
from deploy.local.provision import provision
from deploy.local.service import Service, ServiceStatus
from deploy.security import elasticsearch_roles, kafka_acls

__all__ = [
    "ServiceStatus",
    "StackError",
    "down",
    "security",
    "services",
    "status",
    "up",
]

Progress = Callable[[str], None]


def _stderr(message: str) -> None:
    """Default progress sink: stderr, so stdout stays clean for ``status --json`` style use."""
    print(message, file=sys.stderr, flush=True)


def services(layout: Layout | None = None) -> list[Service]:
    """The servers of the stack, Elasticsearch first because it is the slower to start."""
    layout = layout or Layout.default()
    return [Elasticsearch(layout), Kafka(layout)]


def security(layout: Layout | None = None) -> LocalSecurity:
    """Addresses, CA and generated credentials of this home's stack (what the tests use to
    connect as a given principal)."""
    return local_security((layout or Layout.default()).state)


def _refuse_plaintext(svc: Service) -> None:
    """A server of ours still running with the configuration of the plaintext stack (before
    security was on by default) would never answer our authenticated probe: say so."""
    rendered = (svc.config_dir / ("server.properties" if svc.key == "kafka"
                                  else "elasticsearch.yml"))
    try:
        text = rendered.read_text()
    except OSError:
        return
    if "StandardAuthorizer" not in text and "xpack.security.enabled: true" not in text:
        raise StackError(f"{svc.name} runs with the old plaintext configuration ({rendered}); "
                         f"restart it secured: `vigie stack down` then `vigie stack up`")


def _declarations_changed(local: LocalSecurity) -> bool:
    """True when the clients' settings file is missing or older than what it derives from
    (the ACL and role declarations): a running stack is then provisioned again."""
    try:
        written = local.settings_file.stat().st_mtime
    except OSError:
        return True
    sources = (kafka_acls.DECLARATION, elasticsearch_roles.DECLARATION, local.passwords_file)
    return any(not path.exists() or path.stat().st_mtime > written for path in sources)


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """Serialise up/down across processes (advisory lock on ``run/stack.lock``)."""
    layout.run.mkdir(parents=True, exist_ok=True)
    with (layout.run / "stack.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def up(timeout: float = 180, *, progress: Progress = _stderr) -> list[ServiceStatus]:
    """Make sure Kafka and Elasticsearch run and answer; start what is missing.

    Idempotent: servers already running and answering are left alone (a second call returns
    in well under a second). Artifacts are fetched from Maven Central on first use. Returns
    once both answer; raises StackError (naming the log to read) if a server cannot start,
    exits early, or does not answer within ``timeout`` seconds of being launched (download
    time is not counted; a server that misses the deadline is left running so its state can be
    inspected, and ``down()`` stops it). Once both answer, users, ACLs, topics, index
    templates and the clients' settings files are applied (:mod:`deploy.local.provision`).
    A running stack is provisioned again only when those declarations changed since.
    A running server that lacks what a start would now give it (Elasticsearch without the
    current ``vigie-analysis`` plugin, hence without API keys) is left running, with a warning
    naming the two commands that restart it: other processes may be using it.
    ``progress`` receives one-line messages ("fetching
    Kafka 4.4.0 from Maven Central…"); the default prints them to stderr.
    """
    layout = Layout.default()
    with _locked(layout):
        started: dict[str, float] = {}
        pending: dict[Service, int] = {}
        for svc in services(layout):
            pid = svc.pid()
            if pid is not None:
                _refuse_plaintext(svc)
                if not svc.probe():
                    pending[svc] = pid  # still starting (or wedged): wait for it below
                continue
            t0 = time.monotonic()
            progress(f"starting {svc.name} {svc.version}…")
            pending[svc] = svc.start(progress)
            started[svc.key] = t0
        deadline = time.monotonic() + timeout
        done: dict[str, float] = {}
        while pending:
            for svc, pid in list(pending.items()):
                code = svc.exit_code(pid)  # before is_ours(), which may reap the zombie
                if code is not None or not svc.is_ours(pid):
                    svc.forget(pid)
                    svc.pid_file.unlink(missing_ok=True)
                    how = f" with code {code}" if code is not None else ""
                    raise svc.failure(f"exited during start-up{how}")
                if svc.probe():
                    del pending[svc]
                    if svc.key in started:
                        done[svc.key] = time.monotonic() - started[svc.key]
                        progress(f"{svc.name} answers on {svc.url} "
                                 f"({done[svc.key]:.1f} s)")
            if pending and time.monotonic() > deadline:
                names = ", ".join(f"{s.name} (pid {p})" for s, p in pending.items())
                svc = next(iter(pending))
                raise svc.failure(
                    f"did not answer within {timeout:.0f} s; still running: {names}, "
                    f"stop with `vigie stack down`"
                )
            if pending:
                time.sleep(0.5)
        for svc in services(layout):
            if svc.key not in started and (reason := svc.restart_reason()):
                progress(f"warning: {svc.name} (pid {svc.pid()}) runs, but {reason}; restart "
                         f"it to fix that: `vigie stack down` then `vigie stack up`")
        local = security(layout)
        if started or _declarations_changed(local):
            provision(local, Elasticsearch(layout).config_dir)
        return [
            svc.status(f"started in {done[svc.key]:.1f} s" if svc.key in done
                       else "already running")
            for svc in services(layout)
        ]


def down(grace: float = 30) -> list[str]:
    """Stop the servers ``up`` started; returns one line per server saying what happened.

    Each server's session leader gets SIGTERM (Kafka shuts down cleanly, Elasticsearch's
    launcher stops its server JVM); whatever of ours is still alive after ``grace`` seconds
    gets SIGKILL. Returns only once no process carrying our marker is left, so ports are free
    for the next ``up``. Processes of other checkouts or programs are never signalled.
    """
    layout = Layout.default()
    with _locked(layout):
        plan: list[tuple[Service, int | None, list[int]]] = []
        for svc in services(layout):
            leader = svc.pid()
            members = procs.marked_pids(svc.mark)
            if leader is not None:
                procs.signal_all([leader], signal.SIGTERM)
            else:
                procs.signal_all(members, signal.SIGTERM)  # orphans of a lost pid file
            plan.append((svc, leader, members))
        t0 = time.monotonic()
        everyone = sorted({pid for _, leader, members in plan
                           for pid in ([leader] if leader else []) + members})
        survivors = procs.wait_gone(everyone, grace)
        killed = set(survivors)
        if survivors:
            procs.signal_all(survivors, signal.SIGKILL)
            survivors = procs.wait_gone(survivors, 15)
        messages: list[str] = []
        for svc, leader, members in plan:
            # Late children (forked while we waited) carry the marker too: sweep them.
            stray = procs.marked_pids(svc.mark)
            if stray:
                procs.signal_all(stray, signal.SIGKILL)
                procs.wait_gone(stray, 15)
            left = procs.marked_pids(svc.mark)
            if left:
                raise StackError(f"could not stop {svc.name}: pids {left} survive SIGKILL; "
                                 f"see {svc.log}")
            for pid in [leader, *members]:
                if pid is not None:
                    svc.forget(pid)
            svc.pid_file.unlink(missing_ok=True)
            if leader is None and not members:
                messages.append(f"{svc.name} was not running")
                continue
            how = "killed" if killed & {leader, *members} else "stopped"
            messages.append(f"{svc.name} {how} (pid {leader or members[0]}) "
                            f"after {time.monotonic() - t0:.1f} s")
        return messages


def status() -> list[ServiceStatus]:
    """What runs and answers, without changing anything (cheap: two local probes)."""
    result = []
    for svc in services():
        st = svc.status()
        if not st.running and procs.port_in_use(svc.ports[0]):
            st.detail = f"port {svc.ports[0]} is held by a program this checkout did not start"
        result.append(st)
    return result
