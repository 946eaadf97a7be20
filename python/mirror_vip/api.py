"""The API both faces call: claim, release, status, doctor. Each returns a Report.

Order of work in every command: local facts (interface, VIP, MAC), identity (IMDS, or the
given eni and region), one EC2 client, then the route tables.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterator, List, Optional, Set

from botocore.exceptions import BotoCoreError, ClientError

from . import cache, deletes, fastpath, host, imds, reach, routes, switchtime
from .assumerole import WORKLOAD_POLICY, AssumedRole, Network, session_name
from .aws import (
    MAX_PARALLEL_WRITES,
    PARALLEL_READS,
    Deadline,
    aws_error,
    botocore_session,
    checked,
    ec2_client,
    open_connections,
)
from .doctor import run_checks, source_dest_check
from .errors import ConfigError, HostError, IdentityError, MirrorVipError
from .failures import name_grantee
from .imds import Identity
from .report import DELETED, Report
from .settings import Settings

CLAIMING_ROLES = ("primary", "none")  # IRIS's mirror roles that may claim without force
# Connections opened for the writes when no remembered list tells how many tables there are:
# as many as a claim may write at once, so no write waits for a TLS handshake after the
# describe (fewer cost a second handshake round on the critical path once N exceeds them).
PREOPEN_GUESS = MAX_PARALLEL_WRITES


@dataclass
class Context:
    """Everything a command needs, resolved once."""

    settings: Settings  # with the VIP filled in
    identity: Identity
    ec2: Any  # the route tables' and subnets' client: as the role, when role_arn is set
    deadline: Deadline
    own_ec2: Any = None  # this instance's own ENI: always as its own role
    role: Optional[AssumedRole] = None

    def ready(self, preopen: int = PARALLEL_READS) -> None:
        """Before the first route call: the role's credentials (opening PREOPEN connections
        to EC2 while AssumeRole runs); nothing to wait for without a role."""
        if self.role is not None:
            self.role.ready(preopen)


def claim(
    chosen: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    use_cache: bool = False,
    iris: Optional[Dict[str, Any]] = None,
    notified_at: Optional[float] = None,
) -> Report:
    """Point the VIP's route in every selected table at this instance's ENI.

    With use_cache (a failover) and a usable remembered table list (cache.py), the writes go
    out at once and the describe runs beside them: one round trip (fastpath.py). Otherwise:
    describe, then writes: two. Either way a verify read follows, and the list is saved.
    notified_at: when IRIS called the hook (epoch seconds): the report then says how long after
    it the routes were switched and verified (switchtime.py).
    """
    clock = switchtime.Clock(notified_at)
    with _reporting("claim", chosen, iris, dry_run) as report:
        report.notified_at = notified_at
        _warn(report, clock.problem)
        if not force:
            _refuse_unless_primary(iris)
        ctx = _context(chosen, report)
        answers = switchtime.WriteAnswers(ctx.ec2)
        if report.vip_on_interface is False:
            report.warnings.append(
                f"VIP {ctx.settings.vip} is not on {ctx.settings.vip_label}: traffic routed "
                f"here will be dropped until it is added (ip addr add {ctx.settings.vip}/32 "
                f"dev {ctx.settings.interface} label {ctx.settings.vip_label})"
            )
        wanted = cache.key(ctx.settings, ctx.identity.vpc_id)
        loaded = cache.load(ctx.settings.cache_file, wanted)
        known = _usable_list(ctx, loaded, report) if use_cache and not dry_run else None
        remembered = len(known or (loaded.remembered.tables if loaded.remembered else ()))
        ctx.ready(PARALLEL_READS + (0 if dry_run else remembered or PREOPEN_GUESS))
        unselected: Set[str] = set()
        if known:
            fast = fastpath.claim_known_tables(
                ctx.ec2,
                ctx.settings,
                ctx.identity.vpc_id,
                ctx.identity.eni,
                ctx.deadline,
                report,
                known,
            )
            layout, unselected = fast.layout, fast.unselected
        else:
            tables = loaded.remembered.tables if loaded.remembered else ()
            layout = _claim_after_describe(ctx, report, len(tables) or PREOPEN_GUESS)
        if layout is not None:
            report.route_tables += routes.missing_results(layout, ctx.identity.vpc_id, chosen)
        _require_tables(report, chosen)
        if dry_run:
            routes.as_dry_run(report.route_tables)
            return report
        selected = [r for r in report.route_tables if r.id not in unselected]
        unverified = routes.verify_claim(
            ctx.ec2, ctx.settings, ctx.identity.vpc_id, selected, ctx.identity.eni, ctx.deadline
        )
        report.verified = unverified is None
        answers.close()
        report.switched_after_s = switchtime.switched_after(
            clock, selected, answers.answered, time.monotonic() if unverified is None else None
        )
        if unverified:
            report.fail(unverified)
        if layout is not None:
            _warn(report, _remember(ctx, wanted, layout, report))
    return report


def _usable_list(
    ctx: Context, loaded: cache.Loaded, report: Report
) -> Optional[List[cache.CachedTable]]:
    """The remembered table list, if the failover may write from it: trusted, fresh, well
    formed (cache.load), and its remembered subnets leave the VIP outside them all (else
    the describe goes first, and refuses if the VIP still lies inside one)."""
    _warn(report, loaded.problem)
    if loaded.remembered is None:
        return None
    if routes.subnet_containing(str(ctx.settings.vip), loaded.remembered.subnets) is not None:
        return None
    return loaded.remembered.tables


def _claim_after_describe(ctx: Context, report: Report, preopen: int) -> routes.Layout:
    """Round trip 1: the describes (and connections opened for the writes); 2: the writes."""
    eni = ctx.identity.eni
    layout = _read_layout_connecting(ctx, 0 if report.dry_run else preopen)
    routes.refuse_if_inside_subnet(str(ctx.settings.vip), layout)
    report.route_tables = routes.plan_claim(layout.tables, eni)
    if not report.dry_run:
        routes.apply_claim(ctx.ec2, report.route_tables, _destination(ctx), eni, ctx.deadline)
    return layout


def _read_layout_connecting(ctx: Context, count: int) -> routes.Layout:
    """The describes, with up to COUNT connections opened for the writes meanwhile."""
    if count <= 0:
        return _read_layout(ctx)
    with ThreadPoolExecutor(max_workers=1) as side:
        side.submit(open_connections, ctx.ec2, min(count, MAX_PARALLEL_WRITES))
        return _read_layout(ctx)


def _read_layout(ctx: Context) -> routes.Layout:
    return routes.read_layout(ctx.ec2, ctx.settings, ctx.identity.vpc_id, ctx.deadline)


def _destination(ctx: Context) -> str:
    """The VIP's /32, known to be set once the context is resolved."""
    return str(ctx.settings.destination)


def _warn(report: Report, warning: Optional[str]) -> None:
    if warning:
        report.warnings.append(warning)


def _remember(
    ctx: Context, wanted: Dict[str, Any], layout: routes.Layout, report: Report
) -> Optional[str]:
    """Save the table list as the claim left it (a table whose route we made has one now),
    with the VPC's subnets. Returns why it was not saved, if it was not."""
    after = {r.id: r.after for r in report.route_tables}
    return cache.save(
        ctx.settings.cache_file,
        wanted,
        [
            cache.CachedTable(t.id, t.main, after.get(t.id, t.target) is not None)
            for t in layout.tables
        ],
        layout.subnets,
    )


def refresh(chosen: Settings, *, iris: Optional[Dict[str, Any]] = None) -> Report:
    """Read-only: describe the selection and remember it for the next failover claim.

    A backup's reconcile task runs it every minute, so the member that claims next holds a
    list at most a minute old (a claim uses one at most cache.MAX_AGE_S old). It writes no
    route: one DescribeRouteTables and one DescribeSubnets, side by side. EC2 throttles
    non-mutating calls per API in a bucket of 100 requests refilled at 20 per second
    (AWS's "Request throttling for the Amazon EC2 API"): one of each a minute is nothing
    against that, and leaves the mutating bucket (the claims' writes) untouched.
    """
    with _reporting("refresh", chosen, iris) as report:
        if not chosen.cache_file:
            raise ConfigError(
                "refresh remembers the route-table list in cache_file: set cache_file "
                "(IRIS sets <mgr>/mirror-vip/route-tables.json)"
            )
        ctx = _context(chosen, report)
        ctx.ready()
        layout = _read_layout(ctx)
        report.route_tables = routes.as_status(layout, ctx.identity.vpc_id, chosen)
        _require_tables(report, chosen)
        vip = str(ctx.settings.vip)
        inside = routes.subnet_containing(vip, layout.subnets)
        if inside:
            report.fail(
                f"VIP {vip} lies inside subnet {inside[0]} ({inside[1]}): it cannot work, and a "
                "failover claim will refuse it; choose a VIP outside every subnet"
            )
        unsaved = _remember(ctx, cache.key(ctx.settings, ctx.identity.vpc_id), layout, report)
        if unsaved:
            report.fail(unsaved)  # remembering is what refresh is for
    return report


def release(
    chosen: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    iris: Optional[Dict[str, Any]] = None,
) -> Report:
    """Delete the VIP's route where it points at this ENI (with force: wherever it points),
    then read the tables back: the report says what they hold (deletes.py)."""
    with _reporting("release", chosen, iris, dry_run) as report:
        ctx = _context(chosen, report)
        # The read that decides each delete, with the deletes' connections opened meanwhile:
        # the deletes follow its answer by one-way latency, not a handshake more.
        known = cache.load(ctx.settings.cache_file, cache.key(ctx.settings, ctx.identity.vpc_id))
        count = len(known.remembered.tables) if known.remembered else PREOPEN_GUESS
        ctx.ready(PARALLEL_READS + (0 if dry_run else count))
        layout = _read_layout_connecting(ctx, 0 if dry_run else count)
        routes.refuse_if_inside_subnet(str(ctx.settings.vip), layout)
        report.route_tables = deletes.plan_release(layout.tables, ctx.identity.eni, force)
        report.route_tables += routes.missing_results(layout, ctx.identity.vpc_id, chosen)
        _require_tables(report, chosen)
        if dry_run:
            routes.as_dry_run(report.route_tables)
            return report
        deletes.apply_release(ctx.ec2, report.route_tables, _destination(ctx), ctx.deadline)
        unverified = deletes.verify_release(
            ctx.ec2, ctx.settings, ctx.identity.vpc_id, report.route_tables, ctx.deadline
        )
        if unverified:
            report.fail(unverified)
        for r in report.route_tables:
            if r.action == DELETED and r.after is not None:
                report.warnings.append(
                    f"route table {r.id}: after the delete the VIP route points at {r.after}: "
                    "claimed since (by the primary, or its reconcile)"
                )
    return report


def status(chosen: Settings, *, iris: Optional[Dict[str, Any]] = None) -> Report:
    """Read-only: this instance, the VIP on the interface, where each table's route points and
    which subnets use each table (reach.py: the VPC's every table, in the same one describe)."""
    with _reporting("status", chosen, iris) as report:
        ctx = _context(chosen, report)
        vip = str(ctx.settings.vip)
        ctx.ready()
        layout, vpc = reach.read(ctx.ec2, ctx.settings, ctx.identity.vpc_id, ctx.deadline)
        report.route_tables = routes.as_status(layout, ctx.identity.vpc_id, chosen)
        reach.annotate(report.route_tables, vpc)
        _warn(report, reach.unselected_warning(layout, vpc))
        report.source_dest_check = source_dest_check(ctx.own_ec2, ctx.identity.eni, ctx.deadline)
        inside = routes.subnet_containing(vip, layout.subnets)
        if inside:
            report.fail(f"VIP {vip} lies inside subnet {inside[0]} ({inside[1]}): it cannot work")
        if report.vip_on_interface is False:
            report.warnings.append(f"VIP {vip} is not on {ctx.settings.vip_label}")
        if report.source_dest_check:
            report.warnings.append(
                f"source/destination check is enabled on {ctx.identity.eni}: "
                "the VIP's traffic is dropped; disable it (see doctor)"
            )
    return report


def doctor(chosen: Settings, *, iris: Optional[Dict[str, Any]] = None) -> Report:
    """Preflight: each check pass/warn/fail with a one-line fix."""
    with _reporting("doctor", chosen, iris) as report:
        try:
            ctx = _context(chosen, report)
        except (IdentityError, HostError, ConfigError) as exc:
            run_checks(report, chosen, None, exc)
        else:
            run_checks(report, ctx.settings, ctx, None)
    return report


# --- shared steps ----------------------------------------------------------------------------


@contextmanager
def _reporting(
    command: str, chosen: Settings, iris: Optional[Dict[str, Any]], dry_run: bool = False
) -> Iterator[Report]:
    """A report that always comes back: expected errors become its errors, with exit codes."""
    started = time.monotonic()
    report = Report(
        command=command,
        dry_run=dry_run,
        vip=chosen.vip,
        interface=chosen.interface,
        label=chosen.vip_label,
        iris=dict(iris or {}),
    )
    try:
        yield report
    except MirrorVipError as exc:
        report.fail(str(exc), exc.exit_code)
    except (ClientError, BotoCoreError) as exc:  # a call not wrapped by `checked`: still one line
        report.fail(str(aws_error(exc, command, "EC2")))
    report.settle()
    report.elapsed_s = round(time.monotonic() - started, 3)


def _context(chosen: Settings, report: Report) -> Context:
    deadline = Deadline(chosen.deadline)
    addresses: Optional[List[host.Address]] = None
    try:
        addresses = host.addresses(chosen.interface)
    except HostError:
        if not (chosen.vip and chosen.eni):
            raise  # without the interface we know neither the VIP nor the ENI
    if chosen.vip is None:
        found = host.labelled_address(addresses or [], chosen.vip_label)
        if found is None:
            raise ConfigError(
                f"no VIP given and {chosen.interface} has no address labelled "
                f"{chosen.vip_label}; pass --vip, or add the alias (ip addr add VIP/32 dev "
                f"{chosen.interface} label {chosen.vip_label})"
            )
        chosen = chosen.with_vip(found)
    report.vip = chosen.vip
    if addresses is not None:
        report.vip_on_interface = host.has_address(addresses, str(chosen.vip))
    core = botocore_session()
    identity = _identity(chosen, core, deadline)
    report.instance_id, report.eni = identity.instance_id, identity.eni
    report.vpc_id, report.region = identity.vpc_id, identity.region
    ec2 = ec2_client(
        core, identity.region, deadline, chosen.ec2_endpoint or None, chosen.proxy or None
    )
    if identity.vpc_id == "":
        identity = _identity_from_eni(ec2, identity, deadline)
        report.instance_id, report.vpc_id = identity.instance_id, identity.vpc_id
    if not chosen.role_arn:
        return Context(chosen, identity, ec2, deadline, own_ec2=ec2)
    # A shared VPC: AssumeRole starts now, in the background (assumerole.py)
    name_grantee(ec2, f"this instance's role ({WORKLOAD_POLICY})")
    name = session_name(identity.instance_id, identity.eni)
    network = Network(chosen.ec2_endpoint, chosen.sts_endpoint, chosen.proxy)
    role = AssumedRole(
        core, chosen.role_arn, chosen.external_id, name, identity.region, deadline, network
    )
    return Context(chosen, identity, role.ec2, deadline, own_ec2=ec2, role=role)


def _identity(chosen: Settings, core: Any, deadline: Deadline) -> Identity:
    """From IMDS; with both eni and region given, IMDS is not needed (teardown from anywhere)."""
    if chosen.eni and chosen.region:
        return Identity(instance_id="", region=chosen.region, eni=chosen.eni, vpc_id="", mac="")
    try:
        mac = host.mac_address(chosen.interface)
        found = imds.fetch_identity(core, mac, deadline)
    except IdentityError as exc:
        missing = [f"--{k}" for k in ("eni", "region") if not getattr(chosen, k)]
        raise IdentityError(
            f"{exc}; off EC2 or without IMDS, pass {' and '.join(missing)}"
        ) from None
    return replace(found, eni=chosen.eni or found.eni, region=chosen.region or found.region)


def _identity_from_eni(ec2: Any, identity: Identity, deadline: Deadline) -> Identity:
    found = checked(
        "DescribeNetworkInterfaces",
        identity.eni,
        ec2.describe_network_interfaces,
        deadline,
        NetworkInterfaceIds=[identity.eni],
    )["NetworkInterfaces"]
    if not found:
        raise ConfigError(f"network interface {identity.eni} not found; check --eni")
    eni = found[0]
    return replace(
        identity,
        vpc_id=str(eni["VpcId"]),
        instance_id=str(eni.get("Attachment", {}).get("InstanceId") or ""),
    )


def _refuse_unless_primary(iris: Optional[Dict[str, Any]]) -> None:
    """A claim needs IRIS to say primary (or no mirror member); any other role, one we do not
    know included, refuses. Without IRIS facts (the command line) there is no role to check."""
    if not iris or "role" not in iris:
        return
    role = iris["role"]
    name = role.strip() if isinstance(role, str) else ""
    if name.lower() in CLAIMING_ROLES:
        return
    said = name if name else repr(role)
    raise ConfigError(
        f"this IRIS instance is not its mirror's primary (IRIS says its role is {said}): "
        "claim on the primary, or force the claim"
    )


def _require_tables(report: Report, chosen: Settings) -> None:
    if not report.route_tables:
        shown = chosen.to_dict()
        report.fail(
            f"no route table selected in {report.vpc_id} (route_tables="
            f"{shown['route_tables']}, route_table_tag={shown['route_table_tag']}): "
            "check the selection"
        )
