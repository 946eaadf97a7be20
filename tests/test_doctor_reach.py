"""Issue 12, item 5: who can reach the VIP (doctor and status), and the VIP inside the VPC CIDR.

Every subnet of the VPC routes through one table: its explicit association, else the main
table. The worlds here associate subnets explicitly (boto3 calls on the fake AWS, as an
administrator would), and the checks are read back from the reports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pytest

from mirror_vip import api, doctor, reach, routes, settings
from mirror_vip.aws import Deadline
from mirror_vip.metrics import observe
from mirror_vip.report import ERROR, FAIL, PASS, WARN, Check, Report, TableResult, render_text
from tests.conftest import VIP, AwsLike, World, build_world
from tests.test_claim import _client_hook


def chosen(**values: Any) -> settings.Settings:
    return settings.from_mapping(values)


def found(report: Report) -> Dict[str, Check]:
    return {c.name: c for c in report.checks}


# --- the VIP inside the VPC CIDR ----------------------------------------------------------------


def test_a_vpc_whose_cidrs_cannot_be_read_fails_that_check_and_the_doctor_goes_on(
    member_a: World, aws: AwsLike
) -> None:
    """DescribeVpcs denied (a policy without it): the check says it could not tell and names
    the permission; every later check still runs."""
    aws.deny.add(("DescribeVpcs", None))  # type: ignore[arg-type]  # no table id
    report = api.doctor(chosen())
    checks = found(report)
    assert checks["vip_outside_vpc_cidr"].status == FAIL, report.errors
    detail = checks["vip_outside_vpc_cidr"].detail
    assert "UnauthorizedOperation" in detail and "ec2:DescribeVpcs" in detail, detail
    assert {"source_dest_check", "route_tables", "permissions"} <= set(checks)
    assert report.errors == [] and report.exit_code == 1


def test_a_vip_outside_the_vpc_cidr_passes(member_a: World) -> None:
    check = found(api.doctor(chosen()))["vip_outside_vpc_cidr"]
    assert check.status == PASS and "outside 10.20.0.0/16" in check.detail, check


def test_a_vip_inside_the_vpc_cidr_warns_quoting_what_aws_documents(member_a: World) -> None:
    """Outside every subnet but inside the VPC CIDR (the seed article's choice): a warning, not a
    failure, whose detail quotes the VPC User Guide's route rule and the SAP overlay IP guide."""
    report = api.doctor(chosen(vip="10.20.255.254"))
    check = found(report)["vip_outside_vpc_cidr"]
    assert check.status == WARN, check
    assert "10.20.255.254 is inside the VPC CIDR 10.20.0.0/16" in check.detail
    assert "VPC User Guide (Subnet route tables)" in check.detail
    assert (
        '"the destination must match the entire IPv4 or IPv6 CIDR block of a subnet in your VPC"'
        in check.detail
    )
    assert "SAP on AWS High Availability with Overlay IP Address Routing" in check.detail
    assert '"outside of your VPC CIDR block"' in check.detail
    assert "fix: move the VIP outside the VPC's CIDRs" in check.detail
    assert found(report)["vip_outside_subnets"].status == PASS


def test_a_vip_inside_a_secondary_vpc_cidr_warns_too(member_a: World) -> None:
    w = member_a
    w.ec2.associate_vpc_cidr_block(VpcId=w.vpc_id, CidrBlock="10.21.0.0/16")
    check = found(api.doctor(chosen(vip="10.21.9.9")))["vip_outside_vpc_cidr"]
    assert check.status == WARN and "inside the VPC CIDR 10.21.0.0/16" in check.detail, check


# --- who can reach the VIP ------------------------------------------------------------------------


def subnet(w: World, cidr: str, table: Optional[str] = None) -> str:
    """A new subnet of W's VPC, explicitly associated with TABLE when given."""
    made = w.ec2.create_subnet(VpcId=w.vpc_id, CidrBlock=cidr)["Subnet"]["SubnetId"]
    if table:
        w.ec2.associate_route_table(RouteTableId=table, SubnetId=made)
    return str(made)


def table_subnets(report: Report) -> Dict[str, Optional[List[str]]]:
    return {t.id: t.subnets for t in report.route_tables}


def test_every_subnet_reaches_the_vip_here(member_a: World, aws: AwsLike) -> None:
    """Both member subnets explicitly associated with a selected table whose route points
    here; the main table serves no subnet, and the doctor still reads the VPC in one describe."""
    w = member_a
    t0, t1 = w.tables
    for table, member_subnet in ((t0, w.subnets[0]), (t1, w.subnets[1])):
        w.ec2.associate_route_table(RouteTableId=table, SubnetId=member_subnet)
        w.route(table, w.a.eni)
    aws.calls.clear()
    report = api.doctor(chosen(route_tables=[t0, t1]))
    check = found(report)["subnets_reach_vip"]
    assert check.status == PASS, check
    assert check.detail == "all 2 subnet(s) reach the VIP here, through 2 selected table(s)"
    assert table_subnets(report) == {t0: [w.subnets[0]], t1: [w.subnets[1]]}
    assert aws.count("DescribeRouteTables") == 1 and aws.count("DescribeSubnets") == 1


def test_subnets_that_do_not_reach_the_vip_are_named_with_their_fix(member_a: World) -> None:
    """The main table (both member subnets, implicitly) routes here; a client subnet uses an
    unselected table; another uses a selected table without the route."""
    w = member_a
    t0, t1 = w.tables
    w.route(w.main_table, w.a.eni)
    outside = subnet(w, "10.20.3.0/24", t0)
    unrouted = subnet(w, "10.20.4.0/24", t1)
    report = api.doctor(chosen(route_tables=[w.main_table, t1]))
    check = found(report)["subnets_reach_vip"]
    assert check.status == WARN and report.exit_code == 0, check
    assert check.detail.startswith("2 of 4 subnet(s) do not reach the VIP here: "), check.detail
    assert (
        f"table not selected: {outside} ({t0}): if clients there need the VIP, select it "
        "(route_tables or route_table_tag)"
    ) in check.detail
    assert f"no VIP route: {unrouted} ({t1}): claim on the primary" in check.detail
    assert w.subnets[0] not in check.detail and w.subnets[1] not in check.detail
    assert table_subnets(report) == {w.main_table: sorted(w.subnets), t1: [unrouted]}


def test_a_claim_turns_the_warning_into_a_pass(member_a: World) -> None:
    """The fix the warning names (claim) is the fix: afterwards every selected subnet reaches
    the VIP here (the unselected one still would not, so it is selected here)."""
    w = member_a
    subnet(w, "10.20.3.0/24", w.tables[0])
    before = found(api.doctor(chosen()))["subnets_reach_vip"]
    assert before.status == WARN and "no VIP route" in before.detail, before
    assert api.claim(chosen()).ok
    after = found(api.doctor(chosen()))["subnets_reach_vip"]
    assert after.status == PASS and after.detail.startswith("all 3 subnet(s)"), after


def test_no_subnet_using_a_selected_table_fails(member_a: World) -> None:
    """The selection holds only a table no subnet uses: a claim would route the VIP for no
    client. The check fails and names the tables the subnets do use."""
    w = member_a
    w.route(w.tables[0], w.a.eni)
    report = api.doctor(chosen(route_tables=[w.tables[0]]))
    check = found(report)["subnets_reach_vip"]
    assert check.status == FAIL and report.exit_code == 1, check
    assert f"no subnet uses a selected route table ({w.tables[0]})" in check.detail
    assert f"the 2 subnet(s) use {w.main_table}" in check.detail
    assert "fix: select the tables of the clients' subnets" in check.detail
    assert table_subnets(report) == {w.tables[0]: []}
    assert "used by no subnet" in render_text(report)


def test_routes_to_the_other_member_are_expected_on_a_backup_only(member_a: World) -> None:
    """All routes point at B. Member A is the backup by IRIS's word: a pass; called the
    primary: a warning whose fix is a claim here; no role known: a warning saying both."""
    w = member_a
    w.route(w.main_table, w.b.eni)
    by_role = {}
    for role in ("backup", "primary", None):
        iris = {"role": role} if role else None
        by_role[role] = found(api.doctor(chosen(), iris=iris))["subnets_reach_vip"]
    assert by_role["backup"].status == PASS, by_role["backup"]
    assert f"at {w.b.eni} (another member's ENI: as expected" in by_role["backup"].detail
    assert by_role["primary"].status == WARN
    assert f"routed to {w.b.eni}: " in by_role["primary"].detail
    assert "claim (IRIS says this member is the primary)" in by_role["primary"].detail
    assert by_role[None].status == WARN
    assert "claim on the primary (expected when this member is the backup)" in by_role[None].detail


def test_a_vip_split_between_members_warns_even_on_a_backup(member_a: World) -> None:
    w = member_a
    t0 = w.tables[0]
    w.route(w.main_table, w.a.eni)
    w.route(t0, w.b.eni)
    split = subnet(w, "10.20.3.0/24", t0)
    check = found(api.doctor(chosen(), iris={"role": "backup"}))["subnets_reach_vip"]
    assert check.status == WARN, check
    assert f"routed to {w.b.eni}: {split} ({t0}): the VIP is split between targets" in check.detail


def test_gateway_associations_and_ipv6_only_subnets(member_a: World) -> None:
    """An edge association (a gateway route table) is no subnet's table; an IPv6-only subnet
    cannot reach an IPv4 VIP: it is left out, and said so."""
    w = member_a
    w.route(w.main_table, w.a.eni)
    igw = w.ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    w.ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=w.vpc_id)
    w.ec2.associate_route_table(RouteTableId=w.tables[0], GatewayId=igw)
    w.ec2.associate_vpc_cidr_block(VpcId=w.vpc_id, AmazonProvidedIpv6CidrBlock=True)
    vpc = w.ec2.describe_vpcs(VpcIds=[w.vpc_id])["Vpcs"][0]
    block = vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
    six = w.ec2.create_subnet(
        VpcId=w.vpc_id, Ipv6Native=True, Ipv6CidrBlock=block.replace("/56", "/64")
    )["Subnet"]["SubnetId"]
    report = api.doctor(chosen())
    check = found(report)["subnets_reach_vip"]
    assert check.status == PASS, check
    assert check.detail.startswith("all 2 subnet(s) reach the VIP here")
    assert "1 IPv6-only subnet(s) left out" in check.detail
    assert six not in str(table_subnets(report))
    assert table_subnets(report)[w.tables[0]] == []


def test_hundreds_of_subnets_keep_the_line_short(member_a: World) -> None:
    """A big VPC: the line counts the subnets and names the first few."""
    w = member_a
    w.route(w.main_table, w.a.eni)
    many = [subnet(w, f"10.20.{i}.0/24", w.tables[0]) for i in range(10, 50)]
    report = api.doctor(chosen(route_tables=[w.main_table]))
    check = found(report)["subnets_reach_vip"]
    assert check.status == WARN and check.detail.startswith("40 of 42 subnet(s)"), check
    first = sorted(many)[:3]
    assert f"{', '.join(first)} (+37 more) ({w.tables[0]})" in check.detail
    assert len(check.detail) < 300, check.detail


# --- answers moto does not give: changed in the parsed answer of the client the product makes ---


def edit_route_tables(
    monkeypatch: pytest.MonkeyPatch, edit: Callable[[Dict[str, Any]], None]
) -> None:
    """EDIT every route table of each DescribeRouteTables answer, as parsed by botocore."""

    def after(parsed: Dict[str, Any], **_: Any) -> None:
        for table in parsed.get("RouteTables", []):
            edit(table)

    _client_hook(monkeypatch, "after-call.ec2.DescribeRouteTables", after)


def test_a_blackhole_route_is_named(member_a: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS marks a route whose target is gone (a terminated member's ENI) 'blackhole'."""
    w = member_a
    w.route(w.main_table, w.a.eni)

    def blackhole(table: Dict[str, Any]) -> None:
        for route in table["Routes"]:
            if route.get("DestinationCidrBlock") == f"{VIP}/32":
                route["State"] = "blackhole"

    edit_route_tables(monkeypatch, blackhole)
    check = found(api.doctor(chosen()))["subnets_reach_vip"]
    assert check.status == WARN, check
    assert "VIP route is a blackhole (its target is gone): " in check.detail
    assert f"({w.main_table}): claim on the primary" in check.detail


def test_a_disassociated_association_routes_through_the_main_table(
    member_a: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An association being removed no longer decides the subnet's table: the main one does."""
    w = member_a
    w.route(w.main_table, w.a.eni)
    leaving = subnet(w, "10.20.3.0/24", w.tables[0])

    def disassociating(table: Dict[str, Any]) -> None:
        for association in table.get("Associations", []):
            if association.get("SubnetId") == leaving:
                association["AssociationState"] = {"State": "disassociating"}

    edit_route_tables(monkeypatch, disassociating)
    report = api.doctor(chosen(route_tables=[w.main_table]))
    assert found(report)["subnets_reach_vip"].status == PASS
    assert table_subnets(report) == {w.main_table: sorted([*w.subnets, leaving])}


def test_a_subnet_whose_table_is_not_in_the_describe(
    member_a: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No main association in the answer (an answer not as AWS documents it): the subnets
    without an explicit one are named, nothing crashes, status says it too."""
    w = member_a
    w.route(w.tables[0], w.a.eni)
    routed = subnet(w, "10.20.3.0/24", w.tables[0])

    def no_main(table: Dict[str, Any]) -> None:
        table["Associations"] = [a for a in table.get("Associations", []) if not a.get("Main")]

    edit_route_tables(monkeypatch, no_main)
    check = found(api.doctor(chosen()))["subnets_reach_vip"]
    assert check.status == WARN and check.detail.startswith("2 of 3 subnet(s)"), check
    assert "route table not in the describe: " in check.detail and routed not in check.detail
    status = api.status(chosen())
    assert status.ok and any("was not in the describe" in m for m in status.warnings)


def test_tables_of_another_account_are_read_like_any_other(
    member_a: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared VPC: the owner account's tables (OwnerId not ours) and subnets are described
    as any others; who can reach the VIP does not depend on who owns the table."""
    w = member_a
    w.route(w.main_table, w.a.eni)

    def owned_elsewhere(table: Dict[str, Any]) -> None:
        table["OwnerId"] = "111122223333"

    edit_route_tables(monkeypatch, owned_elsewhere)
    report = api.status(chosen())
    assert report.ok and table_subnets(report)[w.main_table] == sorted(w.subnets)


# --- status: which subnets use each table ---------------------------------------------------------


def test_status_shows_which_subnets_use_each_selected_table(member_a: World, aws: AwsLike) -> None:
    w = member_a
    t0, t1 = w.tables
    w.route(w.main_table, w.a.eni)
    w.route(t0, w.b.eni)
    clients = subnet(w, "10.20.3.0/24", t0)
    public = subnet(w, "10.20.4.0/24", t1)
    aws.calls.clear()
    report = api.status(chosen(route_tables=[w.main_table, t0]))
    assert report.ok and aws.writes == []
    # one describe of each, as before: the VPC's every table in the one DescribeRouteTables
    assert aws.count("DescribeRouteTables") == 1 and aws.count("DescribeSubnets") == 1
    assert table_subnets(report) == {w.main_table: sorted(w.subnets), t0: [clients]}
    assert report.warnings == [
        f"1 subnet(s) use a route table that is not selected, so no claim routes the VIP for "
        f"them: {public} ({t1}); select it (route_tables or route_table_tag) if clients there "
        "need the VIP"
    ]
    # the metrics are the selected tables' only, as before
    assert observe(report)["routes"] == {w.main_table: 1, t0: 0}
    text = render_text(report)
    assert f"used by {', '.join(sorted(w.subnets))}" in text and f"used by {clients}" in text
    main_line = next(line for line in text.splitlines() if line.strip().startswith(w.main_table))
    t0_line = next(line for line in text.splitlines() if line.strip().startswith(t0))
    assert main_line.index("used by") == t0_line.index("used by")  # one column
    tables = report.to_dict()["route_tables"]
    assert [t["subnets"] for t in tables] == [sorted(w.subnets), [clients]]
    assert Report.from_dict(json.loads(report.to_json())).route_tables == report.route_tables


@pytest.mark.parametrize(
    "selection",
    [
        {},
        {"route_tables": "TABLES"},
        {"route_tables": "TABLES+MISSING"},
        {"route_table_tag": "mirror-vip=prod*"},
        {"route_table_tag": "mirror-vip=prod*", "route_tables": "TABLES"},
    ],
)
def test_status_selects_the_tables_the_claim_selects(
    aws: AwsLike, selection: Dict[str, str]
) -> None:
    """Status and doctor read the VPC's every table and select them here: the same tables, in
    the same order, and the same missing ids, as the claim's filtered describe."""
    w = build_world(tables=3, tag_first=("mirror-vip", "prod*"))
    w.ec2.create_tags(Resources=[w.tables[1]], Tags=[{"Key": "mirror-vip", "Value": "prod-x"}])
    names = {"TABLES": [w.tables[1], w.tables[0]], "MISSING": ["rtb-0123456789abcdef0"]}
    values: Dict[str, Any] = dict(selection)
    if "route_tables" in values:
        values["route_tables"] = [
            t for part in values["route_tables"].split("+") for t in names[part]
        ]
    wanted = settings.from_mapping({"vip": VIP, **values})
    claims = routes.read_layout(w.ec2, wanted, w.vpc_id, Deadline(10))
    status, _ = reach.read(w.ec2, wanted, w.vpc_id, Deadline(10))
    assert [t.id for t in status.tables] == [t.id for t in claims.tables]
    assert (status.missing, sorted(status.subnets)) == (claims.missing, sorted(claims.subnets))
    assert status.tables, "a selection that selects nothing tells nothing"


def test_a_table_used_by_many_subnets_is_one_short_line() -> None:
    many = [f"subnet-{i:017x}" for i in range(250)]
    report = Report(command="status", eni="eni-1")
    report.route_tables = [
        TableResult("rtb-1", "eni-1", "eni-1", main=True, subnets=many),
        TableResult("rtb-2", subnets=[]),
        TableResult("rtb-3", action=ERROR, error="route table rtb-3 not found"),
    ]
    lines = render_text(report).splitlines()
    assert lines[3] == (
        "    rtb-1 main  eni-1 (this ENI)  used by 250 subnets: subnet-00000000000000000, "
        "subnet-00000000000000001, subnet-00000000000000002 (+247 more)"
    )
    assert lines[4] == "    rtb-2       none              used by no subnet"
    assert lines[5] == "    rtb-3       error      route table rtb-3 not found"


# --- the documents say what the code says ------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_the_runbook_quotes_aws_as_the_doctor_does() -> None:
    """The warning's two quotations appear word for word in the runbook's troubleshooting row,
    and every line kind of subnets_reach_vip has a row in section 10."""
    runbook = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    for quoted in re.findall(r'"([^"]+)"', doctor.ROUTE_RULE + doctor.OVERLAY_RULE):
        assert f'"{quoted}"' in runbook, quoted
    start = runbook.index("### Which subnets reach it now")
    section = runbook[start : runbook.index("\n## 11.", start)]
    for line in (
        "all N subnet(s) reach the VIP here",
        "another member's ENI: as expected, IRIS says this member is backup",
        "table not selected: ",
        "no VIP route: ",
        "VIP route is a blackhole",
        "claim on the primary (expected when this member is the backup)",
        "the VIP is split between targets",
        "route table not in the describe",
        "no subnet uses a selected route table",
    ):
        assert line in section, line
    source = (ROOT / "python/mirror_vip/reach.py").read_text(encoding="utf-8")
    for line in ("table not selected: ", "no VIP route: ", "the VIP is split between targets"):
        assert line in source, line


def test_routes_to_two_other_enis_are_a_split_too(member_a: World) -> None:
    """Neither route here, but two different targets: never 'as expected', even on a backup."""
    w = member_a
    t0 = w.tables[0]
    stray = w.ec2.create_network_interface(SubnetId=w.b.subnet_id)["NetworkInterface"]
    w.route(w.main_table, w.b.eni)
    w.route(t0, stray["NetworkInterfaceId"])
    subnet(w, "10.20.3.0/24", t0)
    check = found(api.doctor(chosen(), iris={"role": "backup"}))["subnets_reach_vip"]
    assert check.status == WARN, check
    assert "the VIP is split between targets: claim on the primary" in check.detail
    assert "expected" not in check.detail
