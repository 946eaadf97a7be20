"""JSON from outside (a --config file, IRIS's strings), bounded: size, depth, numbers, standard
JSON only. Every refusal is a ConfigError (exit 2) saying what was wrong and what was expected.

`json.loads` alone takes text of any length, nests until RecursionError, turns 1e400 into inf
and NaN into nan (which `json.dumps` then writes back as non-standard JSON), and raises
ValueError for an integer of more than 4300 digits on Python 3.11+ only
(`sys.set_int_max_str_digits`, absent from 3.9 and 3.10, where such an integer is built in
quadratic time instead). The same limits hold here on 3.9 to 3.13: the text's length before
parsing, numbers through json's parse_int/parse_float/parse_constant hooks, depth by catching
RecursionError and walking the result.
"""

from __future__ import annotations

import json
import math
import os
import stat
from typing import Any, List, Tuple

from .errors import ConfigError

MAX_DEPTH = 32  # our deepest document is a report: object > route_tables list > table object
MAX_INT_DIGITS = 20  # a 64-bit integer; the largest number a setting takes is a deadline of 3600
SETTINGS_BYTES = 64 * 1024  # settings are a few hundred bytes; 200 route table ids are 5 KB
# IRIS's longest string ("General System Limits", InterSystems docs): the most the ObjectScript
# side can pass (a report, a routine's lines as a JSON array).
IRIS_STRING_CHARS = 3_641_144


class _Refused(ValueError):
    """A number or constant json would accept and we do not (raised from the parse hooks)."""


def loads(text: Any, what: str, expected: str, max_chars: int) -> Any:
    """The value of the JSON `text`; `what` names the input, `expected` says what it should be."""
    if not isinstance(text, str):
        raise ConfigError(f"invalid {what}: {type(text).__name__} given; expected {expected}")
    if len(text) > max_chars:
        raise ConfigError(
            f"invalid {what}: larger than {_size(max_chars)} ({len(text)} characters); "
            f"expected {expected}"
        )
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        problem = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except _Refused as exc:
        problem = str(exc)
    except RecursionError:
        problem = f"nested more than {MAX_DEPTH} levels deep"
    else:
        if not _nested_deeper_than(value, MAX_DEPTH):
            return value
        problem = f"nested more than {MAX_DEPTH} levels deep"
    raise ConfigError(f"invalid {what}: {problem}; expected {expected}")


def read_text_file(path: str, what: str, max_bytes: int) -> str:
    """A regular file's text (UTF-8), at most max_bytes: never a FIFO (blocks), a device
    (/dev/zero never ends) or a directory. Opening a device can itself act (a tape rewinds),
    so the type is checked before opening, and again on what was opened."""
    data = b""
    try:
        kind = _not_regular(os.stat(path).st_mode)
        if not kind:
            flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
            with os.fdopen(os.open(path, flags), "rb") as file:
                kind = _not_regular(os.fstat(file.fileno()).st_mode)  # replaced meanwhile
                if not kind:
                    data = file.read(max_bytes + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot read {what}: {reason}; pass a readable JSON file") from None
    if kind:
        raise ConfigError(f"cannot read {what}: not a regular file ({kind}); pass a JSON file")
    if len(data) > max_bytes:
        raise ConfigError(
            f"invalid {what}: larger than {_size(max_bytes, 'bytes')}; pass a JSON file of settings"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"invalid {what}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None


def _not_regular(mode: int) -> str:
    """'' for a regular file, else what it is."""
    kinds = [
        (stat.S_ISREG, ""),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def _size(limit: int, unit: str = "characters") -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} {unit}"


def _int(digits: str) -> int:
    count = len(digits.lstrip("-"))
    if count > MAX_INT_DIGITS:
        raise _Refused(f"a number of {count} digits (at most {MAX_INT_DIGITS} are taken)")
    return int(digits)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        shown = literal if len(literal) <= 40 else f"{literal[:40]}..."
        raise _Refused(f"the number {shown} is out of range")
    return value


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not standard JSON")


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Iterative: a recursive walk would fail on the very input it is checking."""
    stack: List[Tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False
