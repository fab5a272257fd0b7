"""The national enrolment service: ``POST /api/v1/enrol`` over HTTPS, nothing else.

An agent presents a one-time token (:mod:`deploy.security.enrolment_tokens`) with its new
public key; the service claims the token, enrols the key under the token's agent id and
establishment with :func:`deploy.security.agent_credentials.enrol_with_credential` (registry
entry, SCRAM credential, ACLs), marks the token used and answers with the agent's Kafka client
block. Answers: 200 enrolled; 400 malformed JSON or fields; 401 unknown, expired or used
token (the reason says which); 404/405 anything but the endpoint; 409 the registry refuses
(key or id enrolled already); 411/413 no or too large a body; 429 too many attempts from one
address; 503 Kafka failed (the token is given back).

Why the standard library (``http.server`` + ``ssl``) rather than a framework: the venv has
no ASGI stack (aiohttp is there only as Faust's), the enrolment is blocking librdkafka admin
work that fits a thread per request, and the handler is small; the portal will bring a
framework. Each connection's TLS handshake happens in its own thread with a socket timeout,
so a silent client holds one thread for a few seconds, never the listener.

Logs: one line per attempt with the client address, the outcome, the agent id, and the first
12 hex digits of the token's hash; never the token, the key's secret half (it never comes
here) nor the password.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from deploy.security import enrolment_tokens as tokens
from runtime.agents_registry import AgentsRegistryError
from runtime.errors import ServiceUnavailable
from schemas.enrolment_api import (
    ENROL_PATH,
    MAX_REQUEST_BYTES,
    EnrolmentToken,
    EnrolRequest,
    EnrolResponse,
    KafkaClientBlock,
)

log = logging.getLogger("vigie.enrolment")

#: Enrol the public key for the claimed token: returns the agent's Kafka block.
Enroller = Callable[[EnrolmentToken, str], KafkaClientBlock]

#: Seconds a connection may stay silent (handshake, headers, body) before it is dropped.
SOCKET_TIMEOUT_S = 10.0
#: A too large body up to this size is read and discarded before the 413 (a client that is
#: still sending would otherwise see a reset instead of the answer); beyond, the connection
#: is closed unread.
DRAIN_BYTES = 1 << 20


@dataclass
class RateLimiter:
    """At most ``limit`` attempts per ``window_s`` seconds from one client address."""

    limit: int = 10
    window_s: float = 60.0
    _seen: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, client: str, now: float | None = None) -> bool:
        at = time.monotonic() if now is None else now
        with self._lock:
            if len(self._seen) > 10_000:  # forget idle addresses: memory stays bounded
                self._seen = {k: v for k, v in self._seen.items()
                              if v and v[-1] > at - self.window_s}
            attempts = self._seen.setdefault(client, deque())
            while attempts and attempts[0] <= at - self.window_s:
                attempts.popleft()
            if len(attempts) >= self.limit:
                return False
            attempts.append(at)
            return True


@dataclass(frozen=True)
class Answer:
    """An HTTP status and its JSON body."""

    status: HTTPStatus
    body: dict[str, Any]

    @classmethod
    def refusal(cls, status: HTTPStatus, error: str, reason: str) -> Answer:
        return cls(status, {"error": error, "reason": reason})


class EnrolmentService:
    """The endpoint's logic, without HTTP: a body and a client address in, an answer out."""

    def __init__(self, store: tokens.TokenStore, enroller: Enroller,
                 limiter: RateLimiter | None = None) -> None:
        self.store = store
        self.enroller = enroller
        self.limiter = limiter or RateLimiter()

    def enrol(self, body: bytes, client: str) -> Answer:
        if not self.limiter.allow(client):
            log.warning("enrolment from %s refused: too many attempts", client)
            return Answer.refusal(HTTPStatus.TOO_MANY_REQUESTS, "rate_limited",
                                  "too many attempts from this address; wait a minute")
        try:
            request = EnrolRequest.model_validate_json(body)
        except ValidationError as exc:
            where = ", ".join(".".join(str(p) for p in e["loc"]) or "body"
                              for e in exc.errors()[:3])
            log.warning("enrolment from %s refused: malformed request (%s)", client, where)
            return Answer.refusal(HTTPStatus.BAD_REQUEST, "malformed",
                                  f"not a valid enrolment request ({where})")
        presented = tokens.token_hash(request.token)[:12]
        try:
            claimed = tokens.claim(self.store, request.token, client=client)
        except tokens.TokenRefused as refused:
            log.warning("enrolment from %s refused: %s (token %s)", client, refused.reason,
                        presented)
            return Answer.refusal(HTTPStatus.UNAUTHORIZED, "invalid_token", refused.reason)
        except ServiceUnavailable as exc:
            log.error("enrolment from %s failed: %s", client, exc)
            return Answer.refusal(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable",
                                  "the national platform cannot check tokens now; retry later")
        try:
            block = self.enroller(claimed, request.public_key)
        except AgentsRegistryError as exc:
            tokens.release(self.store, claimed)
            log.warning("enrolment of %s from %s refused by the registry: %s",
                        claimed.agent_id, client, exc.message)
            return Answer.refusal(HTTPStatus.CONFLICT, "refused", exc.message)
        except Exception as exc:
            tokens.release(self.store, claimed)
            log.error("enrolment of %s from %s failed: %s", claimed.agent_id, client,
                      exc.__class__.__name__ + (f": {exc}" if str(exc) else ""))
            return Answer.refusal(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable",
                                  "enrolment failed on the national side; the token is still "
                                  "valid, retry later")
        tokens.complete(self.store, claimed)
        log.info("enrolled %s for %s from %s (agent %s, token %s)", claimed.agent_id,
                 claimed.establishment_id, client, request.agent_version, presented)
        response = EnrolResponse(agent_id=claimed.agent_id,
                                 establishment_id=claimed.establishment_id, kafka=block)
        return Answer(HTTPStatus.OK, response.model_dump(mode="json"))


def kafka_enroller(kafka: Any, *, actor: str, agent_bootstrap: str | None = None,
                   agent_ca_pem: str | None = None) -> Enroller:
    """The real enrolment: the live registry, the agent's SCRAM credential and ACLs.

    ``kafka`` is the national (admin) connection. The credential file that
    :func:`enrol_with_credential` writes goes to a private temporary directory and is read
    back and deleted at once: the password leaves only in the HTTPS answer.
    """
    from deploy.security.agent_credentials import enrol_with_credential
    from runtime.agents_store import TopicStore

    store = TopicStore(kafka)
    ca_pem = agent_ca_pem
    if ca_pem is None and kafka.ssl_cafile is not None:
        ca_pem = Path(kafka.ssl_cafile).read_text(encoding="ascii")

    def enrol(claimed: EnrolmentToken, public_key: str) -> KafkaClientBlock:
        with tempfile.TemporaryDirectory(prefix="vigie-enrol-") as private:
            out = Path(private) / "agent.kafka.yaml"
            enrol_with_credential(store, kafka.admin(), kafka, claimed.agent_id,
                                  claimed.establishment_id, public_key, out, actor=actor,
                                  reason=f"enrolment by token {claimed.token_hash[:12]}",
                                  bootstrap=agent_bootstrap)
            written = yaml.safe_load(out.read_text(encoding="utf-8"))["kafka"]
        return KafkaClientBlock(
            bootstrap=written["bootstrap"], security_protocol=written["security_protocol"],
            sasl_mechanism=written["sasl_mechanism"], sasl_username=written["sasl_username"],
            sasl_password=written["sasl_password"],
            ssl_check_hostname=written.get("ssl_check_hostname", True), ca_pem=ca_pem)

    return enrol


class _Handler(BaseHTTPRequestHandler):
    server: EnrolmentHttpServer
    protocol_version = "HTTP/1.1"
    server_version = "vigie-enrolment"
    sys_version = ""

    def _answer(self, answer: Answer) -> None:
        data = json.dumps(answer.body).encode("utf-8")
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def do_POST(self) -> None:
        client = self.client_address[0]
        if self.path != ENROL_PATH:
            self._answer(Answer.refusal(HTTPStatus.NOT_FOUND, "not_found",
                                        f"the only endpoint is POST {ENROL_PATH}"))
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self._answer(Answer.refusal(HTTPStatus.LENGTH_REQUIRED, "length_required",
                                        "send the body with a Content-Length"))
            return
        length = int(length_header)
        if length > MAX_REQUEST_BYTES:
            log.warning("enrolment from %s refused: body of %d bytes", client, length)
            left = length if length <= DRAIN_BYTES else 0
            while left > 0:  # read it away, so that the client reads the answer
                chunk = self.rfile.read(min(64 * 1024, left))
                if not chunk:
                    break
                left -= len(chunk)
            self._answer(Answer.refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too_large",
                                        f"the body is limited to {MAX_REQUEST_BYTES} bytes"))
            return
        body = self.rfile.read(length)
        self._answer(self.server.service.enrol(body, client))

    def _not_allowed(self) -> None:
        self._answer(Answer.refusal(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed",
                                    f"the only endpoint is POST {ENROL_PATH}"))

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _not_allowed

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], format % args)


class EnrolmentHttpServer(ThreadingHTTPServer):
    """A threading HTTPS server whose TLS handshake runs in each request's thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: EnrolmentService,
                 context: ssl.SSLContext) -> None:
        self.service = service
        self.context = context
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw: socket.socket = request
        raw.settimeout(SOCKET_TIMEOUT_S)
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS 1.2 or later with the service's certificate (its chain after it) and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


def make_server(service: EnrolmentService, host: str, port: int, cert: Path,
                key: Path) -> EnrolmentHttpServer:
    """The bound server (``port`` 0: any free port, see ``server_address``)."""
    return EnrolmentHttpServer((host, port), service, server_context(cert, key))
