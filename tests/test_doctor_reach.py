"""Issue 12, item 5: who can reach the VIP (doctor and status), and the VIP inside the VPC CIDR.

Every subnet of the VPC routes through one table: its explicit association, else the main
table. The worlds here associate subnets explicitly (boto3 calls on the fake AWS, as an
administrator would), and the checks are read back from the reports.
"""

from __future__ import annotations

from typing import Any, Dict

from mirror_vip import api, settings
from mirror_vip.report import FAIL, PASS, WARN, Check, Report
from tests.conftest import AwsLike, World


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
