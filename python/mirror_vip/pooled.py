"""Idle TLS connections in urllib3's pool stay usable when the server has spoken since.

urllib3 takes a pooled connection whose socket is readable for one the server dropped, and
opens a new one (`is_connection_dropped`: `wait_for_read(sock, timeout=0)`, urllib3 1.26's
util/connection.py; 2.x's `HTTPConnection.is_connected` does the same). A TLS 1.3 server sends
its session tickets after the handshake (RFC 8446, 4.6.1; OpenSSL sends two by default, after
reading the client's Finished), so a connection opened ahead of its first request
(aws.open_connections) is readable by the time it is used, and urllib3 throws it away: the
request pays a new handshake after all. The tickets arrive one round trip after the client's
handshake is over, so reading them right after connecting would race them.

So what waits on an idle TLS connection is read without blocking (`drain`): TLS records that
carry no application data (tickets, key updates) are consumed by OpenSSL and leave the socket
quiet; application data or the end of the stream on an idle connection mean it is not
reusable, and it is closed, which urllib3 then sees. Two places, in the classes
watchdog.install gives botocore:
- urllib3 2.x asks the connection (`is_connected`): `IdleTls` answers with drain's verdict, so
  tickets arriving at any moment never discard the connection;
- urllib3 1.26 looks at the socket itself, so the pool's queue (`IdleConnections`, urllib3's
  `HTTPConnectionPool.QueueCls`, a class attribute in 1.26 and 2.x) drains each connection it
  hands out just before urllib3 looks: only tickets landing between the two (microseconds,
  where they come a round trip after the connect) would still discard it.
"""

from __future__ import annotations

import contextlib
import queue
import ssl
from typing import Any, Optional

PEEK_BYTES = 1


def drain(conn: Any) -> bool:
    """Read what waits on CONN's idle TLS socket, without blocking. True when CONN is still
    usable as far as that tells (nothing, or only TLS's own records, was there); otherwise
    CONN is closed and False. A connection that is not TLS, or not open, is left alone."""
    sock = getattr(conn, "sock", None)
    if not isinstance(sock, ssl.SSLSocket):
        return True
    try:
        timeout = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            sock.recv(PEEK_BYTES)  # application data nobody asked for, or b"": the end
        finally:
            sock.settimeout(timeout)
    except ssl.SSLWantReadError:
        return True  # nothing for the application: the socket is quiet again
    except (OSError, ValueError):
        pass  # reset, a TLS alert, already closed
    _close(conn)
    return False


def _close(conn: Any) -> None:
    with contextlib.suppress(OSError, ValueError):
        conn.close()


class IdleConnections(queue.LifoQueue):  # type: ignore[type-arg]
    """urllib3's pool queue (last in, first out, as its own), reading each idle TLS connection
    it hands out (`drain`) before urllib3 judges whether it was dropped."""

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        conn = super().get(block, timeout)
        if conn is not None:
            drain(conn)
        return conn


class IdleTls:
    """Mixed into botocore's HTTPS connection class: urllib3 2.x's liveness test
    (`is_connected`, before reusing a pooled connection) is drain's verdict for a TLS socket."""

    sock: Any

    @property
    def is_connected(self) -> bool:
        if isinstance(self.sock, ssl.SSLSocket):
            return drain(self)
        return bool(super().is_connected)  # type: ignore[misc]
