"""claim against moto made to answer as AWS does: where every route points afterwards, and
how many calls it took."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Dict

import pytest

from mirror_vip import api, settings
from mirror_vip.report import Report
from tests.conftest import VIP, AwsLike, FakeHost, Imds, World, build_world


def claim(**values: Any) -> Report:
    options = {k: values.pop(k) for k in ("dry_run", "force", "iris", "use_cache") if k in values}
    return api.claim(settings.from_mapping(values), **options)


def actions(report: Report) -> Dict[str, str]:
    return {t.id: t.action for t in report.route_tables}


def test_claim_points_every_table_here_in_two_round_trips(member_a: World, aws: AwsLike) -> None:
    w = member_a
    w.route(w.tables[0], w.b.eni)  # elsewhere; the main table and tables[1] have no route
    aws.calls.clear()
    report = claim()
    names = [a for a, _ in aws.calls]
    assert report.ok and report.exit_code == 0 and report.outcome == "success"
    assert set(w.targets().values()) == {w.a.eni}
    assert actions(report) == {
        w.main_table: "created",
        w.tables[0]: "replaced",
        w.tables[1]: "created",
    }
    by_id = {t.id: t for t in report.route_tables}
    assert by_id[w.tables[0]].before == w.b.eni and by_id[w.tables[0]].after == w.a.eni
    assert by_id[w.main_table].main and by_id[w.main_table].before is None
    # round trip 1: the two describes; round trip 2: one write per table; then one verify read
    assert names[:2] in (
        ["DescribeRouteTables", "DescribeSubnets"],
        ["DescribeSubnets", "DescribeRouteTables"],
    )
    assert sorted(names[2:5]) == ["CreateRoute", "CreateRoute", "ReplaceRoute"]
    assert names[5:] == ["DescribeRouteTables"]
    assert aws.count("DeleteRoute") == 0  # never delete during a claim


def test_second_claim_writes_nothing(member_a: World, aws: AwsLike) -> None:
    assert claim().ok
    aws.calls.clear()
    again = claim()
    assert aws.count("DescribeRouteTables") == 1  # no verify read when nothing was written
    assert again.ok and set(actions(again).values()) == {"unchanged"}
    assert aws.writes == []


def test_failover_moves_every_route_from_a_to_b(
    member_a: World, imds: Imds, fake_host: FakeHost
) -> None:
    w = member_a
    assert claim().ok
    imds.become(w.b, w.vpc_id)
    fake_host.mac = w.b.mac
    report = claim()
    assert report.ok and set(actions(report).values()) == {"replaced"}
    assert set(w.targets().values()) == {w.b.eni}


def test_single_table_vpc(aws: AwsLike, imds: Imds, fake_host: FakeHost) -> None:
    w = build_world(tables=0)
    imds.become(w.a, w.vpc_id)
    fake_host.mac = w.a.mac
    fake_host.carry()
    report = claim()
    assert report.ok and [t.id for t in report.route_tables] == [w.main_table]
    assert w.target(w.main_table) == w.a.eni


def test_selection_by_id_and_tag(aws: AwsLike, imds: Imds, fake_host: FakeHost) -> None:
    w = build_world(tables=3, tag_first=("mirror-vip", "prod"))
    imds.become(w.a, w.vpc_id)
    fake_host.mac = w.a.mac
    fake_host.carry()
    by_tag = claim(route_table_tag="mirror-vip=prod")
    assert by_tag.ok and [t.id for t in by_tag.route_tables] == [w.tables[0]]
    assert w.targets() == {
        w.main_table: None,
        w.tables[0]: w.a.eni,
        w.tables[1]: None,
        w.tables[2]: None,
    }
    by_id = claim(route_tables=f"{w.tables[2]},{w.main_table}")
    assert [t.id for t in by_id.route_tables] == [w.tables[2], w.main_table]  # in the given order
    assert w.target(w.tables[1]) is None
    both = claim(route_tables=w.tables[1], route_table_tag="mirror-vip=prod", dry_run=True)
    assert not both.ok and both.route_tables[0].action == "error"
    assert "with tag mirror-vip=prod" in str(both.route_tables[0].error)


def test_table_of_another_vpc_is_never_touched(member_a: World, aws: AwsLike) -> None:
    w = member_a
    other = build_world(tables=1)
    report = claim(route_tables=f"{w.tables[0]},{other.tables[0]}")
    assert report.exit_code == 1 and report.outcome == "partial"
    assert actions(report) == {w.tables[0]: "created", other.tables[0]: "error"}
    assert w.vpc_id in str(report.route_tables[1].error)
    assert other.target(other.tables[0]) is None
    assert not any(p["RouteTableId"] == other.tables[0] for _, p in aws.writes)


def test_multi_eni_instance_targets_the_eni_behind_the_interface(
    member_a: World, imds: Imds, fake_host: FakeHost
) -> None:
    w = member_a
    second = w.ec2.create_network_interface(SubnetId=w.a.subnet_id)["NetworkInterface"]
    w.ec2.attach_network_interface(
        NetworkInterfaceId=second["NetworkInterfaceId"], InstanceId=w.a.instance_id, DeviceIndex=1
    )
    mac = second["MacAddress"].lower()
    imds.paths[f"meta-data/network/interfaces/macs/{mac}/interface-id"] = second[
        "NetworkInterfaceId"
    ]
    imds.paths[f"meta-data/network/interfaces/macs/{mac}/vpc-id"] = w.vpc_id
    fake_host.mac = mac  # eth0 here is the second ENI
    report = claim()
    assert report.ok and report.eni == second["NetworkInterfaceId"]
    assert set(w.targets().values()) == {second["NetworkInterfaceId"]}


def test_one_denied_table_does_not_stop_the_others(member_a: World, aws: AwsLike) -> None:
    w = member_a
    for table in (w.main_table, *w.tables):
        w.route(table, w.b.eni)
    aws.deny.add(("ReplaceRoute", w.tables[1]))
    report = claim()
    assert report.exit_code == 1 and report.outcome == "partial"
    denied = next(t for t in report.route_tables if t.id == w.tables[1])
    assert denied.action == "error" and "UnauthorizedOperation" in str(denied.error)
    assert "iam-policy.json" in str(denied.error)
    assert w.targets() == {w.main_table: w.a.eni, w.tables[0]: w.a.eni, w.tables[1]: w.b.eni}


def test_throttling_is_retried(member_a: World, aws: AwsLike) -> None:
    w = member_a
    aws.throttle = {"DescribeRouteTables": 2, "CreateRoute": 4}
    report = claim()
    assert report.ok
    assert set(w.targets().values()) == {w.a.eni}
    assert aws.count("CreateRoute") == 3 + 4


def test_route_created_by_someone_else_meanwhile_is_replaced(member_a: World, aws: AwsLike) -> None:
    w = member_a

    def b_creates_first(ec2: Any, action: str, params: Dict[str, Any]) -> None:
        if action == "CreateRoute" and params["RouteTableId"] == w.tables[0]:
            aws.hooks.clear()
            ec2.create_route(
                RouteTableId=w.tables[0],
                DestinationCidrBlock=f"{VIP}/32",
                NetworkInterfaceId=w.b.eni,
            )

    aws.hooks.append(b_creates_first)
    report = claim()
    assert report.ok and actions(report)[w.tables[0]] == "replaced"
    assert w.target(w.tables[0]) == w.a.eni


def test_route_deleted_by_someone_else_meanwhile_is_created(member_a: World, aws: AwsLike) -> None:
    w = member_a
    w.route(w.tables[0], w.b.eni)

    def b_deletes_first(ec2: Any, action: str, params: Dict[str, Any]) -> None:
        if action == "ReplaceRoute" and params["RouteTableId"] == w.tables[0]:
            aws.hooks.clear()
            ec2.delete_route(RouteTableId=w.tables[0], DestinationCidrBlock=f"{VIP}/32")

    aws.hooks.append(b_deletes_first)
    report = claim()
    assert report.ok and actions(report)[w.tables[0]] == "created"
    assert w.target(w.tables[0]) == w.a.eni


def test_a_stale_verify_read_is_retried_not_reported(member_a: World, aws: AwsLike) -> None:
    w = member_a
    seen = {"describes": 0}

    def stale_once(ec2: Any, action: str, params: Dict[str, Any]) -> None:
        if action != "DescribeRouteTables":
            return
        seen["describes"] += 1
        table = w.tables[0]
        if seen["describes"] == 2:  # the first verify read still sees no route
            ec2.delete_route(RouteTableId=table, DestinationCidrBlock=f"{VIP}/32")
        elif seen["describes"] == 3:  # ... and the next one sees the write
            aws.hooks.clear()
            ec2.create_route(
                RouteTableId=table, DestinationCidrBlock=f"{VIP}/32", NetworkInterfaceId=w.a.eni
            )

    aws.hooks.append(stale_once)
    report = claim()
    assert aws.count("DescribeRouteTables") == 3
    assert report.ok, report.errors


def test_a_concurrent_claim_that_wins_is_reported(member_a: World, aws: AwsLike) -> None:
    w = member_a

    def b_claims_after_us(ec2: Any, action: str, params: Dict[str, Any]) -> None:
        if action == "DescribeRouteTables" and aws.count("CreateRoute") == 3:
            aws.hooks.clear()
            ec2.replace_route(
                RouteTableId=w.tables[1],
                DestinationCidrBlock=f"{VIP}/32",
                NetworkInterfaceId=w.b.eni,
            )

    aws.hooks.append(b_claims_after_us)
    report = claim(deadline=10)  # 2 s once ran out on a loaded machine before the tables were read
    assert report.exit_code == 1
    lost = next(t for t in report.route_tables if t.id == w.tables[1])
    assert lost.action == "error" and lost.after == w.b.eni
    assert "another member" in str(lost.error)


def test_vip_inside_a_subnet_is_refused_before_any_write(member_a: World, aws: AwsLike) -> None:
    report = claim(vip="10.20.1.200")
    assert report.exit_code == 2 and report.outcome == "failure"
    assert "inside subnet" in report.errors[0] and "10.20.1.0/24" in report.errors[0]
    assert aws.writes == []


def test_vip_inside_vpc_cidr_but_outside_subnets_is_claimed(member_a: World) -> None:
    report = claim(vip="10.20.255.254")
    assert report.ok
    assert set(member_a.targets("10.20.255.254").values()) == {member_a.a.eni}


def test_vip_not_on_the_interface_is_a_warning(member_a: World, fake_host: FakeHost) -> None:
    fake_host.addresses.pop()  # drop the eth0:1 alias
    report = claim(vip=VIP)
    assert report.ok and report.vip_on_interface is False
    assert any("not on eth0:1" in w for w in report.warnings)
    assert set(member_a.targets().values()) == {member_a.a.eni}


def test_without_vip_or_alias_nothing_is_done(
    member_a: World, fake_host: FakeHost, aws: AwsLike
) -> None:
    fake_host.addresses.pop()
    report = claim()
    assert report.exit_code == 2 and "pass --vip" in report.errors[0]
    assert aws.calls == []


def test_dry_run_changes_nothing(member_a: World, aws: AwsLike) -> None:
    w = member_a
    w.route(w.tables[0], w.b.eni)
    aws.calls.clear()
    report = claim(dry_run=True)
    assert report.ok and report.dry_run
    assert actions(report) == {
        w.main_table: "would-create",
        w.tables[0]: "would-replace",
        w.tables[1]: "would-create",
    }
    assert aws.writes == []
    assert w.targets() == {w.main_table: None, w.tables[0]: w.b.eni, w.tables[1]: None}


def test_backup_member_refuses_unless_forced(member_a: World, aws: AwsLike) -> None:
    refused = claim(iris={"role": "backup", "mirror_name": "PROD"})
    assert refused.exit_code == 2 and "backup" in refused.errors[0]
    assert aws.calls == []
    forced = claim(iris={"role": "backup"}, force=True)
    assert forced.ok and forced.iris == {"role": "backup"}


def test_imds_disabled_names_the_settings_to_pass(
    member_a: World, monkeypatch: pytest.MonkeyPatch, aws: AwsLike
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    report = claim()
    assert report.exit_code == 1 and "pass --eni and --region" in report.errors[0]
    assert aws.calls == []
    only_region = claim(region="eu-west-1")
    assert "pass --eni" in only_region.errors[0] and "--region" not in only_region.errors[0]


def test_eni_and_region_given_need_no_imds(
    member_a: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    w = member_a
    report = claim(eni=w.b.eni, region="eu-west-1", vip=VIP)
    assert report.ok and (report.instance_id, report.vpc_id) == (w.b.instance_id, w.vpc_id)
    assert set(w.targets().values()) == {w.b.eni}


def test_permanent_describe_error_is_one_line(member_a: World, aws: AwsLike) -> None:
    aws.deny.add(("DescribeRouteTables", None))  # type: ignore[arg-type]
    report = claim()
    assert report.exit_code == 1 and len(report.errors) == 1
    assert report.errors[0].startswith("UnauthorizedOperation: not allowed to DescribeRouteTables")
    assert aws.writes == []


# --- the cached table list: a failover claim in one round trip ---------------------------------


def test_cached_claim_writes_while_the_describe_is_in_flight(
    member_a: World, aws: AwsLike, imds: Imds, fake_host: FakeHost, tmp_path: Path
) -> None:
    w = member_a
    cache_file = str(tmp_path / "tables.json")
    assert claim(cache_file=cache_file).ok  # A claims and remembers the three tables
    imds.become(w.b, w.vpc_id)
    fake_host.mac = w.b.mac
    aws.calls.clear()
    writes_seen = threading.Event()

    def hold_the_describe(ec2: Any, action: str, params: Dict[str, Any]) -> None:
        if action == "ReplaceRoute" and aws.count("ReplaceRoute") == 3:
            writes_seen.set()
        if action == "DescribeRouteTables" and aws.count("DescribeRouteTables") == 1:
            # the first describe answers only once all three writes have arrived
            writes_seen.wait(timeout=10)

    aws.hooks.append(hold_the_describe)
    report = claim(cache_file=cache_file, use_cache=True)
    assert writes_seen.is_set(), "the writes waited for the describe"
    assert report.ok and set(actions(report).values()) == {"replaced"}
    assert set(w.targets().values()) == {w.b.eni}
    assert aws.count("CreateRoute", "DeleteRoute") == 0


def test_cached_claim_drops_a_gone_table_and_claims_a_new_one(
    member_a: World, aws: AwsLike, tmp_path: Path
) -> None:
    w = member_a
    cache_file = str(tmp_path / "tables.json")
    assert claim(cache_file=cache_file).ok
    w.ec2.delete_route(RouteTableId=w.tables[1], DestinationCidrBlock=f"{VIP}/32")
    w.ec2.delete_route_table(RouteTableId=w.tables[1])
    newcomer = w.ec2.create_route_table(VpcId=w.vpc_id)["RouteTable"]["RouteTableId"]
    w.ec2.replace_route(
        RouteTableId=w.tables[0], DestinationCidrBlock=f"{VIP}/32", NetworkInterfaceId=w.b.eni
    )
    report = claim(cache_file=cache_file, use_cache=True)
    assert report.ok, report.errors
    assert actions(report) == {
        w.main_table: "replaced",
        w.tables[0]: "replaced",
        newcomer: "created",
    }
    assert any(w.tables[1] in warning for warning in report.warnings)
    assert w.target(newcomer) == w.a.eni and w.target(w.tables[0]) == w.a.eni
    remembered = json.loads(Path(cache_file).read_text())
    assert {t["id"] for t in remembered["tables"]} == {w.main_table, w.tables[0], newcomer}


def test_cache_for_other_settings_is_ignored(member_a: World, aws: AwsLike, tmp_path: Path) -> None:
    w = member_a
    cache_file = str(tmp_path / "tables.json")
    assert claim(cache_file=cache_file, route_tables=w.tables[0]).ok
    aws.calls.clear()
    report = claim(cache_file=cache_file, use_cache=True)  # now: all tables
    assert report.ok and len(report.route_tables) == 3
    assert aws.calls[0][0] in ("DescribeRouteTables", "DescribeSubnets")
    Path(cache_file).write_text("{not json")
    assert claim(cache_file=cache_file, use_cache=True).ok  # a broken cache is no cache


def test_describes_follow_next_token() -> None:
    from mirror_vip.aws import Deadline
    from mirror_vip.routes import all_pages

    pages = {
        None: {"RouteTables": [{"RouteTableId": "a"}], "NextToken": "t1"},
        "t1": {"RouteTables": [{"RouteTableId": "b"}]},
    }
    seen = []

    def describe(**params: Any) -> Dict[str, Any]:
        seen.append(params.get("NextToken"))
        return pages[params.get("NextToken")]

    items = all_pages(
        describe, "RouteTables", Deadline(5), "DescribeRouteTables", "vpc-1", Filters=[]
    )
    assert [i["RouteTableId"] for i in items] == ["a", "b"] and seen == [None, "t1"]


def test_a_cache_that_cannot_be_replaced_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mirror_vip import cache

    wanted = {"vpc_id": "vpc-1", "vip": VIP, "route_tables": "all", "route_table_tag": None}
    tables = [cache.CachedTable("rtb-01234567", True, True)]
    subnets = [("subnet-01234567", "10.0.1.0/24")]
    target = tmp_path / "tables.json"

    def cannot(*args: Any) -> None:
        raise OSError(13, "Permission denied")

    with monkeypatch.context() as patched:
        patched.setattr(cache.os, "replace", cannot)
        problem = cache.save(str(target), wanted, tables, subnets)
    assert problem is not None and str(target) in problem and "Permission denied" in problem
    assert list(tmp_path.iterdir()) == []
    assert cache.save(str(target), wanted, tables, subnets) is None
    loaded = cache.load(str(target), wanted)
    assert loaded.problem is None and loaded.remembered is not None
    assert (loaded.remembered.tables, loaded.remembered.subnets) == (tables, subnets)


# --- issue 10: the role, pagination, tag values -------------------------------------------------


@pytest.mark.parametrize("role", ["Backup", "BACKUP", "async", "Async", "joining", "", 5, None])
def test_any_role_but_primary_or_none_refuses_unless_forced(
    member_a: World, aws: AwsLike, role: Any
) -> None:
    """IRIS passes its role; a role we do not know is a reason to stop, not to go on."""
    w = member_a
    refused = claim(iris={"role": role, "mirror_name": "PROD"})
    assert refused.exit_code == 2 and refused.outcome == "failure", refused.errors
    assert "primary" in refused.errors[0] and "force" in refused.errors[0]
    assert f"its role is {str(role).strip() or repr(role)})" in refused.errors[0]
    assert aws.calls == [] and set(w.targets().values()) == {None}
    forced = claim(iris={"role": role}, force=True)
    assert forced.ok and set(w.targets().values()) == {w.a.eni}


@pytest.mark.parametrize(
    "iris", [None, {}, {"role": "primary"}, {"role": "Primary"}, {"role": "none"}]
)
def test_the_primary_or_no_mirror_claims(member_a: World, iris: Any) -> None:
    report = claim(iris=iris)
    assert report.ok, report.errors
    assert set(member_a.targets().values()) == {member_a.a.eni}


def test_a_describe_of_more_pages_than_max_pages_fails_clearly() -> None:
    from mirror_vip.aws import Deadline
    from mirror_vip.errors import AwsError
    from mirror_vip.routes import MAX_PAGES, all_pages

    asked = []

    def endless(**params: Any) -> Dict[str, Any]:
        asked.append(params.get("NextToken"))
        return {"RouteTables": [{"RouteTableId": f"rtb-{len(asked):08x}"}], "NextToken": "more"}

    with pytest.raises(AwsError) as failed:
        all_pages(endless, "RouteTables", Deadline(5), "DescribeRouteTables", "vpc-1", Filters=[])
    assert len(asked) == MAX_PAGES
    assert f"more than {MAX_PAGES} pages" in str(failed.value)
    assert "DescribeRouteTables" in str(failed.value) and "vpc-1" in str(failed.value)


def _client_hook(monkeypatch: pytest.MonkeyPatch, event: str, handler: Any) -> None:
    """Register HANDLER for a botocore EVENT on the EC2 client the product makes."""
    make = api.ec2_client

    def with_hook(*args: Any, **kwargs: Any) -> Any:
        client = make(*args, **kwargs)
        client.meta.events.register(event, handler)
        return client

    monkeypatch.setattr(api, "ec2_client", with_hook)


def test_a_claim_whose_describe_never_ends_writes_nothing(
    member_a: World, aws: AwsLike, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VPC listing more than MAX_PAGES pages (here: every page says there is another)."""

    def another_page(parsed: Dict[str, Any], **_: Any) -> None:
        parsed["NextToken"] = "another"

    _client_hook(monkeypatch, "after-call.ec2.DescribeRouteTables", another_page)
    report = claim()
    assert report.exit_code == 1 and report.outcome == "failure", report.errors
    assert "pages" in report.errors[0] and report.route_tables == []
    assert aws.writes == [] and set(member_a.targets().values()) == {None}


@pytest.mark.parametrize(
    ("wanted", "other"), [("prod*", "prod-legacy"), ("a?", "ab"), ("x\\*", "x\\yz")]
)
def test_a_tag_value_is_matched_literally(
    aws: AwsLike, imds: Imds, fake_host: FakeHost, wanted: str, other: str
) -> None:
    """EC2 reads `*` and `?` in filter values as wildcards (and `\\` as their escape)."""
    w = build_world(tables=2, tag_first=("mirror-vip", wanted))
    w.ec2.create_tags(Resources=[w.tables[1]], Tags=[{"Key": "mirror-vip", "Value": other}])
    imds.become(w.a, w.vpc_id)
    fake_host.mac = w.a.mac
    fake_host.carry()
    aws.calls.clear()
    report = claim(route_table_tag=f"mirror-vip={wanted}")
    assert report.ok and [t.id for t in report.route_tables] == [w.tables[0]], report
    assert w.targets() == {w.main_table: None, w.tables[0]: w.a.eni, w.tables[1]: None}
    assert [p["RouteTableId"] for _, p in aws.writes] == [w.tables[0]]


def test_a_tag_value_with_wildcards_is_not_sent_as_a_filter_pattern() -> None:
    """EC2 reads `*`, `?` (and `\\`, their escape) in filter values as patterns: such a value is
    matched by read_tables on the tags the VPC's tables carry, not sent."""
    from mirror_vip.routes import table_filters

    for value in ("prod*", "a?", "x\\y"):
        chosen = settings.from_mapping({"route_table_tag": f"k={value}"})
        assert table_filters(chosen, "vpc-1") == [{"Name": "vpc-id", "Values": ["vpc-1"]}]
    plain = settings.from_mapping({"route_table_tag": "k=prod"})
    assert table_filters(plain, "vpc-1")[-1] == {"Name": "tag:k", "Values": ["prod"]}
