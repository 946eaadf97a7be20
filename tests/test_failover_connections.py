"""The claim's connections as the server sees them, over TLS 1.3 (session tickets after the
handshake) and TLS 1.2: how many connections, when each was opened and handshaken, and which
requests each carried (the fake AWS's connection record).

A new connection costs the modelled network one round trip for TCP and one per TLS flight the
client waits for (sim/tls.py), each EC2 call one more. A write that had to open its connection
after the describe answered would pay two or three round trips more on the failover's critical
path: these tests say none does.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from mirror_vip import api, settings
from sim.fakeaws import Call, Connection, FakeAws
from tests.conftest import AwsLike, FakeHost, Imds, World, build_world
from tests.sim_fixtures import Opened, hold_first_describe, opened

__all__ = ["opened"]  # the fixture

ROUND_TRIP_S = 0.1
VERSIONS = ("1.3", "1.2")


@pytest.fixture(scope="module")
def endpoints(fake_aws: FakeAws) -> Dict[str, str]:
    return {"1.3": fake_aws.endpoint, "1.2": fake_aws.listen(tls_version="1.2")}


@pytest.fixture
def net(
    aws: AwsLike,
    imds: Imds,
    fake_host: FakeHost,
    endpoints: Dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[World]:
    """Member A of a VPC of its own, the product talking TLS `request.param`; every new
    connection and every call pays the modelled round trip."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoints[request.param])
    world = build_world(tables=3, ec2=aws.ec2)
    imds.become(world.a, world.vpc_id)
    fake_host.mac = world.a.mac
    fake_host.carry()
    aws.fake.set_round_trip(ROUND_TRIP_S)
    aws.fake.set_latency("*", ROUND_TRIP_S)
    try:
        yield world
    finally:
        aws.fake.set_round_trip(0.0)
        aws.fake.clear_faults()


def writes_of(calls: List[Call]) -> List[Call]:
    return [c for c in calls if c.is_write]


def assert_set_up_once(connections: Dict[int, Connection], version: str) -> None:
    for conn in connections.values():
        assert (conn.tls, conn.handshakes, conn.error) == (f"TLSv{version}", 1, None), conn


@pytest.mark.parametrize("net", VERSIONS, indirect=True)
def test_a_cold_claims_writes_never_open_a_connection_after_the_describe_answered(
    net: World, aws: AwsLike, opened: Opened, request: pytest.FixtureRequest
) -> None:
    version = request.node.callspec.params["net"]
    since = time.monotonic()
    # The describe is held until the pre-open is over: on a loaded machine its thread was once
    # scheduled after the describe had answered. What is tested is where the writes go.
    hold_first_describe(aws, since, opened)
    report = api.claim(settings.from_mapping({}))  # no remembered list: describe, then write
    assert report.ok, report.errors
    calls = aws.fake.calls(since=since)
    connections = {c.seq: c for c in aws.fake.connections(since)}
    describes = [c for c in calls if c.action in ("DescribeRouteTables", "DescribeSubnets")][:2]
    answered = min(d.end for d in describes)
    writes = writes_of(calls)
    assert len(writes) == 1 + len(net.tables) and min(w.start for w in writes) >= answered
    assert_set_up_once(connections, version)
    late = [c for c in connections.values() if c.opened >= answered]
    assert late == [], f"connections opened after the describe answered: {late}"
    for write in writes:
        conn = connections[write.connection or 0]
        assert conn.opened < answered and conn.ready <= write.start, (write, conn)
    carried = [w.connection for w in writes]
    assert len(set(carried)) == len(carried), "two writes on one connection: not in parallel"


@pytest.mark.parametrize("net", VERSIONS, indirect=True)
def test_a_failover_claims_writes_ride_connections_set_up_before_any_write_was_sent(
    net: World,
    aws: AwsLike,
    imds: Imds,
    fake_host: FakeHost,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    version = request.node.callspec.params["net"]
    w = net
    cache_file = str(tmp_path / "tables.json")
    assert api.claim(settings.from_mapping({"cache_file": cache_file})).ok  # A remembers
    imds.become(w.b, w.vpc_id)
    fake_host.mac = w.b.mac
    since = time.monotonic()
    report = api.claim(settings.from_mapping({"cache_file": cache_file}), use_cache=True)
    assert report.ok, report.errors
    assert set(w.targets().values()) == {w.b.eni}
    calls = aws.fake.calls(since=since)
    connections = {c.seq: c for c in aws.fake.connections(since)}
    writes = writes_of(calls)
    assert len(writes) == 1 + len(w.tables)
    first_sent = min(c.start for c in writes)
    assert_set_up_once(connections, version)
    for write in writes:
        conn = connections[write.connection or 0]
        assert conn.opened < first_sent and conn.ready <= write.start, (write, conn)
    carried = [w.connection for w in writes]
    assert len(set(carried)) == len(carried), "two writes on one connection: not in parallel"
    # the describe beside the writes and the verify read: no connection beyond one per call
    # in flight at once (the writes and the 2 describes)
    assert len(connections) <= len(writes) + 2
    assert sum(c.requests for c in connections.values()) == len(calls)
