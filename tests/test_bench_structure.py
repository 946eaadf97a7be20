"""The benchmark's cheap structural properties, kept from regressing in `make test`.

`make bench` measures how fast the VIP moves (docs/benchmarks.md). What makes it fast is
structure, and structure can be counted from the fake AWS's call record without trusting a
clock: how many EC2 calls a claim makes, how many sequential round trips come before its last
write, whether any table lost its VIP route even for a moment, and which connection each write
used. Here the benchmark's own machinery (bench.rows, bench.measure) runs the product as IRIS
does (a fresh process running bridge.claim, on loopback) with a large injected latency, so
that parallel calls overlap by a wide margin and the counts do not depend on the machine.
"""

from __future__ import annotations

from typing import Iterator, List, Optional

import pytest

from bench import rows, vpc
from bench.measure import Figures, depths
from sim.fakeaws import Call, Connection
from tests.sim_fixtures import Gate, running_bench

LATENCY_S = 0.2  # per call, and per round trip of a connection's set-up (TLS 1.3: two)
MANY = 32  # the most route tables a claim writes in one round trip (aws.MAX_PARALLEL_WRITES)
FEW = 3


@pytest.fixture(scope="module")
def bench() -> Iterator[rows.Bench]:
    with running_bench(seed=3, prefix="mvip-bench-test-", latency_s=LATENCY_S) as found:
        yield found


@pytest.fixture(scope="module")
def many(bench: rows.Bench) -> vpc.Vpc:
    return vpc.build(bench.aws, MANY, 1)


@pytest.fixture(scope="module")
def few(bench: rows.Bench) -> vpc.Vpc:
    return vpc.build(bench.aws, FEW, 2)


def run(bench: rows.Bench, row: str, net: vpc.Vpc, all_held: bool = False) -> Figures:
    """One run of ROW. Its writes must be sent side by side: each is held by the fake AWS until
    every table's write has arrived (ALL_HELD: every other call too), so a loaded machine's slow
    threads cannot make the record show a wave where none was waited for, and a write that
    waits for an answer shows as a gate that timed out (sim_fixtures.Gate)."""
    bench.use(net)
    with Gate(
        bench.aws, table_written, len(net.tables), (lambda c: True) if all_held else None
    ) as gate:
        found = rows.RUNNERS[row](bench, net, LATENCY_S)
    assert found.ok, found.note
    assert gate.complete, f"writes waited for an answer: {[c.describe() for c in gate.timed_out]}"
    return found


def table_written(call: Call) -> Optional[str]:
    return call.table if call.is_write else None


def writes(calls: List[Call]) -> List[Call]:
    return [c for c in calls if c.is_write]


def test_a_cold_claim_is_one_describe_round_trip_then_the_writes(
    bench: rows.Bench, many: vpc.Vpc
) -> None:
    found = run(bench, "ours cold", many)
    calls = bench.aws.calls(since=0.0)
    actions = sorted({c.action for c in calls})
    assert actions == ["DescribeRouteTables", "DescribeSubnets", "ReplaceRoute"]
    assert len(writes(calls)) == MANY
    assert found.calls == MANY + 3  # two describes side by side, the writes, one verify read
    assert found.round_trips == 2
    assert found.no_route_s == 0.0
    # every write went out on a connection opened while the describe was in flight: none of
    # them waited for a handshake after it (api.PREOPEN_GUESS)
    first_describe_end = min(c.end for c in calls if c.action.startswith("Describe"))
    opened = {c.seq: c.opened for c in bench.aws.connections()}
    assert all(opened[w.connection or 0] < first_describe_end for w in writes(calls))


def test_a_failover_claim_with_the_remembered_list_writes_in_the_first_round_trip(
    bench: rows.Bench, many: vpc.Vpc
) -> None:
    found = run(bench, "ours cached", many, all_held=True)  # the describe waits for the writes
    calls = bench.aws.calls(since=0.0)
    assert len(writes(calls)) == MANY and {c.action for c in writes(calls)} == {"ReplaceRoute"}
    assert found.calls == MANY + 3
    assert found.round_trips == 1
    assert found.no_route_s == 0.0
    describe = min((c for c in calls if c.action == "DescribeRouteTables"), key=lambda c: c.start)
    assert all(w.start < describe.end for w in writes(calls)), "a write waited for the describe"


def test_a_warm_reconcile_makes_the_same_calls(bench: rows.Bench, few: vpc.Vpc) -> None:
    bench.use(few)
    rows.ours_warm(bench, few, LATENCY_S)  # the worker's untimed first claim, outside the gate
    found = run(bench, "ours warm", few)
    assert found.calls == FEW + 3
    assert found.round_trips == 2
    assert found.no_route_s == 0.0


def test_the_limit_is_one_round_trip_and_the_baseline_one_per_call(
    bench: rows.Bench, few: vpc.Vpc
) -> None:
    limit = run(bench, "limit", few)
    assert (limit.calls, limit.round_trips, limit.no_route_s) == (FEW, 1, 0.0)
    bench.use(few)
    baseline = rows.baseline(bench, few, LATENCY_S)  # one call after another: no gate
    assert baseline.ok, baseline.note
    # DescribeInstances, DescribeRouteTables, then delete and create in each table in turn
    assert baseline.calls == 2 + 2 * FEW
    assert baseline.round_trips == 2 + 2 * FEW
    assert baseline.no_route_s > 0.0  # each table is without the route between its two calls


def test_the_gate_catches_writes_sent_one_after_another(bench: rows.Bench, few: vpc.Vpc) -> None:
    bench.use(few)
    with Gate(bench.aws, table_written, FEW, timeout_s=0.5) as gate:
        assert rows.baseline(bench, few, LATENCY_S).ok
    assert not gate.complete and gate.timed_out  # each write waited for the one before


def test_round_trips_count_dependent_waves_not_calls() -> None:
    def call(seq: int, start: float, end: float) -> Call:
        return Call(seq=seq, action="ReplaceRoute", params={}, start=start, end=end)

    parallel = [call(1, 0.0, 1.0), call(2, 0.1, 1.1), call(3, 0.2, 1.2)]
    assert set(depths(parallel).values()) == {1}
    chained = [*parallel, call(4, 1.3, 2.0), call(5, 2.1, 3.0)]
    assert depths(chained)[5] == 3


def test_a_write_on_its_own_new_connection_is_sent_when_the_connection_opened() -> None:
    # The record of a loaded "ours cached" run, L = 0.2 s: every connection opened at once;
    # connection 2's set-up ended after connection 1's write was answered, and its write came
    # 7 ms after its set-up (the client's threads waiting for a CPU), having waited for nothing.
    def conn(seq: int, ready: float) -> Connection:
        return Connection(seq=seq, opened=0.0, ready=ready)

    def write(seq: int, on: int, start: float, end: float) -> Call:
        return Call(seq=seq, action="ReplaceRoute", params={}, start=start, end=end, connection=on)

    loaded = [write(1, 1, 0.60, 0.80), write(2, 2, 0.907, 1.11)]
    assert depths(loaded, [conn(1, 0.60), conn(2, 0.90)]) == {1: 1, 2: 1}
    # A connection opened ahead and left idle: the describe was answered while it was set up
    # and ready, and its first write came 1 ms after: that write may have waited for it.
    describe = Call(seq=1, action="DescribeRouteTables", params={}, start=0.6, end=0.8)
    describe.connection = 1
    ahead = [describe, write(2, 2, 0.801, 1.0)]
    assert depths(ahead, [conn(1, 0.60), conn(2, 0.60)])[2] == 2
    assert depths(ahead, [conn(1, 0.60), conn(2, 0.7995)])[2] == 2
