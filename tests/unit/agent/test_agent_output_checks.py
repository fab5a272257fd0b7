"""`vigie agent test output` names the step that fails: an untrusted broker certificate is a
configuration to fix (78), found at the TLS step, before any Kafka client is built."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers.agent.checks import check_output, exit_code
from producers.agent.config import AgentConfig
from tests.unit.agent.certs import issue, write_pem


@pytest.fixture()
def tls_server(tmp_path: Path) -> Iterator[int]:
    """A TLS endpoint whose certificate the hospital's CA did not sign."""
    ca_cert, ca_key = issue("broker-ca", None, None, ca=True)
    write_pem(tmp_path / "broker-ca", ca_cert, ca_key)
    cert, key = issue("localhost", ca_cert.subject, ca_key)
    write_pem(tmp_path / "broker", cert, key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(tmp_path / "broker.pem"), str(tmp_path / "broker.key"))
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def config(tmp_path: Path, port: int, cafile: Path) -> AgentConfig:
    return AgentConfig.model_validate({
        "establishment": {"id": "750712184", "name": "CHU", "type": "university_hospital",
                          "region": "ile-de-france"},
        "agent_id": "chu-test-01", "key_path": str(tmp_path / "agent.key"),
        "kafka": {"bootstrap": f"localhost:{port}", "security_protocol": "SSL",
                  "ssl_cafile": str(cafile)}})


def test_an_untrusted_broker_certificate_fails_the_tls_step(tmp_path: Path,
                                                            tls_server: int) -> None:
    other_ca, other_key = issue("hospital-ca", None, None, ca=True)
    write_pem(tmp_path / "other-ca", other_ca, other_key)
    checks = check_output(config(tmp_path, tls_server, tmp_path / "other-ca.pem"), timeout=3)
    assert [c.status for c in checks] == ["PASS", "FAIL", "SKIP", "SKIP", "SKIP"]
    assert "not trusted" in checks[1].detail and "ssl_cafile" in checks[1].detail
    assert exit_code(checks) == 78


def test_the_right_ca_passes_the_tls_step(tmp_path: Path, tls_server: int) -> None:
    checks = check_output(config(tmp_path, tls_server, tmp_path / "broker-ca.pem"),
                          timeout=2)
    assert checks[1].status == "PASS" and "CN=localhost trusted" in checks[1].detail
    assert checks[2].status == "FAIL"  # not a Kafka broker: no metadata
    assert exit_code(checks) == 69
