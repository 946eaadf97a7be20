"""The watchdog bounds a whole attempt, where botocore's timeouts bound each socket read; and
aws.call starts no attempt without time left.

A local server answers a byte at a time, faster than any read timeout: without the watchdog a
request takes as long as the dribble; with it, it ends at the attempt's end, in its own thread,
and leaves no thread behind.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Iterator, List

import pytest
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ConnectionClosedError
from botocore.httpsession import URLLib3Session

from mirror_vip import watchdog
from mirror_vip.aws import MIN_ATTEMPT_S, Deadline, call
from mirror_vip.failures import AttemptTimedOut, OutOfTime, aws_error

BODY = b"x" * 40
BYTE_EVERY_S = 0.05  # 40 bytes: 2 s in all, each read well within the 1 s read timeout


@pytest.fixture
def dribbler() -> Iterator[str]:
    """http://127.0.0.1:PORT/ answering every request with BODY, a byte every BYTE_EVERY_S."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY))
                for i in range(len(BODY)):
                    if stop.wait(BYTE_EVERY_S):
                        return
                    conn.sendall(BODY[i : i + 1])
            except OSError:
                return  # the client went away

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), name="dribbler", daemon=True).start()

    threading.Thread(target=serve, name="dribbler", daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    server.close()


def get(session: URLLib3Session, url: str) -> Any:
    return session.send(AWSRequest(method="GET", url=url).prepare())


def test_a_read_timeout_does_not_bound_a_dribbled_answer(dribbler: str) -> None:
    """What botocore's read_timeout is: the timeout of each socket read (the reason for all
    this). Every read gets a byte within 1 s, so the whole answer takes 2 s."""
    started = time.monotonic()
    response = get(URLLib3Session(timeout=1), dribbler)
    assert response.content == BODY
    assert time.monotonic() - started >= len(BODY) * BYTE_EVERY_S


def test_a_bounded_attempt_ends_on_time_in_its_own_thread(dribbler: str) -> None:
    session = URLLib3Session(timeout=1)
    assert watchdog.install(session)
    before = set(threading.enumerate())
    started = time.monotonic()
    with watchdog.bounded(started + 0.5) as attempt:
        try:  # the head came whole: urllib3 (as botocore calls it) hands back the body cut short
            body = get(session, dribbler).content
        except ConnectionClosedError:
            body = None
    took = time.monotonic() - started
    assert attempt.expired and 0.5 <= took < 1.0, took
    assert body != BODY  # which is why aws.call treats an expired attempt as failed, always
    ours = {"mirror-vip-watchdog", "dribbler"}  # the one watchdog; the test's server
    left = [t.name for t in set(threading.enumerate()) - before if t.name not in ours]
    assert not left, f"threads left behind: {left}"
    watcher = [t for t in threading.enumerate() if t.name == "mirror-vip-watchdog"]
    assert len(watcher) == 1 and watcher[0].daemon  # never holds the interpreter's exit
    with watchdog.bounded(time.monotonic() + 5.0) as again:  # the pool did not keep the socket
        assert get(session, dribbler).content == BODY
    assert not again.expired


def test_a_tls_handshake_dribbled_a_byte_at_a_time_ends_on_time() -> None:
    """The server answers the ClientHello with a record header announcing 16 kB, then a byte at
    a time, each well within the 2 s timeout. CPython bounds a whole handshake by the socket
    timeout; a new connection's is cut to what is left of the attempt."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()

    def dribble() -> None:
        conn, _ = server.accept()
        with conn:
            try:
                conn.recv(65536)  # the ClientHello
                conn.sendall(b"\x16\x03\x03\x40\x00")  # handshake record, TLS 1.2, 16384 bytes
                while not stop.wait(BYTE_EVERY_S):
                    conn.sendall(b"\x00")
            except OSError:
                return

    threading.Thread(target=dribble, name="dribbler", daemon=True).start()
    session = URLLib3Session(timeout=2, verify=False)
    watchdog.install(session)
    started = time.monotonic()
    try:
        with watchdog.bounded(started + 0.5), pytest.raises(BotoCoreError):
            get(session, f"https://127.0.0.1:{server.getsockname()[1]}/")  # a read timeout
    finally:
        stop.set()
        server.close()
    assert time.monotonic() - started < 1.0


def test_an_attempt_that_ends_in_time_is_left_alone(dribbler: str) -> None:
    session = URLLib3Session(timeout=1)
    watchdog.install(session)
    with watchdog.bounded(time.monotonic() + 5.0) as attempt:
        assert get(session, dribbler).content == BODY
    assert not attempt.expired and not attempt.sockets


def test_install_refuses_a_session_laid_out_otherwise() -> None:
    assert watchdog.install(object()) is False


def test_call_bounds_each_attempt_and_says_it_timed_out(dribbler: str) -> None:
    session = URLLib3Session(timeout=1)
    watchdog.install(session)
    deadline = Deadline(1.5)  # attempts of at most 1.5 s (aws.attempt_limit_s): one fits
    with pytest.raises(OutOfTime) as exc:
        call(get, deadline, session=session, url=dribbler)
    assert deadline.remaining() < 0.3
    assert isinstance(exc.value.last, AttemptTimedOut)
    text = str(aws_error(exc.value, "DescribeRouteTables", "vpc-1"))
    assert text == "DescribeRouteTables on vpc-1: no complete answer before the deadline", text


def test_call_starts_no_attempt_without_time_left() -> None:
    started: List[float] = []

    def throttled() -> None:
        started.append(time.monotonic())
        raise ConnectionClosedError(endpoint_url="http://ec2")

    deadline = Deadline(1.0)
    with pytest.raises(OutOfTime) as exc:
        call(throttled, deadline)
    assert exc.value.attempts == len(started) >= 2
    assert all(deadline.end - at >= MIN_ATTEMPT_S for at in started)
    text = str(aws_error(exc.value, "ReplaceRoute", "rtb-1"))
    assert "retried until the deadline" in text and "ConnectionClosedError" not in text, text
    with pytest.raises(OutOfTime) as none:
        call(throttled, Deadline(1.0, end=time.monotonic()))
    assert none.value.attempts == 0
    assert "not sent: the 1s deadline had run out" in str(aws_error(none.value, "X", "y"))


def test_a_socket_reported_after_its_attempt_expired_is_shut_at_once() -> None:
    left, right = socket.socketpair()
    try:
        with watchdog.bounded(time.monotonic() + 0.05) as attempt:
            deadline = time.monotonic() + 5.0
            while not attempt.expired and time.monotonic() < deadline:
                time.sleep(0.01)
            watchdog.track(left)
            assert left.recv(1) == b""  # shut down: end of file, not a wait
    finally:
        left.close()
        right.close()


def test_a_socket_that_changed_hands_is_left_to_its_new_attempt() -> None:
    """A kept-alive connection goes back to the pool before its attempt is over; when that
    attempt expires, the attempt now using the connection must not lose it."""
    left, right = socket.socketpair()
    tracked, handed = threading.Event(), threading.Event()
    expired: List[bool] = []

    def first() -> None:
        with watchdog.bounded(time.monotonic() + 0.3) as attempt:
            watchdog.track(left)
            tracked.set()
            handed.wait(5.0)
            while not attempt.expired and time.monotonic() < attempt.end + 5.0:
                time.sleep(0.01)
            expired.append(attempt.expired)

    worker = threading.Thread(target=first, daemon=True)
    worker.start()
    try:
        assert tracked.wait(5.0)
        with watchdog.bounded(time.monotonic() + 10.0) as second:
            watchdog.track(left)
            handed.set()
            worker.join(10.0)
            right.sendall(b"x")
            assert left.recv(1) == b"x"  # still open for the attempt that holds it
        assert expired == [True] and not second.expired
    finally:
        left.close()
        right.close()
