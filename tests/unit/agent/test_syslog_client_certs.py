"""Syslog over TLS with client certificates, and listeners bound to this host by default."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from pathlib import Path

import pytest

from producers.agent.config import SyslogSourceConfig
from producers.agent.sources.base import Context
from producers.agent.sources.syslog import SyslogServer, SyslogSource
from tests.unit.agent.certs import issue, write_pem

FRAME = b"<86>Mar 10 11:00:01 srv-dpi-01 sshd[12]: Accepted password for martin from 10.0.0.5"


@pytest.fixture()
def pki(tmp_path: Path) -> Path:
    ca_cert, ca_key = issue("hospital-ca", None, None, ca=True)
    write_pem(tmp_path / "ca", ca_cert, ca_key)
    for name in ("localhost", "firewall-01"):
        cert, key = issue(name, ca_cert.subject, ca_key)
        write_pem(tmp_path / name, cert, key)
    rogue_ca, rogue_key = issue("rogue-ca", None, None, ca=True)
    cert, key = issue("rogue", rogue_ca.subject, rogue_key)
    write_pem(tmp_path / "rogue", cert, key)
    return tmp_path


def _send(port: int, pki: Path, client: str | None) -> None:
    """Send one frame (a refused handshake may show at either end: both are fine here)."""
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if client is not None:
        context.load_cert_chain(str(pki / f"{client}.pem"), str(pki / f"{client}.key"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(FRAME + b"\n")
            sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):  # TLS 1.3: a refusal comes after
                sock.recv(1)
    except (ssl.SSLError, ConnectionError):
        pass


def _received(source: SyslogSource, wait: float = 1.5) -> int:
    deadline, count = time.monotonic() + wait, 0
    while time.monotonic() < deadline:
        count += len(source.poll(100))
        time.sleep(0.05)
    return count


@pytest.mark.parametrize("required", [True, False])
def test_client_certificates(pki: Path, ctx: Context, required: bool) -> None:
    source = SyslogSource(SyslogServer(
        "net", "tls", "127.0.0.1", 0, ctx, certfile=pki / "localhost.pem",
        keyfile=pki / "localhost.key", client_ca=pki / "ca.pem",
        require_client_cert=required))
    source.start()
    try:
        port = source.server.bound_port
        assert port is not None
        _send(port, pki, "firewall-01")
        assert _received(source) == 1  # a certificate the hospital's CA signed
        _send(port, pki, "rogue")
        assert _received(source) == 0  # signed by someone else: always refused
        _send(port, pki, None)
        assert _received(source) == (0 if required else 1)
    finally:
        source.close()


def test_listeners_bind_this_host_by_default() -> None:
    sc = SyslogSourceConfig(type="syslog", name="net")
    assert sc.host == "127.0.0.1"


def test_client_certificate_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="tls_client_ca"):
        SyslogSourceConfig(type="syslog", name="net", protocol="tls", tls_cert=Path("c.pem"),
                           require_client_cert=True)
    with pytest.raises(ValueError, match="protocol is udp"):
        SyslogSourceConfig(type="syslog", name="net", tls_client_ca=Path("ca.pem"))
