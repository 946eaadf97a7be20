"""The metrics mirror-vip exposes: their names, types and labels, and what a report tells.

Two faces show them under the same names: IRIS's monitoring endpoint (/api/monitor/metrics,
through the application class MirrorVip.Metrics, which reads what the last claim, status and
reconcile stored) and the command line (`status --openmetrics`, openmetrics.py, for
node_exporter's textfile collector). The command line reads the route tables and nothing
else, so it shows the families marked `cli`; the rest need IRIS's history of claims.

IRIS's SetSensor(Sensor, Value, Item) names a metric PRODUCT_Sensor and gives one label, `id`,
to the Item ("by convention, metrics with a single label value use the "id" key": class
reference of %SYS.Monitor.SAM.Abstract, 2024.1): so every labelled family here is labelled
`id`. Names follow OpenMetrics: a counter's samples end in `_total`, a family with a unit ends
in it (`_seconds`), a timestamp is epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from .report import CHANGES, ERROR, UNCHANGED, Report

PREFIX = "mirrorvip"  # MirrorVip.Metrics' PRODUCT


@dataclass(frozen=True)
class Family:
    name: str  # without PREFIX_
    type: str  # gauge | counter
    help: str
    label: Optional[str] = None  # "id" or none
    unit: str = ""
    cli: bool = False  # the command line's status shows it too

    @property
    def full_name(self) -> str:
        return f"{PREFIX}_{self.name}"

    @property
    def sample_name(self) -> str:
        """The sample's name: what IRIS's SetSensor is given (after PREFIX_)."""
        return f"{self.name}_total" if self.type == "counter" else self.name


FAMILIES = (
    Family(
        "vip_routed_here",
        "gauge",
        "1 when the route table's VIP route targets this member's ENI, as last read",
        label="id",
        cli=True,
    ),
    Family(
        "route_tables_read_timestamp_seconds",
        "gauge",
        "When the route tables were last read (a claim, status or the reconcile)",
        unit="seconds",
        cli=True,
    ),
    Family(
        "vip_on_interface",
        "gauge",
        "1 when the VIP is an address of this host's interface, as last seen",
        cli=True,
    ),
    Family(
        "member_primary",
        "gauge",
        "1 when IRIS says this instance should hold the VIP (mirror primary, or no mirror)",
    ),
    Family(
        "failover_last_timestamp_seconds",
        "gauge",
        "When IRIS called NotifyBecomePrimary for the last failover claim",
        unit="seconds",
    ),
    Family(
        "failover_last_success",
        "gauge",
        "1 when the last failover claim switched and verified every route table",
    ),
    Family(
        "failover_last_switch_seconds",
        "gauge",
        "Seconds from NotifyBecomePrimary to the last verified route switch of the last "
        "failover claim (absent when it was not verified)",
        unit="seconds",
    ),
    Family(
        "claims",
        "counter",
        "Claims by the failover hook, at startup and by an administrator, by outcome",
        label="id",
    ),
    Family(
        "reconcile_repairs",
        "counter",
        "Route tables the reconcile found drifted and pointed back at this member",
    ),
    Family(
        "reconcile_last_success",
        "gauge",
        "1 when the last reconcile step (claim or refresh) succeeded",
    ),
    Family(
        "reconcile_last_timestamp_seconds",
        "gauge",
        "When the reconcile last ran a step",
        unit="seconds",
    ),
)
BY_NAME = {f.name: f for f in FAMILIES}
OUTCOMES = ("success", "partial", "failure")  # the claims family's `id` values


def observe(report: Report) -> Dict[str, Any]:
    """What REPORT tells about the VIP here: per route table whose target it read, 1 when the
    target is this member's ENI; whether the VIP is on the interface; how many tables it
    changed.

    A table's target counts as read when a describe or a verify read saw it: every table of a
    status, refresh or release (they read back what they did), a claim's unchanged table (the
    claim's describe) and, when the claim's verify read answered, every table of the claim
    (the verify read turns a table it did not find pointing here into an error carrying the
    target it saw). A claim whose verify read failed or did not run tells only its unchanged
    tables. A table in error with no target known (not found, gone) is left out.
    """
    routes: Dict[str, int] = {}
    for table in report.route_tables:
        read = report.verified is True or table.action == UNCHANGED
        if report.command != "claim":
            read = True
        if table.action == ERROR and table.after is None:
            read = False
        if read and report.eni:
            routes[table.id] = int(table.after == report.eni)
    on_interface = None if report.vip_on_interface is None else int(report.vip_on_interface)
    changed = sum(1 for t in report.route_tables if t.action in CHANGES)
    return {"routes": routes, "vip_on_interface": on_interface, "changed": changed}
