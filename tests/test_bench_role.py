"""What the owner account's role costs a failover claim in a shared VPC, kept from regressing
(issue 12: "at most one extra round trip").

As tests/test_bench_structure.py does for the rows without a role: the benchmark's own
machinery runs the product as IRIS does (a fresh process running bridge.claim with the
remembered table list, on loopback) with a large injected latency, and the counts are read off
the fake AWS's record, never off a clock. Here the VPC is shared (sim/accounts.py: the fake
refuses route writes not signed by the owner's role), and the claim sets role_arn.
"""

from __future__ import annotations

from typing import Iterator, List, Tuple

import pytest

from bench import rows, vpc
from bench.measure import Figures, depths
from sim.accounts import SharedVpc
from sim.fakeaws import Call
from tests.sim_fixtures import running_bench

LATENCY_S = 0.2  # per call, and per round trip of a connection's set-up (TLS 1.3: two)
TABLES = 8


@pytest.fixture(scope="module")
def bench() -> Iterator[rows.Bench]:
    with running_bench(seed=4, prefix="mvip-bench-role-", latency_s=LATENCY_S) as found:
        yield found


@pytest.fixture(scope="module")
def shared(bench: rows.Bench) -> Iterator[Tuple[vpc.Vpc, SharedVpc]]:
    """A VPC of TABLES route tables, shared: its tables are the owner account's."""
    net = vpc.build(bench.aws, TABLES, 1)
    with SharedVpc(bench.aws) as layer:
        layer.share(net.vpc_id)
        yield net, layer


def run(bench: rows.Bench, row: str, net: vpc.Vpc) -> Figures:
    bench.use(net)
    found = rows.RUNNERS[row](bench, net, LATENCY_S)
    assert found.ok, found.note
    return found


def writes(calls: List[Call]) -> List[Call]:
    return [c for c in calls if c.is_write]


def test_without_the_role_the_shared_tables_refuse_the_claim(
    bench: rows.Bench, shared: Tuple[vpc.Vpc, SharedVpc]
) -> None:
    net, _ = shared
    bench.use(net)
    found = rows.ours_cached(bench, net, LATENCY_S)
    assert not found.ok and found.switched_s is None
    refused = writes(bench.aws.calls(since=found.started))
    assert refused and all(c.code == "UnauthorizedOperation" for c in refused)


def test_the_role_costs_a_failover_claim_one_round_trip_no_more(
    bench: rows.Bench, shared: Tuple[vpc.Vpc, SharedVpc]
) -> None:
    net, layer = shared
    found = run(bench, "ours cached + role", net)
    calls = bench.aws.calls(since=found.started)
    own = bench.imds.identity.access_key_id
    (assume,) = [c for c in calls if c.action == "AssumeRole"]
    assert assume.caller == own and assume.ok
    assert len(writes(calls)) == TABLES and {c.action for c in writes(calls)} == {"ReplaceRoute"}
    assert all(layer.is_owner_role(w.caller) and w.landed for w in writes(calls))
    # one round trip more than the claim without a role (tests/test_bench_structure.py: 1):
    # the AssumeRole, then the writes
    assert found.round_trips == 2
    depth = depths(calls, bench.aws.connections(since=found.started))
    assert depth[assume.seq] == 1 and {depth[w.seq] for w in writes(calls)} == {2}
    assert found.calls == TABLES + 3 + 1  # the claim's calls (writes, 2 describes, verify) + 1
    assert found.no_route_s == 0.0
    # the writes went out on connections opened while the AssumeRole was in flight: none of
    # them waited for a handshake after it (assumerole.AssumedRole.ready)
    opened = {c.seq: c.opened for c in bench.aws.connections(since=found.started)}
    assert all(opened[w.connection or 0] < assume.end for w in writes(calls))
    assert all(w.start >= assume.end for w in writes(calls)), "a write without the role"
