"""ObjectScript routine text read as IRIS reads it, as far as hooking a label needs. Stdlib only.

`read` turns a routine's lines into tokens (labels, words, brackets, strings, comments, directives,
embedded SQL) and lists every label with the `{` block and the `#if` it stands in. What it cannot
read with certainty it refuses (`Unreadable`, with the line), rather than guess: routines.py then
changes nothing. The rules, from InterSystems' ObjectScript reference:

- a label starts in column 1; a line that starts with a space or tab holds code, and a line of
  nothing but whitespace is a comment ("Whitespace", GCOS_syntax_whitespace);
- comments: `;` and `;;` and `//` to the end of the line, `/* */` within or across lines,
  `#;` (column 1) and `##;` to the end of the line (GCOS_syntax_comments, RCOS_macros_mpp_lbSemi,
  RCOS_macros_mpp_lblbSemi);
- a string is `"..."`, with `""` for a quote inside; it never spans lines;
- preprocessor directives (`#include`, `#define`, `#if` ...) fill their line and, after
  `##continue`, the next one; `&sql( )` and `##sql( )` may span lines and hold SQL, whose strings
  are '...' and whose comments are `--` and `/* */`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

LABEL, WORD, PUNCT, STRING, COMMENT, DIRECTIVE, EMBEDDED, OTHER = (
    "label",
    "word",
    "punct",
    "string",
    "comment",
    "directive",
    "embedded",
    "other",
)
# letters (any script) and digits; `_` is ObjectScript's concatenation operator
_NAME = re.compile(r"%?[^\W_]+")
_EMBEDDED_SQL = re.compile(r"(?:&sql|##sql)\(", re.IGNORECASE)
# &js< >, &html< >, &xml< > and &sql with a marker (&sql#( )#): not read here, refused
_OTHER_EMBEDDED = re.compile(r"&(?:(?:js|javascript|html|xml)<|sql[^\w\s(]+\()", re.IGNORECASE)
_DIRECTIVE = re.compile(r"#([A-Za-z]+)")
_CONTINUED = re.compile(r"##continue\s*$", re.IGNORECASE)
_OPENS_CONDITION = ("if", "ifdef", "ifndef")
_INSIDE_CONDITION = ("else", "elseif", "elif")


class Unreadable(ValueError):
    """The text cannot be read with certainty at `line` (0-based); `reason` says why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line + 1}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Token:
    kind: str
    text: str  # for multi-line tokens, the text of their first line
    line: int  # 0-based
    col: int
    end_line: int  # the line it ends on (a /* */ comment, embedded SQL or a continued directive)


@dataclass(frozen=True)
class Label:
    name: str
    token: int  # index in Routine.tokens
    line: int
    block: Optional[int]  # line of the innermost `{` still open here; None at the top level
    condition: Optional[int]  # line of the innermost `#if`/`#ifdef`/`#ifndef` still open here


@dataclass(frozen=True)
class Routine:
    tokens: List[Token]
    labels: List[Label]

    def defining(self, name: str) -> List[Label]:
        """Every definition of `name`: labels are case-sensitive (GCOS_syntax, "Case
        Sensitivity": "label names" are listed among the case-sensitive parts)."""
        return [label for label in self.labels if label.name == name]

    def code_after(self, index: int) -> Optional[int]:
        """Index of the first token after `index` that is not a comment."""
        for i in range(index + 1, len(self.tokens)):
            if self.tokens[i].kind != COMMENT:
                return i
        return None

    def closing(self, index: int) -> Optional[int]:
        """Index of the `)` or `]` that closes the bracket at `index`."""
        opening = self.tokens[index].text
        closing = {"(": ")", "[": "]"}[opening]
        depth = 0
        for i in range(index, len(self.tokens)):
            token = self.tokens[i]
            if token.kind == PUNCT and token.text == opening:
                depth += 1
            elif token.kind == PUNCT and token.text == closing:
                depth -= 1
                if depth == 0:
                    return i
        return None


@dataclass
class _Open:
    """A token still open at the end of a line: a /* */ comment, embedded SQL, a directive."""

    kind: str
    text: str
    line: int
    col: int
    depth: int = 0  # embedded SQL: parentheses still open
    in_comment: bool = False  # embedded SQL: inside a /* */ comment


@dataclass
class _Reader:
    tokens: List[Token] = field(default_factory=list)
    open: Optional[_Open] = None

    def add(self, kind: str, text: str, line: int, col: int) -> None:
        self.tokens.append(Token(kind, text, line, col, line))

    def close(self, end_line: int) -> None:
        assert self.open is not None
        o = self.open
        self.tokens.append(Token(o.kind, o.text, o.line, o.col, end_line))
        self.open = None

    def line(self, body: str, n: int) -> None:
        if "\r" in body:
            raise Unreadable(n, "a carriage return inside the line")
        at = 0
        if self.open is not None and self.open.kind == COMMENT:
            end = body.find("*/")
            if end < 0:
                return
            self.close(n)
            at = end + 2
        elif self.open is not None and self.open.kind == EMBEDDED:
            at = self.sql(body, 0, n)
        elif self.open is not None:  # a directive continued with ##continue
            if not _CONTINUED.search(body):
                self.close(n)
            return
        else:
            at = self.line_start(body, n)
        self.code(body, at, n)

    def line_start(self, body: str, n: int) -> int:
        """Column 1: a label, a comment, a directive, a brace, or whitespace before code."""
        if not body:
            return 0
        first = body[0]
        if first in " \t":
            stripped = body.lstrip(" \t")
            indent = len(body) - len(stripped)
            if stripped.startswith(("#;", "##;")):
                self.add(COMMENT, stripped, n, indent)
                return len(body)
            if _DIRECTIVE.match(stripped):  # whitespace before a directive is allowed
                return self.directive(body, indent, n)
            return indent
        if body.startswith(("#;", "##;", ";", "//")):
            self.add(COMMENT, body, n, 0)
            return len(body)
        if _DIRECTIVE.match(body):
            return self.directive(body, 0, n)
        if first in "{}" or body.startswith("/*"):
            return 0
        name = _NAME.match(body)
        if name is None:
            raise Unreadable(n, f"{first!r} in column 1 starts neither a label nor a comment")
        self.add(LABEL, name.group(), n, 0)
        return name.end()

    def directive(self, body: str, at: int, n: int) -> int:
        if _CONTINUED.search(body):
            self.open = _Open(DIRECTIVE, body[at:], n, at)
        else:
            self.add(DIRECTIVE, body[at:], n, at)
        return len(body)

    def code(self, body: str, at: int, n: int) -> None:
        i = at
        while i < len(body):
            char = body[i]
            if char in " \t":
                i += 1
            elif char == '"':
                end = _string_end(body, i, '"')
                if end < 0:
                    raise Unreadable(n, "a string is not closed on its line")
                self.add(STRING, body[i:end], n, i)
                i = end
            elif char == ";" or body.startswith(("//", "##;"), i):
                self.add(COMMENT, body[i:], n, i)
                return
            elif body.startswith("/*", i):
                end = body.find("*/", i + 2)
                if end < 0:
                    self.open = _Open(COMMENT, body[i:], n, i)
                    return
                self.add(COMMENT, body[i : end + 2], n, i)
                i = end + 2
            elif char in "&#" and _EMBEDDED_SQL.match(body, i):
                start = _EMBEDDED_SQL.match(body, i)
                assert start is not None
                self.open = _Open(EMBEDDED, body[i:], n, i, depth=1)
                i = self.sql(body, start.end(), n)
            elif char == "&" and _OTHER_EMBEDDED.match(body, i):
                raise Unreadable(n, f"embedded code ({body[i : i + 12]}...) is not read here")
            elif char in "{}()[],":
                self.add(PUNCT, char, n, i)
                i += 1
            else:
                name = _NAME.match(body, i)
                end = name.end() if name else i + 1
                self.add(WORD if name else OTHER, body[i:end], n, i)
                i = end

    def sql(self, body: str, at: int, n: int) -> int:
        """Embedded SQL up to its closing `)`; the index after it, or len(body) if still open."""
        sql = self.open
        assert sql is not None
        i = at
        while i < len(body):
            if sql.in_comment:
                end = body.find("*/", i)
                if end < 0:
                    return len(body)
                sql.in_comment, i = False, end + 2
                continue
            char = body[i]
            if char in "'\"":
                end = _string_end(body, i, char)
                if end < 0:
                    raise Unreadable(n, "a string in embedded SQL is not closed on its line")
                i = end
            elif body.startswith(("--", "//", "##;"), i):
                return len(body)
            elif body.startswith("/*", i):
                sql.in_comment, i = True, i + 2
            elif char == ";":
                raise Unreadable(n, "a ; inside embedded SQL")
            else:
                sql.depth += {"(": 1, ")": -1}.get(char, 0)
                i += 1
                if sql.depth == 0:
                    self.close(n)
                    return i
        return len(body)


def _string_end(body: str, start: int, quote: str) -> int:
    """Index after the string opened at `start` (a doubled quote stays inside); -1 if unclosed."""
    i = start + 1
    while True:
        end = body.find(quote, i)
        if end < 0:
            return -1
        if body.startswith(quote * 2, end):
            i = end + 2
            continue
        return end + 1


def read(bodies: Sequence[str]) -> Routine:
    """Tokens and labels of a routine given as its lines (without line ends)."""
    reader = _Reader()
    for n, body in enumerate(bodies):
        reader.line(body, n)
    if reader.open is not None:
        what = {
            COMMENT: "this /* comment is never closed",
            EMBEDDED: "this embedded SQL is never closed",
            DIRECTIVE: "this directive ends in ##continue on the last line",
        }[reader.open.kind]
        raise Unreadable(reader.open.line, what)
    return Routine(reader.tokens, _labels(reader.tokens))


def _labels(tokens: Sequence[Token]) -> List[Label]:
    """Every label with the `{` and `#if` around it; unbalanced braces or #if are unreadable."""
    blocks: List[int] = []
    conditions: List[int] = []
    labels: List[Label] = []
    for i, token in enumerate(tokens):
        if token.kind == LABEL:
            block = blocks[-1] if blocks else None
            condition = conditions[-1] if conditions else None
            labels.append(Label(token.text, i, token.line, block, condition))
        elif token.kind == PUNCT and token.text == "{":
            blocks.append(token.line)
        elif token.kind == PUNCT and token.text == "}":
            if not blocks:
                raise Unreadable(token.line, "this } closes no {")
            blocks.pop()
        elif token.kind == DIRECTIVE:
            _condition(token, conditions)
    if blocks:
        raise Unreadable(blocks[-1], "this { is never closed")
    if conditions:
        raise Unreadable(conditions[-1], "this #if is never closed by #endif")
    return labels


def _condition(token: Token, conditions: List[int]) -> None:
    match = _DIRECTIVE.match(token.text)
    name = match.group(1).lower() if match else ""
    if name in _OPENS_CONDITION:
        conditions.append(token.line)
    elif name in _INSIDE_CONDITION and not conditions:
        raise Unreadable(token.line, f"#{name} outside any #if")
    elif name == "endif":
        if not conditions:
            raise Unreadable(token.line, "#endif outside any #if")
        conditions.pop()
