"""The failover claim from the remembered route-table list (cache.py): one EC2 round trip.

Every remembered table is written at once, and the describe of the selection runs beside the
writes. What the describe finds comes too late to stop a write, so it is used to tell the
truth about them: each table's old target, a table the selection no longer holds (written
all the same: reported, with what to do), a table the selection holds for the first time
(claimed after), a subnet that now contains the VIP (the writes reported, exit 1). When the
describe fails, the writes are reported as they were answered; the verify read that follows
(api.claim) says whether they hold.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Set

from . import routes
from .aws import Deadline
from .cache import CachedTable
from .errors import MirrorVipError
from .report import CREATED, ERROR, REPLACED, Report, TableResult
from .settings import Settings


@dataclass
class FastClaim:
    layout: Optional[routes.Layout]  # None when the describe beside the writes failed
    unselected: Set[str] = field(default_factory=set)  # written, yet not in the selection


def claim_known_tables(
    ec2: Any,
    chosen: Settings,
    vpc_id: str,
    eni: str,
    deadline: Deadline,
    report: Report,
    known: Sequence[CachedTable],
) -> FastClaim:
    """Write every table of KNOWN, describe beside the writes, and fill REPORT in."""
    destination = str(chosen.destination)
    results = [
        TableResult(id=t.id, main=t.main, action=REPLACED if t.had_route else CREATED)
        for t in known
    ]
    sent = _WritesSent(ec2, len(results))

    def describe() -> routes.Layout:
        sent.done.wait(deadline.remaining())
        return routes.read_layout(ec2, chosen, vpc_id, deadline)

    with ThreadPoolExecutor(max_workers=1) as side:
        described = side.submit(describe)
        try:
            routes.apply_claim(ec2, results, destination, eni, deadline)
        finally:
            sent.close()
        try:
            layout = described.result()
        except MirrorVipError as exc:
            report.route_tables = results
            report.fail(
                f"{exc}; the {len(results)} remembered route table(s) above were written "
                "before it failed, and a table selected since the list was saved may lack "
                "the route: claim again once EC2 answers"
            )
            return FastClaim(None)
    return _after_the_describe(ec2, chosen, eni, deadline, report, results, layout)


def _after_the_describe(
    ec2: Any,
    chosen: Settings,
    eni: str,
    deadline: Deadline,
    report: Report,
    results: List[TableResult],
    layout: routes.Layout,
) -> FastClaim:
    seen = {t.id: t for t in layout.tables}
    for r in results:
        if r.id in seen and seen[r.id].target != eni:
            r.before = seen[r.id].target  # read beside the write: the old target, if it was first
    kept = [r for r in results if r.id in seen]
    unselected = [r for r in results if r.id not in seen and r.action != ERROR]
    refused = [r for r in results if r.id not in seen and r.action == ERROR]
    for r in unselected:
        report.warnings.append(
            f"route table {r.id} is no longer selected ({_selection(chosen)}) but was in the "
            f"remembered list, so the failover wrote the VIP route there ({r.action}, now "
            f"{r.after}); if it should have none: aws ec2 delete-route --route-table-id "
            f"{r.id} --destination-cidr-block {chosen.destination}"
        )
    if refused:
        report.warnings.append(
            "remembered route table(s) gone or no longer selected, their write refused: "
            + "; ".join(f"{r.id} ({r.error})" for r in refused)
        )
    report.route_tables = kept + unselected
    vip = str(chosen.vip)
    inside = routes.subnet_containing(vip, layout.subnets)
    if inside:
        report.fail(
            f"VIP {vip} lies inside subnet {inside[0]} ({inside[1]}), which the remembered "
            "list did not know: the route tables above were written before the describe "
            "found it, and a route more specific than a subnet is never used there; choose "
            "a VIP outside every subnet (preferably outside the VPC CIDR) and claim again"
        )
        return FastClaim(layout, {r.id for r in unselected})
    listed = {r.id for r in results}
    new = [t for t in layout.tables if t.id not in listed]
    if new:
        fresh = routes.plan_claim(new, eni)
        routes.apply_claim(ec2, fresh, str(chosen.destination), eni, deadline)
        report.route_tables += fresh
    return FastClaim(layout, {r.id for r in unselected})


def _selection(chosen: Settings) -> str:
    shown = chosen.to_dict()
    tag = shown["route_table_tag"]
    tables = shown["route_tables"]
    named = "all" if isinstance(tables, str) else ",".join(tables)
    return f"route_tables={named}" + (f", route_table_tag={tag}" if tag else "")


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
