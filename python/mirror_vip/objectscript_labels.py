"""Where a routine's entry label starts executing: the line a call must go before to run first.

The heads the ObjectScript reference allows ("Procedure Syntax", GCOS_ucode_vars; "Legacy Forms of
Subroutines", GCOS_legacyforms; "Whitespace", GCOS_syntax_whitespace):

- a legacy subroutine or function: `label`, `label(args)`, optionally followed by `PUBLIC` or
  `PRIVATE` (public by default), its body on the following lines;
- a procedure: `label(args)`, an optional public variable list `[a,b]`, an optional `PUBLIC` or
  `PRIVATE` (private by default), then `{` on the same line or a later one (comments and blank
  lines may stand between), its body inside the braces.

A private one can only be called from inside its own routine ("By default, procedures are
private", TCOS_Procedures), and IRIS calls ^ZMIRROR and ^%ZSTART from its own code: it is
refused, as is anything read without certainty (`Unreadable`, with the line).

A label with commands on its own line (`SYSTEM job ^MON  quit`, `X() PUBLIC { quit 1 }`) is
refused too: a call can only run first by splitting the customer's line, which remove() could not
give back byte for byte, and which would move every `label+n` offset into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from .objectscript_lines import DIRECTIVE, PUNCT, WORD, Routine, Token, Unreadable

_KEYWORDS = ("public", "private", "methodimpl")


@dataclass(frozen=True)
class EntryPoint:
    insert_at: int  # index of the line a call goes before to be the label's first statement
    indent: str  # the whitespace that line should start with
    first: Optional[Token]  # the label's first statement as it stands (None: nothing follows)


def entry_point(routine: Routine, label: str, bodies: Sequence[str]) -> Optional[EntryPoint]:
    """The one top-level definition of `label` and where its body starts; None if undefined."""
    found = routine.defining(label)
    if not found:
        return None
    where = found[0]
    if len(found) > 1:
        raise Unreadable(
            found[1].line,
            f"{label} is defined again (first at line {where.line + 1}); keep one definition",
        )
    if where.block is not None:
        raise Unreadable(
            where.line,
            f"{label} stands inside the {{ }} block opened at line {where.block + 1}, where IRIS "
            "cannot call it; move it out of the block",
        )
    if where.condition is not None:
        raise Unreadable(
            where.line,
            f"{label} stands inside the #if at line {where.condition + 1}, so whether it is "
            "compiled depends on macros; move it out of the #if",
        )
    return _Head(routine, label, where.token).entry(bodies)


class _Head:
    """Reads `label(args) [pubvars] keyword {` token by token."""

    def __init__(self, routine: Routine, label: str, at: int) -> None:
        self.routine, self.label, self.tokens = routine, label, routine.tokens
        self.line = self.tokens[at].line
        self.last = at  # the head's last token so far
        self.next = routine.code_after(at)

    def take(self, kind: str, text: str, same_line: bool = True) -> bool:
        token = self.peek()
        if token is None or token.kind != kind or text not in ("", token.text.lower()):
            return False
        if same_line and token.line != self.tokens[self.last].line:
            return False
        assert self.next is not None
        self.last = self.next
        if text in ("(", "["):
            close = self.routine.closing(self.next)
            if close is None:
                raise Unreadable(token.line, f"the {text} after {self.label} is never closed")
            self.last = close
        self.next = self.routine.code_after(self.last)
        return True

    def peek(self) -> Optional[Token]:
        return None if self.next is None else self.tokens[self.next]

    def entry(self, bodies: Sequence[str]) -> EntryPoint:
        adjacent = self.next == self.last + 1 and self.tokens[self.last + 1].col == len(self.label)
        formals = adjacent and self.take(PUNCT, "(")
        pubvars = self.take(PUNCT, "[")
        keyword = self.peek()
        keyword_text = keyword.text.lower() if keyword is not None else ""
        if not (keyword_text in _KEYWORDS and self.take(WORD, keyword_text)):
            keyword_text = ""
        if keyword_text == "methodimpl":
            raise Unreadable(self.line, f"{self.label} is declared methodimpl (class code)")
        if self.take(PUNCT, "{", same_line=False):
            if not formals:
                raise Unreadable(self.line, f"{self.label} has a {{ but no ( ): no procedure")
            if keyword_text != "public":
                raise _private(self.line, self.label, "procedure")
            first, indent = self.peek(), "  "
            if first is not None and first.line == self.tokens[self.last].line:
                where = "label line" if first.line == self.line else "line of its {"
                raise Unreadable(
                    first.line,
                    f"{self.label} has commands on its {where}; move them to the next line",
                )
        else:
            first, indent = self.peek(), " "
            self.check_legacy(pubvars, keyword_text, first)
        insert_at = self.tokens[self.last].line + 1
        end = len(self.tokens) if self.next is None else self.next
        for token in self.tokens[self.last + 1 : end]:  # comments before the first statement
            if token.line < insert_at <= token.end_line:  # one that runs on: go after it
                insert_at = token.end_line + 1
        if first is not None and first.line < insert_at:
            raise Unreadable(
                first.line,
                f"the first command of {self.label} follows the end of a /* */ comment on its "
                "line; move it to the next line",
            )
        return EntryPoint(insert_at, _indent(first, bodies, indent), first)

    def check_legacy(self, pubvars: bool, keyword: str, first: Optional[Token]) -> None:
        if pubvars:
            raise Unreadable(self.line, f"{self.label} has a public variable list but no {{ }}")
        if keyword == "private":
            raise _private(self.line, self.label, "subroutine")
        if first is None:
            return
        if first.line == self.tokens[self.last].line:
            raise Unreadable(
                self.line,
                f"{self.label} has commands on its label line; move them to the next line "
                "(indented)",
            )
        if first.text.lower() in (*_KEYWORDS, "[") or _braced_after_directives(self):
            raise Unreadable(first.line, f"cannot tell where the head of {self.label} ends")


def _braced_after_directives(head: _Head) -> bool:
    """A `{` after directives that follow the head: a procedure whose head we cannot read."""
    index = head.next
    while index is not None and head.tokens[index].kind == DIRECTIVE:
        index = head.routine.code_after(index)
    return index is not None and index != head.next and head.tokens[index].text == "{"


def _private(line: int, label: str, kind: str) -> Unreadable:
    return Unreadable(
        line,
        f"{label} is a private {kind} (no PUBLIC), which IRIS cannot call from outside the "
        "routine; add PUBLIC after its ( )",
    )


def _indent(first: Optional[Token], bodies: Sequence[str], default: str) -> str:
    """The whitespace before the first statement, when it starts its line (not a closing })."""
    if first is None or first.text == "}":
        return default
    lead = bodies[first.line][: first.col]
    return lead if lead and not lead.strip(" \t") else default


def offset_reference(routine: Routine, label: str) -> None:
    """`label+n` (DO, GOTO, $TEXT) counts lines from the label: a line inserted would move it."""
    tokens = routine.tokens
    for token, after in zip(tokens, tokens[1:]):
        if (
            token.kind == WORD
            and token.text == label
            and (after.text, after.line, after.col) == ("+", token.line, token.col + len(label))
        ):
            raise Unreadable(
                token.line,
                f"{label}+n here counts lines from {label}, which our call would move; "
                "refer to a label of its own instead",
            )
