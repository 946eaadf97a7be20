"""The API both faces call: claim, release, status, doctor. Each returns a Report."""

from __future__ import annotations

from typing import Any, Dict, Optional

from .report import Report
from .settings import Settings


def claim(
    chosen: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    iris: Optional[Dict[str, Any]] = None,
) -> Report:
    raise NotImplementedError


def release(
    chosen: Settings,
    *,
    dry_run: bool = False,
    force: bool = False,
    iris: Optional[Dict[str, Any]] = None,
) -> Report:
    raise NotImplementedError


def status(chosen: Settings, *, iris: Optional[Dict[str, Any]] = None) -> Report:
    raise NotImplementedError


def doctor(chosen: Settings, *, iris: Optional[Dict[str, Any]] = None) -> Report:
    raise NotImplementedError
