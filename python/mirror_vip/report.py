"""The one result type of claim, release, status and doctor, and its renderings (JSON, text)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Union, get_args, get_origin, get_type_hints

from .errors import EXIT_INCOMPLETE, EXIT_INVALID, EXIT_OK, ConfigError, shown

# actions a table can take part in
REPLACED, CREATED, UNCHANGED, DELETED, SKIPPED, ERROR = (
    "replaced",
    "created",
    "unchanged",
    "deleted",
    "skipped",
    "error",
)
WOULD = {"replaced": "would-replace", "created": "would-create", "deleted": "would-delete"}
CHANGES = {REPLACED, CREATED, DELETED}

PASS, WARN, FAIL = "pass", "warn", "fail"
READ_ONLY = ("status", "doctor", "refresh")  # commands whose table lines show where routes point


@dataclass
class TableResult:
    """One route table: where the VIP route pointed before and after, and what we did."""

    id: str
    before: Optional[str] = None  # target id (eni-/i-/...) or None when there is no VIP route
    after: Optional[str] = None
    action: str = UNCHANGED
    error: Optional[str] = None
    state: Optional[str] = None  # AWS's route state: active | blackhole
    main: bool = False
    # The VPC's subnets (with an IPv4 CIDR) that route through this table: its explicit
    # associations, and for the main table every subnet without one. None when not read (only
    # status and doctor read the VPC's associations; the JSON then leaves the key out), []
    # when no subnet uses the table.
    subnets: Optional[List[str]] = None


@dataclass
class Check:
    name: str
    status: str  # pass | warn | fail
    detail: str


@dataclass
class Report:
    command: str
    ok: bool = True
    vip: Optional[str] = None
    interface: Optional[str] = None
    label: Optional[str] = None
    vip_on_interface: Optional[bool] = None
    instance_id: Optional[str] = None
    eni: Optional[str] = None
    vpc_id: Optional[str] = None
    region: Optional[str] = None
    source_dest_check: Optional[bool] = None
    dry_run: bool = False
    route_tables: List[TableResult] = field(default_factory=list)
    checks: List[Check] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    exit_code: int = EXIT_OK
    elapsed_s: float = 0.0
    iris: Dict[str, Any] = field(default_factory=dict)
    # A claim's verify read: True when it answered (every table it read is as reported), False
    # when it failed (the written tables' `after` is the writes' answer, unread); None when no
    # verify ran (other commands, a dry run, a claim stopped before its writes).
    verified: Optional[bool] = None
    # The failover's figure (switchtime.py): when IRIS called the hook (epoch seconds, as the
    # hook passed it), and the seconds from then to the last verified switch; None when not
    # every table was verified, nothing was switched, or no hook time was given.
    notified_at: Optional[float] = None
    switched_after_s: Optional[float] = None

    def fail(self, message: str, exit_code: int = EXIT_INCOMPLETE) -> None:
        self.errors.append(message)
        self.ok = False
        self.exit_code = max(self.exit_code, exit_code)

    def settle(self) -> Report:
        """Derive ok and exit_code from the tables and checks."""
        table_errors = [t for t in self.route_tables if t.action == ERROR]
        failed_checks = [c for c in self.checks if c.status == FAIL]
        if table_errors or failed_checks or self.errors:
            self.ok = False
            self.exit_code = max(self.exit_code, EXIT_INCOMPLETE)
        return self

    @property
    def outcome(self) -> str:
        """success | partial | failure: what IRIS maps to console-log severity 0, 1, 2."""
        if self.ok:
            return "success"
        if self.exit_code == EXIT_INVALID:
            return "failure"
        switched = [t for t in self.route_tables if t.action != ERROR]
        return "partial" if switched else "failure"

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome
        for table in data["route_tables"]:
            if table["subnets"] is None:  # not read: the JSON of before the field, unchanged
                del table["subnets"]
        return data

    def to_json(self, indent: Optional[int] = None) -> str:
        """Standard JSON: a NaN or infinity raises rather than being written (none can occur:
        floats come from the clock and from validated settings and JSON)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Report:
        """A report read back (IRIS hands its JSON to render and summarize): every known field
        of the type it has here (ConfigError otherwise), unknown fields ignored."""
        report: Report = _from_dict(cls, data, "report")
        return report


# --- a report read back ----------------------------------------------------------------------


def _from_dict(cls: Any, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {where}: {shown(data)} is not an object")
    hints = get_type_hints(cls)
    values: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"invalid {where}: {f.name} is missing")
            continue
        values[f.name] = _typed(data[f.name], hints[f.name], f"{where}.{f.name}")
    return cls(**values)


def _typed(value: Any, hint: Any, where: str) -> Any:
    """value as the field's type `hint` wants it: Optional/List of str, bool, int, float, a
    dataclass, or Dict[str, Any]."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union:  # Optional[X]
        if value is None:
            return None
        return _typed(value, next(a for a in args if a is not type(None)), where)
    if origin is list and isinstance(value, list):
        return [_typed(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, where)
    simple = {
        str: isinstance(value, str),
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
    }
    if simple.get(hint) or (origin is dict and isinstance(value, dict)):
        return float(value) if hint is float else value
    raise ConfigError(f"invalid {where}: {shown(value)} is not {_type_name(hint)}")


def _type_name(hint: Any) -> str:
    names: Dict[Any, str] = {str: "a string", bool: "true or false", int: "an integer"}
    names.update({float: "a number", List[str]: "an array of strings"})
    return names.get(hint) or ("an array" if get_origin(hint) is list else "an object")


# --- text ---------------------------------------------------------------------------------------


def _target(report: Report, target: Optional[str], state: Optional[str] = None) -> str:
    if target is None:
        return "none"
    if state == "blackhole":
        return f"{target} (blackhole)"
    if report.eni and target == report.eni:
        return f"{target} (this ENI)"
    return target


SHOWN_IDS = 3  # ids a text line names before it counts the rest


def few(ids: List[str], limit: int = SHOWN_IDS) -> str:
    """The first LIMIT ids and how many more: a VPC may hold hundreds of subnets."""
    shown = ", ".join(ids[:limit])
    return f"{shown} (+{len(ids) - limit} more)" if len(ids) > limit else shown


def render_text(report: Report) -> str:
    """Short, aligned, human text: what is, what changed, what to do next."""
    lines: List[str] = []
    head = {
        "claim": "claim",
        "release": "release",
        "status": "status",
        "doctor": "doctor",
        "refresh": "refresh (read-only: remembers the route-table list)",
    }.get(report.command, report.command)
    if report.dry_run:
        head += " (dry run: nothing changed)"
    lines.append(f"mirror-vip {head}")
    facts = [
        ("VIP", _vip_fact(report)),
        ("instance", report.instance_id),
        ("ENI", _eni_fact(report)),
        ("VPC", report.vpc_id),
        ("region", report.region),
    ]
    for name, value in facts:
        if value:
            lines.append(f"  {name:<10}{value}")
    if report.notified_at is not None:
        lines.append(f"  {'failover':<10}{_failover_fact(report)}")
    if report.route_tables:
        width = max(len(t.id) for t in report.route_tables)
        targets = max(len(_target(report, t.after, t.state)) for t in report.route_tables)
        lines.append("  route tables")
        for t in report.route_tables:
            lines.append("    " + _table_line(report, t, width, targets))
    for check in report.checks:
        mark = {PASS: "ok  ", WARN: "warn", FAIL: "FAIL"}.get(check.status, check.status)
        lines.append(f"  [{mark}] {check.name:<22} {check.detail}")
    for warning in report.warnings:
        lines.append(f"  warning: {warning}")
    # a refusal's summary line carries its first error: said once
    for error in report.errors[1:] if _refused(report) else report.errors:
        lines.append(f"  error: {error}")
    lines.append(f"  {summary(report)}")
    return "\n".join(lines)


def _vip_fact(report: Report) -> Optional[str]:
    if not report.vip:
        return None
    where = ""
    if report.vip_on_interface is True:
        where = f" on {report.label or report.interface}"
    elif report.vip_on_interface is False:
        where = f" (not on {report.label or report.interface})"
    return f"{report.vip}{where}"


def _failover_fact(report: Report) -> str:
    """The failover's figure, or why there is none (a claim started by IRIS's hook)."""
    if report.switched_after_s is not None:
        took = f"{report.switched_after_s:.2f}s"
        return f"routes switched and verified {took} after IRIS called the hook"
    if report.dry_run:
        why = "a dry run switches nothing"
    elif not any(t.action in CHANGES for t in report.route_tables) and report.ok:
        why = "nothing to switch: the routes already pointed here"
    else:
        why = "not every route table was switched and verified"
    return f"no switch time: {why}"


def _eni_fact(report: Report) -> Optional[str]:
    if not report.eni:
        return None
    if report.source_dest_check is None:
        return report.eni
    state = "enabled: must be disabled" if report.source_dest_check else "disabled"
    return f"{report.eni}  (source/dest check {state})"


def _table_line(report: Report, t: TableResult, width: int, targets: int) -> str:
    label = t.id.ljust(width) + (" main" if t.main else "     ")
    if t.action == ERROR:
        return f"{label}  error      {t.error}"
    read_only = report.command in READ_ONLY
    if read_only and t.subnets is not None:
        target = _target(report, t.after, t.state).ljust(targets)
        return f"{label}  {target}  {_used_by(t.subnets)}"
    if read_only or t.action == UNCHANGED:
        note = "" if read_only else t.action
        return f"{label}  {_target(report, t.after, t.state)}  {note}".rstrip()
    before = _target(report, t.before, None)
    after = _target(report, t.after, None)
    return f"{label}  {t.action:<13}{before} -> {after}"


def _used_by(subnets: List[str]) -> str:
    if not subnets:
        return "used by no subnet"
    if len(subnets) > SHOWN_IDS:
        return f"used by {len(subnets)} subnets: {few(subnets)}"
    return f"used by {few(subnets)}"


def summary(report: Report) -> str:
    """One line, for messages.log and the last line of the text."""
    n = len(report.route_tables)
    changed = sum(
        1 for t in report.route_tables if t.action in CHANGES or t.action in WOULD.values()
    )
    failed = [t.id for t in report.route_tables if t.action == ERROR]
    took = f"in {report.elapsed_s:.2f}s"
    vip = report.vip or "?"
    if report.command == "doctor":
        fails = sum(1 for c in report.checks if c.status == FAIL)
        warns = sum(1 for c in report.checks if c.status == WARN)
        if fails:
            return f"doctor: {fails} check(s) failed, {warns} warning(s): fix the FAIL lines above"
        return f"doctor: all checks passed ({warns} warning(s))"
    if report.command == "status":
        here = sum(1 for t in report.route_tables if report.eni and t.after == report.eni)
        return f"VIP {vip} routed to this ENI in {here} of {n} route table(s)"
    if _refused(report):
        return f"{report.command} of VIP {vip} refused: {report.errors[0] if report.errors else ''}"
    if report.command == "refresh":
        line = f"refresh: remembered {n} route table(s) for VIP {vip} {took}"
        return line + (f"; {report.errors[0]}" if report.errors else "")
    verb = "would change" if report.dry_run else "changed"
    line = f"{report.command} of VIP {vip}: {verb} {changed} of {n} route table(s) {took}"
    if failed:
        line += f"; FAILED on {', '.join(failed)}"
    elif report.errors:
        line += f"; not done: {report.errors[0]}"
    elif report.switched_after_s is not None:
        line += f"; switched and verified {report.switched_after_s:.2f}s after the hook"
    return line


def _refused(report: Report) -> bool:
    """A claim or release stopped before any table: its summary is the first error."""
    if report.command in ("doctor", "status"):
        return False
    return report.exit_code == EXIT_INVALID or (not report.route_tables and bool(report.errors))
