"""Preflight checks: each pass, warn or fail, with the one line that fixes it."""

from __future__ import annotations

import ipaddress
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import botocore

from . import netchecks, reach, routes
from .aws import (
    MAX_PARALLEL_WRITES,
    Deadline,
    aws_error,
    botocore_session,
    call,
    checked,
    error_code,
)
from .errors import IdentityError, MirrorVipError
from .report import FAIL, PASS, WARN, Check, Report
from .settings import Settings

if TYPE_CHECKING:  # api imports this module; the types are only for annotations
    from .api import Context
    from .assumerole import AssumedRole

PROBES = ("ReplaceRoute", "CreateRoute", "DeleteRoute")

# boto3 1.28.0, the floor in requirements.txt, requires botocore>=1.31.0,<1.32.0 (its metadata).
BOTOCORE_FLOOR = (1, 31, 0)
BOTO3_REQUIREMENT = "boto3>=1.28,<2"


def run_checks(
    report: Report, chosen: Settings, ctx: Optional[Context], problem: Optional[MirrorVipError]
) -> None:
    """Fill report.checks. Without a context (identity or interface failed), say why and stop."""
    add = report.checks.append
    add(_botocore_floor(report))
    if ctx is None:
        name = "imds" if isinstance(problem, IdentityError) else "interface"
        add(Check(name, FAIL, str(problem)))
        _network_path(report, chosen, None, problem)
        return
    vip = str(ctx.settings.vip)
    if ctx.identity.mac:
        add(
            Check(
                "imds",
                PASS,
                f"IMDSv2 token accepted; {ctx.identity.eni} is behind {chosen.interface}",
            )
        )
    else:
        add(Check("imds", WARN, "not used: eni and region were given"))
    add(_vip_on_interface(report, ctx))
    if not _network_path(report, chosen, ctx, None):
        return  # EC2 unreachable: every check after this would wait out the deadline
    if ctx.role is not None:
        role = _assumed_role(ctx, ctx.role)
        add(role)
        if role.status == FAIL:
            return
    try:
        layout, vpc = reach.read(ctx.ec2, ctx.settings, ctx.identity.vpc_id, ctx.deadline)
    except MirrorVipError as exc:
        add(Check("ec2_read", FAIL, str(exc)))
        return
    add(_outside_subnets(vip, layout))
    add(_outside_vpc_cidr(vip, ctx))
    add(_source_dest_check(report, ctx))
    add(_tables_selected(report, layout, ctx))
    if layout.tables:
        add(reach.check(report, layout, vpc, ctx.identity.eni, ctx.identity.vpc_id))
        add(_permissions(vip, layout, ctx))


def _network_path(
    report: Report, chosen: Settings, ctx: Optional[Context], problem: Optional[MirrorVipError]
) -> bool:
    """The network checks (netchecks.py): proxy variables, the IMDS hop limit (when this run
    got no token), EC2 reachable. False when EC2 is not."""
    add = report.checks.append
    deadline = ctx.deadline if ctx is not None else Deadline(chosen.deadline)
    # the network path is checked with the instance's own credentials: in a shared VPC the role's
    # would ask STS first, and an AssumeRole refusal is the assume_role check's to report
    own = ctx.own_ec2 if ctx else None
    add(netchecks.proxy_environment(chosen, own, deadline, bool(report.iris)))
    if ctx is None and not isinstance(problem, IdentityError):
        return False  # the interface failed: IMDS was not asked
    token_worked = ctx is not None and bool(ctx.identity.mac)
    add(netchecks.imds_hop_limit(botocore_session(), deadline, token_worked))
    if ctx is None:
        return False
    reached = netchecks.ec2_reachable(ctx.own_ec2, ctx.identity.vpc_id, ctx.deadline)
    add(reached)
    return reached.status != FAIL


def _botocore_floor(report: Report) -> Check:
    """The botocore actually imported, against the floor.

    IPM installs requirements.txt with `pip install -t <mgr>/python` and no `--upgrade`, so an
    older botocore already in mgr/python stays the one imported (IPM 0.9+ passes extra flags).
    `report.iris` is filled only when IRIS calls: then the fix is IPM's.
    """
    version = botocore.__version__
    where = os.path.dirname(os.path.dirname(os.path.abspath(botocore.__file__)))
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    release = tuple(int(part) for part in found.groups()) if found else None
    if release is None:
        return Check("botocore", WARN, f"cannot read the version of {version!r} from {where}")
    if release >= BOTOCORE_FLOOR:
        return Check("botocore", PASS, f"{version} from {where}")
    floor = ".".join(str(part) for part in BOTOCORE_FLOOR)
    if report.iris:
        fix = (
            'zpm "install mirror-vip -extra-pip-flags ""--upgrade""" (IPM 0.9 or later), or '
            f"python3 -m pip install --upgrade --target {where} '{BOTO3_REQUIREMENT}'"
        )
    else:
        fix = f"python3 -m pip install --upgrade '{BOTO3_REQUIREMENT}'"
    detail = f"{version} from {where} is older than {floor}, which {BOTO3_REQUIREMENT} needs"
    return Check("botocore", FAIL, f"{detail}; fix: {fix}")


def _vip_on_interface(report: Report, ctx: Context) -> Check:
    s = ctx.settings
    fix = f"ip addr add {s.vip}/32 dev {s.interface} label {s.vip_label} (persist it: docs/host/)"
    if report.vip_on_interface:
        return Check("vip_on_interface", PASS, f"{s.vip} is on {s.vip_label}")
    if report.vip_on_interface is None:
        return Check("vip_on_interface", FAIL, f"cannot read {s.interface}; run this on the member")
    return Check("vip_on_interface", FAIL, f"{s.vip} is not on {s.interface}; fix: {fix}")


def _outside_subnets(vip: str, layout: routes.Layout) -> Check:
    inside = routes.subnet_containing(vip, layout.subnets)
    if inside:
        return Check(
            "vip_outside_subnets",
            FAIL,
            f"{vip} is inside subnet {inside[0]} ({inside[1]}): that can never work; "
            "choose an address outside every subnet, best outside the VPC CIDR",
        )
    return Check("vip_outside_subnets", PASS, f"{vip} is outside all {len(layout.subnets)} subnets")


# What AWS documents about a VIP inside the VPC CIDR, quoted in the warning (DESIGN.md, AWS facts).
# Amazon VPC User Guide, "Configure route tables", Subnet route tables, Rules and considerations:
ROUTE_RULE = (
    "AWS's VPC User Guide (Subnet route tables) allows a route more specific than the local "
    'route only when "the destination must match the entire IPv4 or IPv6 CIDR block of a subnet '
    'in your VPC"'
)
# "SAP on AWS High Availability with Overlay IP Address Routing", SAP on AWS High Availability
# Setup: "AWS allows you to configure Overlay IP (OIP) outside of your VPC CIDR block".
OVERLAY_RULE = (
    "its SAP overlay IP guide (SAP on AWS High Availability with Overlay IP Address Routing) "
    'puts overlay IPs "outside of your VPC CIDR block"'
)


def _outside_vpc_cidr(vip: str, ctx: Context) -> Check:
    """A VIP inside the VPC CIDR (and outside every subnet) is reported to work, but AWS
    documents neither the route nor the address: a warning that quotes what AWS does say."""
    try:
        vpcs = checked(
            "DescribeVpcs",
            ctx.identity.vpc_id,
            ctx.own_ec2.describe_vpcs,  # as the member: a shared VPC's participant may
            ctx.deadline,
            VpcIds=[ctx.identity.vpc_id],
        ).get("Vpcs", [])
    except MirrorVipError as exc:
        return Check(
            "vip_outside_vpc_cidr",
            FAIL,
            f"cannot read the VPC's CIDRs (ec2:DescribeVpcs), so whether {vip} is inside "
            f"them is unknown: {exc}",
        )
    cidrs = [
        a["CidrBlock"]
        for v in vpcs
        for a in v.get("CidrBlockAssociationSet", [{"CidrBlock": v.get("CidrBlock")}])
        if a.get("CidrBlock")
    ]
    address = ipaddress.IPv4Address(vip)
    inside = [c for c in cidrs if address in ipaddress.ip_network(c, strict=False)]
    if inside:
        return Check(
            "vip_outside_vpc_cidr",
            WARN,
            f"{vip} is inside the VPC CIDR {inside[0]}: reported to work, but undocumented: "
            f"{ROUTE_RULE}, and {OVERLAY_RULE}; fix: move the VIP outside the VPC's CIDRs "
            "(on both hosts and in the settings)",
        )
    return Check("vip_outside_vpc_cidr", PASS, f"{vip} is outside {', '.join(cidrs) or 'the VPC'}")


def _assumed_role(ctx: Context, role: AssumedRole) -> Check:
    """Shared VPC: the owner account's role, assumed as the claims assume it."""
    try:
        ctx.ready()
    except MirrorVipError as exc:
        return Check("assume_role", FAIL, str(exc))
    return Check(
        "assume_role",
        PASS,
        f"assumed {role.role_arn} as session {role.session}: the route tables are read, "
        "written and probed below as that role",
    )


def _source_dest_check(report: Report, ctx: Context) -> Check:
    enabled = source_dest_check(ctx.own_ec2, ctx.identity.eni, ctx.deadline)
    report.source_dest_check = enabled
    eni = ctx.identity.eni
    if enabled is None:
        return Check("source_dest_check", FAIL, f"{eni} not found; check --eni")
    if enabled:
        return Check(
            "source_dest_check",
            FAIL,
            f"enabled on {eni}: packets for the VIP are dropped; fix: aws ec2 "
            f"modify-network-interface-attribute --network-interface-id {eni} "
            "--no-source-dest-check",
        )
    return Check("source_dest_check", PASS, f"disabled on {eni}")


def source_dest_check(ec2: Any, eni: str, deadline: Deadline) -> Optional[bool]:
    """The ENI's source/destination check: it must be off for the VIP's packets to arrive."""
    found = checked(
        "DescribeNetworkInterfaces",
        eni,
        ec2.describe_network_interfaces,
        deadline,
        NetworkInterfaceIds=[eni],
    ).get("NetworkInterfaces", [])
    return bool(found[0].get("SourceDestCheck")) if found else None


def _tables_selected(report: Report, layout: routes.Layout, ctx: Context) -> Check:
    report.route_tables = routes.as_status(layout, ctx.identity.vpc_id, ctx.settings)
    if layout.missing:
        return Check(
            "route_tables",
            FAIL,
            f"not found in {ctx.identity.vpc_id}: {', '.join(layout.missing)}; fix route_tables",
        )
    if not layout.tables:
        return Check(
            "route_tables",
            FAIL,
            f"no route table selected in {ctx.identity.vpc_id}; check route_tables and "
            "route_table_tag",
        )
    ids = ", ".join(t.id + (" (main)" if t.main else "") for t in layout.tables)
    return Check("route_tables", PASS, f"{len(layout.tables)} selected: {ids}")


def _permissions(vip: str, layout: routes.Layout, ctx: Context) -> Check:
    """Probe each write on each table with DryRun=True: DryRunOperation means allowed. As the
    writes are made: in a shared VPC, as the owner account's role (ctx.ec2 is its client)."""
    probes: List[Tuple[str, str]] = [(a, t.id) for t in layout.tables for a in PROBES]

    def probe(item: Tuple[str, str]) -> Tuple[str, str, Optional[str], str]:
        action, table = item
        params: dict[str, Any] = {
            "DryRun": True,
            "RouteTableId": table,
            "DestinationCidrBlock": f"{vip}/32",
        }
        if action != "DeleteRoute":
            params["NetworkInterfaceId"] = ctx.identity.eni
        method = {
            "ReplaceRoute": ctx.ec2.replace_route,
            "CreateRoute": ctx.ec2.create_route,
            "DeleteRoute": ctx.ec2.delete_route,
        }[action]
        try:
            call(method, ctx.deadline, **params)
        except Exception as exc:
            return action, table, error_code(exc), str(aws_error(exc, action, table))
        return action, table, None, f"{action} on {table}: no DryRunOperation answer"

    workers = max(1, min(len(probes), MAX_PARALLEL_WRITES))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = list(pool.map(probe, probes))
    denied = [f"{a} on {t}" for a, t, code, _ in answers if code == "UnauthorizedOperation"]
    odd = [
        text
        for _, _, code, text in answers
        if code not in ("DryRunOperation", "UnauthorizedOperation")
    ]
    if denied:
        grantee = ctx.role.grantee if ctx.role else "the instance role (docs/aws/iam-policy.json)"
        return Check("permissions", FAIL, f"denied: {'; '.join(denied)}; grant them to {grantee}")
    if odd:
        return Check("permissions", WARN, f"unexpected answers to DryRun probes: {'; '.join(odd)}")
    return Check(
        "permissions",
        PASS,
        f"ReplaceRoute, CreateRoute, DeleteRoute allowed on {len(layout.tables)} table(s) (DryRun)",
    )
