"""Syslog over TLS with client certificates, and listeners bound to this host by default."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from producers.agent.config import SyslogSourceConfig
from producers.agent.sources.base import Context
from producers.agent.sources.syslog import SyslogServer, SyslogSource

FRAME = b"<86>Mar 10 11:00:01 srv-dpi-01 sshd[12]: Accepted password for martin from 10.0.0.5"


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def _issue(name: str, issuer: x509.Name | None, signer: ec.EllipticCurvePrivateKey | None,
           ca: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer or subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]),
                                        critical=False)
    return builder.sign(signer or key, hashes.SHA256()), key


@pytest.fixture()
def pki(tmp_path: Path) -> Path:
    ca_cert, ca_key = _issue("hospital-ca", None, None, ca=True)
    _write(tmp_path / "ca", ca_cert, ca_key)
    for name in ("localhost", "firewall-01"):
        cert, key = _issue(name, ca_cert.subject, ca_key)
        _write(tmp_path / name, cert, key)
    rogue_ca, rogue_key = _issue("rogue-ca", None, None, ca=True)
    cert, key = _issue("rogue", rogue_ca.subject, rogue_key)
    _write(tmp_path / "rogue", cert, key)
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
