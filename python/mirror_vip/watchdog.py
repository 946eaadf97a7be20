"""A wall-clock bound on one attempt of an HTTP request, whatever the peer does.

botocore's timeouts bound each socket operation, not a request: its read timeout is the socket
timeout of every recv, so a peer that sends a byte now and then (headers, then a body a byte at a
time) keeps one request going for as long as it likes. urllib3's `Timeout(total=...)` is no
better: its docstring says the read and total timeouts "only measure the time between read
operations on the socket ... not the total amount of time for the request to return a complete
response" (urllib3/util/timeout.py).

So each attempt runs under `bounded(end)`, in the thread that makes the request. The
connections of a botocore HTTP session passed to `install` report the socket they use to the
attempt running in their thread; at `end` one daemon thread (the watchdog, one per process)
shuts those sockets down, which wakes the blocked read at once with end-of-file. The request
then fails in its own thread (botocore raises ConnectionClosedError, or a parser error on a
truncated body), and `attempt.expired` says why. Nothing is abandoned: no thread is left
reading a socket, and the process exits as soon as its work is done.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
)

from . import pooled

MIN_CONNECT_S = 0.01  # a connect with no time left still gets this, and fails at once


class Attempt:
    """One try of one request: must be over by `end` (time.monotonic())."""

    def __init__(self, end: float) -> None:
        self.end = end
        self.expired = False  # the watchdog ended it: whatever came back is incomplete
        self.done = False
        self.sockets: Set[socket.socket] = set()

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


class _Watchdog:
    """The attempts running, soonest end first; one daemon thread ends each at its time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.heap: List[Tuple[float, int, Attempt]] = []
        self.order = itertools.count()
        self.thread: Optional[threading.Thread] = None
        self.owner: Dict[socket.socket, Attempt] = {}  # a pooled socket: its latest attempt

    def add(self, attempt: Attempt) -> None:
        with self.lock:
            heapq.heappush(self.heap, (attempt.end, next(self.order), attempt))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="mirror-vip-watchdog", daemon=True
                )
                self.thread.start()
            if self.heap[0][2] is attempt:
                self.wake.notify()

    def _run(self) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                while self.heap and (self.heap[0][2].done or self.heap[0][0] <= now):
                    attempt = heapq.heappop(self.heap)[2]
                    if not attempt.done:
                        attempt.expired = True
                        for sock in attempt.sockets:
                            _shut(sock)
                self.wake.wait(self.heap[0][0] - now if self.heap else None)

    def track(self, attempt: Attempt, sock: socket.socket) -> None:
        """SOCK is the attempt's now, and no longer any earlier attempt's (a kept-alive
        connection changes hands between attempts)."""
        with self.lock:
            if attempt.done:
                return
            if attempt.expired:
                _shut(sock)
                return
            earlier = self.owner.get(sock)
            if earlier is not None and earlier is not attempt:
                earlier.sockets.discard(sock)
            self.owner[sock] = attempt
            attempt.sockets.add(sock)

    def finish(self, attempt: Attempt) -> None:
        with self.lock:  # after this the watchdog leaves the attempt's sockets alone
            attempt.done = True
            for sock in attempt.sockets:
                if self.owner.get(sock) is attempt:
                    del self.owner[sock]
            attempt.sockets.clear()


_WATCHDOG = _Watchdog()
_LOCAL = threading.local()


def _after_fork() -> None:
    """A forked child has no watchdog thread, and the lock may have been held at the fork."""
    global _WATCHDOG
    _WATCHDOG = _Watchdog()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _shut(sock: socket.socket) -> None:
    """Wake whatever blocks on SOCK. socket.socket's own shutdown, not ssl.SSLSocket's, which
    would also drop its TLS state under the reading thread's feet (ssl.py)."""
    with contextlib.suppress(OSError, ValueError):  # already closed: nothing to wake
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def current() -> Optional[Attempt]:
    """The attempt running in this thread, if any."""
    found: Optional[Attempt] = getattr(_LOCAL, "attempt", None)
    return found


@contextlib.contextmanager
def bounded(end: float) -> Iterator[Attempt]:
    """Run the block as one attempt that must be over by END (inside another: the sooner)."""
    outer = current()
    attempt = Attempt(min(end, outer.end) if outer is not None else end)
    watchdog = _WATCHDOG
    watchdog.add(attempt)
    _LOCAL.attempt = attempt
    try:
        yield attempt
    finally:
        _LOCAL.attempt = outer
        watchdog.finish(attempt)


def track(sock: Optional[socket.socket]) -> None:
    """SOCK is in use by this thread's attempt (if any): shut it down when the attempt ends."""
    attempt = current()
    if attempt is not None and sock is not None:
        _WATCHDOG.track(attempt, sock)


class _Tracked:
    """Mixed into botocore's connection classes: report the socket in use to the attempt."""

    timeout: Any
    sock: Optional[socket.socket]

    def _new_conn(self) -> socket.socket:
        attempt = current()
        if attempt is not None and isinstance(self.timeout, (int, float)):
            # The connect within the attempt, and the TLS handshake on it: CPython bounds a
            # whole handshake by the socket's timeout (ssl docs, SSLSocket.do_handshake,
            # "changed in version 3.5"), and ssl detaches the socket it wraps, so a watched
            # plain socket would not reach it.
            self.timeout = max(MIN_CONNECT_S, min(self.timeout, attempt.remaining()))
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        track(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        track(self.sock)  # a kept-alive connection: its socket is already there
        return super().request(*args, **kwargs)  # type: ignore[misc]


class TrackedHTTPConnection(_Tracked, AWSHTTPConnection):  # type: ignore[misc]
    pass


class TrackedHTTPSConnection(_Tracked, pooled.IdleTls, AWSHTTPSConnection):  # type: ignore[misc]
    pass


class TrackedHTTPConnectionPool(AWSHTTPConnectionPool):
    ConnectionCls = TrackedHTTPConnection


class TrackedHTTPSConnectionPool(AWSHTTPSConnectionPool):
    ConnectionCls = TrackedHTTPSConnection
    QueueCls = pooled.IdleConnections  # a TLS 1.3 server's tickets do not discard a connection


def install(http_session: Any) -> bool:
    """Make the connections of botocore's HTTP session HTTP_SESSION (a URLLib3Session, as an
    EC2 client's or an IMDS fetcher's) report their sockets to the attempt in their thread.

    botocore has no public hook for this: URLLib3Session keeps the pool classes it gives urllib3
    in `_pool_classes_by_scheme` (botocore/httpsession.py), one dict per session, shared with its
    proxy managers. Call it before the session's first request (pools are made on first use).
    False, and nothing changed, on a botocore laid out otherwise: attempts then have only the
    per-read timeouts.
    """
    try:
        classes = http_session._pool_classes_by_scheme
        if classes.get("http") not in (AWSHTTPConnectionPool, TrackedHTTPConnectionPool):
            return False
        if classes.get("https") not in (AWSHTTPSConnectionPool, TrackedHTTPSConnectionPool):
            return False
        classes["http"] = TrackedHTTPConnectionPool
        classes["https"] = TrackedHTTPSConnectionPool
    except (AttributeError, TypeError):
        return False
    return True
