"""mirror_vip.routines on real customer routines: no customer line is ever lost.

The fixtures are ZMIRROR and %ZSTART routines as customers write them (labels with and without
`PUBLIC { }` bodies, legacy dot syntax, `quit` values, comments). Every text the generator
produces must parse with InterSystems' routine grammar.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest
from test_objectscript_parse import GRAMMAR_UNAVAILABLE, needs_grammar, syntax_errors

from mirror_vip import bridge, routines
from mirror_vip.routines import ZMIRROR, ZSTART, HookSpec, RoutineError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "routines"
BEGIN = re.compile(r"^\s*; >>> mirror-vip (\w+):")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


# fixture -> the routine kind it is, and whether its entry label exists
INSTALLABLE: Dict[str, HookSpec] = {
    "zmirror_procedures.mac": ZMIRROR,
    "zmirror_legacy.mac": ZMIRROR,
    "zmirror_without_entry.mac": ZMIRROR,
    "zmirror_brace_next_line.mac": ZMIRROR,
    "zstart_legacy.mac": ZSTART,
    "zstart_procedures.mac": ZSTART,
}
REFUSED = {"zmirror_one_line.mac": ZMIRROR, "zmirror_code_on_label_line.mac": ZMIRROR}


def variants(text: str) -> Dict[str, str]:
    """The fixture as IRIS hands it over (no final newline), as a file, and with CRLF."""
    return {
        "file": text,
        "iris": text.rstrip("\n"),
        "crlf": text.replace("\n", "\r\n"),
    }


def kinds(text: str) -> List[str]:
    return [m.group(1) for line in text.split("\n") if (m := BEGIN.match(line))]


def in_order(part: List[str], whole: List[str]) -> bool:
    it = iter(whole)
    return all(line in it for line in part)


CASES = [
    pytest.param(name, form, id=f"{name}-{form}")
    for name in INSTALLABLE
    for form in ("file", "iris", "crlf")
]


@pytest.mark.parametrize(("name", "form"), CASES)
def test_install_keeps_every_customer_line_and_adds_our_blocks_once(name: str, form: str) -> None:
    original = variants(fixture(name))[form]
    spec = INSTALLABLE[name]
    installed = routines.install(original, spec, "USER")
    assert in_order(original.splitlines(), installed.splitlines())
    assert sorted(kinds(installed)) == sorted(
        [
            "hook",
            "call" if routines.find_label(routines.split_lines(original), spec.entry) else "entry",
        ]
    )
    assert installed.count(f"do ##class(MirrorVip.Hooks).{spec.hook_method}()") == 1
    assert 'set $namespace = "USER"' in installed


@pytest.mark.parametrize(("name", "form"), CASES)
def test_uninstall_gives_back_the_original_byte_for_byte(name: str, form: str) -> None:
    original = variants(fixture(name))[form]
    spec = INSTALLABLE[name]
    removal = routines.remove(routines.install(original, spec, "USER"), spec)
    assert removal.text == original
    assert removal.changed and not removal.only_ours


@pytest.mark.parametrize(("name", "form"), CASES)
def test_reinstall_replaces_and_never_duplicates(name: str, form: str) -> None:
    original = variants(fixture(name))[form]
    spec = INSTALLABLE[name]
    once = routines.install(original, spec, "USER")
    assert routines.install(once, spec, "USER") == once
    moved = routines.install(once, spec, "APP")
    assert 'set $namespace = "APP"' in moved and '"USER"' not in moved
    assert len(kinds(moved)) == len(kinds(once))
    assert routines.remove(moved, spec).text == original


@needs_grammar
@pytest.mark.parametrize(("name", "form"), CASES)
def test_generated_text_parses(name: str, form: str) -> None:
    text = routines.install(variants(fixture(name))[form], INSTALLABLE[name], "USER")
    assert syntax_errors(text.replace("\r\n", "\n")) == []


@pytest.mark.parametrize("name", INSTALLABLE)
def test_crlf_stays_crlf(name: str) -> None:
    installed = routines.install(variants(fixture(name))["crlf"], INSTALLABLE[name], "USER")
    assert "\n" not in installed.replace("\r\n", "")


def test_our_call_is_the_first_thing_the_label_does() -> None:
    lines = routines.install(fixture("zmirror_procedures.mac"), ZMIRROR, "USER").split("\n")
    at = lines.index("NotifyBecomePrimary() PUBLIC {")
    assert BEGIN.match(lines[at + 1])
    assert lines[at + 2] == "  do MirrorVipNotifyBecomePrimary()"
    assert lines[at + 4] == "  // tell the interface engine which member is primary"


def test_legacy_label_gets_the_call_before_its_dot_blocks() -> None:
    lines = routines.install(fixture("zmirror_legacy.mac"), ZMIRROR, "USER").split("\n")
    at = lines.index("NotifyBecomePrimary ; page the on-call and warm the caches")
    assert lines[at + 2] == " do MirrorVipNotifyBecomePrimary()"
    assert lines[at + 4] == " new node,msg"


def test_brace_on_the_next_line_and_label_names_in_comments() -> None:
    lines = routines.install(fixture("zmirror_brace_next_line.mac"), ZMIRROR, "USER").split("\n")
    at = lines.index("NotifyBecomePrimary() PUBLIC")
    assert lines[at + 1] == "{"
    assert lines[at + 3] == "    do MirrorVipNotifyBecomePrimary()"
    assert lines[3] == "NotifyBecomePrimary is below; this comment must not be taken for the label"


def test_missing_entry_label_is_created_callable_with_or_without_dollars() -> None:
    text = routines.install(fixture("zmirror_without_entry.mac"), ZMIRROR, "USER")
    assert text.count("NotifyBecomePrimary() PUBLIC {") == 1
    assert "  quit:$quit 1  quit" in text
    assert "CheckBecomePrimaryOK() PUBLIC {" in text


def test_the_hook_switches_namespace_in_its_own_procedure_and_never_throws() -> None:
    text = routines.install(fixture("zstart_legacy.mac"), ZSTART, "USER")
    hook = text[text.index("MirrorVipSystemStart() {") :]
    assert hook.split("\n")[1:4] == ["  new $namespace", "  try {", '    set $namespace = "USER"']
    assert "  } catch err {" in hook
    assert "WriteToConsoleLog(" in hook


def test_a_new_routine_is_only_ours_and_is_deleted_again() -> None:
    for spec in (ZMIRROR, ZSTART):
        created = routines.install("", spec, "USER")
        assert created.startswith(f"{spec.routine} ;")
        if GRAMMAR_UNAVAILABLE is None:  # the grammar's check; the rest holds on every Python
            assert syntax_errors(created) == []
        removal = routines.remove(created, spec)
        assert removal.only_ours and removal.changed


def test_a_routine_we_created_and_the_customer_extended_is_kept() -> None:
    created = routines.install("", ZMIRROR, "USER")
    extended = created + "\nCheckBecomePrimaryOK() PUBLIC {\n  quit 1\n}"
    removal = routines.remove(extended, ZMIRROR)
    assert not removal.only_ours
    assert "CheckBecomePrimaryOK() PUBLIC {" in removal.text
    assert "mirror-vip" in removal.text.split("\n")[0]  # our header stays: it is harmless
    assert not kinds(removal.text)


def test_the_customers_own_label_takes_over_from_the_one_we_created() -> None:
    created = routines.install("", ZMIRROR, "USER")
    customer = created + "\nNotifyBecomePrimary() PUBLIC {\n  quit 1\n}"
    reinstalled = routines.install(customer, ZMIRROR, "USER")
    assert [x for x in reinstalled.split("\n") if x.startswith("NotifyBecomePrimary")] == [
        "NotifyBecomePrimary() PUBLIC {"
    ]
    assert sorted(kinds(reinstalled)) == ["call", "hook"]


def test_a_scratch_routine_name_goes_into_the_header() -> None:
    created = routines.install("", ZMIRROR, "USER", routine="ZMirrorVipUT")
    assert created.startswith("ZMirrorVipUT ;")
    assert routines.remove(created, ZMIRROR, routine="ZMirrorVipUT").only_ours


def test_a_prefix_of_the_label_is_not_the_label() -> None:
    text = "ZMIRROR\n quit\nNotifyBecomePrimaryFailed() PUBLIC {\n  quit\n}\n"
    assert kinds(routines.install(text, ZMIRROR, "USER")) == ["entry", "hook"]


@pytest.mark.parametrize("name", REFUSED)
def test_commands_on_the_label_line_are_refused_not_rewritten(name: str) -> None:
    with pytest.raises(RoutineError, match="commands on its label line"):
        routines.install(fixture(name), REFUSED[name], "USER")


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t.replace(" ; <<< mirror-vip hook", ""),
        lambda t: t.replace(" ; >>> mirror-vip hook:", " ;"),
        lambda t: t.replace("<<< mirror-vip hook", "<<< mirror-vip call"),
        lambda t: t + "\n ; >>> mirror-vip hook: again\n ; >>> mirror-vip call: nested",
    ],
)
def test_damaged_markers_are_refused_not_guessed(damage: Callable[[str], str]) -> None:
    installed = routines.install(fixture("zmirror_procedures.mac"), ZMIRROR, "USER")
    broken = damage(installed)
    with pytest.raises(RoutineError, match="repair the markers by hand"):
        routines.install(broken, ZMIRROR, "USER")
    with pytest.raises(RoutineError, match="repair the markers by hand"):
        routines.remove(broken, ZMIRROR)


@pytest.mark.parametrize("namespace", ['USER"  kill ^x', "", "1USER", "US ER", "A" * 65])
def test_invalid_namespaces_are_refused(namespace: str) -> None:
    with pytest.raises(RoutineError, match="invalid namespace"):
        routines.install("", ZMIRROR, namespace)


def test_inspect_reports_what_is_there() -> None:
    original = fixture("zmirror_procedures.mac")
    assert not routines.inspect(original, ZMIRROR).installed
    installed = routines.install(original, ZMIRROR, "USER")
    state = routines.inspect(installed, ZMIRROR)
    assert state.installed and state.current and state.namespace == "USER"
    assert not routines.inspect(installed, ZMIRROR, namespace="APP").current
    stale = installed.replace(
        "  quit\n}\n ; <<< mirror-vip hook", "  quit  \n}\n ; <<< mirror-vip hook"
    )
    assert routines.inspect(stale, ZMIRROR).installed
    assert not routines.inspect(stale, ZMIRROR).current


def test_splitting_keeps_every_byte() -> None:
    for text in ["", "a", "a\n", "a\r\nb", "a\r\n\r\nb\n", "x\ry\n", "\n\n"]:
        assert routines.join_lines(routines.split_lines(text)) == text


# --- the bridge functions MirrorVip.Installer calls ------------------------------------------


def lines_of(text: str) -> str:
    return json.dumps(text.split("\n") if text else [])


def test_bridge_install_and_remove_round_trip_as_lines() -> None:
    original = fixture("zmirror_legacy.mac").rstrip("\n")
    installed = json.loads(bridge.routine_install("ZMIRROR", lines_of(original), "USER"))
    assert installed["ok"] and installed["changed"]
    again = json.loads(bridge.routine_install("ZMIRROR", json.dumps(installed["lines"]), "USER"))
    assert again["ok"] and not again["changed"]
    removed = json.loads(bridge.routine_remove("ZMIRROR", json.dumps(installed["lines"])))
    assert removed == {"ok": True, "lines": original.split("\n"), "changed": True, "delete": False}


def test_bridge_new_routine_is_deleted_again() -> None:
    created = json.loads(bridge.routine_install("%ZSTART", "[]", "USER"))
    assert created["lines"][0].startswith("%ZSTART ;")
    removed = json.loads(bridge.routine_remove("%ZSTART", json.dumps(created["lines"])))
    assert removed["ok"] and removed["delete"]


def test_bridge_inspect() -> None:
    installed = json.loads(bridge.routine_install("ZMIRROR", "[]", "USER", "ZMirrorVipUT"))
    state = json.loads(
        bridge.routine_inspect("ZMIRROR", json.dumps(installed["lines"]), "USER", "ZMirrorVipUT")
    )
    assert state == {
        "ok": True,
        "installed": True,
        "current": True,
        "namespace": "USER",
        "blocks": ["entry", "hook"],
    }


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: bridge.routine_install("ZSTOP", "[]", "USER"), "unknown hook routine"),
        (lambda: bridge.routine_install("ZMIRROR", "not json", "USER"), "invalid routine lines"),
        (lambda: bridge.routine_install("ZMIRROR", '{"a": 1}', "USER"), "JSON array of lines"),
        (lambda: bridge.routine_install("ZMIRROR", "[]", 'X" kill'), "invalid namespace"),
        (
            lambda: bridge.routine_remove("ZMIRROR", lines_of(fixture("zmirror_one_line.mac"))),
            None,
        ),
    ],
)
def test_bridge_answers_errors_in_json(call: Callable[[], str], error: Optional[str]) -> None:
    answer = json.loads(call())
    if error is None:
        assert answer["ok"] and not answer["changed"]
    else:
        assert answer["ok"] is False and error in answer["error"]


# --- issue 9, item 2: shapes the installer broke or refused (each failed before its fix) ---------


def entry_body(text: str, head: str) -> List[str]:
    """The lines after the line `head` (the entry label's head), up to the next blank line."""
    lines = text.replace("\r\n", "\n").split("\n")
    at = lines.index(head)
    return lines[at + 1 : at + 5]


@pytest.mark.parametrize(
    "head",
    [
        ["NotifyBecomePrimary() PUBLIC ; runs last", "{"],
        ["NotifyBecomePrimary() PUBLIC", " ; page the on-call first", "{"],
        ["NotifyBecomePrimary() PUBLIC", "", "  // a comment line and a blank one", "  {"],
        ["NotifyBecomePrimary() [node] PUBLIC", "{"],
    ],
    ids=["comment-on-head", "comment-line", "blank-and-comment-lines", "public-variables"],
)
def test_a_brace_on_a_later_line_gets_the_call_inside_it(head: List[str]) -> None:
    body = ["  set ^Acme($increment(^Acme)) = 1", "  quit 1", "}"]
    text = "\n".join(["ZMIRROR", " quit", *head, *body])
    installed = routines.install(text, ZMIRROR, "USER")
    if GRAMMAR_UNAVAILABLE is None:  # the grammar's check; the rest holds on every Python
        assert syntax_errors(installed) == []
    after_brace = entry_body(installed, head[-1])
    assert BEGIN.match(after_brace[0])
    assert after_brace[1].strip() == "do MirrorVipNotifyBecomePrimary()"
    assert routines.remove(installed, ZMIRROR).text == text


@pytest.mark.parametrize(
    "head",
    [["NotifyBecomePrimary()", "{"], ["NotifyBecomePrimary() ; comment", "{"]],
    ids=["bare", "comment"],
)
def test_a_private_procedure_is_refused_because_iris_cannot_call_it(head: List[str]) -> None:
    """Without PUBLIC a procedure is private: callable only from inside its own routine."""
    text = "\n".join(["ZMIRROR", " quit", *head, "  quit 1", "}"])
    with pytest.raises(RoutineError, match=r"^line 3: NotifyBecomePrimary is a private procedure"):
        routines.install(text, ZMIRROR, "USER")


def test_public_without_braces_is_a_legacy_subroutine_and_is_hooked() -> None:
    text = "ZMIRROR\n quit\nNotifyBecomePrimary() PUBLIC\n new $namespace\n quit:$quit 1  quit\n"
    installed = routines.install(text, ZMIRROR, "USER")
    if GRAMMAR_UNAVAILABLE is None:  # the grammar's check; the rest holds on every Python
        assert syntax_errors(installed) == []
    call = entry_body(installed, "NotifyBecomePrimary() PUBLIC")[1]
    assert call == " do MirrorVipNotifyBecomePrimary()"
    assert routines.remove(installed, ZMIRROR).text == text


ZSTART_WITH_STAR = """%ZSTART ; start-up
 quit
CLEAN() PUBLIC {
  set f = $zsearch("/iris/tmp/*")
  quit
}
SYSTEM ; instance start
 job ^SITEMON
 quit
"""


def test_a_comment_opener_inside_a_string_hides_no_label() -> None:
    installed = routines.install(ZSTART_WITH_STAR, ZSTART, "USER")
    labels = [line for line in installed.split("\n") if line.startswith("SYSTEM")]
    assert labels == ["SYSTEM ; instance start"]
    assert kinds(installed) == ["call", "hook"]
    assert entry_body(installed, "SYSTEM ; instance start")[1] == " do MirrorVipSystemStart()"


def test_inspect_does_not_call_a_second_entry_label_installed() -> None:
    """What the old installer wrote for ZSTART_WITH_STAR: our SYSTEM beside the customer's."""
    doubled = fixture("zstart_doubled_by_old_installer.mac")
    assert doubled.startswith(ZSTART_WITH_STAR)
    assert [x for x in doubled.split("\n") if x.startswith("SYSTEM")] == [
        "SYSTEM ; instance start",
        "SYSTEM() PUBLIC {",
    ]
    assert not routines.inspect(doubled, ZSTART).installed
    repaired = routines.install(doubled, ZSTART, "USER")  # our entry block goes, the call comes
    assert repaired == routines.install(ZSTART_WITH_STAR, ZSTART, "USER")
    assert routines.inspect(repaired, ZSTART).installed


@pytest.mark.parametrize("namespace", ["USER\n", 'USER\n"  kill ^x', "\nUSER"])
def test_a_namespace_with_a_line_end_is_refused(namespace: str) -> None:
    with pytest.raises(RoutineError, match="invalid namespace"):
        routines.install("", ZMIRROR, namespace)


@pytest.mark.parametrize("name", ["ZMIRROR\n", "ZMIRROR\n quit"])
def test_a_routine_name_with_a_line_end_is_refused(name: str) -> None:
    with pytest.raises(RoutineError, match="invalid routine name"):
        routines.install("", ZMIRROR, "USER", routine=name)


def test_code_that_falls_off_the_end_never_runs_into_our_procedures() -> None:
    """The customer's last label may end without a quit (HealthShare's documented ZMIRROR does):
    what we append starts with the argumentless quit the end of the routine meant."""
    for name, spec in [
        ("zmirror_healthinsight.mac", ZMIRROR),
        ("zstart_without_system.mac", ZSTART),
    ]:
        original = fixture(name)
        lines = routines.split_lines(routines.install(original, spec, "USER"))
        ours = {i for b in routines.find_blocks(lines) for i in range(b.first, b.last + 1)}
        last = max(i for i in range(len(lines)) if i not in ours)
        after = [x.body for x in lines[last + 1 :]]
        code = [x for x in after if x.strip() and not x.strip().startswith(";")]
        assert code[0].split(";")[0].strip() == "quit", name


def test_an_entry_label_on_a_last_line_without_a_line_end() -> None:
    """Found by the corpus: the call was glued onto the label line (`SYSTEM ; ; >>> ...`)."""
    original = "%ZSTART\n quit\nSYSTEM ;"
    installed = routines.install(original, ZSTART, "USER")
    assert installed.split("\n")[2:5] == [
        "SYSTEM ;",
        f" ; >>> mirror-vip call: {routines.NOTE}",
        " do MirrorVipSystemStart()",
    ]
    assert routines.remove(installed, ZSTART).text == original


@pytest.mark.parametrize("spec", [ZMIRROR, ZSTART], ids=lambda s: s.routine)
def test_a_failing_log_call_in_the_hook_cannot_escape_into_the_customers_label(
    spec: HookSpec,
) -> None:
    """The hook's catch logs to messages.log; if that call threw, the error would leave our
    procedure and skip the rest of the customer's entry label: it has a try of its own."""
    lines = routines.install("", spec, "USER").split("\n")
    at = next(i for i, line in enumerate(lines) if "WriteToConsoleLog(" in line)
    opened = [line.strip() for line in lines[:at] if line.strip().endswith("{")]
    assert opened[-2:] == ["} catch err {", "try {"], lines[at - 3 : at + 3]
    assert lines[at + 1].strip() == "} catch {"
