"""The syslog receiver over real sockets: UDP, TCP (both framings) and TLS with a self-signed
certificate; malformed frames are counted and the listener keeps serving."""

from __future__ import annotations

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

from producers.agent.pipeline import Finisher
from producers.agent.sources.base import Context
from producers.agent.sources.syslog import SyslogServer, SyslogSource
from schemas.event import SecurityEvent

GOOD_5424 = (b"<38>1 2025-03-10T11:00:00Z bastion sshd 77 - - Failed password for root "
             b"from 198.51.100.7 port 4000 ssh2")
GOOD_3164 = (b"<86>Mar 10 11:00:01 srv-dpi-01 sshd[12]: Accepted password for martin "
             b"from 10.0.0.5 port 5000 ssh2")


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def collect(source: SyslogSource, count: int, timeout: float = 10) -> list[dict]:
    docs: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(docs) < count and time.monotonic() < deadline:
        docs.extend(source.poll(100))
        time.sleep(0.02)
    return docs


def events(finisher: Finisher, docs: list[dict]) -> list[SecurityEvent]:
    return [SecurityEvent.model_validate_json(finisher.value(d)[1]) for d in docs]


@pytest.fixture()
def make(ctx: Context, tmp_path: Path):  # type: ignore[no-untyped-def]
    started: list[SyslogSource] = []

    def factory(protocol: str) -> SyslogSource:
        cert = key = None
        if protocol == "tls":
            cert, key = self_signed(tmp_path)
        source = SyslogSource(SyslogServer(f"syslog-{protocol}", protocol, "127.0.0.1", 0, ctx,
                                           certfile=cert, keyfile=key, max_frame=4096))
        source.start()
        started.append(source)
        return source

    yield factory
    for source in started:
        source.close()


def test_udp(make, ctx: Context, finisher: Finisher) -> None:  # type: ignore[no-untyped-def]
    source = make("udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for frame in (GOOD_5424, b"garbage without pri", GOOD_3164):
            sock.sendto(frame, ("127.0.0.1", source.server.bound_port))
    got = events(finisher, collect(source, 2))
    assert [e.event.outcome for e in got] == ["failure", "success"]
    assert str(got[0].source.ip) == "198.51.100.7" and got[1].user.name == "martin"
    time.sleep(0.2)
    source.poll(10)
    assert ctx.malformed[("syslog-udp", "missing_pri")] == 1
    assert len({e.event.id for e in got}) == 2


def _stream(source: SyslogSource, payload: bytes, tls: bool = False) -> None:
    raw = socket.create_connection(("127.0.0.1", source.server.bound_port))
    sock: socket.socket = raw
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(raw, server_hostname="localhost")
    sock.sendall(payload)
    sock.close()


@pytest.mark.parametrize("protocol", ["tcp", "tls"])
def test_stream_framings_and_recovery(make, ctx: Context, finisher: Finisher,  # type: ignore[no-untyped-def]
                                      protocol: str) -> None:
    source = make(protocol)
    tls = protocol == "tls"
    # octet-counted and newline frames mixed on one connection, plus a bad message
    counted = b"%d %s" % (len(GOOD_5424), GOOD_5424)
    _stream(source, counted + GOOD_3164 + b"\n" + b"<13>not a date x\n" + counted, tls)
    # a connection with an impossible octet count is closed...
    _stream(source, b"99999999 " + GOOD_5424, tls)
    # ...and the listener keeps serving the next one
    _stream(source, GOOD_3164 + b"\n", tls)
    got = events(finisher, collect(source, 4))
    assert len(got) == 4
    assert [e.host.name for e in got].count("bastion") == 2
    assert [e.host.name for e in got].count("srv-dpi-01") == 2
    assert ctx.malformed[(f"syslog-{protocol}", "bad_timestamp")] == 1
    assert ctx.malformed[(f"syslog-{protocol}", "bad_octet_count")] == 1
