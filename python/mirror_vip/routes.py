"""The VIP's /32 route in the VPC's route tables: select the tables, then claim, release, read.

A claim is one describe round trip (route tables and subnets side by side), then every write
in parallel, then a verifying read. It never deletes: delete-then-create leaves the VIP with
no route for a round trip per table. ReplaceRoute swaps the target in place.
"""

from __future__ import annotations

import ipaddress
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .aws import MAX_PARALLEL_WRITES, Deadline, aws_error, call, checked, error_code, error_message
from .errors import AwsError, LayoutError
from .report import CREATED, ERROR, REPLACED, UNCHANGED, WOULD, TableResult
from .settings import ALL_TABLES, Settings

TARGET_KEYS = (
    "NetworkInterfaceId",  # first: a route to an instance carries its ENI too
    "InstanceId",
    "GatewayId",
    "NatGatewayId",
    "TransitGatewayId",
    "VpcPeeringConnectionId",
    "LocalGatewayId",
    "CarrierGatewayId",
    "CoreNetworkArn",
)
WILDCARDS = frozenset("*?\\")  # special in an EC2 filter value
MAX_PAGES = 100  # a VPC holds a few hundred route tables at most
VERIFY_WINDOW_S = 3.0  # how long a stale read (EC2 is eventually consistent) may persist
VERIFY_RESERVE_S = 1.0  # of the deadline, kept from the writes' retries for the verify read


@dataclass
class Table:
    id: str
    main: bool
    route: Optional[Dict[str, Any]]  # the VIP's /32 route, if the table has one

    @property
    def target(self) -> Optional[str]:
        return route_target(self.route)

    @property
    def state(self) -> Optional[str]:
        return str(self.route.get("State")) if self.route else None


@dataclass
class Layout:
    """What one describe round trip tells us about the VPC."""

    tables: List[Table]
    missing: List[str]  # ids asked for by --route-tables that the selection did not find
    subnets: List[Tuple[str, str]]  # (subnet id, CIDR)


def route_target(route: Optional[Dict[str, Any]]) -> Optional[str]:
    if not route:
        return None
    for key in TARGET_KEYS:
        if route.get(key):
            return str(route[key])
    return None


def table_filters(chosen: Settings, vpc_id: str) -> List[Dict[str, Any]]:
    filters: List[Dict[str, Any]] = [{"Name": "vpc-id", "Values": [vpc_id]}]
    if chosen.route_tables != ALL_TABLES:
        filters.append({"Name": "route-table-id", "Values": list(chosen.route_tables)})
    if chosen.route_table_tag:
        key, value = chosen.route_table_tag
        if not WILDCARDS.intersection(value):
            filters.append({"Name": f"tag:{key}", "Values": [value]})
        # else: no tag filter (the whole VPC is read) and read_tables matches the value itself.
        # EC2 reads `*` and `?` in a filter value as wildcards and a backslash as their escape
        # ("a filter value of \*amazon\?\\ specifies the literal string *amazon?\", EC2 API
        # reference, Filter); moto does not read the escapes, so escaping would work on one.
    return filters


def has_tag(raw: Dict[str, Any], tag: Tuple[str, str]) -> bool:
    """Whether a described table carries exactly this tag: the filter's answer, checked."""
    return any(t.get("Key") == tag[0] and t.get("Value") == tag[1] for t in raw.get("Tags") or [])


def read_tables(
    ec2: Any, chosen: Settings, vpc_id: str, deadline: Deadline
) -> Tuple[List[Table], List[str]]:
    raw_tables = all_pages(
        ec2.describe_route_tables,
        "RouteTables",
        deadline,
        "DescribeRouteTables",
        vpc_id,
        Filters=table_filters(chosen, vpc_id),
    )
    return select_tables(raw_tables, chosen)


def select_tables(
    raw_tables: Sequence[Dict[str, Any]], chosen: Settings
) -> Tuple[List[Table], List[str]]:
    """The selected tables among described ones, in the claim's order, and the ids asked for
    that are not among them. The claim's describe has EC2 filter by the same rules (only the
    tag is always checked here too); status and doctor read the whole VPC and select here."""
    tag = chosen.route_table_tag
    wanted = [] if chosen.route_tables == ALL_TABLES else list(chosen.route_tables)
    ids = set(wanted)
    tables = [
        as_table(raw, chosen.destination)
        for raw in raw_tables
        if (tag is None or has_tag(raw, tag)) and (not ids or raw["RouteTableId"] in ids)
    ]
    found = {t.id for t in tables}
    missing = [rtb for rtb in wanted if rtb not in found]
    order = {rtb: i for i, rtb in enumerate(wanted)}
    tables.sort(key=lambda t: (order.get(t.id, len(order)), not t.main, t.id))
    return tables, missing


def as_table(raw: Dict[str, Any], destination: Optional[str]) -> Table:
    route = next(
        (r for r in raw.get("Routes", []) if r.get("DestinationCidrBlock") == destination), None
    )
    main = any(a.get("Main") for a in raw.get("Associations", []))
    return Table(id=str(raw["RouteTableId"]), main=main, route=route)


def read_subnets(ec2: Any, vpc_id: str, deadline: Deadline) -> List[Tuple[str, str]]:
    return ipv4_subnets(describe_subnets(ec2, vpc_id, deadline))


def describe_subnets(ec2: Any, vpc_id: str, deadline: Deadline) -> List[Dict[str, Any]]:
    return all_pages(
        ec2.describe_subnets,
        "Subnets",
        deadline,
        "DescribeSubnets",
        vpc_id,
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}],
    )


def ipv4_subnets(raw_subnets: Sequence[Dict[str, Any]]) -> List[Tuple[str, str]]:
    """(id, IPv4 CIDR) of each subnet that has one (an IPv6-only subnet has none)."""
    return [(str(s["SubnetId"]), str(s["CidrBlock"])) for s in raw_subnets if s.get("CidrBlock")]


def all_pages(
    fn: Callable[..., Dict[str, Any]],
    key: str,
    deadline: Deadline,
    action: str,
    resource: str,
    **params: Any,
) -> List[Dict[str, Any]]:
    """Every item of a describe, following NextToken. Not botocore's paginator: without
    MaxResults EC2 answers in one page, and loading the paginator model costs a cold process
    ~15 ms of CPU on the critical path (docs/benchmarks.md)."""
    items: List[Dict[str, Any]] = []
    token: Optional[str] = None
    for _ in range(MAX_PAGES):
        more = {"NextToken": token} if token else {}
        page = checked(action, resource, fn, deadline, **params, **more)
        items.extend(page.get(key, []))
        token = page.get("NextToken")
        if not token:
            return items
    raise AwsError(
        f"{action} on {resource}: more than {MAX_PAGES} pages, and a selection read in part "
        "would leave tables out; select fewer route tables (route_table_tag or route_tables)"
    )


def read_layout(ec2: Any, chosen: Settings, vpc_id: str, deadline: Deadline) -> Layout:
    """Route tables and subnets in one round trip: the two describes run side by side."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        tables = pool.submit(read_tables, ec2, chosen, vpc_id, deadline)
        subnets = pool.submit(read_subnets, ec2, vpc_id, deadline)
        found, missing = tables.result()
        return Layout(tables=found, missing=missing, subnets=subnets.result())


def subnet_containing(vip: str, subnets: Sequence[Tuple[str, str]]) -> Optional[Tuple[str, str]]:
    address = ipaddress.IPv4Address(vip)
    for subnet_id, cidr in subnets:
        if address in ipaddress.ip_network(cidr, strict=False):
            return subnet_id, cidr
    return None


def refuse_if_inside_subnet(vip: str, layout: Layout) -> None:
    inside = subnet_containing(vip, layout.subnets)
    if inside:
        raise LayoutError(
            f"VIP {vip} lies inside subnet {inside[0]} ({inside[1]}): a route more specific "
            "than a subnet is never used there; choose a VIP outside every subnet, "
            "preferably outside the VPC CIDR"
        )


def missing_results(layout: Layout, vpc_id: str, chosen: Settings) -> List[TableResult]:
    tag = chosen.route_table_tag
    where = f"in {vpc_id} (the instance's VPC)" + (f" with tag {tag[0]}={tag[1]}" if tag else "")
    return [
        TableResult(id=rtb, action=ERROR, error=f"route table {rtb} not found {where}")
        for rtb in layout.missing
    ]


# --- claim ---------------------------------------------------------------------------------


def plan_claim(tables: Sequence[Table], eni: str) -> List[TableResult]:
    """What a claim must do per table: nothing where the route already points here."""
    results = []
    for t in tables:
        if t.target == eni and t.state != "blackhole":
            action = UNCHANGED
        elif t.route is not None:
            action = REPLACED
        else:
            action = CREATED
        results.append(
            TableResult(
                id=t.id,
                before=t.target,
                after=t.target if action == UNCHANGED else eni,
                action=action,
                state=t.state,
                main=t.main,
            )
        )
    return results


def switch(
    ec2: Any, table_id: str, destination: str, eni: str, exists: bool, deadline: Deadline
) -> str:
    """Make one table's VIP route target `eni`. Returns the action that did it.

    Another writer may create or delete the route between our describe and our write;
    each error that says so turns a replace into a create or back (a bounded number of times).
    """
    replace = exists
    params = {
        "RouteTableId": table_id,
        "DestinationCidrBlock": destination,
        "NetworkInterfaceId": eni,
    }
    for _ in range(4):
        try:
            if replace:
                call(ec2.replace_route, deadline, **params)
                return REPLACED
            call(ec2.create_route, deadline, **params)
            return CREATED
        except Exception as exc:
            code = error_code(exc)
            if not replace and code == "RouteAlreadyExists":
                replace = True
                continue
            if replace and code == "InvalidParameterValue" and _no_such_route(exc):
                replace = False
                continue
            raise aws_error(exc, "ReplaceRoute" if replace else "CreateRoute", table_id) from None
    raise AwsError(f"{table_id}: the VIP route kept changing under us; run the claim again")


def _no_such_route(exc: BaseException) -> bool:
    # AWS: "There is no route defined for '10.0.0.1/32' in the route table.
    #       Use CreateRoute instead."
    message = error_message(exc).lower()
    return "no route" in message or "createroute" in message


def apply_claim(
    ec2: Any, results: List[TableResult], destination: str, eni: str, deadline: Deadline
) -> None:
    todo = [r for r in results if r.action in (REPLACED, CREATED)]
    # retries stop short of the deadline: the verify read must still fit, to show a write
    # whose answer never came
    writes_by = deadline.sooner(min(VERIFY_RESERVE_S, deadline.seconds / 4))

    def one(result: TableResult) -> None:
        try:
            result.action = switch(
                ec2, result.id, destination, eni, result.action == REPLACED, writes_by
            )
            result.after = eni
            result.state = "active"
        except AwsError as exc:
            result.action, result.error, result.after = ERROR, str(exc), result.before

    in_parallel(one, todo)


def read_until_settled(
    ec2: Any,
    chosen: Settings,
    ids: Sequence[str],
    vpc_id: str,
    deadline: Deadline,
    unsettled: Callable[[Dict[str, Table]], bool],
) -> Dict[str, Table]:
    """Read the tables IDS back, again while UNSETTLED says the writes are not all seen yet:
    EC2's reads are eventually consistent, so a stale read may follow a write for a moment
    (VERIFY_WINDOW_S at most). {table id: table as last read}. Raises AwsError when the first
    read fails; when a re-read fails, the last read is what is known, and it is returned."""
    scoped = Settings(vip=chosen.vip, route_tables=tuple(ids))
    window = Deadline(min(VERIFY_WINDOW_S, deadline.remaining()))
    pause = 0.1
    seen: Optional[Dict[str, Table]] = None
    while True:
        try:
            tables, _ = read_tables(ec2, scoped, vpc_id, deadline)
        except AwsError:
            if seen is None:
                raise
            return seen
        seen = {t.id: t for t in tables}
        if not unsettled(seen) or window.remaining() <= pause:
            return seen
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def verify_claim(
    ec2: Any,
    chosen: Settings,
    vpc_id: str,
    results: List[TableResult],
    eni: str,
    deadline: Deadline,
) -> Optional[str]:
    """Read back the tables we wrote. A stale read is retried briefly; what still points
    elsewhere after that is reported (another member may have claimed at the same time).

    Tables whose write failed are read too: a write whose answer was lost (a read timeout,
    a dropped connection) may have landed, and then the table is switched, not failed.
    Returns why the writes are not verified when the read itself failed: the writes' own
    results then stand, and the claim is not a success.
    """
    written = [r for r in results if r.action in (REPLACED, CREATED)]
    doubtful = [r for r in results if r.action == ERROR and r.before != eni]
    if not written and not doubtful:
        return None

    def unsettled(seen: Dict[str, Table]) -> bool:
        return any(r.id not in seen or seen[r.id].target != eni for r in written)

    ids = tuple(r.id for r in written + doubtful)
    try:
        seen = read_until_settled(ec2, chosen, ids, vpc_id, deadline, unsettled)
    except AwsError as exc:
        return (
            f"the writes are not verified: reading them back failed ({exc}); run status to "
            "see where the routes point"
        )
    wrong = [r for r in written if r.id not in seen or seen[r.id].target != eni]
    for r in doubtful:
        table = seen.get(r.id)
        if table is None:
            continue
        r.state = table.state
        if table.target == eni:
            r.action = CREATED if r.before is None else REPLACED
            r.after, r.error = eni, None
        else:  # the write failed: `after` is what the read back found there
            r.after = table.target
    for r in wrong:
        table = seen.get(r.id)
        r.after = table.target if table else None
        r.action = ERROR
        r.error = (
            f"route table {r.id} disappeared during the claim"
            if table is None
            else f"after the claim the VIP route points at {r.after or 'nothing'}, not {eni}; "
            "another member may have claimed at the same time: run status on the primary"
        )
    return None


def as_dry_run(results: List[TableResult]) -> None:
    for r in results:
        if r.action in WOULD:
            r.action = WOULD[r.action]


def as_status(layout: Layout, vpc_id: str, chosen: Settings) -> List[TableResult]:
    """Where each selected table's VIP route points (before = after), and the missing ones."""
    found = [
        TableResult(
            id=t.id, before=t.target, after=t.target, action=UNCHANGED, state=t.state, main=t.main
        )
        for t in layout.tables
    ]
    return found + missing_results(layout, vpc_id, chosen)


def in_parallel(fn: Callable[[TableResult], None], items: List[TableResult]) -> None:
    """fn on every item, at most MAX_PARALLEL_WRITES at once."""
    if not items:
        return
    if len(items) == 1:
        fn(items[0])
        return
    with ThreadPoolExecutor(max_workers=min(len(items), MAX_PARALLEL_WRITES)) as pool:
        list(pool.map(fn, items))
