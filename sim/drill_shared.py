"""The failover drill in a shared VPC (`python -m sim.drill_shared`).

The drill of sim/drill.py, in the landing-zone layout of issue 12: the VPC and its route
tables belong to an owner account, the members run in a workload account (sim/accounts.py
makes the fake AWS refuse the members' own route writes on the owner's tables, as AWS does),
and the members claim through a role of the owner account (the setting role_arn, as IRIS's
MirrorVip.Config would hold it): AssumeRole (moto's STS, behind the same proxy and latency),
then the writes as that role. It prints the same timeline and outage figures as the drill,
who signed what, and what a member without role_arn gets: a refused claim, nothing changed.

Our claim only: the seed article's delete-then-create acts as the instance itself, which a
shared VPC refuses. Without namespaces it runs in process (no client, no outage figure).
`make demo` runs sim.drill, unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from typing import Any, List, Optional

from . import drill
from .accounts import OWNER_ROLE, SharedVpc
from .drill import OURS, Options, Outcome
from .fabric import IRIS_FACTS, Fabric
from .fakeaws import FakeAws
from .netns import unavailable_reason
from .world import Layout, World, build

ROLE = OWNER_ROLE
TITLE = "mirror-vip in a shared VPC: bridge.claim on memberB, through the owner account's role"
IN_PROCESS = Layout(name="mvip-shared-inprocess")  # moto's state is per process


def share(aws: FakeAws, world: World) -> SharedVpc:
    """WORLD's VPC becomes the owner account's (its route tables refuse the members' own
    writes), and the members' settings name the owner's role. Remove the layer when done."""
    layer = SharedVpc(aws).install()
    layer.share(world.vpc_id)
    world.settings["role_arn"] = ROLE
    return layer


def failover(fab: Fabric, layer: SharedVpc, opts: Options) -> Outcome:
    """drill.failover with our claim; its calls are member B's, as itself or as its session
    of the owner's role (mirror-vip-<B's instance id>)."""
    outcome = drill.failover(fab, OURS, opts)
    return dataclasses.replace(outcome, calls=calls_of(fab, layer, "memberB", outcome.trigger))


def calls_of(fab: Fabric, layer: SharedVpc, member: str, since: float) -> List[Any]:
    own = fab.imds[member].identity.access_key_id
    session = f"/{drill_session(fab.world, member)}"
    return [
        c
        for c in fab.aws.calls(since=since)
        if c.caller == own or layer.principal(c.caller).endswith(session)
    ]


def drill_session(world: World, member: str) -> str:
    return f"mirror-vip-{world.members[member].instance_id}"


def signers(outcome: Outcome, layer: SharedVpc, own_key: str) -> List[str]:
    """Who signed member B's calls during the failover, in one line each."""
    as_self = sorted({c.action for c in outcome.calls if c.caller == own_key})
    role_keys = {c.caller for c in outcome.calls if c.caller != own_key}
    as_role = [c for c in outcome.calls if c.caller in role_keys]
    writes = [c for c in as_role if c.is_write]
    principals = sorted({layer.principal(k) for k in role_keys})
    return [
        f"  signed    as memberB's instance role: {', '.join(as_self) or 'nothing'}",
        f"            as {', '.join(principals) or 'no role'}: {len(as_role)} calls, "
        f"{len(writes)} route writes; refused by the owner's tables: {len(layer.refused)}",
    ]


def refused_without_role(fab: Fabric, member: str = "memberA") -> List[str]:
    """MEMBER claims without role_arn: what it reports, and that no table changed."""
    before = fab.aws.routes_to(fab.world.destination, fab.world.vpc_id)
    chosen = {k: v for k, v in fab.settings(member).items() if k != "role_arn"}
    report = fab.bridge(member, "claim", settings=chosen, use_cache=True)
    after = fab.aws.routes_to(fab.world.destination, fab.world.vpc_id)
    errors = [t.get("error") for t in report.get("route_tables", []) if t.get("error")]
    return [
        f"\n[2] {member} claims without role_arn: {report.get('outcome')}, "
        f"{len(errors)} table(s) refused; tables {'unchanged' if after == before else 'CHANGED'}",
        f"  {errors[0] if errors else report.get('errors')}",
    ]


def run_netns(opts: Options, out: Any = None) -> Outcome:
    out = out or sys.stdout
    aws = FakeAws(seed=opts.seed).start()
    try:
        world = build(aws.ec2, aws.client("cloudformation"))
        layer = share(aws, world)
        with Fabric(aws, world, propagation_delay=opts.propagation) as fab:
            for line in drill.header(world, fab, opts):
                print(line, file=out)
            print(
                f"  accounts  the route tables are owner {layer.owner}'s, the members workload "
                f"{layer.workload}'s; role_arn {ROLE}",
                file=out,
            )
            print(f"\n[1] {TITLE}", file=out)
            outcome = failover(fab, layer, opts)
            for line in drill.timeline(outcome, world):
                print(line, file=out)
            for line in signers(outcome, layer, fab.imds["memberB"].identity.access_key_id):
                print(line, file=out)
            for line in refused_without_role(fab):
                print(line, file=out)
            print("\nsummary", file=out)
            for line in drill.comparison([outcome]):
                print(line, file=out)
            out.flush()
            return outcome
    finally:
        aws.stop()


def run_in_process(reason: str, opts: Options, out: Any = None) -> int:
    """The claims through the bridge in this process (no namespaces, no client): memberB
    through the role, then memberA without role_arn (refused, nothing changed)."""
    out = out or sys.stdout
    from mirror_vip import bridge

    print(f"note: {reason}: running in process against moto instead (no client)", file=out)
    aws = FakeAws(seed=opts.seed).start()
    saved = {k: os.environ.get(k) for k in drill._ENV}
    layer: Optional[SharedVpc] = None
    try:
        world = build(aws.ec2, aws.client("cloudformation"), IN_PROCESS)
        layer = share(aws, world)
        os.environ.update(
            {
                **aws.env(),
                "AWS_ACCESS_KEY_ID": "AKIDINPROCESSSHARED0",
                "AWS_SECRET_ACCESS_KEY": "sim-secret",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        print(f"  world     {world.built_with}; VIP {world.vip}; role_arn {ROLE}", file=out)
        for name, role in (("memberB", True), ("memberA", False)):
            chosen = {
                **world.settings,
                "eni": world.members[name].eni,
                "region": world.region,
                "interface": "lo",
            }
            if not role:
                del chosen["role_arn"]
            aws.set_latency("*", opts.latency, opts.jitter)
            since = time.monotonic()
            report = bridge.claim(json.dumps(chosen), IRIS_FACTS)
            aws.clear_faults()
            calls = aws.calls(since=since)
            as_role = sum(1 for c in calls if c.is_write and layer.is_owner_role(c.caller))
            label = "with role_arn" if role else "without role_arn"
            print(
                f"  claim {label:<17}on {name}: {bridge.summarize(report)} ({len(calls)} AWS "
                f"calls, {sum(c.is_write for c in calls)} writes, {as_role} as the role)",
                file=out,
            )
        found = aws.routes_to(world.destination, world.vpc_id)
        ends = sorted({str(found.get(t)) for t in world.tables})
        print(f"  routes    now on {ends} (memberB: {world.members['memberB'].eni})", file=out)
        return 0
    finally:
        if layer is not None:
            layer.remove()
        drill.restore_environment(saved)
        aws.stop()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.drill_shared", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--latency", type=float, default=Options.latency, help="s per AWS call")
    parser.add_argument("--jitter", type=float, default=Options.jitter, help="s, added at random")
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--cold", action="store_true", help="memberB has no route-table cache")
    parser.add_argument("--in-process", action="store_true", help="skip the namespaces")
    args = parser.parse_args(argv)
    opts = Options(
        latency=args.latency,
        jitter=args.jitter,
        seed=args.seed,
        algorithms=(OURS,),
        warm=not args.cold,
    )
    previous = drill._stop_on_sigterm()
    try:
        reason = "--in-process given" if args.in_process else unavailable_reason()
        if reason:
            return run_in_process(reason, opts)
        outcome = run_netns(opts)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if outcome.exit_code == 0 and outcome.first_b else 1


if __name__ == "__main__":
    sys.exit(main())
