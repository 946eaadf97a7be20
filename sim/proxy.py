"""The fake AWS's HTTP(S) front: the listening server, the per-connection handler, and how an
answer is written (whole, as an AWS error, or dribbled a byte at a time). What to answer is
decided by sim.fakeaws.FakeAws (`accept` per connection, `handle` per request)."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, Optional, Tuple
from xml.sax.saxutils import escape

from .faults import Refusal
from .record import Call

_SKIP_HEADERS = {"content-length", "connection", "transfer-encoding", "date", "server"}


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops the SYNs of 32 parallel writes (1 s stalls)
    fake: Any  # the FakeAws answering
    tls: Optional[ssl.SSLContext] = None  # HTTPS when set

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (or refused the certificate) is not an error of ours."""
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    disable_nagle_algorithm = True  # else headers and body meet delayed ACK: 40 ms stalls
    server: ProxyServer
    connection_seq: Optional[int] = None
    connection_record: Any = None  # the fake's record of this connection (sim.record.Connection)

    def setup(self) -> None:
        """Per connection, before its first request is read: the connection's set-up (the
        modelled TCP round trip, and TLS), after which `request` is what we read and write."""
        self.request = self.server.fake.accept(self, self.request)
        super().setup()

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.fake.handle(self, method, body)

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def log_message(self, format: str, *args: Any) -> None:
        return None


def send(
    handler: ProxyHandler, call: Call, status: int, headers: Iterable[Tuple[str, str]], body: bytes
) -> None:
    try:
        handler.send_response(status)
        for key, value in headers:
            if key.lower() not in _SKIP_HEADERS:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        # Recorded before the body leaves: once the client has read the answer, the record
        # must already say so (a test reading it right after the call saw end == 0).
        call.status, call.end = status, time.monotonic()
        handler.wfile.write(body)
        handler.wfile.flush()
    except OSError:
        call.status = 0
        handler.close_connection = True  # the client gave up (e.g. its read timeout)


def send_refusal(handler: ProxyHandler, call: Call, refusal: Refusal) -> None:
    call.code = refusal.code
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{refusal.code}</Code>"
        f"<Message>{escape(refusal.message)}</Message></Error></Errors>"
        f"<RequestID>{uuid.uuid4()}</RequestID></Response>"
    ).encode()
    headers = [("Content-Type", "text/xml;charset=UTF-8")]
    send(handler, call, refusal.status, headers, body)


def dribble(
    handler: ProxyHandler,
    call: Call,
    answer: Tuple[int, Iterable[Tuple[str, str]], bytes],
    every_s: float,
    head_too: bool,
    release: threading.Event,
    max_hold_s: float,
) -> None:
    """Send the answer a byte every EVERY_S (the head at once unless HEAD_TOO), until it is
    all out, RELEASE is set, or MAX_HOLD_S has passed; the connection is closed after."""
    status, headers, body = answer
    head = _head(status, headers, len(body))
    at_once, trickle = (b"", head + body) if head_too else (head, body)
    until = time.monotonic() + max_hold_s
    handler.close_connection = True  # whatever happens, this connection carries no more
    try:
        if at_once:
            handler.wfile.write(at_once)
        for i in range(len(trickle)):
            if release.wait(every_s) or time.monotonic() > until:
                return None  # released or held long enough: closed, the answer unfinished
            if i == len(trickle) - 1:  # recorded before the last byte leaves, as in `send`
                call.status, call.end = status, time.monotonic()
            handler.wfile.write(trickle[i : i + 1])
    except OSError:  # the client gave up and closed: `end` (set by handle) says when
        call.status, call.end = 0, 0.0
    return None


def _head(status: int, headers: Iterable[Tuple[str, str]], length: int) -> bytes:
    """An HTTP/1.1 status line and headers as `send` would write them."""
    lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}".rstrip()]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _SKIP_HEADERS]
    lines += [f"Content-Length: {length}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def listening_names(sock: socket.socket) -> Tuple[str, ...]:
    """The address a listening socket serves, for its certificate."""
    return (str(sock.getsockname()[0]),)
