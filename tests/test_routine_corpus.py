"""mirror_vip.routines over a corpus: every fixture routine and a few hundred generated ones.

The fixtures (tests/fixtures/routines) are ^ZMIRROR and ^%ZSTART routines in the shapes
InterSystems' docs, HealthShare's install guides and community posts show: procedures with the
brace on the head line or a later one, legacy labels (with and without ( ), PUBLIC), dotted blocks,
#include/#define, embedded SQL across lines, CRLF, tabs, no final newline, decoy labels in
comments and strings, prefixes and case variants of the label, all four ZMIRROR entry points and
LOGIN/JOB/CALLIN beside SYSTEM. Each is tried as a file, as IRIS hands it over (no final
newline), with CRLF and with tab indentation. The generator below combines heads, bodies and
surroundings the same way.

Invariants, checked independently of routines.py where it matters (InterSystems' tree-sitter
routine grammar finds the entry label and its first statement):
- the output parses whenever the input does;
- the first statement the entry label executes is our call, and our hook procedure exists once;
- remove(install(x)) == x byte for byte; install is idempotent; inspect says installed and current;
- a refused routine raises RoutineError naming a line, the bridge answers ok false without lines,
  and inspect never says installed.
"""

from __future__ import annotations

import json
import random
import re
from functools import cache
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest
import tree_sitter_objectscript_routine as routine_grammar
from test_objectscript_parse import GRAMMAR_UNAVAILABLE, needs_grammar, syntax_errors
from tree_sitter import Language, Node, Parser

from mirror_vip import bridge, routines
from mirror_vip.routines import ZMIRROR, ZSTART, HookSpec, RoutineError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "routines"
CALL, ENTRY = "call", "entry"  # expected: our call in the customer's label, or our label appended

# fixture -> what install must do: put the call in, append the entry label, or refuse (regex)
EXPECTED: Dict[str, str] = {
    "zmirror_all_four_docs.mac": CALL,
    "zmirror_brace_after_comment_line.mac": CALL,
    "zmirror_brace_next_line.mac": CALL,
    "zmirror_case_and_prefix_only.mac": ENTRY,
    "zmirror_case_and_prefix_with_entry.mac": CALL,
    "zmirror_code_on_label_line.mac": r"^line 3: NotifyBecomePrimary has commands on its label",
    "zmirror_comment_after_brace.mac": CALL,
    "zmirror_comment_lines_before_body.mac": CALL,
    "zmirror_conditional.mac": r"^line 5: NotifyBecomePrimary stands inside the #if at line 4",
    "zmirror_crlf.mac": CALL,
    "zmirror_decoys_in_comments.mac": CALL,
    "zmirror_decoys_in_strings.mac": CALL,
    "zmirror_defined_twice.mac": r"^line 10: NotifyBecomePrimary is defined again .first at line 3",
    "zmirror_dotted_legacy.mac": CALL,
    "zmirror_embedded_sql.mac": CALL,
    "zmirror_empty_procedure.mac": CALL,
    "zmirror_entry_in_block.mac": r"^line 5: NotifyBecomePrimary stands inside the \{ \} block",
    "zmirror_faq_legacy_parens.mac": CALL,
    "zmirror_healthinsight.mac": CALL,
    "zmirror_include_define.mac": CALL,
    "zmirror_legacy.mac": CALL,
    "zmirror_multiline_formals.mac": CALL,
    "zmirror_no_final_newline.mac": CALL,
    "zmirror_offset_reference.mac": r"^line 5: NotifyBecomePrimary\+n here counts lines",
    "zmirror_one_line.mac": r"^line 3: NotifyBecomePrimary has commands on its label line",
    "zmirror_private_keyword.mac": r"^line 3: NotifyBecomePrimary is a private procedure",
    "zmirror_private_procedure.mac": r"^line 3: NotifyBecomePrimary is a private procedure",
    "zmirror_procedures.mac": CALL,
    "zmirror_public_legacy_no_parens.mac": CALL,
    "zmirror_pubvars.mac": CALL,
    "zmirror_tabs.mac": CALL,
    "zmirror_trycatch_json.mac": CALL,
    "zmirror_two_labels_one_body.mac": CALL,
    "zmirror_without_entry.mac": ENTRY,
    "zstart_all_four_procedures_crlf.mac": CALL,
    "zstart_case_variants.mac": CALL,
    "zstart_docs_zssutil.mac": CALL,
    "zstart_doubled_by_old_installer.mac": CALL,  # our old entry block goes, the call comes
    "zstart_include_sql.mac": CALL,
    "zstart_label_line_commands.mac": r"^line 3: SYSTEM has commands on its label line",
    "zstart_legacy.mac": CALL,
    "zstart_no_final_newline.mac": CALL,
    "zstart_procedures.mac": CALL,
    "zstart_system_last_empty.mac": CALL,
    "zstart_tabs.mac": CALL,
    "zstart_without_system.mac": ENTRY,
    "zstart_zsearch_star.mac": CALL,
}


def spec_of(name: str) -> HookSpec:
    return ZSTART if name.startswith("zstart") else ZMIRROR


def read_fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8")  # keeps CRLF as it is


def variants(text: str) -> Dict[str, str]:
    """As saved, as IRIS hands it over (lines joined by LF, no final newline), CRLF, tabs."""
    lf = text.replace("\r\n", "\n")
    return {
        "file": text,
        "iris": lf.rstrip("\n"),
        "crlf": lf.replace("\n", "\r\n"),
        "tabs": re.sub(r"(?m)^ (?=\S)", "\t", text),
    }


# --- the independent check: InterSystems' routine grammar finds the label and its first command ---


@cache
def _parser() -> Parser:
    return Parser(Language(routine_grammar.language_objectscript_routine()))


def _nodes(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _nodes(child)


def definitions(root: Node, label: str) -> List[Node]:
    """The procedure or tag_statement nodes whose tag is `label`, anywhere in the tree."""
    return [
        node.parent
        for node in _nodes(root)
        if node.type == "tag" and node.text is not None and node.text.decode() == label
        if node.parent is not None
    ]


def first_statement(text: str, label: str) -> Tuple[Optional[str], List[Node]]:
    """The text of the first statement `label` executes, and every definition of `label`."""
    root = _parser().parse(text.replace("\r\n", "\n").encode()).root_node
    found = definitions(root, label)
    if len(found) != 1:
        return None, found
    head = found[0]
    if head.type == "procedure":
        body = [c for c in head.children if c.type == "statement"]
        first = body[0] if body else None
    else:  # a legacy label: the statement that follows it in the file
        statement = head.parent
        assert statement is not None and statement.parent is not None
        later = [
            c
            for c in statement.parent.children
            if c.type == "statement" and c.start_byte >= statement.end_byte
        ]
        first = later[0] if later else None
    if first is None or first.text is None:
        return None, found
    return first.text.decode(), found


def check_installed(text: str, spec: HookSpec) -> None:
    """The grammar's view: one entry label, its first statement our call, one hook procedure."""
    first, found = first_statement(text, spec.entry)
    assert len(found) == 1, f"{spec.entry} defined {len(found)} times"
    parent = found[0].parent
    assert parent is not None and parent.parent is not None
    assert parent.parent.type == "source_file", f"{spec.entry} is not at the top level"
    assert first == f"do {spec.hook_label}()", f"{spec.entry} runs {first!r} first"
    root = _parser().parse(text.replace("\r\n", "\n").encode()).root_node
    hooks = definitions(root, spec.hook_label)
    assert [h.type for h in hooks] == ["procedure"]


def check_install(original: str, spec: HookSpec, expected: str) -> None:
    """Every invariant for one routine text."""
    if expected in (CALL, ENTRY):
        installed = routines.install(original, spec, "USER")
        if GRAMMAR_UNAVAILABLE is None:  # the grammar's view; the rest holds on every Python
            if not syntax_errors(original.replace("\r\n", "\n")):
                assert syntax_errors(installed.replace("\r\n", "\n")) == []
            check_installed(installed, spec)
        blocks = [m.group(1) for m in re.finditer(r"; >>> mirror-vip (\w+):", installed)]
        assert sorted(blocks) == sorted([expected, "hook"])
        assert routines.install(installed, spec, "USER") == installed
        customer = routines.remove(original, spec).text  # the original without any old blocks
        assert routines.remove(installed, spec).text == customer
        assert customer == original or "mirror-vip" in original
        state = routines.inspect(installed, spec)
        assert state.installed and state.current and state.namespace == "USER"
        assert not routines.inspect(original, spec).installed or "mirror-vip" in original
        if "\r\n" in original:
            assert "\n" not in installed.replace("\r\n", "")
        return
    with pytest.raises(RoutineError, match=r"^line \d+: ") as refused:
        routines.install(original, spec, "USER")
    assert re.search(expected, str(refused.value)), str(refused.value)
    assert "\n" not in str(refused.value)
    lines = json.dumps(original.replace("\r\n", "\n").split("\n"))
    answer = json.loads(bridge.routine_install(spec.routine, lines, "USER"))
    assert answer["ok"] is False and "lines" not in answer
    assert not routines.inspect(original, spec).installed


# --- the fixtures ----------------------------------------------------------------------------


def test_every_fixture_has_an_expected_outcome() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.mac")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("form", ["file", "iris", "crlf", "tabs"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture(name: str, form: str) -> None:
    original = variants(read_fixture(name))[form]
    if GRAMMAR_UNAVAILABLE is None:  # the corpus is valid ObjectScript
        assert syntax_errors(original.replace("\r\n", "\n")) == []
    check_install(original, spec_of(name), EXPECTED[name])


@needs_grammar
def test_the_checker_sees_a_call_that_is_not_first() -> None:
    """The independent check must be able to fail: a call after the label's first command."""
    text = "ZMIRROR\n quit\nNotifyBecomePrimary ;\n set x=1\n do MirrorVipNotifyBecomePrimary()\n"
    assert first_statement(text, "NotifyBecomePrimary")[0] == "set x=1"
    text = (
        "ZMIRROR\n quit\nNotifyBecomePrimary() PUBLIC\n do MirrorVipNotifyBecomePrimary()\n{\n}\n"
    )
    assert first_statement(text, "NotifyBecomePrimary")[0] != "{"
    with pytest.raises(AssertionError):
        check_installed(text + "MirrorVipNotifyBecomePrimary() {\n}\n", ZMIRROR)


# --- generated routines ------------------------------------------------------------------------


class Shape(NamedTuple):
    head: List[str]
    kind: str  # "legacy" | "procedure" | a refusal regex


LEGACY_HEADS = [
    ["{E}"],
    ["{E} ; the label IRIS calls"],
    ["{E}()"],
    ["{E}() ; with ( )"],
    ["{E}() PUBLIC"],
    ["{E}() public // lower case"],
    ["{E} PUBLIC"],
    ['{E}(reason="failover")'],
    ["{E} /* an inline comment */"],
    ["{E} /* a comment", "   that spans lines */"],
]
PROCEDURE_HEADS = [
    ["{E}() PUBLIC {{"],
    ["{E}() PUBLIC", "{{"],
    ["{E}() PUBLIC ; comment", "{{"],
    ["{E}() PUBLIC", " ; comment line", "", "  {{"],
    ["{E}() [node,msg] PUBLIC {{"],
    ["{E}(x=1) Public {{"],
    ["{E}() PUBLIC {{ // comment"],
    ["{E}() PUBLIC {{ /* comment", "   ends here */"],
    ["{E}() PUBLIC /* c */ {{"],
]
REFUSED_HEADS = [  # (head, the body kind that follows it, what the refusal says)
    (["{E}() {{"], "procedure", r"{E} is a private procedure"),
    (["{E}()", "{{"], "procedure", r"{E} is a private procedure"),
    (["{E}() ; comment", "{{"], "procedure", r"{E} is a private procedure"),
    (["{E}() PRIVATE"], "legacy", r"{E} is a private subroutine"),
    (["{E}  quit:$quit 1  quit"], "legacy", r"{E} has commands on its label line"),
    (["{E}() PUBLIC {{ quit 1 }}"], "none", r"{E} has commands on its label line"),
]
LEGACY_BODIES = [
    ["{I}new x", "{I}set x = $horolog", "{I}quit:$quit 1  quit"],
    ["{I}if $data(^ZFLAG) do", "{I}. set ^ZFLAG(1)=$h", "{I}quit:$quit 1  quit"],
    ["{I};; kept in the object code", "", "{I}job ^SITEMON", "{I}quit"],
    [],
]
PROCEDURE_BODIES = [
    ["{I}set x = 1", "{I}quit 1", "}}"],
    ["{I}try {{", '{I}  set o = {{"a":[1,"}}"]}}', "{I}}} catch e {{", "{I}}}", "{I}quit", "}}"],
    ["{I}&sql(SELECT 1 INTO :n", "FROM Acme.T)", "{I}quit", "}}"],
    ["}}"],
]
HEADERS = [
    ["{R} ; hooks", " quit"],
    ["{R} //hooks", "   quit"],
    ["{R}", "#include %occStatus", "#define Log(%m) set ^Acme.Log($i(^Acme.Log))=%m", " quit"],
]
NOISE = [
    [],
    ["/*", "{E}() PUBLIC {{", "  an old copy, commented out", "}}", "*/"],
    [
        "Paths() PUBLIC {{",
        '  set f = $zsearch("/iris/tmp/*")',
        '  set s = "a ; b // c ""{E}"" /* d"',
        "  quit f",
        "}}",
    ],
    ["#; {E} in a macro comment", " // {E}() PUBLIC {{", " ;; {E}"],
    ["{lower}() PUBLIC {{", "  quit", "}}", "{E}Old ;", " quit"],
    ["Sql() PUBLIC {{", "  &sql(SELECT Name INTO :n", "FROM Acme.T WHERE Note = '{E}() {{')", "}}"],
    ["Other(a,", '      b="x") PUBLIC {{', "  quit a_b", "}}"],
]
AFTER = [[], ["{O}() PUBLIC {{", "  quit", "}}"], ["{O} ;", " quit"]]
INDENTS = [" ", "  ", "\t", "    "]


def generated(count: int, seed: int) -> List[Tuple[str, str, HookSpec, str]]:
    """(id, text, spec, expected) for `count` routines combined from the parts above."""
    pick = random.Random(seed)
    cases = []
    for n in range(count):
        spec = pick.choice([ZMIRROR, ZSTART])
        other = "CheckBecomePrimaryOK" if spec is ZMIRROR else "LOGIN"
        refused = n % 5 == 4
        if refused:
            head, kind, expected = pick.choice(REFUSED_HEADS)
            bodies = {"procedure": PROCEDURE_BODIES, "legacy": LEGACY_BODIES, "none": [[]]}[kind]
            body = pick.choice(bodies)
        elif pick.random() < 0.5:
            head, body, expected = pick.choice(LEGACY_HEADS), pick.choice(LEGACY_BODIES), CALL
        else:
            head, body, expected = pick.choice(PROCEDURE_HEADS), pick.choice(PROCEDURE_BODIES), CALL
        parts = [*pick.choice(HEADERS), *pick.choice(NOISE), *head, *body, *pick.choice(AFTER)]
        if n % 7 == 6:  # the entry label defined twice
            parts += ["{E}() PUBLIC {{", "  quit", "}}"]
            expected = r"{E} is defined again"  # read before anything else about the head
        fields = dict(
            E=spec.entry,
            R=spec.routine,
            O=other,
            lower=spec.entry.lower(),
            I=pick.choice(INDENTS),
        )
        text = "\n".join(line.format(**fields) for line in parts)
        text += pick.choice(["\n", ""])
        if pick.random() < 0.3:
            text = text.replace("\n", "\r\n")
        cases.append((f"gen{n:03d}", text, spec, expected.format(**fields)))
    return cases


GENERATED = generated(400, seed=9)


def test_the_generator_covers_every_part() -> None:
    texts = "\n".join(text for _, text, _, _ in GENERATED)
    assert sum(1 for *_, e in GENERATED if e == CALL) >= 200
    assert sum(1 for *_, e in GENERATED if e not in (CALL, ENTRY)) >= 100
    assert "\r\n" in texts and "\t" in texts and "&sql(" in texts and "/*" in texts


@pytest.mark.parametrize(
    ("text", "spec", "expected"),
    [pytest.param(t, s, e, id=i) for i, t, s, e in GENERATED],
)
def test_generated(text: str, spec: HookSpec, expected: str) -> None:
    if GRAMMAR_UNAVAILABLE is None:
        assert syntax_errors(text.replace("\r\n", "\n")) == []  # the generator writes valid code
    check_install(text, spec, expected)
