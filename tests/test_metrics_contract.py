"""MirrorVip.Metrics (IRIS's /api/monitor/metrics) against mirror_vip.metrics, without IRIS.

- every sensor the class sets is a family of mirror_vip.metrics (the names the command line's
  `status --openmetrics` prints), with the label `id` exactly where the family has one, and
  every family is set;
- GetSensors reaches no Python and no AWS: nothing it calls, directly or through our other
  classes, is MirrorVip.Bridge, Action.Run or %SYS.Python;
- what GetSensors reads from Store is what Action.Observe keeps;
- Configure registers the class with SYS.Monitor.SAM.Config in %SYS, Unconfigure removes it.
"""

from __future__ import annotations

import re
from typing import Dict, Set, Tuple

from test_bridge_contract import OBJECTSCRIPT_CALLS, SOURCES
from test_objectscript_parse import split_arguments

from mirror_vip import metrics
from mirror_vip.routines import closing_paren

METRICS = "MirrorVip.Metrics"


def sensor_calls() -> Dict[str, Set[bool]]:
    """sample name -> {whether an item (label) was given}, for every ..Sensor( in Metrics."""
    found: Dict[str, Set[bool]] = {}
    for method in SOURCES[METRICS].methods.values():
        for match in re.finditer(r"\.\.Sensor\(", method.body):
            close = closing_paren(method.body, match.end())
            assert close is not None
            args = split_arguments(method.body[match.end() : close])
            name = args[0].strip('"')
            assert re.fullmatch(r"\w+", name), f"a sensor named by an expression: {args[0]}"
            found.setdefault(name, set()).add(len(args) > 2)
    return found


def test_every_sensor_is_a_family_and_every_family_is_set() -> None:
    calls = sensor_calls()
    families = {f.sample_name: f for f in metrics.FAMILIES}
    assert set(calls) == set(families)
    for name, labelled in calls.items():
        assert labelled == {families[name].label is not None}, name


def test_the_prefix_and_the_outcomes_are_the_cores() -> None:
    params = SOURCES[METRICS].parameters
    assert params["PRODUCT"].strip('"') == metrics.PREFIX
    assert tuple(params["OUTCOMES"].strip('"').split(",")) == metrics.OUTCOMES
    assert "Extends %SYS.Monitor.SAM.Abstract" in (
        next(p for p in _files() if "Class MirrorVip.Metrics " in p)
    )


def _files() -> list:
    from test_bridge_contract import FILES

    return [p.read_text(encoding="utf-8") for p in FILES]


def reached_from(cls: str) -> Set[Tuple[str, str]]:
    """(class, method) of every call reachable from CLS's methods."""
    edges: Dict[Tuple[str, str], Set[Tuple[str, str]]] = {}
    for where, callee_cls, method, _ in OBJECTSCRIPT_CALLS:
        caller = tuple(where.split(":"))
        edges.setdefault(caller, set()).add((callee_cls, method))  # type: ignore[arg-type]
    todo = [(cls, m) for m in SOURCES[cls].methods]
    seen: Set[Tuple[str, str]] = set()
    while todo:
        node = todo.pop()
        for callee in edges.get(node, set()):
            if callee not in seen:
                seen.add(callee)
                todo.append(callee)
    return seen


def test_get_sensors_reaches_no_python_and_no_aws() -> None:
    reached = reached_from(METRICS)
    assert ("MirrorVip.Store", "Metric") in reached and ("MirrorVip.Member", "Role") in reached
    for cls, method in reached:
        assert cls != "MirrorVip.Bridge", f"GetSensors reaches {cls}.{method}"
        assert (cls, method) != ("MirrorVip.Action", "Run")
        body = SOURCES[cls].methods[method].body if method in SOURCES[cls].methods else ""
        assert "%SYS.Python" not in body, f"{cls}.{method} calls Python"
    for method in SOURCES[METRICS].methods.values():
        assert "%SYS.Python" not in method.body and "Bridge" not in method.body


def store_names(cls: str, method: str, verb: str) -> Set[str]:
    body = SOURCES[cls].methods[method].body
    return set(re.findall(rf'##class\(MirrorVip\.Store\)\.{verb}\("([\w.]+)"', body))


def test_what_the_sensors_read_is_what_a_command_keeps() -> None:
    read: Set[str] = set()
    for name in SOURCES[METRICS].methods:
        read |= store_names(METRICS, name, "Metric")
    kept: Set[str] = set()
    for name in ("Observe", "ObserveFailover"):
        kept |= store_names("MirrorVip.Action", name, "SetMetric")
        kept |= store_names("MirrorVip.Action", name, "CountMetric")
    assert read == kept | {"claims."}  # "claims."_outcome: counted as "claims."_outcome too
    observe = SOURCES["MirrorVip.Action"].methods["Observe"].body
    assert 'CountMetric("claims."_outcome)' in observe
    assert "##class(MirrorVip.Bridge).Observe(report, .seen)" in observe
    run = SOURCES["MirrorVip.Action"].methods["Run"].body
    assert "..Observe(" in run and "'dryRun" in run, "a dry run changes nothing, metrics neither"


def test_configure_registers_the_class_in_sys_and_unconfigure_removes_it() -> None:
    installer = SOURCES["MirrorVip.Installer"]
    assert installer.parameters["METRICS"].strip('"') == METRICS
    configure = installer.methods["Configure"].body
    assert configure.index("Task).Schedule(") < configure.index("..RegisterMetrics(")
    register = installer.methods["RegisterMetrics"].body
    switch = register.index("set $namespace = system")
    assert "new $namespace" in register[:switch]
    assert (
        register.index("##class(SYS.Monitor.SAM.Config).AddApplicationClass(class, namespace)")
        > switch
    )
    unconfigure = installer.methods["Unconfigure"].body
    assert "$system.Status.AppendStatus(failed, ..UnregisterMetrics(metrics))" in unconfigure
    unregister = installer.methods["UnregisterMetrics"].body
    assert "##class(SYS.Monitor.SAM.Config).DeleteApplicationClass(class)" in unregister
    assert "try {" in unregister and "$$$Throw" not in unregister


def test_the_hooks_pass_their_moment_to_the_claim() -> None:
    hooks = SOURCES["MirrorVip.Hooks"].methods
    for hook, reason in (("NotifyBecomePrimary", "failover"), ("SystemStart", "startup")):
        body = hooks[hook].body
        assert body.index("..Called()") < body.index("..Probed("), f"{hook}: first of all"
        assert f'..StartClaim("{reason}", called)' in body
    assert "RunClaim(reason, deadline, notifiedAt)" in hooks["StartClaim"].body
    assert "deadline, notifiedAt)" in hooks["RunClaim"].body
    called = hooks["Called"].body
    assert "try {" in called and "##class(MirrorVip.Action).Now()" in called
