"""Who can reach the VIP: for every subnet of the VPC, the route table it uses and where that
table sends the VIP. Status and doctor only; the failover's claim reads the selection alone.

A subnet routes through exactly one table: "You can explicitly associate a subnet with a
particular route table. Otherwise, the subnet is implicitly associated with the main route
table" (Amazon VPC User Guide, "Configure route tables", Subnet route tables). So the VPC's
every table is read, not only the selected ones: the table of a subnet that uses an unselected
table is what says why that subnet cannot reach the VIP. That is still one DescribeRouteTables
(without the selection's filters; the selection is applied here by routes.select_tables, the
rules the claim's filters follow) beside one DescribeSubnets: the requests and round trip of
routes.read_layout, each answer larger by the unselected tables. Participants of a shared VPC
may describe its route tables and subnets ("Share your VPC with other accounts", Manage VPC
resources), so a workload account sees them too, even where it cannot write them.
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import routes
from .aws import Deadline
from .report import ERROR, FAIL, PASS, WARN, Check, Report, TableResult, few
from .settings import Settings

# where a subnet's table sends the VIP
HERE = "here"  # selected, an active route to this ENI
ELSEWHERE = "elsewhere"  # selected, an active route to another target (another member)
NO_ROUTE = "no-route"  # selected, no VIP route
BLACKHOLE = "blackhole"  # selected, a route whose target is gone
UNSELECTED = "unselected"  # a table no claim writes
UNKNOWN = "unknown"  # no explicit association, and no main table in the describe

# an association in these states no longer (or never did) route the subnet
GONE = ("disassociating", "disassociated", "failed")
# the order the doctor's line names the kinds of subnets that do not reach the VIP here
ORDER = (UNSELECTED, NO_ROUTE, BLACKHOLE, ELSEWHERE, UNKNOWN)
NOT_PRIMARY_ROLES = ("backup", "async")  # IRIS roles whose member does not hold the VIP


@dataclass
class VpcRouting:
    """Every route table of the VPC as described, and which subnet uses which."""

    tables: Dict[str, routes.Table]  # by id
    explicit: Dict[str, str]  # subnet id -> the table it is explicitly associated with
    main: Optional[str]  # the main table's id
    subnets: List[str]  # the subnets with an IPv4 CIDR, by id (the same text every read)
    ipv6_only: List[str]  # no IPv4 CIDR: an IPv4 VIP is not reachable from them

    def table_of(self, subnet: str) -> Optional[str]:
        return self.explicit.get(subnet, self.main)

    def subnets_by_table(self) -> Dict[str, List[str]]:
        used: Dict[str, List[str]] = {}
        for subnet in self.subnets:
            table = self.table_of(subnet)
            if table is not None:
                used.setdefault(table, []).append(subnet)
        return used


@dataclass
class SubnetRoute:
    subnet: str
    table: Optional[str]
    verdict: str
    target: Optional[str] = None


def read(
    ec2: Any, chosen: Settings, vpc_id: str, deadline: Deadline
) -> Tuple[routes.Layout, VpcRouting]:
    """The selection's layout (as routes.read_layout gives it) and the VPC's routing, from one
    round trip: every table of the VPC and every subnet, the two describes side by side."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        tables = pool.submit(
            routes.all_pages,
            ec2.describe_route_tables,
            "RouteTables",
            deadline,
            "DescribeRouteTables",
            vpc_id,
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}],
        )
        subnets = pool.submit(routes.describe_subnets, ec2, vpc_id, deadline)
        raw_tables, raw_subnets = tables.result(), subnets.result()
    selected, missing = routes.select_tables(raw_tables, chosen)
    layout = routes.Layout(selected, missing, routes.ipv4_subnets(raw_subnets))
    return layout, routing(raw_tables, raw_subnets, chosen.destination)


def routing(
    raw_tables: Sequence[Dict[str, Any]],
    raw_subnets: Sequence[Dict[str, Any]],
    destination: Optional[str],
) -> VpcRouting:
    tables: Dict[str, routes.Table] = {}
    explicit: Dict[str, str] = {}
    main: Optional[str] = None
    for raw in raw_tables:
        table = routes.as_table(raw, destination)
        tables[table.id] = table
        for association in raw.get("Associations") or []:
            if (association.get("AssociationState") or {}).get("State") in GONE:
                continue
            if association.get("Main"):
                main = table.id
            elif association.get("SubnetId"):
                explicit[str(association["SubnetId"])] = table.id
            # else an edge association (GatewayId): a gateway route table routes traffic
            # entering the VPC through that gateway, not a subnet's traffic
    ipv4 = sorted(str(s["SubnetId"]) for s in raw_subnets if s.get("CidrBlock"))
    ipv6_only = sorted(str(s["SubnetId"]) for s in raw_subnets if not s.get("CidrBlock"))
    return VpcRouting(tables, explicit, main, ipv4, ipv6_only)


def verdicts(vpc: VpcRouting, selected: Sequence[str], eni: str) -> List[SubnetRoute]:
    """Per subnet: its table and where that table sends the VIP, as seen from this ENI."""
    chosen = set(selected)
    found = []
    for subnet in vpc.subnets:
        table_id = vpc.table_of(subnet)
        table = vpc.tables.get(table_id) if table_id else None
        if table is None:
            found.append(SubnetRoute(subnet, table_id, UNKNOWN))
            continue
        if table.id not in chosen:
            verdict = UNSELECTED
        elif table.route is None:
            verdict = NO_ROUTE
        elif table.state == "blackhole":
            verdict = BLACKHOLE
        elif table.target == eni:
            verdict = HERE
        else:
            verdict = ELSEWHERE
        found.append(SubnetRoute(subnet, table.id, verdict, table.target))
    return found


def by_verdict(found: Sequence[SubnetRoute]) -> Dict[str, List[SubnetRoute]]:
    grouped: Dict[str, List[SubnetRoute]] = OrderedDict()
    for item in found:
        grouped.setdefault(item.verdict, []).append(item)
    return grouped


def annotate(results: Sequence[TableResult], vpc: VpcRouting) -> None:
    """Each table's subnets, on the report's table lines (a table in error has none known)."""
    used = vpc.subnets_by_table()
    for result in results:
        if result.action != ERROR:
            result.subnets = used.get(result.id, [])


def named(items: Sequence[SubnetRoute]) -> str:
    """Subnets and their tables, short: 'subnet-a, subnet-b (rtb-x)'."""
    tables = tables_of(items)
    where = f" ({few(tables)})" if tables else ""
    return f"{few([i.subnet for i in items])}{where}"


def tables_of(items: Sequence[SubnetRoute]) -> List[str]:
    return list(OrderedDict.fromkeys(i.table for i in items if i.table))


def targets(items: Sequence[SubnetRoute]) -> List[str]:
    return list(OrderedDict.fromkeys(i.target for i in items if i.target))


def unselected_warning(layout: routes.Layout, vpc: VpcRouting) -> Optional[str]:
    """For status: the subnets no claim gives a VIP route (their table is not selected)."""
    found = by_verdict(verdicts(vpc, [t.id for t in layout.tables], ""))
    parts = []
    if UNSELECTED in found:
        parts.append(
            f"{len(found[UNSELECTED])} subnet(s) use a route table that is not selected, so "
            f"no claim routes the VIP for them: {named(found[UNSELECTED])}; select it "
            "(route_tables or route_table_tag) if clients there need the VIP"
        )
    if UNKNOWN in found:
        parts.append(
            f"the route table of {len(found[UNKNOWN])} subnet(s) was not in the describe: "
            f"{named(found[UNKNOWN])}; run doctor"
        )
    return "; ".join(parts) or None


# --- the doctor's check ---------------------------------------------------------------------------


def check(report: Report, layout: routes.Layout, vpc: VpcRouting, eni: str, vpc_id: str) -> Check:
    """Who can reach the VIP: every subnet's table (its explicit association, else the main
    table), and whether that table sends the VIP here. Fails when no subnet uses a selected
    table (a claim would route the VIP for no client); warns naming the subnets that do not
    reach it here; on a member IRIS calls a backup, routes to one other ENI are expected."""
    annotate(report.route_tables, vpc)
    selected = [t.id for t in layout.tables]
    found = verdicts(vpc, selected, eni)
    groups = by_verdict(found)
    skipped = (
        f"; {len(vpc.ipv6_only)} IPv6-only subnet(s) left out (an IPv4 VIP is not reachable "
        "from them)"
        if vpc.ipv6_only
        else ""
    )
    if not found:
        return Check("subnets_reach_vip", WARN, f"no IPv4 subnet in {vpc_id}{skipped}")
    using = [f for f in found if f.verdict != UNSELECTED]
    if not using:
        return Check(
            "subnets_reach_vip",
            FAIL,
            f"no subnet uses a selected route table ({few(selected)}): a claim routes the VIP "
            f"for no client; the {len(found)} subnet(s) use {few(tables_of(found))}; "
            "fix: select the tables of the clients' subnets (route_tables or route_table_tag)",
        )
    elsewhere = targets(groups.get(ELSEWHERE, []))
    role = str(report.iris.get("role") or "").lower()
    expected = role in NOT_PRIMARY_ROLES and len(elsewhere) == 1 and HERE not in groups
    tables = len({f.table for f in using})
    if expected:
        groups.pop(ELSEWHERE)
    bad = [g for g in ORDER if g in groups]
    if not bad:
        where = (
            f"at {elsewhere[0]} (another member's ENI: as expected, IRIS says this member is "
            f"{role})"
            if expected
            else "here"
        )
        return Check(
            "subnets_reach_vip",
            PASS,
            f"all {len(found)} subnet(s) reach the VIP {where}, through {tables} selected "
            f"table(s){skipped}",
        )
    missing = sum(len(groups[g]) for g in bad)
    split = HERE in groups or len(elsewhere) > 1  # clients reach different members
    parts = [_problem(g, groups[g], role, split) for g in bad]
    return Check(
        "subnets_reach_vip",
        WARN,
        f"{missing} of {len(found)} subnet(s) do not reach the VIP here: {'; '.join(parts)}"
        f"{skipped}",
    )


def _problem(verdict: str, items: List[SubnetRoute], role: str, split: bool) -> str:
    """One group of subnets that do not reach the VIP here, with its fix."""
    where = named(items)
    if verdict == UNSELECTED:
        return (
            f"table not selected: {where}: if clients there need the VIP, select it "
            "(route_tables or route_table_tag)"
        )
    if verdict == NO_ROUTE:
        return f"no VIP route: {where}: claim on the primary"
    if verdict == BLACKHOLE:
        return f"VIP route is a blackhole (its target is gone): {where}: claim on the primary"
    if verdict == ELSEWHERE:
        if split:
            fix = "the VIP is split between targets: claim on the primary"
        elif role == "primary":
            fix = "claim (IRIS says this member is the primary)"
        else:
            fix = "claim on the primary (expected when this member is the backup)"
        return f"routed to {few(targets(items))}: {where}: {fix}"
    return f"route table not in the describe: {where}: run doctor again"
