"""No call into our own classes after a namespace switch, checked on the tree-sitter parse.

Our classes live in the install namespace; ^ZMIRROR, ^%ZSTART and the Task Manager live in %SYS.
After `set $namespace = "%SYS"` the install namespace's classes are not visible, and whether IRIS
still resolves a call to MirrorVip.* or a `..Method()` of the running class there is not
documented: the code must not depend on it. Compute what is needed first, then switch, then call
system classes only. This check reads every method in src/ and tests/iris/ and reports, after the
method's first switch (`set $namespace`, `zn`):

- `##class(MirrorVip.X).M()` / `##class(UnitTest.X).M()` (our packages), also in a `job`, and
  `$classmethod("MirrorVip.X", ...)`;
- `..Method()` and `..Property` of the running class (a property can be a Get method);
- `$$$Assert*` and `$$$LogMessage`: %UnitTest.TestCase's macros call `..AssertXxxViaMacro()`.

Allowed after a switch:
- `..#PARAM` and `##class(Ours).#PARAM`: class parameters are compiled in as constants (none of
  ours is a COSEXPRESSION parameter);
- every other macro ($$$OK, $$$ThrowOnError, $$$ERROR, ...): they expand to system code;
- system classes (`%...`, and %SYS's own packages such as Config or SYS), methods of objects
  already in hand, and routine calls (`do Label^Routine`);
- the right-hand side of the `set $namespace = ...` itself, which is evaluated before the switch.

Order is textual: a switch anywhere in a method counts for everything after it in the method,
which is stricter than the run-time order and never looser. Every `set $namespace` must also
follow a `new $namespace` in the same method, so the switch ends with the method and never leaks
into its caller; `zn`/`znspace` (which cannot be scoped that way) is refused outright.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest
from test_objectscript_parse import needs_grammar, parse
from tree_sitter import Node

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*ROOT.glob("src/**/*.cls"), *ROOT.glob("tests/iris/**/*.cls")])
OWN_PACKAGES = ("MirrorVip.", "UnitTest.")
UNIT_TEST_MACRO = re.compile(r"^\$\$\$(?:Assert\w*|LogMessage)\b")


def _text(node: Node) -> str:
    return node.text.decode("utf-8") if node.text is not None else ""


def _walk(node: Node) -> Iterator[Node]:
    """The node and its descendants in document order."""
    yield node
    for child in node.children:
        yield from _walk(child)


def _methods(root: Node) -> Iterator[Tuple[str, Node]]:
    for node in _walk(root):
        if node.type in ("method", "classmethod"):
            for child in node.children:
                if child.type == "method_definition":
                    name = child.child_by_field_name("name") or child.children[0]
                    yield _text(name), child


def _is_namespace(node: Node) -> bool:
    return _text(node).strip().lower() == "$namespace"


def _own_class_ref(node: Node) -> bool:
    names = [c for c in node.children if c.type == "class_name"]
    return bool(names) and _text(names[0]).startswith(OWN_PACKAGES)


def _call_on_own_class(ref: Node) -> bool:
    """`##class(Ours)` used for a method call; `##class(Ours).#PARAM` is a constant."""
    parent = ref.parent
    if parent is not None and parent.type == "oref_chain_expr":
        segment = ref.next_named_sibling
        if segment is not None and any(c.type == "oref_parameter" for c in segment.children):
            return False
    return True


def _offence(node: Node) -> Optional[str]:
    """Why `node` may not run after a namespace switch, or None."""
    if node.type == "class_ref" and _own_class_ref(node) and _call_on_own_class(node):
        return f"calls our class {_text(node)}"
    if node.type == "relative_dot_method":
        return f"calls {_text(node).split('(')[0]}() of the running class"
    if node.type == "relative_dot_property":
        return f"reads {_text(node)} of the running class"
    if node.type == "macro" and UNIT_TEST_MACRO.match(_text(node)):
        return f"{_text(node).split('(')[0]} calls a method of the running test class"
    if node.type == "system_defined_function" and _text(node).lower().startswith("$classmethod("):
        literals = [n for n in _walk(node) if n.type == "string_literal"]
        if literals and _text(literals[0]).strip('"').startswith(OWN_PACKAGES):
            return f"calls our class {_text(literals[0])} through $classmethod"
    return None


def findings(text: str) -> List[str]:
    """Every call that runs after a namespace switch in its method, as 'Method line N: why'."""
    problems: List[str] = []
    for name, method in _methods(parse(text, "class").root_node):
        switched_at: Optional[int] = None
        scoped = False
        for node in _walk(method):
            line = node.start_point[0] + 1
            if node.type == "command_new" and any(
                _is_namespace(c) for c in _walk(node) if c.type == "command_new_item"
            ):
                scoped = True
            elif node.type == "command_zn":
                problems.append(
                    f"{name} line {line}: zn changes the caller's namespace too; use new "
                    "$namespace, then set $namespace"
                )
                switched_at = node.end_byte if switched_at is None else switched_at
            elif node.type == "set_argument" and any(
                c.type == "set_target" and _is_namespace(c) for c in node.children
            ):
                if not scoped:
                    problems.append(f"{name} line {line}: set $namespace without new $namespace")
                switched_at = node.end_byte if switched_at is None else switched_at
            elif switched_at is not None and node.start_byte >= switched_at:
                why = _offence(node)
                if why:
                    problems.append(f"{name} line {line}: after the namespace switch, {why}")
    return problems


def test_there_are_methods_that_switch() -> None:
    """The check has work to do: the code does switch to %SYS (Task, Installer)."""
    switching = [p for p in FILES if "set $namespace" in p.read_text(encoding="utf-8")]
    assert len(switching) >= 2


@needs_grammar
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_own_class_call_after_a_namespace_switch(path: Path) -> None:
    assert findings(path.read_text(encoding="utf-8")) == []


def _class(body: str, kind: str = "ClassMethod") -> str:
    return f"Class A.B\n{{\n\n{kind} X() As %Status\n{{\n{body}\n}}\n\n}}\n"


SWITCH = '    new $namespace\n    set $namespace = "%SYS"\n'


@needs_grammar
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (SWITCH + "    quit ..Id()", ["..Id()"]),
        (SWITCH + "    set x = ..Saved", ["..Saved"]),
        (SWITCH + "    quit ##class(MirrorVip.Store).X()", ["MirrorVip.Store"]),
        (SWITCH + "    job ##class(MirrorVip.Hooks).R()", ["MirrorVip.Hooks"]),
        (SWITCH + '    do $classmethod("MirrorVip.A", "B")', ["$classmethod"]),
        (SWITCH + "    do $$$AssertTrue(1)", ["$$$AssertTrue"]),
        ('    set $namespace = "%SYS"\n    quit $$$OK', ["without new $namespace"]),
        ('    zn "%SYS"\n    quit $$$OK', ["zn changes"]),
        # what stays allowed: the switch's own right-hand side, parameters, macros, system classes
        (
            "    new $namespace\n    set $namespace = ##class(MirrorVip.Store).SystemNamespace()\n"
            "    set every = ..#EVERY, n = ##class(MirrorVip.Task).#EVERY\n"
            "    $$$ThrowOnError(##class(%SYS.Task).%DeleteId(1))\n    do ^ZMIRROR\n    quit $$$OK",
            [],
        ),
        ("    quit ..Id() + ##class(MirrorVip.Store).X()", []),
    ],
)
def test_the_check_finds_what_it_must(body: str, expected: List[str]) -> None:
    """A check that passes on anything proves nothing: each forbidden shape is reported."""
    found = findings(_class(body))
    assert len(found) == len(expected), found
    for problem, what in zip(found, expected):
        assert what in problem
