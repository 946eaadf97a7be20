"""The API both faces call: claim, release, status, doctor. Each returns a Report.

Order of work in every command: local facts (interface, VIP, MAC), identity (IMDS, or the
given eni and region), one EC2 client, then the route tables.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterator, List, Optional

from botocore.exceptions import BotoCoreError, ClientError

from . import cache, host, imds, routes
from .aws import (
    MAX_PARALLEL_WRITES,
    Deadline,
    aws_error,
    botocore_session,
    checked,
    ec2_client,
    open_connections,
)
from .doctor import run_checks, source_dest_check
from .errors import ConfigError, HostError, IdentityError, MirrorVipError
from .imds import Identity
from .report import CREATED, REPLACED, Report, TableResult
from .settings import Settings

STANDBY_ROLES = ("backup", "async")
# Connections opened for the writes when no remembered list tells how many tables there are:
# as many as a claim may write at once, so no write waits for a TLS handshake after the
# describe (fewer cost a second handshake round on the critical path once N exceeds them).
PREOPEN_GUESS = MAX_PARALLEL_WRITES


@dataclass
class Context:
    """Everything a command needs, resolved once."""

    settings: Settings  # with the VIP filled in
    identity: Identity
    ec2: Any
    deadline: Deadline


def claim(
    chosen: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    use_cache: bool = False,
    iris: Optional[Dict[str, Any]] = None,
) -> Report:
    """Point the VIP's route in every selected table at this instance's ENI.

    With use_cache (a failover) and a cached table list, the writes go out at once and the
    describe runs beside them: one round trip. Otherwise: describe, then writes: two.
    """
    with _reporting("claim", chosen, iris, dry_run) as report:
        role = str((iris or {}).get("role") or "")
        if role in STANDBY_ROLES and not force:
            raise ConfigError(
                f"this IRIS instance is the mirror's {role}, not its primary: claim on the "
                "primary, or force the claim"
            )
        ctx = _context(chosen, report)
        if report.vip_on_interface is False:
            report.warnings.append(
                f"VIP {ctx.settings.vip} is not on {ctx.settings.vip_label}: traffic routed "
                f"here will be dropped until it is added (ip addr add {ctx.settings.vip}/32 "
                f"dev {ctx.settings.interface} label {ctx.settings.vip_label})"
            )
        wanted = cache.key(ctx.settings, ctx.identity.vpc_id)
        known = cache.load(ctx.settings.cache_file, wanted)
        if use_cache and known and not dry_run:
            layout = _claim_known_tables(ctx, report, known)
        else:
            layout = _claim_after_describe(ctx, report, len(known or ()) or PREOPEN_GUESS)
        report.route_tables += routes.missing_results(layout, ctx.identity.vpc_id, chosen)
        _require_tables(report, chosen)
        if dry_run:
            routes.as_dry_run(report.route_tables)
            return report
        eni = ctx.identity.eni
        unverified = routes.verify_claim(
            ctx.ec2, ctx.settings, ctx.identity.vpc_id, report.route_tables, eni, ctx.deadline
        )
        if unverified:
            report.warnings.append(unverified)
        _remember(ctx, wanted, layout, report)
    return report


def _claim_after_describe(ctx: Context, report: Report, preopen: int) -> routes.Layout:
    """Round trip 1: the describes (and connections opened for the writes); 2: the writes."""
    eni = ctx.identity.eni
    with ThreadPoolExecutor(max_workers=1) as side:
        side.submit(open_connections, ctx.ec2, min(preopen, MAX_PARALLEL_WRITES))
        layout = _read_layout(ctx)
    routes.refuse_if_inside_subnet(str(ctx.settings.vip), layout)
    report.route_tables = routes.plan_claim(layout.tables, eni)
    if not report.dry_run:
        routes.apply_claim(ctx.ec2, report.route_tables, _destination(ctx), eni, ctx.deadline)
    return layout


def _claim_known_tables(
    ctx: Context, report: Report, known: List[cache.CachedTable]
) -> routes.Layout:
    """Round trip 1: every cached table written, the describe beside them. A table the
    describe no longer shows is dropped; one it shows for the first time is claimed after."""
    eni = ctx.identity.eni
    results = [
        TableResult(id=t.id, main=t.main, action=REPLACED if t.had_route else CREATED)
        for t in known
    ]
    sent = _WritesSent(ctx.ec2, len(results))
    with ThreadPoolExecutor(max_workers=1) as side:
        described = side.submit(_read_layout, ctx, sent.done)
        try:
            routes.apply_claim(ctx.ec2, results, _destination(ctx), eni, ctx.deadline)
        finally:
            sent.close()
        layout = described.result()
    seen = {t.id: t for t in layout.tables}
    for r in results:
        if r.id in seen and seen[r.id].target != eni:
            r.before = seen[r.id].target  # read beside the write: the old target, if it was first
    gone = [r.id for r in results if r.id not in seen]
    if gone:
        report.warnings.append(f"cached route table(s) gone or deselected: {', '.join(gone)}")
    report.route_tables = [r for r in results if r.id in seen]
    cached_ids = {k.id for k in known}
    new = [t for t in layout.tables if t.id not in cached_ids]
    if new:
        routes.refuse_if_inside_subnet(str(ctx.settings.vip), layout)
        fresh = routes.plan_claim(new, eni)
        routes.apply_claim(ctx.ec2, fresh, _destination(ctx), eni, ctx.deadline)
        report.route_tables += fresh
    return layout


def _read_layout(ctx: Context, after: Optional[threading.Event] = None) -> routes.Layout:
    """The describe round trip, once AFTER is set (when given)."""
    if after is not None:
        after.wait(ctx.deadline.remaining())
    return routes.read_layout(ctx.ec2, ctx.settings, ctx.identity.vpc_id, ctx.deadline)


def _destination(ctx: Context) -> str:
    """The VIP's /32, known to be set once the context is resolved."""
    return str(ctx.settings.destination)


class _WritesSent:
    """`done` is set once `count` route writes have been handed to the HTTP layer (botocore's
    before-send event), or on close. The describe beside the writes waits for it: its CPU
    work (building and signing its requests) would otherwise hold the GIL while the writes
    are still being built and signed, and delay them."""

    EVENTS = ("before-send.ec2.ReplaceRoute", "before-send.ec2.CreateRoute")

    def __init__(self, ec2: Any, count: int) -> None:
        self._ec2 = ec2
        self._left = count
        self._lock = threading.Lock()
        self.done = threading.Event()
        if count <= 0:
            self.done.set()
        for event in self.EVENTS:
            ec2.meta.events.register(event, self._sent)

    def _sent(self, **_: Any) -> None:  # a handler that returns None lets the send proceed
        with self._lock:
            self._left -= 1
            if self._left <= 0:
                self.done.set()

    def close(self) -> None:
        self.done.set()
        for event in self.EVENTS:
            self._ec2.meta.events.unregister(event, self._sent)


def _remember(ctx: Context, wanted: Dict[str, Any], layout: routes.Layout, report: Report) -> None:
    """Save the table list as the claim left it: a table whose route we made has one now."""
    if routes.subnet_containing(str(ctx.settings.vip), layout.subnets) is not None:
        return
    after = {r.id: r.after for r in report.route_tables}
    cache.save(
        ctx.settings.cache_file,
        wanted,
        [
            cache.CachedTable(t.id, t.main, after.get(t.id, t.target) is not None)
            for t in layout.tables
        ],
    )


def release(
    chosen: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    iris: Optional[Dict[str, Any]] = None,
) -> Report:
    """Delete the VIP's route where it points at this ENI (with force: wherever it points)."""
    with _reporting("release", chosen, iris, dry_run) as report:
        ctx = _context(chosen, report)
        layout = _read_layout(ctx)
        routes.refuse_if_inside_subnet(str(ctx.settings.vip), layout)
        report.route_tables = routes.plan_release(layout.tables, ctx.identity.eni, force)
        report.route_tables += routes.missing_results(layout, ctx.identity.vpc_id, chosen)
        _require_tables(report, chosen)
        if dry_run:
            routes.as_dry_run(report.route_tables)
            return report
        routes.apply_release(ctx.ec2, report.route_tables, _destination(ctx), ctx.deadline)
    return report


def status(chosen: Settings, *, iris: Optional[Dict[str, Any]] = None) -> Report:
    """Read-only: this instance, the VIP on the interface, and where each table's route points."""
    with _reporting("status", chosen, iris) as report:
        ctx = _context(chosen, report)
        vip = str(ctx.settings.vip)
        layout = _read_layout(ctx)
        report.route_tables = routes.as_status(layout, ctx.identity.vpc_id, chosen)
        report.source_dest_check = source_dest_check(ctx.ec2, ctx.identity.eni, ctx.deadline)
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
    ec2 = ec2_client(core, identity.region, deadline)
    if identity.vpc_id == "":
        identity = _identity_from_eni(ec2, identity, deadline)
        report.instance_id, report.vpc_id = identity.instance_id, identity.vpc_id
    return Context(chosen, identity, ec2, deadline)


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


def _require_tables(report: Report, chosen: Settings) -> None:
    if not report.route_tables:
        shown = chosen.to_dict()
        report.fail(
            f"no route table selected in {report.vpc_id} (route_tables="
            f"{shown['route_tables']}, route_table_tag={shown['route_table_tag']}): "
            "check the selection"
        )
