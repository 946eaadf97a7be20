"""Typed errors: each carries the CLI's exit code and a one-line message saying what to fix."""

from __future__ import annotations

from typing import Optional

EXIT_OK = 0
EXIT_INCOMPLETE = 1  # the operation ran but did not fully succeed, or doctor found a fail
EXIT_INVALID = 2  # invalid input, or a VIP that conflicts with the VPC's layout; nothing changed


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
