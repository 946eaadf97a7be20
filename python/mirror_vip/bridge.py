"""What IRIS calls, through ##class(%SYS.Python).Import("mirror_vip.bridge").

JSON strings in, JSON strings out, and never an exception, whatever the arguments: ObjectScript
would see a %Exception.PythonException with a traceback. Input is checked first (strings where
strings are due, JSON bounded by mirror_vip.jsoninput, the AWS_* environment), so bad input
answers ok false / exit code 2 with one line; anything else unforeseen still answers, exit 1.
Each function is a thin shell over `mirror_vip.api`, the same API the command line uses. Flags
arrive from ObjectScript as 0/1.

`iris_json` carries the IRIS side: {"mirror_name": "...", "role": "primary|backup|async|none"}.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import metrics, routines, settings
from .errors import EXIT_INCOMPLETE, ConfigError, MirrorVipError, shown
from .jsoninput import IRIS_STRING_CHARS, SETTINGS_BYTES, loads
from .report import Report, render_text, summary

IRIS_FACTS_EXPECTED = (
    'a JSON object of IRIS facts such as {"mirror_name": "PROD", "role": "primary"}'
)
REPORT_EXPECTED = "the JSON report of a claim, release, status or doctor"
MAX_NAME_CHARS = 255  # a setting key, hook, namespace or routine name (routines: at most 255)
MAX_ANSWER_CHARS = 500  # an unforeseen error's text, cut to one line of this length
_NO_MOMENT = object()
_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")  # epoch seconds, as IRIS writes them


def claim(
    settings_json: str,
    iris_json: str = "{}",
    dry_run: bool = False,
    force: bool = False,
    use_cache: bool = False,
    notified_at: Any = "",
) -> str:
    """Point the VIP's route at this member.

    NotifyBecomePrimary runs it (in a JOB) with use_cache: the route tables listed in the
    settings' cache_file are written at once. The reconcile task runs it without: describe
    first, write only what is wrong, refresh the cache. notified_at: when IRIS called the hook,
    in epoch seconds ($ZTIMESTAMP converted, as text or a number), "" for none: the report
    then carries the seconds from then to the last verified switch (switchtime.py).
    """
    flags = {"dry_run": bool(dry_run), "force": bool(force), "use_cache": bool(use_cache)}
    return _run("claim", settings_json, iris_json, moment=notified_at, **flags)


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
    """The report as the human text the CLI prints; for a report it cannot read, one line
    saying why (the answer is text, not JSON: IRIS prints it)."""
    return _text_answer("render", lambda: render_text(_report(report_json)))


def summarize(report_json: str) -> str:
    """One line for messages.log (or the one line saying why there is none)."""
    return _text_answer("summarize", lambda: summary(_report(report_json)))


def validate_setting(key: str, value_json: str, current_json: str = "{}") -> str:
    """Validate one setting before MirrorVip.Config stores it.

    Returns {"ok": true, "value": <normalised>} or {"ok": false, "error": "<one line>"}.
    """

    def run() -> Dict[str, Any]:
        name = _name("setting name", key)
        current = settings.parse_json(current_json, "current settings")
        value = None
        if value_json != "":  # "": no value, back to the default
            value = loads(value_json, f"value for {shown(name)}", "a JSON value", SETTINGS_BYTES)
        return {"value": settings.validate_one(name, value, current)}

    return _answer(run)


def validate_settings(settings_json: str) -> str:
    """Validate a whole settings object: {"ok": true, "settings": {...}, "shown": {...}} or
    {"ok": false, ...}. "settings" is what to store; "shown" what to display (a proxy's
    password masked: MirrorVip.Config's Show prints it)."""

    def run() -> Dict[str, Any]:
        chosen = settings.from_json(settings_json)
        return {"settings": chosen.to_dict(), "shown": chosen.shown()}

    return _answer(run)


def _run(
    command: str, settings_json: str, iris_json: str, moment: Any = _NO_MOMENT, **options: Any
) -> str:
    """MOMENT: a claim's notified_at as IRIS passed it (_NO_MOMENT: the command takes none)."""
    report = Report(command=command, dry_run=bool(options.get("dry_run")))
    try:
        iris = _iris_facts(iris_json)
        report.iris = iris
        if moment is not _NO_MOMENT:
            options["notified_at"] = _epoch_seconds("notified_at", moment)
        chosen = settings.from_json(settings_json)
        from . import api, environment  # botocore loads here: validation works without it

        environment.check(proxy_setting=bool(chosen.proxy))  # botocore's variables: input too
        run: Callable[..., Report] = getattr(api, command)
        report = run(chosen, iris=iris, **options)
    except MirrorVipError as exc:
        report.fail(str(exc), exc.exit_code)
    except Exception as exc:  # IRIS must get a report, never a Python traceback
        report.fail(_unexpected(exc), EXIT_INCOMPLETE)
    try:
        return report.to_json()
    except Exception as exc:  # not foreseen either: a report that surely serialises
        fallback = Report(command=command)
        fallback.fail(_unexpected(exc), EXIT_INCOMPLETE)
        return fallback.to_json()


def _iris_facts(iris_json: Any) -> Dict[str, Any]:
    """Member.Facts(): mirror_name and role, and any fact a later release adds, each a string
    (or null): nothing else reaches the report, or the role check."""
    facts = settings.parse_json(iris_json, "IRIS facts", IRIS_FACTS_EXPECTED)
    for key, value in facts.items():
        printable = value is None or (isinstance(value, str) and value.isprintable())
        if not (printable and key.isprintable()):
            raise ConfigError(
                f"invalid IRIS facts: {shown(key)}: {shown(value)}: a fact is printable text "
                f"or null; expected {IRIS_FACTS_EXPECTED}"
            )
    return facts


def observe(report_json: str) -> str:
    """What MirrorVip.Metrics shows of a report, for IRIS to store (metrics.observe):
    {"ok": true, "routes": {"rtb-...": 1 or 0, ...}, "vip_on_interface": 1, 0 or null,
    "changed": n} or {"ok": false, "error": "..."}. The SAM endpoint reads what was stored and
    never calls Python."""
    return _answer(lambda: metrics.observe(_report(report_json)))


# --- routines: the ZMIRROR / %ZSTART block (text logic in mirror_vip.routines) ----------------
#
# MirrorVip.Installer reads a routine's lines through %Routine, passes them here as a JSON array
# and writes back the lines it gets. `hook` names the routine kind ("ZMIRROR" or "%ZSTART");
# `routine` overrides the routine's name (the IRIS unit tests use a scratch routine).


def routine_install(hook: str, lines_json: str, namespace: str, routine: str = "") -> str:
    """{"ok": true, "lines": [...], "changed": bool} with our blocks in place, or ok false."""

    def run() -> Dict[str, Any]:
        spec, name = _routine_names(hook, routine)
        before = _routine_text(lines_json)
        after = routines.install(before, spec, _name("namespace", namespace), name)
        return {"lines": _routine_lines(after), "changed": after != before}

    return _answer(run)


def routine_remove(hook: str, lines_json: str, routine: str = "") -> str:
    """{"ok": true, "lines": [...], "changed": bool, "delete": bool}: delete when only ours."""

    def run() -> Dict[str, Any]:
        spec, name = _routine_names(hook, routine)
        removal = routines.remove(_routine_text(lines_json), spec, name)
        return {
            "lines": _routine_lines(removal.text),
            "changed": removal.changed,
            "delete": removal.only_ours,
        }

    return _answer(run)


def routine_inspect(hook: str, lines_json: str, namespace: str = "", routine: str = "") -> str:
    """{"ok": true, "installed": bool, "current": bool, "namespace": str|null, "blocks": [...]}."""

    def run() -> Dict[str, Any]:
        spec, name = _routine_names(hook, routine)
        state = routines.inspect(
            _routine_text(lines_json), spec, _name("namespace", namespace) or None, name
        )
        return {
            "installed": state.installed,
            "current": state.current,
            "namespace": state.namespace,
            "blocks": list(state.kinds),
        }

    return _answer(run)


def _routine_names(hook: Any, routine: Any) -> Tuple[routines.HookSpec, Optional[str]]:
    """The hook's spec and the routine's name (None: the hook's own routine)."""
    return routines.spec_for(_name("hook", hook)), _name("routine", routine) or None


def _routine_text(lines_json: Any) -> str:
    expected = "the routine as a JSON array of lines"
    lines = (
        [] if lines_json == "" else loads(lines_json, "routine lines", expected, IRIS_STRING_CHARS)
    )
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise routines.RoutineError(f"invalid routine lines: expected {expected}")
    return "\n".join(lines)


def _routine_lines(text: str) -> List[str]:
    return text.split("\n") if text else []


# --- input and answers -----------------------------------------------------------------------


def _name(what: str, value: Any) -> str:
    """A short name from ObjectScript: printable text (no newline to end up in a routine)."""
    if not isinstance(value, str) or len(value) > MAX_NAME_CHARS or not value.isprintable():
        raise ConfigError(
            f"invalid {what} {shown(value)}: expected printable text of at most "
            f"{MAX_NAME_CHARS} characters"
        )
    return value


def _epoch_seconds(what: str, value: Any) -> Optional[float]:
    """A moment from IRIS in epoch seconds: a number, or its text (plain decimal, as IRIS
    writes one); "" for none. Anything else is refused: it would be a bug in the caller."""
    if value == "":
        return None
    seconds: Optional[float] = None
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        seconds = float(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value) if abs(value) < 1e12 else None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(
            f"invalid {what} {shown(value)}: expected epoch seconds such as 1733100000.123 "
            '(IRIS: $ZTIMESTAMP converted), or "" for none'
        )
    return seconds


def _report(report_json: Any) -> Report:
    data = loads(report_json, "report JSON", REPORT_EXPECTED, IRIS_STRING_CHARS)
    if not isinstance(data, dict):
        raise ConfigError(f"invalid report JSON: not an object; expected {REPORT_EXPECTED}")
    return Report.from_dict(data)


def _answer(run: Callable[[], Dict[str, Any]]) -> str:
    """{"ok": true, ...run()} or {"ok": false, "error": "<one line>"}; never raises."""
    try:
        return _dumps({"ok": True, **run()})
    except MirrorVipError as exc:
        return _dumps({"ok": False, "error": str(exc)})
    except Exception as exc:  # IRIS must get an answer, never a Python traceback
        return _dumps({"ok": False, "error": _unexpected(exc)})


def _text_answer(verb: str, run: Callable[[], str]) -> str:
    try:
        return run()
    except MirrorVipError as exc:
        return f"mirror-vip: cannot {verb} the report: {exc}"
    except Exception as exc:  # IRIS must get text, never a Python traceback
        return f"mirror-vip: cannot {verb} the report: {_unexpected(exc)}"


def _dumps(answer: Dict[str, Any]) -> str:
    return json.dumps(answer, allow_nan=False)


def _unexpected(exc: Exception) -> str:
    """An error nothing foresaw, as one bounded line (IRIS logs it as is)."""
    if isinstance(exc, ImportError):
        return (
            f"Python cannot import {exc.name or 'a module'} ({exc}); reinstall mirror-vip "
            '(zpm "install mirror-vip") so that IPM installs requirements.txt into mgr/python'
        )
    text = " ".join(f"unexpected {type(exc).__name__}: {exc}".split())
    return text if len(text) <= MAX_ANSWER_CHARS else text[: MAX_ANSWER_CHARS - 3] + "..."
