"""Every ObjectScript file parses with InterSystems' tree-sitter grammars (no ERROR/MISSING node).

IRIS cannot run here, so this is the compile check CI can do. `syntax_errors` is also used by
test_routines.py on every routine text the generator produces.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import pytest
import tree_sitter_objectscript_routine as routine_grammar
import tree_sitter_objectscript_udl as udl_grammar
from tree_sitter import Language, Node, Parser, Tree

ROOT = Path(__file__).resolve().parent.parent
CLASS_FILES = sorted([*ROOT.glob("src/**/*.cls"), *ROOT.glob("tests/**/*.cls")])
ROUTINE_FILES = sorted(
    p for ext in ("mac", "int", "inc") for p in [*ROOT.glob(f"src/**/*.{ext}")]
) + sorted(ROOT.glob("tests/fixtures/routines/*.mac"))


def _grammar_problem() -> Optional[str]:
    """Why InterSystems' grammars cannot be loaded here, or None. They are built for
    tree-sitter's language ABI 15, which py-tree-sitter reads from 0.25; the newest release
    for Python 3.9 is 0.23 (0.24 and later need 3.10), which reads ABI 13-14 only."""
    try:
        Parser(Language(udl_grammar.language_objectscript_udl()))
        Parser(Language(routine_grammar.language_objectscript_routine()))
    except ValueError as exc:
        return f"tree-sitter {version('tree-sitter')} cannot load the ObjectScript grammars: {exc}"
    return None


GRAMMAR_UNAVAILABLE = _grammar_problem()
# On a test that checks ObjectScript with the grammars (a tool check, not the Python product's).
needs_grammar = pytest.mark.skipif(
    GRAMMAR_UNAVAILABLE is not None, reason=GRAMMAR_UNAVAILABLE or ""
)


@cache
def _parser(kind: str) -> Parser:
    language = (
        udl_grammar.language_objectscript_udl()
        if kind == "class"
        else routine_grammar.language_objectscript_routine()
    )
    return Parser(Language(language))


def parse(text: str, kind: str = "class") -> Tree:
    """The tree-sitter tree of `text` ("class" or "routine" grammar)."""
    return _parser(kind).parse(text.encode("utf-8"))


def syntax_errors(text: str, kind: str = "routine") -> List[str]:
    """ERROR and MISSING nodes of `text` ("routine" or "class" grammar), as 'line:col kind text'."""
    source = text.encode("utf-8")
    problems: List[str] = []

    def walk(node: Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            snippet = source[node.start_byte : node.end_byte][:40].decode("utf-8", "replace")
            what = f"MISSING {node.type}" if node.is_missing else "ERROR"
            problems.append(f"{row + 1}:{col + 1} {what} {snippet!r}")
        for child in node.children:
            walk(child)

    tree = parse(text, kind)
    walk(tree.root_node)
    if tree.root_node.has_error and not problems:
        problems.append("the tree has an error the walk did not find")
    return problems


class Member(NamedTuple):
    """A method of a .cls file, as far as the checks here need it."""

    kind: str  # ClassMethod | Method
    params: List[str]  # formal names; "..." for a variadic list
    required: int  # formals without a default value
    returns: Optional[str]
    body: str


_MEMBER = re.compile(
    r"^(ClassMethod|Method) (%?\w+)\((.*?)\)(?: As ([%\w.]+)(?:\([^)]*\))?)?[^\n]*\n\{\n(.*?)^\}$",
    re.MULTILINE | re.DOTALL,
)


def class_name(text: str) -> str:
    match = re.search(r"^Class ([%\w.]+)", text, re.MULTILINE)
    assert match, "no Class line"
    return match.group(1)


def members(text: str) -> Dict[str, Member]:
    """The methods of a class file, by name."""
    found: Dict[str, Member] = {}
    for kind, name, formals, returns, body in _MEMBER.findall(text):
        params = [p.strip() for p in _split_top_level(formals) if p.strip()]
        required = sum(1 for p in params if "=" not in p and not p.endswith("..."))
        bare = [re.sub(r"^(?:Output|ByRef) ", "", p) for p in params]
        names = [re.split(r"[\s=]", p)[0] for p in bare]
        found[name] = Member(kind, names, required, returns or None, body)
    return found


def _split_top_level(text: str) -> List[str]:
    """Split on commas outside parentheses, braces and string literals."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "({[":
            depth += 1
        elif not quoted and char in ")}]":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def split_arguments(text: str) -> List[str]:
    """The arguments of a call, `a, "b,c", f(x, y)` -> three."""
    return [a.strip() for a in _split_top_level(text)] if text.strip() else []


def test_there_is_objectscript_to_check() -> None:
    assert any("src" in p.parts for p in CLASS_FILES)
    assert any("iris" in p.parts for p in CLASS_FILES)


@needs_grammar
@pytest.mark.parametrize("path", CLASS_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_class_parses(path: Path) -> None:
    assert syntax_errors(path.read_text(encoding="utf-8"), "class") == []


@needs_grammar
@pytest.mark.parametrize("path", ROUTINE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_routine_parses(path: Path) -> None:
    assert syntax_errors(path.read_text(encoding="utf-8"), "routine") == []


@pytest.mark.parametrize("path", CLASS_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_class_name_matches_its_path(path: Path) -> None:
    """IPM loads a package from cls/<Package>/<Class>.cls and unit tests from <Package>/<Class>."""
    name = class_name(path.read_text(encoding="utf-8")).split(".")
    assert path.with_suffix("").parts[-len(name) :] == tuple(name)


@pytest.mark.parametrize("path", CLASS_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_method_is_found_by_the_member_parser(path: Path) -> None:
    """The contract and manifest checks read methods with `members`: it must miss none."""
    text = path.read_text(encoding="utf-8")
    declared = re.findall(r"^(?:ClassMethod|Method) (%?\w+)\(", text, re.MULTILINE)
    assert sorted(members(text)) == sorted(declared)


@needs_grammar
@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Class A.B\n{\nClassMethod X()\n{\n    set x = (1\n}\n}\n", "class"),
        ("Class A.B\n{\nClassMethod X()\n{\n    sett x = 1\n}\n}\n", "class"),
        ("X ; t\n quit\nY() PUBLIC {\n  quit 1\n", "routine"),
        ("X ; t\n sett x=1\n", "routine"),
    ],
)
def test_the_grammars_do_find_errors(text: str, kind: str) -> None:
    """A check that passes on anything proves nothing: broken code must be reported."""
    assert syntax_errors(text, kind)


def quits_with_value_in_try(text: str) -> List[str]:
    """`quit <value>` inside a TRY or CATCH block, as 'line:col': IRIS refuses to compile it.

    InterSystems' TRY reference: "You cannot use an argumented QUIT to exit a TRY block;
    attempting to do so results in a compile error. To exit a routine completely from within a
    TRY block, issue a RETURN statement." The grammar accepts it, so it is checked here.
    """
    found: List[str] = []

    def walk(node: Node, inside: bool) -> None:
        if (
            node.type == "command_quit"
            and inside
            and any(c.type == "expression" for c in node.children)
        ):
            row, col = node.start_point
            found.append(f"{row + 1}:{col + 1}")
        if node.type in ("method", "classmethod"):
            inside = False  # a method's own body starts outside any block
        for child in node.children:
            walk(child, inside or node.type == "command_trycatch")

    walk(parse(text, "class").root_node, False)
    return found


@needs_grammar
@pytest.mark.parametrize("path", CLASS_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_quit_with_a_value_inside_try_or_catch(path: Path) -> None:
    assert quits_with_value_in_try(path.read_text(encoding="utf-8")) == []


@needs_grammar
def test_the_try_check_finds_a_quit_with_a_value() -> None:
    body = "    try {\n        quit:x 1\n        quit\n    } catch ex {\n        quit 2\n    }\n"
    text = f"Class A.B\n{{\n\nClassMethod X()\n{{\n{body}    return 3\n}}\n\n}}\n"
    assert quits_with_value_in_try(text) == ["7:9", "10:9"]
