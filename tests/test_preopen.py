"""Connections opened ahead of the writes (aws.open_connections) land in the EC2 client's own
pool and carry the requests that follow, over TLS 1.2 and TLS 1.3, as the server sees it.

The client is the product's own (aws.ec2_client: the pool size, the watchdog's pool classes),
pointed at the fake AWS by AWS_ENDPOINT_URL and trusting its CA by AWS_CA_BUNDLE, nothing else.
What is counted comes from the server's side (sim.fakeaws's connection record): which
connections were opened, how many handshakes each made, which requests each carried.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional

import boto3
import pytest

from mirror_vip import pooled, watchdog
from mirror_vip.aws import botocore_session, client_config, ec2_client, open_connections
from sim import tls
from sim.fabric import wait_for
from sim.fakeaws import Call, FakeAws, Fault

COUNT = 6
VERSIONS = ("1.2", "1.3")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAws]:
    aws = FakeAws(seed=13).start()
    try:
        yield aws
    finally:
        aws.stop()


@pytest.fixture(scope="module")
def endpoints(fake: FakeAws) -> Dict[str, str]:
    """One HTTPS listener per TLS version, on the same fake AWS."""
    return {"1.3": fake.endpoint, "1.2": fake.listen(tls_version="1.2")}


def product_client(monkeypatch: pytest.MonkeyPatch, fake: FakeAws, endpoint: str) -> Any:
    """The product's EC2 client, configured only through the environment a user sets."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDPREOPENTEST00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for key, value in fake.env(endpoint).items():
        monkeypatch.setenv(key, value)
    return ec2_client(botocore_session(), fake.region, 30)


def describe_at_once(fake: FakeAws, ec2: Any, count: int) -> None:
    """COUNT requests in flight together: the server answers none before all have arrived, so
    each needs a connection of its own."""
    together = threading.Barrier(count)

    def hold(call: Call) -> None:
        together.wait(10.0)

    fake.intercept(hold)
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(lambda _: ec2.describe_vpcs(), range(count)))
    finally:
        fake.remove_hook(hold)


@pytest.mark.parametrize("version", VERSIONS)
def test_connections_opened_ahead_carry_the_requests_that_follow(
    fake: FakeAws, endpoints: Dict[str, str], monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """TLS 1.3 servers (Python's, by default) send session tickets after the handshake: an
    idle pooled connection then has bytes to read, which urllib3 takes for a dropped one."""
    ec2 = product_client(monkeypatch, fake, endpoints[version])
    since = time.monotonic()
    assert open_connections(ec2, COUNT) == COUNT
    # the server has finished each handshake (and sent its tickets) before the requests go
    assert wait_for(lambda: sum(c.ready > 0 for c in fake.connections(since)) == COUNT, 10.0)
    describe_at_once(fake, ec2, COUNT)
    opened = fake.connections(since)
    calls = fake.calls("DescribeVpcs", since)
    assert len(calls) == COUNT
    assert [(c.tls, c.handshakes) for c in opened] == [(f"TLSv{version}", 1)] * COUNT, (
        f"{len(opened)} connections for {COUNT} requests: the opened ones were not used"
    )
    assert sorted(c.requests for c in opened) == [1] * COUNT


def test_open_connections_returns_each_connection_to_the_pool_when_it_is_ready(
    fake: FakeAws, endpoints: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One handshake held far longer than the others: the ready ones are in the pool before it
    ends, so a request made meanwhile rides one of them."""
    ec2 = product_client(monkeypatch, fake, endpoints["1.3"])
    slow = threading.Event()
    held: List[int] = []

    since = time.monotonic()
    original = fake.accept

    def accept(handler: Any, raw: socket.socket) -> Any:
        if not held:
            held.append(1)
            slow.wait(10.0)
        return original(handler, raw)

    monkeypatch.setattr(fake, "accept", accept)
    done = threading.Event()
    opener = threading.Thread(target=lambda: (open_connections(ec2, 3), done.set()), daemon=True)
    opener.start()
    try:
        assert wait_for(lambda: sum(c.ready > 0 for c in fake.connections(since)) == 2, 10.0)
        assert not done.is_set()
        ec2.describe_vpcs()
    finally:
        slow.set()
        opener.join(10.0)
    (call,) = fake.calls("DescribeVpcs", since)
    ready_before = {c.seq for c in fake.connections(since) if c.requests == 1}
    assert call.connection in ready_before
    assert len(fake.connections(since)) == 3  # no connection of its own


def test_a_request_on_an_opened_connection_is_still_bounded_by_the_watchdog(
    fake: FakeAws, endpoints: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog shuts down the socket of a request that outlives its attempt, on a
    connection opened ahead as on any other."""
    ec2 = product_client(monkeypatch, fake, endpoints["1.3"])
    since = time.monotonic()
    assert open_connections(ec2, 1) == 1
    assert wait_for(lambda: sum(c.ready > 0 for c in fake.connections(since)) == 1, 10.0)
    fake.add_fault(Fault("hang", action="DescribeVpcs", seconds=30.0))
    try:
        started = time.monotonic()
        with watchdog.bounded(started + 0.5) as attempt, pytest.raises(Exception):  # noqa: B017
            ec2.describe_vpcs()  # whichever error botocore raises
        took = time.monotonic() - started
    finally:
        fake.clear_faults()
    assert attempt.expired
    assert took < client_config(30).read_timeout / 2, f"not cut by the watchdog: {took:.1f} s"
    opened = fake.connections(since)
    calls = fake.calls(since=since)
    assert len(opened) == 1 and [c.connection for c in calls] == [opened[0].seq], (opened, calls)


class Idle:
    """A pooled connection as pooled.drain sees it: its socket, and close()."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock: Optional[ssl.SSLSocket] = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None


@pytest.mark.parametrize(
    ("server_then", "usable"),
    [("waits", True), ("closes", False), ("speaks", False)],
)
def test_drain_keeps_a_connection_with_tickets_waiting_and_drops_one_the_server_left(
    server_then: str, usable: bool
) -> None:
    """TLS 1.3, Python's defaults: the server's session tickets follow the handshake."""
    client_end, server_end = socket.socketpair()
    server_context = tls.authority().server_context("1.3")
    done, said = threading.Event(), threading.Event()

    def serve() -> None:
        with server_context.wrap_socket(server_end, server_side=True) as server:
            if server_then == "speaks":
                server.sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
            said.set()  # whatever it sends is in the client's socket buffer (a socketpair)
            if server_then != "closes":
                done.wait(10.0)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    context = ssl.create_default_context(cafile=tls.authority().ca_file)
    conn = Idle(context.wrap_socket(client_end, server_hostname="127.0.0.1"))
    try:
        assert conn.sock is not None
        assert said.wait(10.0) and select.select([conn.sock], [], [], 0)[0]
        if server_then == "closes":
            thread.join(10.0)
        assert pooled.drain(conn) is usable
        if usable:
            assert conn.sock is not None and not select.select([conn.sock], [], [], 0)[0]
        else:
            assert conn.sock is None  # closed: urllib3 then opens a new one
    finally:
        done.set()
        conn.close()
        thread.join(10.0)


def test_fewer_connections_than_asked_is_said_at_debug_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: every connect is refused
    ec2 = boto3.client(
        "ec2",
        region_name="eu-west-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=client_config(30),
    )
    with caplog.at_level(logging.DEBUG, logger="mirror_vip.aws"):
        assert open_connections(ec2, 3) == 0
    said = [r.getMessage() for r in caplog.records if r.name == "mirror_vip.aws"]
    assert said and "0 of 3" in said[-1], said


def test_anything_unexpected_is_a_no_op_said_at_debug_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="mirror_vip.aws"):
        assert open_connections(object(), 3) == 0
    said = [r.getMessage() for r in caplog.records if r.name == "mirror_vip.aws"]
    assert said and "0 of 3" in said[-1], said


def test_plain_http_connections_are_opened_once_and_pooled() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: List[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    ec2 = boto3.client(
        "ec2",
        region_name="eu-west-1",
        endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=client_config(30),
    )
    try:
        assert open_connections(ec2, 5) == 5
        assert open_connections(ec2, 5) == 5  # the same five, already connected: none new
        assert wait_for(lambda: len(accepted) >= 5, 1.0)
        assert len(accepted) == 5
    finally:
        server.close()
        for conn in accepted:
            conn.close()
