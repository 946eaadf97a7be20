"""What IRIS calls, through ##class(%SYS.Python).Import("mirror_vip.bridge").

JSON strings in, JSON strings out, and never an exception for an expected error: ObjectScript
would see a %Exception.PythonException with a traceback. Each function is a thin shell over
`mirror_vip.api`, the same API the command line uses. Flags arrive from ObjectScript as 0/1.

`iris_json` carries the IRIS side: {"mirror_name": "...", "role": "primary|backup|async|none"}.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List

from . import routines, settings
from .errors import EXIT_INCOMPLETE, MirrorVipError
from .report import Report, render_text, summary


def claim(
    settings_json: str,
    iris_json: str = "{}",
    dry_run: bool = False,
    force: bool = False,
    use_cache: bool = False,
) -> str:
    """Point the VIP's route at this member.

    NotifyBecomePrimary runs it (in a JOB) with use_cache: the route tables listed in the
    settings' cache_file are written at once. The reconcile task runs it without: describe
    first, write only what is wrong, refresh the cache.
    """
    flags = {"dry_run": bool(dry_run), "force": bool(force), "use_cache": bool(use_cache)}
    return _run("claim", settings_json, iris_json, **flags)


def refresh(settings_json: str, iris_json: str = "{}") -> str:
    """Read-only: describe the route tables and remember the list in the settings' cache_file,
    so the next failover claim writes at once. The reconcile task runs it on a backup (every
    minute), where a claim is not run; it writes no route."""
    return _run("refresh", settings_json, iris_json)


def release(
    settings_json: str, iris_json: str = "{}", dry_run: bool = False, force: bool = False
) -> str:
    return _run("release", settings_json, iris_json, dry_run=bool(dry_run), force=bool(force))


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
    from . import api  # boto3 loads here: validation and the installer work without it

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
#
# MirrorVip.Installer reads a routine's lines through %Routine, passes them here as a JSON array
# and writes back the lines it gets. `hook` names the routine kind ("ZMIRROR" or "%ZSTART");
# `routine` overrides the routine's name (the IRIS unit tests use a scratch routine).


def routine_install(hook: str, lines_json: str, namespace: str, routine: str = "") -> str:
    """{"ok": true, "lines": [...], "changed": bool} with our blocks in place, or ok false."""

    def run() -> Dict[str, Any]:
        before = _routine_text(lines_json)
        after = routines.install(before, routines.spec_for(hook), namespace, routine or None)
        return {"lines": _routine_lines(after), "changed": after != before}

    return _routine_call(run)


def routine_remove(hook: str, lines_json: str, routine: str = "") -> str:
    """{"ok": true, "lines": [...], "changed": bool, "delete": bool}: delete when only ours."""

    def run() -> Dict[str, Any]:
        removal = routines.remove(
            _routine_text(lines_json), routines.spec_for(hook), routine or None
        )
        return {
            "lines": _routine_lines(removal.text),
            "changed": removal.changed,
            "delete": removal.only_ours,
        }

    return _routine_call(run)


def routine_inspect(hook: str, lines_json: str, namespace: str = "", routine: str = "") -> str:
    """{"ok": true, "installed": bool, "current": bool, "namespace": str|null, "blocks": [...]}."""

    def run() -> Dict[str, Any]:
        state = routines.inspect(
            _routine_text(lines_json), routines.spec_for(hook), namespace or None, routine or None
        )
        return {
            "installed": state.installed,
            "current": state.current,
            "namespace": state.namespace,
            "blocks": list(state.kinds),
        }

    return _routine_call(run)


def _routine_text(lines_json: str) -> str:
    lines = json.loads(lines_json) if lines_json else []
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise routines.RoutineError("expected the routine as a JSON array of lines")
    return "\n".join(lines)


def _routine_lines(text: str) -> List[str]:
    return text.split("\n") if text else []


def _routine_call(run: Callable[[], Dict[str, Any]]) -> str:
    try:
        return json.dumps({"ok": True, **run()})
    except json.JSONDecodeError as exc:
        return json.dumps({"ok": False, "error": f"invalid routine lines: {exc.msg}"})
    except MirrorVipError as exc:
        return json.dumps({"ok": False, "error": str(exc)})
