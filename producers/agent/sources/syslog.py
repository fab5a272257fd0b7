"""Syslog receiver: UDP, TCP and TLS, RFC 3164 and RFC 5424, both TCP framings.

Framing (RFC 6587): on TCP/TLS each frame is either octet-counted (``LEN SP MSG``, what RFC
5425 mandates for TLS) or terminated by a newline (what most BSD senders do); the receiver
tells them apart per frame by its first byte (a digit: octet-counted). A UDP datagram is one
message (RFC 5426).

Robustness: a malformed frame (one the parsers refuse, one longer than ``max_frame``, one
that makes a parser raise anything at all) is counted (``vigie_agent_malformed_total
{reason}``), quarantined with its peer and reason (:mod:`producers.agent.quarantine`), and
skipped; an octet count that cannot be trusted (not a number, larger than ``max_frame``)
leaves no way to find the next frame, so only that connection is closed. The listener itself
keeps serving.

The listener and the shipper cannot stall each other: the network thread only reads and
queues bytes (it never parses), and the agent's thread parses and ships. Between them a
queue bounded in frames *and* bytes (``queue_size``, ``queue_bytes``): when it is full, TCP
readers wait (the sender's TCP window fills and it slows down: back-pressure, lossless), and
UDP datagrams are dropped *and counted* (``dropped_queue_full``; not quarantined: writing
every lost datagram to disk would deepen the overload), as UDP gives no other choice — the
kernel would drop them silently otherwise. On the other side, one ``poll`` parses for at most
``POLL_BUDGET_S`` seconds, so the shipper runs between two slices of a flood.

Messages whose text is CEF are parsed as CEF; sshd/sudo messages get auth semantics.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import ssl
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from producers.agent.parse.authlog import enrich
from producers.agent.parse.cef import cef_doc
from producers.agent.parse.common import Doc
from producers.agent.parse.syslog import parse_syslog, syslog_doc
from producers.agent.sources.base import Context, Source, reason_of
from schemas.identity import event_id

log = logging.getLogger(__name__)

Frame = tuple[bytes, datetime, str]

#: Seconds one ``poll`` may spend parsing frames before handing over to the shipper.
POLL_BUDGET_S = 0.25


class FrameQueue:
    """The bounded hand-over between the network thread and the agent's thread: at most
    ``max_frames`` frames and ``max_bytes`` bytes (50,000 frames of 64 KiB would otherwise be
    3 GiB). ``put_nowait`` raises ``queue.Full``; ``get_nowait`` raises ``queue.Empty``."""

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: deque[Frame] = deque()
        self._lock = threading.Lock()

    def put_nowait(self, item: Frame) -> None:
        with self._lock:
            size = len(item[0])
            if self._items and (len(self._items) >= self.max_frames
                                or self.bytes + size > self.max_bytes):
                raise queue.Full
            self._items.append(item)
            self.bytes += size

    def get_nowait(self) -> Frame:
        with self._lock:
            if not self._items:
                raise queue.Empty
            item = self._items.popleft()
            self.bytes -= len(item[0])
            return item

    def qsize(self) -> int:
        return len(self._items)


def message_doc(ctx: Context, frame: bytes, received: datetime, eid: str) -> Doc:
    """One syslog frame → document (CEF or auth semantics when the message carries them)."""
    msg = parse_syslog(frame, received, ctx.tz)
    if "CEF:" in msg.message[:200]:
        doc = cef_doc(msg.message, eid, received)
        if msg.hostname:
            doc.setdefault("host", {})["name"] = msg.hostname
        return doc
    return enrich(syslog_doc(msg, eid), msg.app, msg.message)


class SyslogServer:
    """The network side: an asyncio loop in its own thread, feeding ``frames``."""

    def __init__(self, name: str, protocol: str, host: str, port: int, ctx: Context, *,
                 certfile: Path | None = None, keyfile: Path | None = None,
                 client_ca: Path | None = None, require_client_cert: bool = False,
                 max_frame: int = 64 * 1024, queue_size: int = 50_000,
                 queue_bytes: int = 64 << 20) -> None:
        """``host``: the one address listened on (the configuration's default is
        127.0.0.1). ``client_ca``: senders' certificates are verified against it (TLS);
        ``require_client_cert``: a sender without one is refused at the handshake."""
        if protocol not in ("udp", "tcp", "tls"):
            raise ValueError(f"syslog protocol must be udp, tcp or tls, not {protocol!r}")
        if protocol == "tls" and certfile is None:
            raise ValueError("syslog over TLS needs tls_cert (and tls_key)")
        if require_client_cert and client_ca is None:
            raise ValueError("require_client_cert needs tls_client_ca")
        self.name = name
        self.protocol = protocol
        self.host = host
        self.port = port
        self.ctx = ctx
        self.certfile = certfile
        self.keyfile = keyfile
        self.client_ca = client_ca
        self.require_client_cert = require_client_cert
        self.max_frame = max_frame
        self.frames = FrameQueue(queue_size, queue_bytes)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.bound_port: int | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"syslog-{self.name}",
                                       daemon=True)
        self.thread.start()
        self._ready.wait(15)
        if self._error is not None:
            raise self._error
        log.info("%s: listening for syslog over %s on %s:%s%s", self.name,
                 self.protocol.upper(), self.host, self.bound_port,
                 " (client certificate required)" if self.require_client_cert else "")

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self.thread is not None:
            self.thread.join(10)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to start() if it happens while binding
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        assert self.loop is not None
        if self.protocol == "udp":
            transport, _ = await self.loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(self.host, self.port))
            self.bound_port = transport.get_extra_info("sockname")[1]
            self._ready.set()
            await self._stop.wait()
            transport.close()
            return
        context = self.tls_context() if self.protocol == "tls" else None
        server = await asyncio.start_server(self._connection, self.host, self.port,
                                            ssl=context, limit=self.max_frame + 16)
        self.bound_port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    def tls_context(self) -> ssl.SSLContext:
        """The listener's TLS: its certificate, TLS 1.2+, and the senders' certificates
        verified against ``client_ca`` when set (required with ``require_client_cert``)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.certfile), str(self.keyfile) if self.keyfile else None)
        if self.client_ca is not None:
            context.load_verify_locations(cafile=str(self.client_ca))
            context.verify_mode = (ssl.CERT_REQUIRED if self.require_client_cert
                                   else ssl.CERT_OPTIONAL)
        return context

    # --- receiving ---------------------------------------------------------------------------
    def offer_datagram(self, data: bytes, peer: str) -> None:
        try:
            self.frames.put_nowait((data, datetime.now(UTC), peer))
        except queue.Full:
            self.ctx.report_malformed(self.name, "dropped_queue_full",
                                      f"UDP datagram from {peer} dropped: agent queue full",
                                      keep=False)

    async def _put(self, frame: bytes, peer: str) -> None:
        item = (frame, datetime.now(UTC), peer)
        while True:
            try:
                self.frames.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.05)  # backpressure: stop reading this connection

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        try:
            while True:
                first = await reader.read(1)
                if not first:
                    return
                if first in b"\r\n":
                    continue
                if first.isdigit():
                    if not await self._octet_counted(first, reader, peer):
                        return
                else:
                    try:
                        rest = await reader.readuntil(b"\n")
                    except asyncio.IncompleteReadError as exc:
                        rest = exc.partial  # last frame, no newline before close
                    except asyncio.LimitOverrunError:
                        self.ctx.report_malformed(self.name, "oversized",
                                                  f"{peer}: newline frame > {self.max_frame}",
                                                  data=first, position={"peer": peer})
                        await self._skip_line(reader)
                        continue
                    await self._put(first + rest, peer)
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("%s: connection from %s ended: %s", self.name, peer, exc)
        finally:
            writer.close()

    async def _octet_counted(self, first: bytes, reader: asyncio.StreamReader,
                             peer: str) -> bool:
        digits = first
        while True:
            char = await reader.read(1)
            if not char:
                return False
            if char == b" ":
                break
            if not char.isdigit() or len(digits) > 7:
                self.ctx.report_malformed(self.name, "bad_octet_count",
                                          f"{peer}: frame length {digits + char!r}...: "
                                          "closing the connection (cannot resynchronise)")
                return False
            digits += char
        length = int(digits)
        if length == 0 or length > self.max_frame:
            self.ctx.report_malformed(self.name, "bad_octet_count",
                                      f"{peer}: frame length {length} (max {self.max_frame}); "
                                      "closing the connection")
            return False
        try:
            frame = await reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            self.ctx.report_malformed(self.name, "truncated_frame",
                                      f"{peer}: {len(exc.partial)} of {length} bytes")
            return False
        await self._put(frame, peer)
        return True

    async def _skip_line(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                await reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await reader.readexactly(exc.consumed)
            except asyncio.IncompleteReadError:
                return


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: SyslogServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.offer_datagram(data, f"{addr[0]}:{addr[1]}")


class SyslogSource(Source):
    """Frames from the network thread → documents; ids from arrival order (no file to
    replay from: the id is fixed when the frame is first read, then kept in the spool)."""

    def __init__(self, server: SyslogServer) -> None:
        self.server = server
        self.name = server.name
        self.ctx = server.ctx
        self._sequence = 0
        self._boot = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")

    def start(self) -> None:
        self.server.start()

    def close(self) -> None:
        self.server.stop()

    def poll(self, max_items: int) -> list[Doc]:
        docs: list[Doc] = []
        deadline = time.monotonic() + POLL_BUDGET_S
        for _ in range(max_items):
            if time.monotonic() > deadline:
                break  # the shipper's turn; the rest waits in the queue
            try:
                frame, received, peer = self.server.frames.get_nowait()
            except queue.Empty:
                break
            self._sequence += 1
            if len(frame) > self.server.max_frame:  # a UDP datagram: TCP frames are bounded
                self._refuse(frame, peer, "oversized",
                             f"frame of {len(frame)} bytes (max {self.server.max_frame})")
                continue
            eid = event_id(self.ctx.establishment_id,
                           f"syslog:{self.ctx.agent_id}:{self.name}:{self._boot}",
                           self._sequence)
            try:
                docs.append(message_doc(self.ctx, frame, received, eid))
            except Exception as exc:  # any parser failure costs this frame only
                self._refuse(frame, peer, reason_of(exc), f"{type(exc).__name__}: {exc}")
        return docs

    def _refuse(self, frame: bytes, peer: str, reason: str, detail: str) -> None:
        self.ctx.report_malformed(self.name, reason, f"{peer}: {detail}", data=frame,
                                  position={"peer": peer, "protocol": self.server.protocol})
