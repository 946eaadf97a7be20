"""The deadline covers every step and every byte (issue 10, item 6).

A claim, release or status runs as IRIS runs it (the bridge, in its own process, in a member's
namespace; identity and credentials from its IMDS) while IMDS or EC2 answers slowly, never, or a
byte at a time. botocore's read timeout bounds each socket read, not a call: a peer that sends a
byte now and then keeps a call going for as long as it likes. Whatever the fault, the command
ends within its deadline plus 1 s, no request starts after the deadline, no dribbled answer is
still being read after it, the process exits at once (no thread left reading), and the report
says what timed out; a write whose answer never came is not reported switched unless the
verify read shows it.

Every fault here holds for a minute or more (a dribble of hundreds of bytes at 0.05-0.5 s each),
so a command that waits for it is far past the bound, however loaded the machine.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Any, Dict, List

import pytest

from sim.fabric import Fabric
from sim.fakeaws import DRIBBLES, Fault
from tests.sim_fixtures import (  # noqa: F401 - fixtures among them
    assert_all_on,
    by,
    needs_netns,
    sim_aws,
    sim_fab,
    sim_fabric_module,
)

pytestmark = needs_netns

A, B = "memberA", "memberB"
SLACK_S = 1.0  # the promise: every command ends within its deadline plus this
STARTUP_S = 10.0  # a fresh interpreter importing botocore, on a loaded machine: never near 60 s
WHO = {"claim": B, "status": B, "release": A}  # release: the member the routes point at


@dataclass
class Outcome:
    member: str
    report: Dict[str, Any]
    since: float  # test clock (time.monotonic()) just before the process started
    wall: float  # from then to the process's exit


def run(fab: Fabric, command: str, deadline: float, **options: Any) -> Outcome:
    member = WHO[command]
    since = time.monotonic()
    try:
        report = fab.bridge(
            member,
            command,
            settings=fab.settings(member, deadline=deadline),
            timeout=deadline + 45.0,
            **options,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{command} with a {deadline:g}s deadline still running after 45 s more")
    out = Outcome(member, report, since, time.monotonic() - since)
    print(f"{command}, {deadline:g}s deadline: {report.get('elapsed_s')}s ({out.wall:.1f}s)")
    print(f"  {errors(out)}")
    return out


def errors(out: Outcome) -> str:
    rows = [t.get("error") or "" for t in out.report.get("route_tables", [])]
    return " | ".join(out.report.get("errors", []) + out.report.get("warnings", []) + rows)


def assert_bounded(fab: Fabric, out: Outcome, deadline: float) -> None:
    """Within the deadline plus 1 s; nothing started after the deadline; nothing dribbled read
    after it; the process gone at once."""
    report = out.report
    assert "crash" not in report, report
    assert report["elapsed_s"] <= deadline + SLACK_S, (
        f"{report['command']} took {report['elapsed_s']}s for a {deadline:g}s deadline: "
        f"{errors(out)}"
    )
    assert out.wall <= deadline + SLACK_S + STARTUP_S, f"the process lived {out.wall:.1f}s"
    asked = [c for c in fab.imds[out.member].calls if c.at >= out.since]
    assert asked, "IMDS was never asked: no anchor for the deadline"
    end = min(c.at for c in asked) + deadline  # the deadline began before the first IMDS request
    late = [f"IMDS {c.method} {c.path}" for c in asked if c.at > end]
    late += [f"IMDS {c.path} read until +{c.end - end:.1f}s" for c in asked if c.end > end + 1.0]
    key = fab.imds[out.member].identity.access_key_id
    calls = by(fab.aws.calls(since=out.since), key)
    late += [f"{c.describe()} started +{c.start - end:.1f}s" for c in calls if c.start > end]
    late += [
        f"{c.describe()} read until +{c.end - end:.1f}s"
        for c in calls
        if c.fault in DRIBBLES and c.end > end + SLACK_S
    ]
    assert not late, f"after the {deadline:g}s deadline: {late}"


def assert_failed_naming(out: Outcome, *words: str) -> None:
    assert out.report["ok"] is False and out.report["exit_code"] == 1, out.report
    text = errors(out)
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in: {text}"


# --- IMDS: slow, dribbled, and the instance role's credentials ---------------------------------


@pytest.mark.parametrize("command", ["claim", "status", "release"])
def test_imds_answering_slowly_ends_by_the_deadline(
    sim_fab: Fabric,  # noqa: F811
    command: str,
) -> None:
    """Each answer under the per-request timeout: only a deadline over all of them holds."""
    fab = sim_fab
    fab.imds[WHO[command]].slow(0.8)
    out = run(fab, command, 1.0)
    assert_bounded(fab, out, 1.0)
    assert_failed_naming(out, "IMDS", "deadline")
    assert_all_on(fab.aws, fab.world, A)


@pytest.mark.parametrize("path", ["api/token", "meta-data/network/"])
def test_an_imds_answer_dribbled_a_byte_at_a_time_ends_by_the_deadline(
    sim_fab: Fabric,  # noqa: F811
    path: str,
) -> None:
    fab = sim_fab
    fab.imds[B].add_fault("dribble", 0.5, path=path)
    out = run(fab, "claim", 3.0)
    assert_bounded(fab, out, 3.0)
    assert_failed_naming(out, "IMDS", "token" if path == "api/token" else "interface-id")
    assert by(fab.aws.calls(since=out.since), fab.imds[B].identity.access_key_id) == []
    assert_all_on(fab.aws, fab.world, A)


@pytest.mark.parametrize("kind", ["hang", "dribble"])
def test_a_credential_fetch_that_hangs_is_bounded_and_said_so(
    sim_fab: Fabric,  # noqa: F811
    kind: str,
) -> None:
    """botocore fetches the instance role's credentials from IMDS itself (its credential chain);
    when that hangs, the report says so, not "no AWS credentials found" (item 12)."""
    fab = sim_fab
    fab.imds[B].add_fault(kind, 0.2, path="meta-data/iam/")
    out = run(fab, "claim", 3.0)
    assert_bounded(fab, out, 3.0)
    assert_failed_naming(out, "credentials", "IMDS")
    assert "no AWS credentials found" not in errors(out)
    assert_all_on(fab.aws, fab.world, A)


# --- EC2: describes, writes and the verify read dribbled or unanswered ------------------------


@pytest.mark.parametrize("command", ["claim", "status", "release"])
def test_a_describe_dribbled_a_byte_at_a_time_ends_by_the_deadline(
    sim_fab: Fabric,  # noqa: F811
    command: str,
) -> None:
    fab = sim_fab
    fab.aws.add_fault(Fault("dribble", action="DescribeRouteTables", seconds=0.05))
    out = run(fab, command, 4.0)
    assert_bounded(fab, out, 4.0)
    assert_failed_naming(out, "DescribeRouteTables", "answer")
    assert_all_on(fab.aws, fab.world, A)


def test_a_failover_claim_whose_describe_is_dribbled_ends_by_the_deadline(
    sim_fab: Fabric,  # noqa: F811
) -> None:
    """The failover path: the remembered tables written at once, the describe beside them
    dribbled. (What the report makes of the writes then is issue 10's item 4.)"""
    fab, world = sim_fab, sim_fab.world
    assert run(fab, "claim", 8.0, use_cache=True).report["ok"]  # B's table list remembered
    fab.aws.ec2.replace_route(
        RouteTableId=world.client_table,
        DestinationCidrBlock=world.destination,
        NetworkInterfaceId=world.members[A].eni,
    )
    fab.aws.add_fault(Fault("dribble", action="DescribeRouteTables", seconds=0.05))
    out = run(fab, "claim", 4.0, use_cache=True)
    assert_bounded(fab, out, 4.0)
    assert "DescribeRouteTables" in errors(out), errors(out)
    assert_all_on(fab.aws, world, B)  # the writes went out at once


def test_status_with_the_interface_read_dribbled_ends_by_the_deadline(
    sim_fab: Fabric,  # noqa: F811
) -> None:
    fab = sim_fab
    fab.aws.add_fault(Fault("dribble_head", action="DescribeNetworkInterfaces", seconds=0.05))
    out = run(fab, "status", 4.0)
    assert_bounded(fab, out, 4.0)
    assert_failed_naming(out, "DescribeNetworkInterfaces")


@pytest.mark.parametrize(("kind", "cached"), [("dribble", False), ("dribble_head", True)])
def test_a_write_answered_a_byte_at_a_time_is_switched_when_the_verify_read_shows_it(
    sim_fab: Fabric,  # noqa: F811
    kind: str,
    cached: bool,
) -> None:
    fab, world = sim_fab, sim_fab.world
    if cached:  # B was primary once: the failover path writes its remembered tables at once
        assert run(fab, "claim", 8.0, use_cache=True).report["ok"]
        fab.aws.ec2.replace_route(
            RouteTableId=world.client_table,
            DestinationCidrBlock=world.destination,
            NetworkInterfaceId=world.members[A].eni,
        )
    fab.aws.add_fault(Fault(kind, action="ReplaceRoute", table=world.client_table, seconds=0.1))
    out = run(fab, "claim", 4.0, use_cache=cached)
    assert_bounded(fab, out, 4.0)
    assert_all_on(fab.aws, world, B)  # the write landed
    row = table(out, world.client_table)
    # "created" when the describe beside the cached writes already saw this one landed: the
    # route's previous target is then unknown (api._claim_known_tables)
    assert row["action"] in ("replaced", "created") and row["after"] == world.members[B].eni, row
    assert out.report["ok"] is True, out.report


def test_a_write_whose_answer_never_came_is_not_reported_switched_when_the_verify_fails(
    sim_fab: Fabric,  # noqa: F811
) -> None:
    """The write landed (AWS applied it) but neither its answer nor the verify read came
    through: the report cannot know, and must not say "replaced"."""
    fab, world = sim_fab, sim_fab.world
    fab.forget_caches()
    fab.aws.add_fault(
        Fault("dribble", action="ReplaceRoute", table=world.client_table, seconds=0.1)
    )
    fab.aws.add_fault(Fault("dribble", action="DescribeRouteTables", skip=1, seconds=0.05))
    # 8 s, not 4: on a loaded machine the identity and the describe took the 4 s and the write
    # was never sent; the faults here hold far longer than either deadline
    out = run(fab, "claim", 8.0)
    assert_bounded(fab, out, 8.0)
    row = table(out, world.client_table)
    assert row["action"] == "error", row
    assert "ReplaceRoute" in row["error"] and "answer" in row["error"], row
    assert out.report["ok"] is False and out.report["exit_code"] == 1
    others = [table(out, t) for t in world.tables if t != world.client_table]
    assert all(r["action"] == "replaced" for r in others), others


def test_writes_that_never_answer_stop_at_the_deadline_verify_included(
    sim_fab: Fabric,  # noqa: F811
) -> None:
    """Retries stop in time: none starts without time left, and the verify read still fits."""
    fab, world = sim_fab, sim_fab.world
    deadline = 8.0
    fab.aws.add_fault(Fault("hang", action="ReplaceRoute", seconds=60.0))
    out = run(fab, "claim", deadline)
    assert_bounded(fab, out, deadline)
    assert_failed_naming(out, "ReplaceRoute", "retried until the deadline")
    assert all(table(out, t)["action"] == "error" for t in world.tables)
    assert_all_on(fab.aws, world, A)


def test_a_release_whose_deletes_are_dribbled_ends_by_the_deadline(
    sim_fab: Fabric,  # noqa: F811
) -> None:
    fab, world = sim_fab, sim_fab.world
    fab.aws.add_fault(Fault("dribble", action="DeleteRoute", seconds=0.1))
    out = run(fab, "release", 4.0)
    assert_bounded(fab, out, 4.0)
    rows: List[Dict[str, Any]] = [table(out, t) for t in world.tables]
    assert all(r["action"] in ("deleted", "error") for r in rows), rows
    assert all("DeleteRoute" in r["error"] for r in rows if r["action"] == "error"), rows


def table(out: Outcome, table_id: str) -> Dict[str, Any]:
    found = [t for t in out.report.get("route_tables", []) if t["id"] == table_id]
    assert found, f"{table_id} not in the report: {out.report}"
    return found[0]
