"""Claim and release over a real socket (issue 10, items 4 and 5): the fake AWS proxy over
moto's server (sim/fakeaws.py) injects an EC2 that does not answer, answers too late, or drops
the connection after applying a change; and it records each client connection, so a test can
see which connection carried which call.

The product runs in this process (api.claim / api.release), pointed at the proxy by
AWS_ENDPOINT_URL and AWS_CA_BUNDLE (the `aws` fixture), its identity from the IMDSv2 double, its
interface faked (tests/conftest.py). The VPC is built straight in moto, unrecorded and
unfaulted, so a fault injected for the product does not touch the test's own reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from mirror_vip import api, settings
from mirror_vip.aws import client_config
from sim.fakeaws import FakeAws, Fault
from tests.conftest import AwsLike, FakeHost, Imds, World, build_world


@dataclass
class Wire:
    aws: FakeAws
    world: World


@pytest.fixture
def wire(aws: AwsLike, imds: Imds, fake_host: FakeHost) -> Iterator[Wire]:
    """A VPC of its own in the session's fake AWS; this process is member A."""
    world = build_world(tables=3, ec2=aws.ec2)
    imds.become(world.a, world.vpc_id)
    fake_host.mac = world.a.mac
    fake_host.carry()
    aws.fake.clear_calls()
    try:
        yield Wire(aws.fake, world)
    finally:
        aws.fake.set_round_trip(0.0)


def every_table(w: World) -> List[str]:
    return [w.main_table, *w.tables]


def chosen(**values: Any) -> settings.Settings:
    return settings.from_mapping(values)


# --- item 4: a cached claim whose describe hangs ----------------------------------------------

# 12 s, not 3: with a 1 s read timeout a loaded machine's slow answers had the writes retried
# (8 writes for 4 tables); the describe's hang (60 s) still outlasts it
DEADLINE = 12.0


def test_a_cached_claim_whose_describe_hangs_reports_the_writes(
    wire: Wire, imds: Imds, fake_host: FakeHost, tmp_path: Path
) -> None:
    w = wire.world
    path = str(tmp_path / "tables.json")
    assert api.claim(chosen(cache_file=path)).ok  # A claims: the list is remembered
    imds.become(w.b, w.vpc_id)
    fake_host.mac = w.b.mac
    wire.aws.add_fault(Fault("hang", action="DescribeRouteTables", seconds=60.0))
    wire.aws.clear_calls()
    report = api.claim(chosen(cache_file=path, deadline=DEADLINE), use_cache=True)
    assert w.targets() == dict.fromkeys(every_table(w), w.b.eni)
    assert report.exit_code == 1 and report.outcome == "partial", report
    assert {t.id: (t.action, t.after) for t in report.route_tables} == {
        t: ("replaced", w.b.eni) for t in every_table(w)
    }
    assert any("DescribeRouteTables" in e for e in report.errors), report.errors
    assert any("not verified" in e for e in report.errors), report.errors
    assert len(wire.aws.writes()) == 4
    # the describe's attempt in flight at the deadline, then the verify read's one attempt
    # (how a claim spends its deadline is issue 10's item 6)
    slack = 2 * client_config(DEADLINE).read_timeout + 1.0
    assert report.elapsed_s <= DEADLINE + slack


# --- item 5: release --------------------------------------------------------------------------


def _routes_on_a(w: World) -> None:
    for table in every_table(w):
        w.route(table, w.a.eni)


@pytest.mark.parametrize("kind", ["drop_after", "slow"])
def test_a_delete_applied_but_unanswered_is_reported_as_deleted(wire: Wire, kind: str) -> None:
    """EC2 applied the delete; the answer was lost (the connection dropped) or came after the
    read timeout. The retry finds no route (InvalidRoute.NotFound): ours went, not someone's."""
    w = wire.world
    _routes_on_a(w)
    # A deadline with room for the lost attempt, the retry's backoff and the verify read even
    # on a loaded machine: with 3 s the retry sometimes found no time left (CI, 2026-12-01).
    deadline = 12.0
    late = client_config(deadline).read_timeout + 1.0
    fault = wire.aws.add_fault(
        Fault(kind, action="DeleteRoute", table=w.main_table, times=1, seconds=late)
    )
    report = api.release(chosen(deadline=deadline))
    assert fault.fired == 1
    assert w.targets() == dict.fromkeys(every_table(w), None)
    rows = {t.id: (t.action, t.before, t.after) for t in report.route_tables}
    assert rows == {t: ("deleted", w.a.eni, None) for t in every_table(w)}
    assert report.ok and report.exit_code == 0, report.errors
    mine = [c for c in wire.aws.calls("DeleteRoute") if c.table == w.main_table]
    assert mine[0].landed and len(mine) == 2 and mine[1].code == "InvalidRoute.NotFound"


def test_release_deletes_on_connections_opened_while_it_read(wire: Wire) -> None:
    """The window between the read and the deletes is one-way latency, not a TLS handshake
    more: every delete goes out on a connection opened before the read answered."""
    w = wire.world
    _routes_on_a(w)
    # TCP, then TLS 1.3's one flight: 0.8 s per new connection, so the read answers 1.2 s after
    # it was sent; a pre-open started beside it is opened long before that even on a loaded
    # machine (with 0.1 s the side thread was once scheduled after the read had answered)
    wire.aws.set_round_trip(0.4)
    report = api.release(chosen(deadline=10))
    assert report.ok and w.targets() == dict.fromkeys(every_table(w), None)
    read = next(c for c in wire.aws.calls("DescribeRouteTables"))
    opened = {c.seq: c.opened for c in wire.aws.connections()}
    deletes = wire.aws.calls("DeleteRoute")
    assert len(deletes) == 4
    late = [c.table for c in deletes if opened[c.connection or 0] >= read.end]
    assert late == [], f"deletes on connections opened after the read answered: {late}"
