"""The routine reader (objectscript_lines, objectscript_labels): what it reads, what it refuses.

What it cannot read with certainty must stop the install with the line that made it unsure, and
nothing may change; what it can read must be read as IRIS reads it.
"""

from __future__ import annotations

import json
from typing import List

import pytest

from mirror_vip import bridge, routines
from mirror_vip.objectscript_lines import COMMENT, EMBEDDED, LABEL, STRING, Unreadable, read
from mirror_vip.routines import ZMIRROR, ZSTART, RoutineError

HEAD = ["ZMIRROR ; test", " quit"]
ENTRY = ["NotifyBecomePrimary() PUBLIC {", "  quit 1", "}"]


def kinds_of(lines: List[str]) -> List[str]:
    return [t.kind for t in read(lines).tokens]


@pytest.mark.parametrize(
    ("lines", "line", "reason"),
    [
        (["Paths() PUBLIC {", '  set f = "/tmp/*', "}"], 4, "a string is not closed"),
        (["/* an old copy", "NotifyBecomePrimary() PUBLIC {"], 3, "never closed"),
        (["Page() PUBLIC {", "  &js<alert('x')>", "}"], 4, "embedded code"),
        (["Page() PUBLIC {", "  &html<<b>x</b>>", "}"], 4, "embedded code"),
        (["Q() PUBLIC {", "  &sql#(SELECT 1 INTO :x)#", "}"], 4, "embedded code"),
        (["Q() PUBLIC {", "  &sql(SELECT 1 INTO :x ; y)", "}"], 4, "a ; inside embedded SQL"),
        (["Q() PUBLIC {", "  &sql(SELECT 1", "       INTO :x"], 4, "embedded SQL is never closed"),
        (["#ifdef ACME", "X ;", " quit"], 3, "#if is never closed"),
        (["#endif"], 3, "#endif outside any #if"),
        (["#else"], 3, "#else outside any #if"),
        (["X() PUBLIC {", "  quit"], 3, "this { is never closed"),
        (["X ;", " quit", "}"], 5, "this } closes no {"),
        (["X ;\r quit"], 3, "a carriage return inside the line"),
        ([".X ;"], 3, "neither a label nor a comment"),
        (['"X" ;'], 3, "neither a label nor a comment"),
    ],
)
def test_what_cannot_be_read_with_certainty_is_refused_with_its_line(
    lines: List[str], line: int, reason: str
) -> None:
    text = "\n".join([*HEAD, *lines, *ENTRY]) + "\n"
    with pytest.raises(
        RoutineError, match=rf"^line {line}: .*{reason}.*mirror-vip changed nothing$"
    ):
        routines.install(text, ZMIRROR, "USER")
    assert not routines.inspect(text, ZMIRROR).installed
    answer = json.loads(bridge.routine_install("ZMIRROR", json.dumps(text.split("\n")), "USER"))
    assert answer["ok"] is False and f"line {line}:" in answer["error"]


def test_a_directive_continued_on_the_last_line_is_refused() -> None:
    text = "\n".join([*HEAD, *ENTRY, "#define LONG 1 ##continue"])
    with pytest.raises(RoutineError, match=r"^line 6: this directive ends in ##continue"):
        routines.install(text, ZMIRROR, "USER")


def test_a_continued_directive_hides_no_label() -> None:
    text = "\n".join([*HEAD, "#define LONG(%a) %a ##continue", "NotifyBecomePrimary", *ENTRY])
    installed = routines.install(text, ZMIRROR, "USER")
    assert routines.inspect(installed, ZMIRROR).installed


def test_a_label_of_ours_outside_our_blocks_is_refused() -> None:
    text = "\n".join([*HEAD, "MirrorVipNotifyBecomePrimary() {", "  quit", "}", *ENTRY])
    with pytest.raises(RoutineError, match=r"^line 3: MirrorVipNotifyBecomePrimary is mirror-vip"):
        routines.install(text, ZMIRROR, "USER")


@pytest.mark.parametrize(
    "line",
    [
        '  set f = $zsearch("/iris/tmp/*")',
        '  set s = "; // /* ""NotifyBecomePrimary"" */"',
        "  set x = 1 /* one line */ set y = 2",
        "  if x&SQLCODE quit",  # the AND operator before a variable, no embedded SQL
        '  set o = {"a":[1,"}"]}',
        "  &sql(SELECT 1 INTO :x FROM T WHERE a = ';' -- a ; in an SQL comment",
    ],
)
def test_code_that_looks_like_comments_or_labels_is_read_as_code(line: str) -> None:
    closing = ["       )"] if "&sql(" in line else []
    text = "\n".join([*HEAD, "Helper() PUBLIC {", line, *closing, "}", *ENTRY])
    installed = routines.install(text, ZMIRROR, "USER")
    assert installed.count("\nNotifyBecomePrimary() PUBLIC {") == 1
    assert routines.inspect(installed, ZMIRROR).installed


def test_tokens() -> None:
    routine = read(
        [
            "X ; comment",
            ' set s = "a "" b" // c',
            " &sql(SELECT 1",
            "NotifyBecomePrimary)",
            "/* c",
            "NotifyBecomePrimary",
            "*/",
            "#; NotifyBecomePrimary",
        ]
    )
    assert [label.name for label in routine.labels] == ["X"]
    kinds = [t.kind for t in routine.tokens]
    assert kinds[:2] == [LABEL, COMMENT]
    assert STRING in kinds and EMBEDDED in kinds
    assert [t.end_line for t in routine.tokens if t.kind == EMBEDDED] == [3]
    assert [t.end_line for t in routine.tokens if t.text.startswith("/*")] == [6]


def test_labels_know_their_block_and_condition() -> None:
    routine = read(["A() PUBLIC {", "B", "}", "#if 1", "C ;", "#else", "D ;", "#endif", "E"])
    where = {label.name: (label.block, label.condition) for label in routine.labels}
    assert where == {
        "A": (None, None),
        "B": (0, None),
        "C": (None, 3),
        "D": (None, 3),
        "E": (None, None),
    }


def test_labels_are_case_sensitive() -> None:
    routine = read(["system ;", "System ;", "SYSTEM2 ;", "SYSTEM ;"])
    assert [label.line for label in routine.defining("SYSTEM")] == [3]


def test_unreadable_carries_its_line() -> None:
    with pytest.raises(Unreadable) as caught:
        read(["X ;", ' set s = "open'])
    assert caught.value.line == 1


def test_a_legacy_label_with_the_keyword_on_a_later_line_is_refused() -> None:
    text = "\n".join(["%ZSTART", " quit", "SYSTEM()", " PUBLIC", " quit"])
    with pytest.raises(RoutineError, match=r"^line 4: cannot tell where the head of SYSTEM ends"):
        routines.install(text, ZSTART, "USER")


def test_a_directive_between_head_and_brace_is_refused() -> None:
    text = "\n".join(["%ZSTART", " quit", "SYSTEM() PUBLIC", "#define X 1", "{", " quit", "}"])
    with pytest.raises(RoutineError, match=r"^line 4: cannot tell where the head of SYSTEM ends"):
        routines.install(text, ZSTART, "USER")


def test_the_first_command_after_a_comment_that_ends_on_its_line_is_refused() -> None:
    text = "\n".join(["%ZSTART", " quit", "SYSTEM ; start", " /* a", " b */ job ^SITEMON", " quit"])
    installed = routines.install(text, ZSTART, "USER")  # the comment starts on its own line
    assert routines.inspect(installed, ZSTART).installed
    text = "\n".join(["%ZSTART", " quit", "SYSTEM /* a", " b */ job ^SITEMON", " quit"])
    with pytest.raises(RoutineError, match=r"^line 4: the first command of SYSTEM follows"):
        routines.install(text, ZSTART, "USER")
