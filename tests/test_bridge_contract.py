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
    assert {"claim", "release", "status", "doctor", "render", "summarize"} <= used
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
                    yield where, match.group(1), name, args
                    break
            body = re.sub(r"##class\([^)]*\)", "", method.body)  # leave `..X(` of our own class
            for name, args in calls(body, "."):
                if not name.startswith("%"):  # inherited from the system classes
                    yield where, source.name, name, args


OBJECTSCRIPT_CALLS = list(objectscript_calls())


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
    """Member.Role() says primary, backup, async or none; the core claims unforced only on
    primary and none (any other role refuses), so those must be spelt the same on both sides."""
    role = SOURCES["MirrorVip.Member"].methods["Role"].body
    roles = set(re.findall(r'"(\w+)"', role))
    assert roles == {"none", "primary", "async", "backup"}
    assert set(api.CLAIMING_ROLES) == {"none", "primary"}


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
