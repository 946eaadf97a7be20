"""ObjectScript that compiles but does not mean what it reads, checked on the tree-sitter parse.

- "Operator precedence in ObjectScript is strictly left-to-right" (InterSystems docs, Operator
  Precedence, KEY=GCOS_operators_prec). `a [ b_"c"` is `(a [ b)_"c"`: "0c" or "1c", which
  $$$AssertTrue reads as 0 or 1 whatever "c" was meant to add. So in one unparenthesised
  expression only a logical operator may follow a comparison or a logical operator; a
  concatenation, arithmetic or another comparison after one must be put in parentheses.
- An argumented QUIT cannot exit a routine from within a FOR, DO WHILE or WHILE loop (the QUIT
  reference, KEY=RCOS_cquit; RETURN can). test_objectscript_parse checks TRY/CATCH the same way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, List

import pytest
from test_objectscript_parse import needs_grammar, parse
from tree_sitter import Node

pytestmark = needs_grammar

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*ROOT.glob("src/**/*.cls"), *ROOT.glob("tests/iris/**/*.cls")])

COMPARISON = {"=", "'=", "<", ">", "<=", ">=", "'<", "'>", "[", "'[", "]", "']", "]]", "']]"}
COMPARISON |= {"?", "'?"}
LOGICAL = {"&&", "||", "&", "!", "'&", "'!"}
LOOPS = {"command_for", "command_while", "command_do"}


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _text(node: Node) -> str:
    return node.text.decode("utf-8") if node.text is not None else ""


def left_to_right_surprises(text: str) -> List[str]:
    """Expressions where an operator follows a comparison or logical one unparenthesised."""
    found: List[str] = []
    for node in _walk(parse(text, "class").root_node):
        if node.type != "expression":
            continue
        operators = [_text(c).strip() for c in node.children if c.type == "binary_operator"]
        truth_so_far = False
        for operator in operators:
            if truth_so_far and operator not in LOGICAL:
                found.append(f"{node.start_point[0] + 1}: {_text(node)}")
                break
            truth_so_far = truth_so_far or operator in COMPARISON or operator in LOGICAL
    return found


def quits_with_value_in_loops(text: str) -> List[str]:
    """`quit <value>` inside FOR, WHILE or DO/WHILE, as 'line:col' (the grammar accepts it)."""
    found: List[str] = []

    def walk(node: Node, inside: bool) -> None:
        if (
            node.type == "command_quit"
            and inside
            and any(c.type == "expression" for c in node.children)
        ):
            found.append(f"{node.start_point[0] + 1}:{node.start_point[1] + 1}")
        if node.type in ("method", "classmethod"):
            inside = False
        looping = node.type in LOOPS and any(c.type == "{" for c in node.children)
        for child in node.children:
            walk(child, inside or looping)

    walk(parse(text, "class").root_node, False)
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expression_relies_on_precedence(path: Path) -> None:
    assert left_to_right_surprises(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_quit_with_a_value_inside_a_loop(path: Path) -> None:
    assert quits_with_value_in_loops(path.read_text(encoding="utf-8")) == []


def _method(body: str) -> str:
    return f"Class A.B\n{{\n\nClassMethod X()\n{{\n{body}\n}}\n\n}}\n"


@pytest.mark.parametrize(
    ("body", "surprising"),
    [
        ('    do $$$AssertTrue(x [ ..#BEGIN_"call", "d")', True),
        ("    if a = 1 && b = 2 { quit }", True),
        ("    set n = a > b + 1", True),
        ('    do $$$AssertTrue(x [ (..#BEGIN_"call"), "d")', False),
        ("    if (a = 1) && (b = 2) || c { quit }", False),
        ("    set ok = a = 1 && b", False),
        ('    set s = a_b_"c", n = a + b - c', False),
    ],
)
def test_the_precedence_check_finds_what_it_must(body: str, surprising: bool) -> None:
    """A check that passes on anything proves nothing."""
    assert bool(left_to_right_surprises(_method(body))) is surprising


def test_the_loop_check_finds_a_quit_with_a_value() -> None:
    body = (
        "    for i = 1:1:3 {\n        quit:i=2 1\n        quit:i=3\n    }\n"
        "    while 1 {\n        if x { quit 2 }\n        quit\n    }\n    quit 3"
    )
    assert quits_with_value_in_loops(_method(body)) == ["7:9", "11:16"]


def unchecked_list_conversions(text: str) -> List[str]:
    """`$listtostring(x, ...)` whose x is not a local its method checked with `$listvalid(x)`.

    $LISTTOSTRING raises <LIST> on a value that is not a list. What an IRIS API returns is only
    as certain as its class reference; a name on the claim path (Member.Facts goes with every
    claim) must not depend on it.
    """
    found: List[str] = []
    for node in _walk(parse(text, "class").root_node):
        if node.type != "method_definition":
            continue
        body = _text(node)
        checked = set(re.findall(r"\$listvalid\((\w+)\)", body, re.IGNORECASE))
        for match in re.finditer(r"\$listtostring\(([^,)]*)", body, re.IGNORECASE):
            argument = match.group(1).strip()
            if argument not in checked and not argument.lower().startswith(("$lb(", "$listbuild(")):
                line = node.start_point[0] + body[: match.start()].count("\n") + 1
                found.append(f"{line}: $listtostring({argument}")
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_lists_from_outside_are_checked_before_conversion(path: Path) -> None:
    assert unchecked_list_conversions(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("body", "unchecked"),
    [
        ('    quit $listtostring($system.Mirror.GetMirrorNames(), ",")', True),
        ('    set n = ..Names()\n    quit $listtostring(n, ",")', True),
        ('    set n = ..Names()\n    quit:$listvalid(n) $listtostring(n, ",")\n    quit n', False),
        ('    quit $listtostring($listbuild(1, 2), ",")', False),
    ],
)
def test_the_list_check_finds_what_it_must(body: str, unchecked: bool) -> None:
    assert bool(unchecked_list_conversions(_method(body))) is unchecked
