"""The failover drill in a shared VPC (sim.drill_shared): the route tables are the owner
account's (the fake AWS refuses the members' own writes on them, sim/accounts.py), the members
claim through the owner's role (role_arn). One failover in namespaces: the client kept working,
the routes ended on the new primary, every write signed by the new primary's session of the
role; then a member without role_arn is refused and nothing changes.
"""

from __future__ import annotations

import io
from typing import Iterator, Tuple

import pytest

from sim import drill_shared
from sim.accounts import OWNER_ACCOUNT, SharedVpc
from sim.drill import Options
from sim.fabric import Fabric
from sim.fakeaws import FakeAws
from sim.world import build
from tests.sim_fixtures import assert_all_on, netns_test, sim_aws  # noqa: F401 - a fixture

# The shared drill's outage, measured on this project's loaded 2-core machine with the default
# options (150 ms + 0-50 ms per AWS call, warm cache): 1.7 s, against 1.1 s for the drill
# without the role in the same minutes (the AssumeRole's round trip and the STS client's set-up
# come before the writes). The bound leaves a wide margin for a slower CI run.
OUTAGE_BOUND_S = 10.0


@pytest.fixture(scope="module")
def shared_fab(sim_aws: FakeAws) -> Iterator[Tuple[Fabric, SharedVpc]]:  # noqa: F811
    sim_aws.reset()
    world = build(sim_aws.ec2, sim_aws.client("cloudformation"))
    layer = drill_shared.share(sim_aws, world)
    try:
        with Fabric(sim_aws, world) as fab:
            yield fab, layer
    finally:
        layer.remove()


@netns_test
def test_the_shared_drill_claims_through_the_role_and_the_client_keeps_working(
    shared_fab: Tuple[Fabric, SharedVpc],
) -> None:
    fab, layer = shared_fab
    world = fab.world
    outcome = drill_shared.failover(fab, layer, Options())
    assert outcome.exit_code == 0 and outcome.report["outcome"] == "success", outcome.report
    assert outcome.first_b is not None, "the client never reached member B"
    assert outcome.outage is not None and outcome.outage < OUTAGE_BOUND_S
    assert all(not spans for spans in outcome.no_route.values()), outcome.no_route
    assert [s.member for s in outcome.switches] == ["memberB"]
    assert_all_on(fab.aws, world, "memberB")
    own = fab.imds["memberB"].identity.access_key_id
    (assume,) = [c for c in outcome.calls if c.action == "AssumeRole"]
    assert assume.caller == own and assume.ok
    writes = [c for c in outcome.calls if c.is_write]
    assert len(writes) == len(world.tables) and all(c.landed for c in writes)
    session = drill_shared.drill_session(world, "memberB")
    for write in writes:
        assert write.caller != own and layer.is_owner_role(write.caller)
        assert layer.principal(write.caller).endswith(f"/{session}")
        assert layer.principal(write.caller).startswith(f"arn:aws:sts::{OWNER_ACCOUNT}:")
    assert all(w.start >= assume.end for w in writes), "a write went out before the role"
    assert layer.refused == []

    lines = drill_shared.refused_without_role(fab)
    assert "3 table(s) refused; tables unchanged" in lines[0], lines
    assert "UnauthorizedOperation: not allowed to" in lines[1], lines
    assert_all_on(fab.aws, world, "memberB")
    assert layer.refused and all(c.caller != own for c in layer.refused)


def test_without_namespaces_the_shared_drill_runs_in_process() -> None:
    out = io.StringIO()
    code = drill_shared.run_in_process("--in-process given", Options(latency=0, jitter=0), out)
    assert code == 0
    text = out.getvalue()
    assert "claim with role_arn    on memberB" in text and "3 writes, 3 as the role" in text
    refused = next(line for line in text.splitlines() if "without role_arn" in line)
    assert "changed 0 of 3" in refused and "FAILED" in refused and "0 as the role" in refused
    routes = next(line for line in text.splitlines() if line.startswith("  routes"))
    ends, member_b = routes.split("now on ", 1)[1].split(" (memberB: ")
    assert ends == f"['{member_b.rstrip(')')}']", routes  # every table on memberB
