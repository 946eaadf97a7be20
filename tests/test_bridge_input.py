"""The bridge never raises: every function IRIS calls, given hostile arguments in every position,
answers (JSON where its answer is JSON) with ok false and, for a command, exit code 2 and
nothing sent to AWS."""

from __future__ import annotations

import inspect
import json
from typing import Any, Dict, List, Tuple

import pytest

from mirror_vip import bridge
from mirror_vip.report import Report, TableResult
from tests.conftest import VIP, AwsLike

SETTINGS = json.dumps(
    {"vip": VIP, "interface": "lo", "eni": "eni-0123456789abcdef0", "region": "eu-west-1"}
)
IRIS = json.dumps({"mirror_name": "PROD", "role": "primary"})
REPORT = Report(
    command="claim", vip=VIP, route_tables=[TableResult(id="rtb-01234567", action="created")]
).to_json()

# valid arguments of each function; each test replaces one of them
COMMANDS: Dict[str, Tuple[Any, ...]] = {
    "claim": (SETTINGS, IRIS),
    "release": (SETTINGS, IRIS),
    "status": (SETTINGS, IRIS),
    "doctor": (SETTINGS, IRIS),
    "refresh": (SETTINGS, IRIS),
}
ANSWERS: Dict[str, Tuple[Any, ...]] = {
    "validate_setting": ("vip", '"10.1.2.3"', "{}"),
    "validate_settings": (SETTINGS,),
    "routine_install": ("ZMIRROR", "[]", "USER", ""),
    "routine_remove": ("ZMIRROR", "[]", ""),
    "routine_inspect": ("ZMIRROR", "[]", "USER", ""),
    "observe": (REPORT,),
}
TEXTS: Dict[str, Tuple[Any, ...]] = {"render": (REPORT,), "summarize": (REPORT,)}

NOT_TEXT: List[Any] = [None, 42, 4.5, True, b"{}", bytearray(b"[]"), ["{}"], {"a": 1}, object()]
TEXT = [
    "x" * 4_000_000,  # more than IRIS can even pass
    "[" * 100_000 + "]" * 100_000,
    "\x00\xff\ufffe\udcff",
    "\ud800",
]
JSON_TEXT = [
    '{"deadline": ' + "1" * 4400 + "}",
    '{"deadline": 1' + "0" * 400 + "}",
    '{"deadline": 1e400}',
    '{"deadline": NaN}',
    '{"interface": "\\ud800"}',
    '{"a": ' * 50 + "1" + "}" * 50,
    "[]",
    '"text"',
    "1",
    "null",
    "{",
]


def strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise AssertionError(f"not standard JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def cases(functions: Dict[str, Tuple[Any, ...]]) -> List[Tuple[str, int, Any]]:
    found = []
    for name, args in functions.items():
        for position, arg in enumerate(args):
            is_json = arg.startswith(("{", "[", '"')) or name.startswith(("render", "summ"))
            hostile = NOT_TEXT + TEXT + (JSON_TEXT if is_json else [])
            if name == "validate_setting" and position == 1:
                hostile = [h for h in hostile if h != "null"]  # null: back to the default
            found += [(name, position, h) for h in hostile if h is not arg and h != arg]
    return found


def ident(case: Any) -> str:
    """A test id that is the same in every process (pytest-xdist compares them)."""
    return "object()" if type(case) is object else repr(case)[:40]


def call(name: str, args: Tuple[Any, ...], position: int, hostile: Any) -> Any:
    chosen = list(args)
    chosen[position] = hostile
    result = getattr(bridge, name)(*chosen)
    assert isinstance(result, str)
    return result


def one_line(message: str) -> None:
    assert "\n" not in message and 0 < len(message) < 600, message[:600]
    assert "Traceback" not in message


@pytest.mark.parametrize(("name", "position", "hostile"), cases(COMMANDS), ids=ident)
def test_commands_refuse_with_exit_2_and_send_nothing(
    aws: AwsLike, name: str, position: int, hostile: Any
) -> None:
    report = strict(call(name, COMMANDS[name], position, hostile))
    assert report["ok"] is False and report["exit_code"] == 2, report["errors"]
    assert report["outcome"] == "failure" and len(report["errors"]) == 1
    one_line(report["errors"][0])
    assert "unexpected" not in report["errors"][0]
    assert aws.calls == []


@pytest.mark.parametrize(("name", "position", "hostile"), cases(ANSWERS), ids=ident)
def test_answers_are_ok_false_with_one_line(name: str, position: int, hostile: Any) -> None:
    answer = strict(call(name, ANSWERS[name], position, hostile))
    assert answer["ok"] is False and set(answer) == {"ok", "error"}
    one_line(answer["error"])
    assert "unexpected" not in answer["error"]


@pytest.mark.parametrize(("name", "position", "hostile"), cases(TEXTS), ids=ident)
def test_render_and_summarize_answer_one_line_saying_why(
    name: str, position: int, hostile: Any
) -> None:
    text = call(name, TEXTS[name], position, hostile)
    one_line(text)
    assert text.startswith(f"mirror-vip: cannot {name} the report: ")


@pytest.mark.parametrize(
    "report",
    [
        {"command": 1},
        {"route_tables": []},
        {"command": "claim", "route_tables": {}},
        {"command": "claim", "route_tables": [1]},
        {"command": "claim", "route_tables": [{"id": None}]},
        {"command": "claim", "route_tables": [{"action": "created"}]},
        {"command": "claim", "checks": [{"name": "x", "status": "pass"}]},
        {"command": "claim", "errors": "boom"},
        {"command": "claim", "errors": [1]},
        {"command": "claim", "ok": "yes"},
        {"command": "claim", "exit_code": True},
        {"command": "claim", "elapsed_s": "1"},
        {"command": "claim", "iris": []},
    ],
    ids=ident,
)
def test_reports_of_the_wrong_shape_are_refused(report: Dict[str, Any]) -> None:
    for name in ("render", "summarize"):
        text = getattr(bridge, name)(json.dumps(report))
        one_line(text)
        assert text.startswith(f"mirror-vip: cannot {name} the report: ")


def test_a_report_keeps_rendering_with_fields_it_does_not_know() -> None:
    """Reports pass through IRIS (history) and may come from a newer core."""
    data = json.loads(REPORT)
    data["new_field"] = 1
    data["route_tables"][0]["new_field"] = "x"
    assert "changed 1 of 1 route table(s)" in bridge.summarize(json.dumps(data))
    data["elapsed_s"] = 2  # IRIS may hand a whole number back as an integer
    assert "rtb-01234567" in bridge.render(json.dumps(data))


def test_output_is_standard_json_whatever_the_iris_facts_hold(aws: AwsLike) -> None:
    for facts in ('{"x": NaN}', '{"x": 1e999}', '{"x": -Infinity}'):
        report = strict(bridge.status(SETTINGS, facts))
        assert report["exit_code"] == 2 and "IRIS facts" in report["errors"][0]
    assert aws.calls == []


def test_iris_facts_are_not_called_settings(aws: AwsLike) -> None:
    report = json.loads(bridge.claim(SETTINGS, "[]"))
    error = report["errors"][0]
    assert report["exit_code"] == 2 and error.startswith("invalid IRIS facts:")
    assert "settings" not in error and '"role": "primary"' in error
    report = json.loads(bridge.claim(SETTINGS, '{"role": ["primary"]}'))
    assert report["exit_code"] == 2 and "role" in report["errors"][0]
    assert aws.calls == []


# claim's 6th argument, notified_at: epoch seconds as IRIS writes them (text or a number), or ""
NOT_A_MOMENT: List[Any] = [
    *[h for h in NOT_TEXT if not isinstance(h, (int, float)) or isinstance(h, bool)],
    *TEXT,
    *["x", "1e9", "-1", "0", "NaN", "inf", " 1733100000", "1733100000.", "1" * 40, "12,5"],
    *[float("nan"), float("inf"), -1.0, 0, 10**40],
]


@pytest.mark.parametrize("hostile", NOT_A_MOMENT, ids=ident)
def test_a_claim_refuses_a_hook_time_that_is_no_moment(aws: AwsLike, hostile: Any) -> None:
    report = strict(bridge.claim(SETTINGS, IRIS, 0, 0, 1, hostile))
    assert report["ok"] is False and report["exit_code"] == 2, report["errors"]
    assert len(report["errors"]) == 1 and report["errors"][0].startswith("invalid notified_at")
    one_line(report["errors"][0])
    assert aws.calls == []


@pytest.mark.parametrize("moment", ["", "1733100000", "1733100000.123456", 1733100000, 1.7e9])
def test_a_claim_takes_a_hook_time_as_iris_passes_it(moment: Any) -> None:
    """Refused settings (exit 2) stop the claim after the hook time was taken: none of these
    is what is refused."""
    report = strict(bridge.claim('{"vip": "10.0.0.0/8"}', IRIS, 0, 0, 1, moment))
    assert report["exit_code"] == 2 and "notified_at" not in report["errors"][0]


@pytest.mark.parametrize("flag", [None, 2, "yes", [], object()])
def test_flags_of_any_type_never_raise(aws: AwsLike, flag: Any) -> None:
    report = strict(bridge.claim('{"vip": "10.0.0.0/8"}', IRIS, flag, flag, flag))
    assert report["exit_code"] == 2 and aws.calls == []


def test_every_public_function_is_covered() -> None:
    public = {
        name
        for name, fn in inspect.getmembers(bridge, inspect.isfunction)
        if not name.startswith("_") and fn.__module__ == bridge.__name__
    }
    assert public == set(COMMANDS) | set(ANSWERS) | set(TEXTS)


def test_an_unexpected_error_is_still_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """What no validation foresaw (here: a bug in the routine code) is exit 1, one line."""

    def broken(*args: Any) -> Any:
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(bridge.routines, "inspect", broken)
    answer = strict(bridge.routine_inspect("ZMIRROR", "[]"))
    assert answer["ok"] is False and answer["error"].startswith("unexpected ZeroDivisionError")
    one_line(answer["error"])
    monkeypatch.setattr(bridge.settings, "from_json", broken)
    report = strict(bridge.status("{}", "{}"))
    assert report["exit_code"] == 1 and report["errors"][0].startswith("unexpected")
    one_line(report["errors"][0])


def test_valid_calls_still_answer(aws: AwsLike) -> None:
    """The contract the hostile cases are measured against."""
    assert strict(bridge.validate_setting(*ANSWERS["validate_setting"])) == {
        "ok": True,
        "value": "10.1.2.3",
    }
    assert strict(bridge.validate_setting("deadline", ""))["value"] == 30.0
    assert strict(bridge.validate_settings(SETTINGS))["ok"] is True
    for name in ("routine_install", "routine_remove", "routine_inspect"):
        assert strict(call(name, ANSWERS[name], 0, "ZMIRROR"))["ok"] is True
    assert "rtb-01234567" in bridge.render(REPORT)
