"""What IRIS calls, through ##class(%SYS.Python).Import("mirror_vip.bridge").

JSON strings in, JSON strings out, and never an exception for an expected error: ObjectScript
would see a %Exception.PythonException with a traceback. Each function is a thin shell over
`mirror_vip.api`, the same API the command line uses.

`iris_json` carries the IRIS side: {"mirror_name": "...", "role": "primary|backup|async|none"}.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict

from . import api, settings
from .errors import EXIT_INCOMPLETE, MirrorVipError
from .report import Report, render_text, summary


def claim(
    settings_json: str, iris_json: str = "{}", dry_run: bool = False, force: bool = False
) -> str:
    """Point the VIP's route at this member. What NotifyBecomePrimary runs (in a JOB)."""
    return _run("claim", settings_json, iris_json, dry_run=dry_run, force=force)


def release(
    settings_json: str, iris_json: str = "{}", dry_run: bool = False, force: bool = False
) -> str:
    return _run("release", settings_json, iris_json, dry_run=dry_run, force=force)


def status(settings_json: str, iris_json: str = "{}") -> str:
    return _run("status", settings_json, iris_json)


def doctor(settings_json: str, iris_json: str = "{}") -> str:
    return _run("doctor", settings_json, iris_json)


def render(report_json: str) -> str:
    """The report as the human text the CLI prints."""
    return render_text(Report.from_dict(json.loads(report_json)))


def summarize(report_json: str) -> str:
    """One line for messages.log."""
    return summary(Report.from_dict(json.loads(report_json)))


def validate_setting(key: str, value_json: str, current_json: str = "{}") -> str:
    """Validate one setting before MirrorVip.Config stores it.

    Returns {"ok": true, "value": <normalised>} or {"ok": false, "error": "<one line>"}.
    """
    try:
        current = settings.parse_json(current_json, "current settings")
        value = json.loads(value_json) if value_json else None
        return json.dumps({"ok": True, "value": settings.validate_one(key, value, current)})
    except json.JSONDecodeError as exc:
        return json.dumps({"ok": False, "error": f"invalid value for {key}: {exc.msg}"})
    except MirrorVipError as exc:
        return json.dumps({"ok": False, "error": str(exc)})


def validate_settings(settings_json: str) -> str:
    """Validate a whole settings object: {"ok": true, "settings": {...}} or {"ok": false, ...}."""
    try:
        return json.dumps({"ok": True, "settings": settings.from_json(settings_json).to_dict()})
    except MirrorVipError as exc:
        return json.dumps({"ok": False, "error": str(exc)})


def _run(command: str, settings_json: str, iris_json: str, **options: Any) -> str:
    report = Report(command=command)
    try:
        iris: Dict[str, Any] = settings.parse_json(iris_json, "IRIS facts")
        report.iris = iris
        chosen = settings.from_json(settings_json)
        run: Callable[..., Report] = getattr(api, command)
        report = run(chosen, iris=iris, **options)
    except MirrorVipError as exc:
        report.fail(str(exc), exc.exit_code)
    except Exception as exc:  # IRIS must get a report, never a Python traceback
        report.fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_INCOMPLETE)
    return report.to_json()


# --- routines: the ZMIRROR / %ZSTART block (text logic in mirror_vip.routines) ----------------
