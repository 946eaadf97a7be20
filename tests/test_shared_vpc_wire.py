"""A shared VPC on the wire: the fake AWS knows two accounts (sim/accounts.py) and refuses, as
AWS does, the members' own route writes on the owner's tables; the product, through its real
credential chain, HTTPS and the fake's proxy, claims through the owner's role (role_arn),
whose AssumeRole moto's STS serves.

What each test reads is the state that matters: where each table's VIP route points, what the
report says of each table, and who signed each request in the fake's own record (the access
key id of its SigV4 header, and which principal moto's STS says that key is).
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

import pytest

from mirror_vip import api, settings
from mirror_vip.report import Report
from sim.accounts import OWNER_ACCOUNT, OWNER_ROLE, SharedVpc
from sim.fakeaws import Call
from tests.conftest import VIP, AwsLike, World

INSTANCE_KEY = "testing"  # the `aws` fixture's AWS_ACCESS_KEY_ID: this instance's own role
ROUTES = ("CreateRoute", "ReplaceRoute", "DeleteRoute")


@pytest.fixture
def shared(member_a: World, aws: AwsLike) -> Iterator[SharedVpc]:
    """member_a's VPC shared by the owner account: its tables are the owner's. Routes set up
    before the test point table 0 at member B (straight to moto, as the owner would)."""
    layer = SharedVpc(aws.fake)
    layer.share(member_a.vpc_id)
    aws.ec2.create_route(
        RouteTableId=member_a.tables[0],
        DestinationCidrBlock=f"{VIP}/32",
        NetworkInterfaceId=member_a.b.eni,
    )
    aws.fake.clear_calls()
    with layer:
        yield layer


def run(command: str, role: bool, **options: Any) -> Report:
    values: Dict[str, Any] = {"role_arn": OWNER_ROLE} if role else {}
    result: Report = getattr(api, command)(settings.from_mapping(values), **options)
    return result


def route_calls(calls: List[Call], dry_run: Optional[bool] = None) -> List[Call]:
    return [c for c in calls if c.action in ROUTES and (dry_run is None or c.dry_run == dry_run)]


def test_without_the_role_the_members_writes_are_refused_and_nothing_changes(
    member_a: World, shared: SharedVpc, aws: AwsLike
) -> None:
    w = member_a
    before = w.targets()
    report = run("claim", role=False)
    assert not report.ok and report.outcome == "failure", report.to_json()
    assert w.targets() == before, "a refused write changed a table"
    failed = {t.id: str(t.error) for t in report.route_tables}
    assert set(failed) == set(before), report.to_json()
    for table, error in failed.items():
        assert error.startswith("UnauthorizedOperation: not allowed to"), error
        assert table in error and "grant it to the instance role" in error, error
    writes = route_calls(aws.fake.calls(), dry_run=False)
    assert {c.action for c in writes} == {"CreateRoute", "ReplaceRoute"}
    assert all(c.caller == INSTANCE_KEY for c in writes)
    assert all((c.status, c.code) == (403, "UnauthorizedOperation") for c in writes)
    assert not any(c.landed for c in writes) and shared.refused
    assert aws.fake.calls("AssumeRole") == []


def test_with_the_role_the_routes_switch_every_write_signed_by_the_role(
    member_a: World, shared: SharedVpc, aws: AwsLike
) -> None:
    w = member_a
    report = run("claim", role=True)
    assert report.ok and report.verified, report.to_json()
    assert set(w.targets().values()) == {w.a.eni}
    assert {t.id: t.after for t in report.route_tables} == w.targets()
    record = aws.fake.calls()
    (assume,) = record_of(record, "AssumeRole")
    assert assume.caller == INSTANCE_KEY and assume.ok, "assumed as this instance"
    assert assume.params["RoleArn"] == OWNER_ROLE
    assert assume.params["RoleSessionName"] == f"mirror-vip-{w.a.instance_id}"
    role_key = next(c.caller for c in record if c.action == "DescribeRouteTables")
    assert shared.is_owner_role(role_key) and role_key != INSTANCE_KEY
    assert shared.principal(role_key).startswith(
        f"arn:aws:sts::{OWNER_ACCOUNT}:assumed-role/mirror-vip-routes/mirror-vip-{w.a.instance_id}"
    )
    writes = route_calls(record)
    assert {c.action for c in writes} == {"CreateRoute", "ReplaceRoute"}
    assert all(c.caller == role_key and c.landed for c in writes), [c.describe() for c in writes]
    assert shared.refused == []
    # what belongs to this instance is still read as itself
    report = run("status", role=True)
    assert report.ok and report.source_dest_check is False
    (own,) = record_of(aws.fake.calls(), "DescribeNetworkInterfaces")
    assert own.caller == INSTANCE_KEY and own.ok
    assert not shared.is_owner_role(own.caller)


def test_release_with_the_role_deletes_as_the_role_and_without_it_is_refused(
    member_a: World, shared: SharedVpc, aws: AwsLike
) -> None:
    w = member_a
    assert run("claim", role=True).ok
    aws.fake.clear_calls()
    refused = run("release", role=False)
    assert not refused.ok and set(w.targets().values()) == {w.a.eni}
    assert all(c.code == "UnauthorizedOperation" for c in route_calls(aws.fake.calls()))
    aws.fake.clear_calls()
    released = run("release", role=True)
    assert released.ok, released.to_json()
    assert set(w.targets().values()) == {None}
    deletes = route_calls(aws.fake.calls())
    assert deletes and {c.action for c in deletes} == {"DeleteRoute"}
    assert all(shared.is_owner_role(c.caller) and c.landed for c in deletes)


def test_the_doctors_dry_run_probes_are_refused_and_accepted_alike(
    member_a: World, shared: SharedVpc, aws: AwsLike
) -> None:
    w = member_a
    before = w.targets()
    checks = {c.name: c for c in run("doctor", role=False).checks}
    assert checks["permissions"].status == "fail", checks["permissions"]
    detail = checks["permissions"].detail
    assert detail.startswith("denied: ") and "grant them to the instance role" in detail
    for table in before:
        assert f"ReplaceRoute on {table}" in detail and f"DeleteRoute on {table}" in detail
    probes = route_calls(aws.fake.calls(), dry_run=True)
    assert probes and all(c.code == "UnauthorizedOperation" for c in probes)
    assert all(c.caller == INSTANCE_KEY for c in probes)

    aws.fake.clear_calls()
    checks = {c.name: c for c in run("doctor", role=True).checks}
    assert checks["assume_role"].status == "pass", checks["assume_role"]
    assert checks["permissions"].status == "pass", checks["permissions"]
    probes = route_calls(aws.fake.calls(), dry_run=True)
    assert len(probes) == 3 * len(before)
    assert all(c.code == "DryRunOperation" and shared.is_owner_role(c.caller) for c in probes)
    assert route_calls(aws.fake.calls(), dry_run=False) == []
    assert w.targets() == before, "a probe changed a table"


def record_of(calls: List[Call], action: str) -> List[Call]:
    return [c for c in calls if c.action == action]
