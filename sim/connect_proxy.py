"""A forwarding HTTP proxy on loopback that records what it carried, for the proxy tests.

    client --TCP (or TLS: an https:// proxy)--> ConnectProxy --TCP--> the target

It does what an enterprise egress proxy (Squid and the like) does for a client that sends it
everything:
- `CONNECT host:port`: opens TCP to the target, answers `200 Connection established`, and then
  copies bytes both ways, blind: TLS runs end to end through the tunnel (how https endpoints,
  EC2's and STS's, are reached through a proxy);
- an absolute-form request (`GET http://169.254.169.254/latest/... HTTP/1.1`): forwards it to
  the target and relays the answer (how a plain-http URL, such as IMDS's, goes through a proxy
  named in HTTP_PROXY);
- `Proxy-Authorization: Basic` checked when `credentials` are set (407 otherwise);
- faults: `deny` (targets answered 403, as an allow-list would), `connect_delay_s` (each CONNECT
  waits that long before its answer: a slow proxy or a far upstream), and a target that cannot
  be reached answers 502;
- `source_address`: the loopback address its upstream connections come from (127.0.0.2, say),
  so the target's own record (the fake AWS's `Call.peer`) tells what came through the proxy
  from what came straight from the client (127.0.0.1).

Every request is recorded (`carried`): method, target, status answered and the user it was
authorised as, so a test shows which calls went through the proxy and which did not.

Use:
    with ConnectProxy().start() as proxy:
        ... HTTPS_PROXY=proxy.url, or the proxy setting ...
        proxy.tunnels()      # ["ec2.eu-west-1.amazonaws.com:443", ...]
        proxy.forwarded()    # ["http://169.254.169.254/latest/api/token", ...]
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable, List, Optional, Set, Tuple
from urllib.parse import urlsplit

POLL_S = 0.05  # how soon stop() is noticed by a tunnel
UPSTREAM_TIMEOUT_S = 10.0
CHUNK = 65536
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


@dataclass
class Carried:
    """One request the proxy received (times: time.monotonic())."""

    method: str  # CONNECT, or the forwarded request's method
    target: str  # host:port for CONNECT, the absolute URL otherwise
    at: float
    status: int = 0  # what the proxy answered: 200, 403 denied, 407 credentials, 502 upstream
    user: Optional[str] = None  # the user of a valid Proxy-Authorization, if any


@dataclass
class _State:
    carried: List[Carried] = field(default_factory=list)
    sockets: Set[socket.socket] = field(default_factory=set)  # open tunnels' ends, for stop()


class ConnectProxy:
    def __init__(
        self,
        *,
        tls: Optional[ssl.SSLContext] = None,
        credentials: Optional[Tuple[str, str]] = None,
        deny: Iterable[str] = (),
        connect_delay_s: float = 0.0,
        source_address: Optional[str] = None,
    ) -> None:
        """TLS: a server context makes it an https:// proxy. CREDENTIALS: (user, password)
        required in Proxy-Authorization. DENY: "host:port" targets answered 403.
        SOURCE_ADDRESS: the address upstream connections are made from (default: the kernel's
        choice)."""
        self.tls = tls
        self.source_address = source_address
        self.credentials = credentials
        self.deny = set(deny)
        self.connect_delay_s = connect_delay_s
        self.url = ""
        self._state = _State()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> ConnectProxy:
        server = _Server((host, port), _Handler)
        server.proxy = self
        self._server = server
        threading.Thread(target=server.serve_forever, name="connect-proxy", daemon=True).start()
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://{host}:{server.server_address[1]}"
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            ends, self._state.sockets = set(self._state.sockets), set()
        for end in ends:
            _close(end)

    def __enter__(self) -> ConnectProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what it carried ------------------------------------------------------------------

    @property
    def carried(self) -> List[Carried]:
        with self._lock:
            return list(self._state.carried)

    def tunnels(self, status: Optional[int] = 200) -> List[str]:
        """The CONNECT targets (host:port), in order; those answered STATUS (None: all)."""
        return [
            c.target
            for c in self.carried
            if c.method == "CONNECT" and (status is None or c.status == status)
        ]

    def forwarded(self) -> List[str]:
        """The absolute URLs of the plain-http requests it forwarded (or refused)."""
        return [c.target for c in self.carried if c.method != "CONNECT"]

    def clear(self) -> None:
        with self._lock:
            self._state.carried.clear()

    # --- called by the handler ------------------------------------------------------------

    def record(self, method: str, target: str) -> Carried:
        call = Carried(method, target, time.monotonic())
        with self._lock:
            self._state.carried.append(call)
        return call

    def authorised(self, header: Optional[str]) -> Tuple[bool, Optional[str]]:
        """(allowed, user) for a Proxy-Authorization header."""
        if self.credentials is None:
            return True, None
        kind, _, encoded = (header or "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        ok = kind.lower() == "basic" and (user, password) == self.credentials
        return ok, user if ok else None

    def upstream_from(self) -> Optional[Tuple[str, int]]:
        """socket.create_connection's source_address for an upstream connection."""
        return (self.source_address, 0) if self.source_address else None

    def wait_before_connect(self) -> bool:
        """The CONNECT delay; False when stop() ended it."""
        return not self._stopping.wait(self.connect_delay_s) if self.connect_delay_s else True

    def hold(self, *ends: socket.socket) -> None:
        with self._lock:
            self._state.sockets.update(ends)

    def let_go(self, *ends: socket.socket) -> None:
        with self._lock:
            self._state.sockets.difference_update(ends)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops the SYNs of 32 parallel CONNECTs (1 s stalls)
    proxy: ConnectProxy

    def get_request(self) -> Tuple[Any, Any]:
        sock, address = self.socket.accept()
        if self.proxy.tls is not None:  # the handshake runs in the handler's thread (setup)
            sock = self.proxy.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    rbufsize = 0  # unbuffered: bytes after a CONNECT's head belong to the tunnel, not to us
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(UPSTREAM_TIMEOUT_S)
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError):
                self.request.close()
                raise
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    # --- CONNECT: a blind tunnel ----------------------------------------------------------

    def do_CONNECT(self) -> None:
        proxy = self.server.proxy
        call = proxy.record("CONNECT", self.path)
        if not self._admitted(call, self.path):
            return
        host, _, port = self.path.rpartition(":")
        if not proxy.wait_before_connect():
            self.close_connection = True
            return
        try:
            upstream = socket.create_connection(
                (host.strip("[]"), int(port)), UPSTREAM_TIMEOUT_S, proxy.upstream_from()
            )
        except (OSError, ValueError):
            self._refuse(call, 502, "Bad Gateway")
            return
        call.status = 200
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        upstream.settimeout(None)
        proxy.hold(self.connection, upstream)
        try:
            _pump(self.connection, upstream, proxy)
        finally:
            proxy.let_go(self.connection, upstream)
            _close(upstream)

    # --- absolute-form requests: forwarded ------------------------------------------------

    def _forward(self) -> None:
        proxy = self.server.proxy
        call = proxy.record(self.command, self.path)
        parts = urlsplit(self.path)
        if parts.scheme != "http" or not parts.hostname:
            self._refuse(call, 400, "Bad Request")
            return
        port = parts.port or 80
        if not self._admitted(call, f"{parts.hostname}:{port}"):
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = _read_exactly(self.rfile, length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        upstream = http.client.HTTPConnection(
            parts.hostname, port, timeout=UPSTREAM_TIMEOUT_S, source_address=proxy.upstream_from()
        )
        try:
            upstream.request(self.command, path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        except OSError:
            self._refuse(call, 502, "Bad Gateway")
            return
        finally:
            upstream.close()
        call.status = answer.status
        self.send_response(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    # --- answers of our own ---------------------------------------------------------------

    def _admitted(self, call: Carried, target: str) -> bool:
        proxy = self.server.proxy
        allowed, user = proxy.authorised(self.headers.get("Proxy-Authorization"))
        call.user = user
        if not allowed:
            challenge = ("Proxy-Authenticate", "Basic")
            self._refuse(call, 407, "Proxy Authentication Required", challenge)
            return False
        if target in proxy.deny:
            self._refuse(call, 403, "Forbidden")
            return False
        return True

    def _refuse(self, call: Carried, status: int, reason: str, *headers: Tuple[str, str]) -> None:
        call.status = status
        self.send_response(status, reason)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True


def _pump(client: socket.socket, upstream: socket.socket, proxy: ConnectProxy) -> None:
    """Copy bytes both ways until either side closes (or stop())."""
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while not proxy.stopping:
            for key, _ in selector.select(POLL_S):
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = source.recv(CHUNK)
                    # a TLS client side may hold more decrypted bytes than select() can see
                    while data and isinstance(source, ssl.SSLSocket) and source.pending():
                        data += source.recv(source.pending())
                    if not data:
                        return
                    key.data.sendall(data)
                except OSError:
                    return


def _read_exactly(stream: Any, length: int) -> bytes:
    data = b""
    while len(data) < length:
        chunk = stream.read(length - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
