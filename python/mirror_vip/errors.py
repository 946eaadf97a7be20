"""Typed errors: each carries the CLI's exit code and a one-line message saying what to fix."""

from __future__ import annotations

import math
import reprlib
from typing import Any, Optional

EXIT_OK = 0
EXIT_INCOMPLETE = 1  # the operation ran but did not fully succeed, or doctor found a fail
EXIT_INVALID = 2  # invalid input, or a VIP that conflicts with the VPC's layout; nothing changed

SHOWN_CHARS = 120  # how much of a long value a message repeats (a long path still fits)


class MirrorVipError(Exception):
    """Base of every expected error: its message is shown to the user as is, never a traceback."""

    exit_code = EXIT_INCOMPLETE


class ConfigError(MirrorVipError):
    """A setting is invalid. Raised before anything is read or changed."""

    exit_code = EXIT_INVALID


class LayoutError(MirrorVipError):
    """The VIP conflicts with the VPC's layout (it lies inside a subnet); found before any write."""

    exit_code = EXIT_INVALID


class HostError(MirrorVipError):
    """A local fact (interface, address, MAC) could not be read."""


class IdentityError(MirrorVipError):
    """The instance's identity (IMDS) could not be established."""


class AwsError(MirrorVipError):
    """An EC2 call failed for good. `code` is AWS's error code (e.g. UnauthorizedOperation)."""

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr, minus its one unbounded case: repr() of an int of more than
    4300 digits raises ValueError on Python 3.11+ (and is slow before)."""

    def repr_int(self, x: int, level: int) -> str:
        return _int_shown(x)


_REPR = _ShortRepr()
_REPR.maxstring = SHOWN_CHARS
_REPR.maxother = SHOWN_CHARS
_REPR.maxlevel = 3


def shown(value: Any) -> str:
    """A value as a message repeats it: repr() when short; a long text as its start and its
    length; containers and huge numbers bounded. Never raises, whatever the value."""
    if isinstance(value, (str, bytes, bytearray)) and len(value) > SHOWN_CHARS:
        unit = "characters" if isinstance(value, str) else "bytes"
        return f"{value[:SHOWN_CHARS]!r}... ({len(value)} {unit})"
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_shown(value)
    try:
        return _REPR.repr(value)
    except Exception:  # a foreign object whose repr fails: its type is still worth naming
        return f"<{type(value).__name__}>"


def _int_shown(x: int) -> str:
    if x.bit_length() <= 200:  # at most 61 digits
        return repr(x)
    digits = int(x.bit_length() * math.log10(2)) + 1
    return f"an integer of about {digits} digits"
