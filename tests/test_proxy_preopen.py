"""The connections opened ahead of the writes (aws.open_connections) through a proxy: each is a
CONNECT tunnel to EC2 with TLS inside, opened while the describe runs, so the writes that follow
its answer pay no CONNECT and no handshake on the critical path, as they do without a proxy.

Counted from the records of the proxy (CONNECTs) and of the fake AWS (which connection carried
each call, when each was accepted, how many TLS handshakes each made). The describe is held at
the fake AWS until the connections the writes need are ready (or a bound passes): what is
tested is where the writes go, not a race between handshakes and a loaded machine.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import botocore.httpsession
import pytest

from mirror_vip import api, settings
from mirror_vip.api import PREOPEN_GUESS
from mirror_vip.aws import PARALLEL_READS, botocore_session, ec2_client, open_connections
from mirror_vip.report import Report
from sim.connect_proxy import ConnectProxy
from sim.fakeaws import Call, Connection
from tests.conftest import REGION, VIP, AwsLike, FakeHost, Imds, World, build_world
from tests.sim_fixtures import HOLD_BOUND_S, Opened, hold_first_describe, opened
from tests.test_proxy_claim import TUNNEL_SOURCE, host_port

__all__ = ["opened"]  # the fixture

DEADLINE_S = 40.0  # the claim's: its read timeout (10 s) is twice the hold
SLOW_MANAGER_S = 0.5  # building a proxy manager, made slow: two first sends overlap in it
AHEAD = 3  # connections opened ahead in the pool test


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy(source_address=TUNNEL_SOURCE).start() as started:
        yield started


@pytest.fixture
def four_tables(aws: AwsLike, imds: Imds, fake_host: FakeHost) -> World:
    """Member A's VPC with three extra tables (four writes with the main one)."""
    w = build_world(tables=3)
    imds.become(w.a, w.vpc_id)
    fake_host.mac = w.a.mac
    fake_host.carry()
    return w


@dataclass
class Seen:
    """What a claim through the proxy left in the records."""

    report: Report
    tunnels: List[str]  # the proxy's CONNECTs answered 200
    calls: List[Call]
    writes: List[Call]
    connections: Dict[int, Connection]
    opened: int  # what open_connections said it opened

    @property
    def describe_answered(self) -> float:
        """When the claim's describes (before its first write) were all answered."""
        first_write = min(c.start for c in self.writes)
        return max(c.end for c in self.calls if c.start < first_write and not c.is_write)

    def carrier(self, call: Call) -> Connection:
        return self.connections[call.connection or 0]


def claim_through(
    aws_like: AwsLike,
    proxy: ConnectProxy,
    opened: Opened,
    use_cache: bool = False,
    **values: object,
) -> Seen:
    fake = aws_like.fake
    fake.clear_calls()
    proxy.clear()
    since = time.monotonic()
    hold_first_describe(aws_like, since, opened)
    chosen = settings.from_mapping({"proxy": proxy.url, "deadline": DEADLINE_S, **values})
    report = api.claim(chosen, use_cache=use_cache)
    calls = fake.calls(since=since)
    connections = {c.seq: c for c in fake.connections(since)}
    return Seen(report, proxy.tunnels(), calls, fake.writes(since), connections, opened.count)


def assert_switched(aws: AwsLike, w: World, seen: Seen) -> None:
    tables = [w.main_table, *w.tables]
    assert seen.report.ok and seen.report.verified, seen.report.errors
    now = {t: aws.fake.route_target(t, f"{VIP}/32") for t in tables}
    assert now == dict.fromkeys(tables, w.a.eni)
    assert len(seen.writes) == len(tables)
    assert {c.peer for c in seen.calls} == {TUNNEL_SOURCE}, "every call through the proxy"
    assert set(seen.tunnels) == {host_port(aws.fake.endpoint)}


def remember_the_tables(w: World, cache_file: Path) -> None:
    """A backup's refresh: the route-table list the claim after it opens connections for."""
    refreshed = api.refresh(settings.from_mapping({"cache_file": str(cache_file)}))
    assert refreshed.ok, refreshed.errors
    assert len(refreshed.route_tables) == len(w.tables) + 1


def assert_each_write_rode_an_opened_tunnel(seen: Seen, wanted: int) -> None:
    """Every write rode a tunnel ready before the describe answered (the cold path's two round
    trips: the writes pay neither a CONNECT nor a handshake), one tunnel per write, and the
    proxy was asked for no tunnel beyond the describes' and the ones opened ahead."""
    assert seen.opened == wanted, f"open_connections opened {seen.opened} of {wanted}"
    answered = seen.describe_answered
    late = [c.describe() for c in seen.writes if seen.carrier(c).ready >= answered]
    assert not late, (
        f"{len(late)} of {len(seen.writes)} writes rode a tunnel not ready when the describe "
        f"answered (CONNECTs at the proxy: {len(seen.tunnels)}): {late}"
    )
    assert len({c.connection for c in seen.writes}) == len(seen.writes)
    assert all(seen.carrier(c).handshakes == 1 for c in seen.writes)
    assert len(seen.tunnels) <= PARALLEL_READS + wanted, (
        f"{len(seen.tunnels)} CONNECTs for {len(seen.writes)} writes, {wanted} opened ahead"
    )


def test_the_writes_ride_the_tunnels_opened_while_the_describe_ran(
    four_tables: World, aws: AwsLike, proxy: ConnectProxy, opened: Opened, tmp_path: Path
) -> None:
    """A remembered list of four tables: four tunnels opened beside the describes."""
    w = four_tables
    cache_file = tmp_path / "route-tables.json"
    remember_the_tables(w, cache_file)
    seen = claim_through(aws, proxy, opened, cache_file=str(cache_file))

    assert_switched(aws, w, seen)
    assert_each_write_rode_an_opened_tunnel(seen, len(w.tables) + 1)


def test_without_a_list_the_writes_ride_tunnels_of_the_guessed_count(
    four_tables: World, aws: AwsLike, proxy: ConnectProxy, opened: Opened
) -> None:
    """No remembered list: PREOPEN_GUESS tunnels beside the describes."""
    w = four_tables
    seen = claim_through(aws, proxy, opened)

    assert_switched(aws, w, seen)
    assert_each_write_rode_an_opened_tunnel(seen, PREOPEN_GUESS)


def test_the_failover_fast_path_writes_through_the_proxy(
    four_tables: World, aws: AwsLike, proxy: ConnectProxy, opened: Opened, tmp_path: Path
) -> None:
    """A failover with a usable list (use_cache): the writes go out first, the describe beside
    them (fastpath.py), every one of them through the proxy's tunnels, TLS inside; nothing is
    opened ahead (there is no describe to open beside)."""
    w = four_tables
    cache_file = tmp_path / "route-tables.json"
    remember_the_tables(w, cache_file)
    opened.done.set()  # nothing to wait for
    seen = claim_through(aws, proxy, opened, use_cache=True, cache_file=str(cache_file))

    assert_switched(aws, w, seen)
    assert seen.opened == -1, "the fast path opened connections ahead"
    assert all(seen.carrier(c).handshakes == 1 for c in seen.writes)
    assert {c.tls for c in seen.connections.values()} == {"TLSv1.3"}


# --- the pool the connections land in --------------------------------------------------------


def test_connections_opened_beside_the_first_request_land_in_the_pool_it_uses(
    aws: AwsLike, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore makes a proxy's connection manager on first use, without a lock (httpsession
    URLLib3Session._get_proxy_manager: check, build, store): open_connections and the describe
    starting together could each build one, and the connections opened in the loser's pool
    carry nothing. Building a manager is made slow here, so the two always overlap."""
    real = botocore.httpsession.proxy_from_url

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(SLOW_MANAGER_S)
        return real(*args, **kwargs)

    monkeypatch.setattr(botocore.httpsession, "proxy_from_url", slow)
    ec2 = ec2_client(botocore_session(), REGION, DEADLINE_S, proxy=proxy.url)
    with ThreadPoolExecutor(max_workers=1) as side:
        opening = side.submit(open_connections, ec2, AHEAD)
        time.sleep(SLOW_MANAGER_S / 10)  # the describe's first send starts while it builds
        ec2.describe_vpcs()
        assert opening.result() == AHEAD
    before = len(proxy.tunnels())
    since = time.monotonic()
    describe_together(aws, ec2, AHEAD)  # each needs a connection of its own
    assert len(aws.fake.calls("DescribeVpcs", since)) == AHEAD
    assert len(proxy.tunnels()) == before, (
        f"{len(proxy.tunnels()) - before} CONNECTs more for {AHEAD} requests: the "
        f"{AHEAD} connections opened ahead are in a pool no request uses"
    )


def describe_together(aws_like: AwsLike, ec2: Any, count: int) -> None:
    """COUNT DescribeVpcs in flight together: the fake AWS answers none before all arrived."""
    together = threading.Barrier(count)

    def hold(call: Call) -> None:
        if call.action == "DescribeVpcs":
            together.wait(HOLD_BOUND_S)

    aws_like.fake.intercept(hold)
    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(lambda _: ec2.describe_vpcs(), range(count)))
    finally:
        aws_like.fake.remove_hook(hold)
