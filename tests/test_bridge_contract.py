"""The contract between the ObjectScript and the Python package, checked without IRIS.

- every `##class(%SYS.Python).Import("mirror_vip.X")` names a module of python/mirror_vip, and
  every function the ObjectScript calls on it exists and accepts the arguments passed
  (`inspect.signature(...).bind`);
- every `##class(MirrorVip.X).Y(...)`, `..Y(...)` and `..#P` in src/ and tests/iris/ exists
  with a compatible number of arguments;
- the code mirror_vip.routines generates calls class methods MirrorVip.Hooks has, and the
  routines MirrorVip.Installer hooks are the ones mirror_vip.routines knows;
- the report fields the ObjectScript reads are fields of mirror_vip.report.Report.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from test_objectscript_parse import Member, class_name, members, split_arguments

from mirror_vip import api, bridge, routines
from mirror_vip.report import Report, TableResult
from mirror_vip.routines import closing_paren

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*ROOT.glob("src/**/*.cls"), *ROOT.glob("tests/iris/**/*.cls")])
NAME = r"%?[A-Za-z][A-Za-z0-9]*"  # an ObjectScript name: "_" is the concatenation operator
IMPORT = re.compile(rf"set ({NAME}) = ##class\(%SYS\.Python\)\.Import\(([^)]*)\)")
PARAMETER = re.compile(r"^Parameter (\w+)(?: As \w+)? = (.*);$", re.MULTILINE)


@dataclass(frozen=True)
class Source:
    name: str
    parameters: Dict[str, str]
    methods: Dict[str, Member]


def load(path: Path) -> Source:
    text = path.read_text(encoding="utf-8")
    return Source(class_name(text), dict(PARAMETER.findall(text)), members(text))


SOURCES = {s.name: s for s in map(load, FILES)}


def calls(body: str, target: str) -> Iterator[Tuple[str, List[str]]]:
    """(method, arguments) of every `target.method(...)` or `target."method"(...)` in body."""
    for match in re.finditer(rf'{re.escape(target)}\.(?:"(\w+)"|({NAME}))\(', body):
        close = closing_paren(body, match.end())
        if close is not None:
            yield match.group(1) or match.group(2), split_arguments(body[match.end() : close])


def python_calls() -> Iterator[Tuple[str, str, str, List[str]]]:
    """(where, module, function, arguments) for every call into Python."""
    for source in SOURCES.values():
        for method_name, method in source.methods.items():
            for variable, what in IMPORT.findall(method.body):
                module = what.strip('"')
                if what.startswith("..#"):
                    module = source.parameters[what[3:]].strip('"')
                for function, args in calls(method.body, variable):
                    yield f"{source.name}:{method_name}", module, function, args


PYTHON_CALLS = list(python_calls())


def test_the_objectscript_calls_the_bridge() -> None:
    called = {(module, function) for _, module, function, _ in PYTHON_CALLS}
    assert {m for m, _ in called} == {"mirror_vip.bridge"}
    used = {f for _, f in called}
    assert {"claim", "refresh", "release", "status", "doctor", "render", "summarize"} <= used
    assert {"validate_setting", "validate_settings"} <= used
    wrappers = {n for n in dir(bridge) if n.startswith("routine_")}
    assert wrappers and wrappers <= used, "a routine_* wrapper nobody calls"


@pytest.mark.parametrize(
    ("where", "module", "function", "args"),
    PYTHON_CALLS,
    ids=[f"{w}->{f}" for w, _, f, _ in PYTHON_CALLS],
)
def test_every_python_call_binds(where: str, module: str, function: str, args: List[str]) -> None:
    assert module.startswith("mirror_vip."), f"{where} imports {module}"
    target = getattr(importlib.import_module(module), function, None)
    assert callable(target), f"{where} calls {module}.{function}, which does not exist"
    inspect.signature(target).bind(*args)


def objectscript_calls() -> Iterator[Tuple[str, str, str, List[str]]]:
    """(where, class, method, arguments) of calls to our own classes."""
    for source in SOURCES.values():
        for method_name, method in source.methods.items():
            where = f"{source.name}:{method_name}"
            for match in re.finditer(r"##class\(((?:MirrorVip|UnitTest)\.[\w.]+)\)", method.body):
                for name, args in calls(method.body[match.start() :], match.group(0)):
                    if not name.startswith("%"):  # %New and the like: the system classes'
                        yield where, match.group(1), name, args
                    break
            body = re.sub(r"##class\([^)]*\)", "", method.body)  # leave `..X(` of our own class
            for name, args in calls(body, "."):
                if not name.startswith("%"):  # inherited from the system classes
                    yield where, source.name, name, args


OBJECTSCRIPT_CALLS = list(objectscript_calls())

# Methods our classes inherit from a system class and call as `..X(...)`, with the number of
# arguments the class reference allows (required, all). %SYS.Monitor.SAM.Abstract (2024.1):
# `Method SetSensor(Sensor As %String, Value As %String, Item As %String = "") As %Integer`.
INHERITED = {("MirrorVip.Metrics", "SetSensor"): (2, 3)}


@pytest.mark.parametrize(
    ("where", "cls", "method", "args"),
    OBJECTSCRIPT_CALLS,
    ids=[f"{w}->{c}.{m}" for w, c, m, _ in OBJECTSCRIPT_CALLS],
)
def test_every_call_between_our_classes_resolves(
    where: str, cls: str, method: str, args: List[str]
) -> None:
    assert cls in SOURCES, f"{where} calls the unknown class {cls}"
    target = SOURCES[cls].methods.get(method)
    if target is None and (cls, method) in INHERITED:
        required, most = INHERITED[(cls, method)]
        assert required <= len(args) <= most, f"{where}: {cls}.{method}{args}"
        return
    assert target is not None, f"{where} calls {cls}.{method}, which does not exist"
    assert target.required <= len(args) <= len(target.params), f"{where}: {cls}.{method}{args}"


def test_every_parameter_used_exists() -> None:
    for source in SOURCES.values():
        for method in source.methods.values():
            for owner, name in re.findall(rf"(##class\([\w.%]+\))?\.#({NAME})", method.body):
                cls = owner[len("##class(") : -1] if owner else source.name
                known = SOURCES[cls].parameters if cls in SOURCES else {}
                assert name in known or name == "TaskName", f"{source.name}: {cls}.#{name}"


def test_generated_routines_call_hooks_that_exist() -> None:
    assert routines.HOOKS_CLASS == "MirrorVip.Hooks"
    hooks = SOURCES[routines.HOOKS_CLASS].methods
    for spec in routines.SPECS.values():
        method = hooks.get(spec.hook_method)
        assert method is not None and method.kind == "ClassMethod", spec.hook_method
        assert method.required == 0
        text = routines.install("", spec, "USER")
        assert f"do ##class({routines.HOOKS_CLASS}).{spec.hook_method}()" in text


def test_the_installer_hooks_the_routines_python_knows() -> None:
    hooked = SOURCES["MirrorVip.Installer"].parameters["ROUTINES"].strip('"').split(",")
    assert sorted(hooked) == sorted(routines.SPECS)


def test_the_roles_are_the_cores() -> None:
    """Member.Role() says primary, backup, async, none or unknown (a failover member that is
    neither primary nor backup, or $SYSTEM.Mirror unable to say); the core claims unforced only
    on primary and none (any other role refuses), so those must be spelt the same on both sides."""
    role = SOURCES["MirrorVip.Member"].methods["RoleOf"].body
    roles = set(re.findall(r'"(\w+)"', role))
    assert roles == {"none", "primary", "async", "backup", "unknown"}
    assert set(api.CLAIMING_ROLES) == {"none", "primary"}


@pytest.mark.parametrize("role", ["unknown", "backup", "async"])
def test_the_core_refuses_a_claim_for_every_other_role(role: str) -> None:
    """The failover hook fails closed: a member whose state is unknown (in transition) claims
    nothing unless forced. Refused before anything is read (exit 2), so no AWS is needed."""
    facts = json.dumps({"mirror_name": "MIRRORA", "role": role})
    answer = json.loads(bridge.claim(json.dumps({"vip": "10.0.255.10"}), facts))
    assert answer["ok"] is False and answer["exit_code"] == 2, answer
    assert "not its mirror's primary" in answer["errors"][0] and "force" in answer["errors"][0]
    assert answer["route_tables"] == []


def test_the_role_is_unknown_whenever_the_mirror_cannot_say() -> None:
    """Role() asks $SYSTEM.Mirror inside a try: anything it throws makes the role "unknown"
    (never a thrown error in the failover hook, the task or a bridge call); IsBackup() is asked,
    so that a failover member neither primary nor backup (joining, in transition: the class
    reference of %SYSTEM.Mirror, IsBackup) is not taken for a backup."""
    body = SOURCES["MirrorVip.Member"].methods["Role"].body
    tried = body[body.index("try {") : body.index("} catch")]
    for call in ("IsMember()", "IsPrimary()", "IsBackup()", "..RoleOf("):
        assert call in tried, call
    caught = body[body.index("} catch") :]
    assert re.search(r'set role = "unknown"', caught), caught


def test_the_report_fields_read_are_report_fields() -> None:
    fields = set(Report(command="claim").to_dict())
    table_fields = set(TableResult.__dataclass_fields__)
    for source in SOURCES.values():
        for method in source.methods.values():
            for name in re.findall(r'\breport\.(?:"(\w+)"|([A-Za-z][A-Za-z0-9]*))', method.body):
                field = name[0] or name[1]
                assert field in fields, f"{source.name} reads report.{field}"
            for name in re.findall(r"\btable\.([A-Za-z][A-Za-z0-9]*)", method.body):
                assert name in table_fields, f"{source.name} reads table.{name}"


# --- the reconcile task ---------------------------------------------------------------------------


def _try_block(body: str) -> str:
    """The text of a method's first try block (up to its catch)."""
    assert "try {" in body and "} catch" in body, "no try/catch"
    return body[body.index("try {") : body.index("} catch")]


def test_the_task_never_throws() -> None:
    """The Task Manager runs OnTask every minute: everything it does (the role, whether settings
    are stored, the claim or the refresh) is inside a try, and a failure is a status."""
    on_task = SOURCES["MirrorVip.Task"].methods["OnTask"].body
    assert "..Reconcile(" in _try_block(on_task)
    tried = _try_block(SOURCES["MirrorVip.Task"].methods["Reconcile"].body)
    for call in ("##class(MirrorVip.Member).Role()", "##class(MirrorVip.Config).IsConfigured()",
                 "..Step(", '##class(MirrorVip.Action).Run("claim"',
                 '##class(MirrorVip.Action).Run("refresh"'):  # fmt: skip
        assert call in tried, call


def test_the_task_claims_where_the_core_lets_it_and_refreshes_on_the_others() -> None:
    """The roles the reconcile claims on are the core's CLAIMING_ROLES; backup and async refresh
    the remembered list (an async may be promoted); any other role (unknown) waits."""
    params = SOURCES["MirrorVip.Task"].parameters
    claims = params["CLAIMS"].strip('"').split(",")
    refreshes = params["REFRESHES"].strip('"').split(",")
    assert sorted(claims) == sorted(api.CLAIMING_ROLES)
    assert sorted(refreshes) == ["async", "backup"]
    step = SOURCES["MirrorVip.Task"].methods["Step"].body
    assert "..#CLAIMS" in step and "..#REFRESHES" in step and '"wait"' in step
    assert '$zconvert(role, "L")' in step, "roles are matched case-insensitively, as the core does"


def test_a_refresh_is_logged_once_and_never_in_the_history() -> None:
    """A refresh problem is a warning (severity 1: the failover claim then describes first,
    slower, not broken), logged once while it lasts, and the recovery once; the history holds
    claims and releases only."""
    action = SOURCES["MirrorVip.Action"].methods
    assert "refresh" not in action["Changes"].body
    assert '"refresh"' in action["Run"].body and "..Refreshed(" in action["Run"].body
    refreshed = action["Refreshed"].body
    assert re.search(r"\.\.Log\([^\n]*, 1\)", refreshed), "a problem: severity 1"
    assert re.search(r"\.\.Log\([^\n]*, 0\)", refreshed), "the recovery: severity 0"
    assert "LastRefreshProblem()" in refreshed and "SetLastRefreshProblem(" in refreshed
    assert "AddHistory" not in refreshed


def test_the_runbook_states_the_reconciles_rules() -> None:
    """Section 8 of the runbook says what the reconcile does for each role, that an unknown
    mirror state waits (quoting the line messages.log shows), and how refresh problems are
    logged; the words are the code's."""
    runbook = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    start = runbook.index("## 8. The reconcile task")
    section = " ".join(runbook[start : runbook.index("\n## 9.", start)].split())
    waits = "mirror state unknown: the reconcile waits"
    assert waits in SOURCES["MirrorVip.Task"].methods["NoteWaiting"].body
    assert waits in section and "known again" in section
    assert "IsBackup" in section and "unknown" in section
    for role in ("primary", "backup", "async", "unknown"):
        assert f"| {role}" in section or f", {role}" in section, role
    assert "severity 1" in section and "recovered" in section


# --- what IPM calls: module.xml's Invokes ------------------------------------------------------


def _body(cls: str, method: str) -> str:
    return SOURCES[cls].methods[method].body


def test_unconfigure_attempts_every_step() -> None:
    """Uninstall takes out each hook and then deletes the task even when an earlier step failed
    (a task left behind errors every minute once IPM has deleted the classes): nothing in
    Unconfigure throws or quits on a step's failure; the failures are returned together."""
    body = _body("MirrorVip.Installer", "Unconfigure")
    steps = body + "".join(
        m.body for n, m in SOURCES["MirrorVip.Installer"].methods.items() if f"..{n}(" in body
    )
    assert "RemoveFrom(" in steps and "##class(MirrorVip.Task).Unschedule(" in steps
    for stop in ("$$$ThrowOnError", "$$$ThrowStatus", "throw ", "quit:$$$ISERR"):
        assert stop not in body, f"Unconfigure stops at a failed step: {stop}"
    assert "$system.Status.AppendStatus(" in body


def test_configure_and_unconfigure_print_their_own_failure() -> None:
    """IPM before 0.10.5 ignores the status of an Invoke without CheckStatus; with it, the
    status ends the install, but the one line saying why comes from us. Printed once: the
    Admin wrappers do not print it again."""
    for method in ("Configure", "Unconfigure"):
        assert re.search(r"quit \.\.Said\(\w+\)\s*$", _body("MirrorVip.Installer", method))
    said = _body("MirrorVip.Installer", "Said")
    assert "##class(MirrorVip.Admin).PrintError(" in said
    for method in ("InstallHooks", "RemoveHooks"):
        assert "Said(" not in _body("MirrorVip.Admin", method)


def test_a_routine_with_only_object_code_is_refused() -> None:
    """A routine deployed without its source (%Routine.Delete flag 2 keeps the OBJ code) has no
    MAC or INT to read: taken as absent, it would be overwritten without a copy. ReadLines looks
    for its object code (^rOBJ(name), as %Library.Routine's GetRoutineGlobals documents it, or
    %Routine.Exists("name.OBJ")) and refuses with one line naming the routine and the fix."""
    body = _body("MirrorVip.Installer", "ReadLines")
    assert "$data(^rOBJ(routine))" in body
    assert 'Exists(routine_".OBJ")' in body
    refusal = re.search(r'"mirror-vip: "_routine_"([^"]*)"', body)
    assert refusal and "only as object code" in refusal.group(1)
    assert "load its source" in body


def _calls_in_order(body: str, cls: str) -> List[str]:
    """The names of the `..Method(` calls in `body`, each followed into the method's own body
    once (depth one): what runs, in textual order."""
    methods = SOURCES[cls].methods
    order: List[str] = []
    for name in re.findall(r"\.\.(%?\w+)\(", body):
        order.append(name)
        if name in methods:
            order += re.findall(r"(?:\.\.|\)\.)(%?\w+)\(", methods[name].body)
    return order


def test_configure_refuses_hooks_of_another_namespace_before_changing_anything() -> None:
    """One install per instance: both installs would share <mgr>/python/mirror_vip, and
    uninstalling either deletes it. Configure reads every hook's namespace (HookState,
    OtherNamespace) before it writes a routine, and refuses naming the namespace and the move."""
    body = _body("MirrorVip.Installer", "Configure")
    order = _calls_in_order(body, "MirrorVip.Installer")
    assert "OtherNamespace" in order and "InstallInto" in order
    assert order.index("OtherNamespace") < order.index("InstallInto")
    assert order.index("HookState") < order.index("InstallInto")
    installer = SOURCES["MirrorVip.Installer"].methods.values()
    refusal = "".join(m.body for m in installer if "OtherNamespace(" in m.body)
    assert "once per instance" in refusal and "uninstall mirror-vip" in refusal


def test_configure_checks_the_embedded_python_first() -> None:
    """IRIS embeds the OS's Python (3.6 on RHEL 8, 3.8 on Ubuntu 20.04); the package needs the
    floor module.xml declares, which IPM checks only from 0.10.4. Configure reads
    sys.version_info through %SYS.Python (as IPM's own requirements step does) before anything
    imports mirror_vip, and refuses naming the fix."""
    order = _calls_in_order(_body("MirrorVip.Installer", "Configure"), "MirrorVip.Installer")
    assert order and order[0] == "PythonChecked", order
    check = _body("MirrorVip.Installer", "PythonChecked")
    assert '##class(%SYS.Python).Import("sys")' in check and '"version_info"' in check
    assert "Flexible Python" in check
    floor = SOURCES["MirrorVip.Installer"].parameters["PYTHONFLOOR"].strip('"')
    module = (ROOT / "module.xml").read_text(encoding="utf-8")
    assert f'PythonVersion=">={floor}"' in module


# --- messages.log --------------------------------------------------------------------------------

CONSOLE_LOG = "##class(%SYS.System).WriteToConsoleLog("


def _console_log_calls(text: str) -> List[List[str]]:
    found = []
    for match in re.finditer(re.escape(CONSOLE_LOG), text):
        close = closing_paren(text, match.end())
        assert close is not None, text[match.start() : match.start() + 80]
        found.append(split_arguments(text[match.end() : close]))
    return found


def _assert_documented(args: List[str]) -> None:
    """WriteToConsoleLog(Message, Flag = 0, Severity = 0, Event = "Utility.Event") in the 2024.1
    class reference: the 4th argument is an event category, not a free "source"; every release
    takes the first three (and public ObjectScript calls it so), so the call stops there."""
    assert 1 <= len(args) <= 3, args
    if len(args) >= 2:
        assert args[1] == "0", f"flag {args[1]}: 1 would also write to the operator console"


def test_messages_log_is_written_as_documented() -> None:
    calls = [args for source in SOURCES.values() for m in source.methods.values()
             for args in _console_log_calls(m.body)]  # fmt: skip
    assert calls, "nothing writes to messages.log"
    for args in calls:
        _assert_documented(args)


def test_the_generated_hook_writes_messages_log_as_documented() -> None:
    for spec in routines.SPECS.values():
        calls = _console_log_calls(routines.install("", spec, "USER"))
        assert calls
        for args in calls:
            _assert_documented(args)


# --- the IRIS unit tests change only what is theirs ----------------------------------------------

# zpm "mirror-vip test" runs Activate, and with it Configure, on the test instance: the real hooks
# and task are live there. The tests' own changes go to scratch routines and scratch task names.
# (the task's name, and for Configure/Unconfigure the metrics class registered with IRIS's
# monitoring endpoint: Unconfigure on the real one would unregister the installed metrics)
SCRATCH_ARGUMENT = {
    ("MirrorVip.Installer", "Configure"): (2, 3),
    ("MirrorVip.Installer", "Unconfigure"): (2, 3),
    ("MirrorVip.Installer", "RegisterMetrics"): (1,),
    ("MirrorVip.Installer", "UnregisterMetrics"): (0,),
    ("MirrorVip.Task", "Schedule"): (1,),
    ("MirrorVip.Task", "Unschedule"): (1,),
    ("MirrorVip.Installer", "InstallInto"): (1,),
    ("MirrorVip.Installer", "RemoveFrom"): (1,),
}


def test_the_iris_tests_change_only_scratch_routines_and_tasks() -> None:
    real = {f'"{name}"' for name in routines.SPECS} | {'""'}
    real.add(SOURCES["MirrorVip.Installer"].parameters["METRICS"])
    checked = 0
    for where, cls, method, args in OBJECTSCRIPT_CALLS:
        positions = SCRATCH_ARGUMENT.get((cls, method))
        if not where.startswith("UnitTest.") or positions is None:
            continue
        checked += 1
        for position in positions:
            assert len(args) > position, f"{where}: {cls}.{method}{args} on the real names"
            assert args[position] not in real, f"{where}: {cls}.{method}{args}"
    assert checked >= 10


# --- the IRIS unit tests keep their state to their own process ------------------------------------
#
# The real reconcile task (scheduled by Activate's Configure) runs every minute in another process
# and reads ^MirrorVip.Data: settings a test stored there (a VIP, route tables) could be claimed
# with on a real primary. So Store alone names that global, and a test class that stores anything
# first switches Store, for its own process, to a process-private global: per process, deleted
# when the process ends, not journaled ("Process-Private Globals", ObjectScript reference).

STORE = "MirrorVip.Store"
REAL_GLOBAL = "^MirrorVip.Data"
STORE_WRITE = re.compile(r"\b(?:set|kill)\s+[@^]|\$increment\([@^]", re.IGNORECASE)


def _code(text: str) -> str:
    """The lines of a class that are not comments."""
    return "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith(("///", "//", ";"))
    )


def test_only_store_names_the_global() -> None:
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        if class_name(text) == STORE:
            assert _code(text).count(REAL_GLOBAL) == 1, "Store names its global in one place"
        else:
            assert REAL_GLOBAL not in text, f"{class_name(text)} names {REAL_GLOBAL}"


def store_writers() -> set:
    return {n for n, m in SOURCES[STORE].methods.items() if STORE_WRITE.search(m.body)}


def reaching(targets: set) -> set:
    """(class, method) of our classes that call one of `targets`, directly or through others."""
    edges: Dict[Tuple[str, str], set] = {}
    for where, cls, method, _ in OBJECTSCRIPT_CALLS:
        caller = tuple(where.split(":"))
        edges.setdefault(caller, set()).add((cls, method))  # type: ignore[arg-type]
    found = set(targets)
    while True:
        more = {caller for caller, callees in edges.items() if callees & found} - found
        if not more:
            return found
        found |= more


def test_every_unit_test_that_stores_does_it_in_process_private_storage() -> None:
    writers = store_writers()
    assert {"SaveSettings", "ForgetSettings", "AddHistory", "SaveBackup"} <= writers
    writing = reaching({(STORE, w) for w in writers})
    assert {("MirrorVip.Config", "Set"), ("MirrorVip.Installer", "InstallInto")} <= writing
    assert ("MirrorVip.Action", "Run") in writing
    checked = 0
    for name, source in SOURCES.items():
        if not name.startswith("UnitTest."):
            continue
        calls = {(c, m) for w, c, m, _ in OBJECTSCRIPT_CALLS if w.startswith(f"{name}:")}
        if not calls & writing:
            continue
        checked += 1
        before = source.methods.get("OnBeforeOneTest")
        after = source.methods.get("OnAfterAllTests")
        assert before and f"##class({STORE}).UsePrivate(" in before.body, (
            f"{name} stores settings, history or backups: OnBeforeOneTest must switch to "
            f"process-private storage first (##class({STORE}).UsePrivate())"
        )
        for _, args in calls_named(before.body, "UsePrivate"):
            assert not args or args[0].startswith('"^||'), f"{name}: UsePrivate{args}"
        assert after and f"##class({STORE}).UseShared(" in after.body, f"{name}: UseShared"
        assert not re.search(r"\b(?:set|kill)\s+\^(?!\|\|)", _code(after.body + before.body))
    assert checked >= 3


def calls_named(body: str, method: str) -> List[Tuple[str, List[str]]]:
    return [(m, a) for m, a in calls(body, f"##class({STORE})") if m == method]


def test_store_switches_only_to_a_process_private_global() -> None:
    """UsePrivate refuses any other name, and the switch itself is process-private: another
    process (the task, a failover JOB) never sees it and keeps the real global."""
    use = SOURCES[STORE].methods["UsePrivate"].body
    assert '"^||"' in use and "$$$ERROR(" in use
    assert re.search(r"\$get\(\^\|\|[\w.]+, \.\.#GLOBAL\)", SOURCES[STORE].methods["Root"].body)
    for name, method in SOURCES[STORE].methods.items():
        if STORE_WRITE.search(method.body) and name not in ("UsePrivate", "UseShared"):
            assert "..Root()" in method.body, f"Store.{name} writes without the root"


# --- routines are read line by line, whole -------------------------------------------------------


def partial_line_reads(body: str) -> List[str]:
    """`x.ReadLine(...)` calls in a method body that can return part of a line unnoticed.

    %Library.Routine extends %AbstractStream, whose ReadLine is
    `ReadLine(ByRef len As %Integer = 32000, ByRef sc As %Status, ByRef eol As %Boolean)`
    (2024.1 class reference); %Stream.Object documents it: it reads at most `len` characters and
    sets `eol` only when it found the line terminator. A routine line longer than 32000
    characters would come back in pieces, and be written back as two lines. So every ReadLine
    passes a length (set right before it: ReadLine changes it to the count read) and `.eol`, and
    the method loops until `eol` (or the end) before it takes the line.
    """
    found: List[str] = []
    for match in re.finditer(r"\.ReadLine\(", body):
        close = closing_paren(body, match.end())
        args = split_arguments(body[match.end() : close]) if close is not None else []
        length = args[0] if args else ""
        eol = args[2] if len(args) > 2 else ""
        if not re.fullmatch(r"\.\w+", length):
            found.append(f"ReadLine({', '.join(args)}): no length given (the default is 32000)")
            continue
        if not re.fullmatch(r"\.\w+", eol):
            found.append(f"ReadLine({', '.join(args)}): eol not asked for")
            continue
        name = eol[1:]
        if not re.search(rf"while\s+'{name}\b|quit:{name}\b|until\s+{name}\b", body):
            found.append(f"ReadLine({', '.join(args)}): no loop until {name}")
        if not re.search(rf"set (?:[^\n]*, )?{length[1:]} = ", body):
            found.append(f"ReadLine({', '.join(args)}): {length[1:]} is not set before each read")
    return found


def test_every_readline_reads_the_whole_line() -> None:
    readers = [(s.name, n, m.body) for s in SOURCES.values() for n, m in s.methods.items()
               if ".ReadLine(" in m.body]  # fmt: skip
    assert any(name == "ReadLines" for _, name, _ in readers)
    for cls, name, body in readers:
        assert partial_line_reads(body) == [], f"{cls}:{name}"


@pytest.mark.parametrize(
    ("body", "partial"),
    [
        (
            '    while \'code.AtEnd {\n        do lines.%Push(code.ReadLine(), "string")\n    }',
            True,
        ),
        ("    set len = 10\n    set x = code.ReadLine(.len, .sc, .eol)", True),
        ("    set x = code.ReadLine(, .sc, .eol)\n    while 'eol { }", True),
        (
            '    while \'code.AtEnd {\n        set line = "", eol = 0\n'
            "        while 'eol && 'code.AtEnd {\n            set len = 100\n"
            "            set line = line_code.ReadLine(.len, .sc, .eol)\n        }\n    }",
            False,
        ),
    ],
)
def test_the_readline_check_finds_what_it_must(body: str, partial: bool) -> None:
    assert bool(partial_line_reads(body)) is partial
