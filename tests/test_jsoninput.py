"""Bounded JSON input: the limits, at their edges, on every Python from 3.9 (no reliance on
sys.set_int_max_str_digits)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror_vip import jsoninput
from mirror_vip.errors import ConfigError

WHAT, EXPECTED = "test input", "a JSON object"


def loads(text: object, limit: int = 1000) -> object:
    return jsoninput.loads(text, WHAT, EXPECTED, limit)


def refused(text: object, limit: int = 1000) -> str:
    with pytest.raises(ConfigError) as caught:
        loads(text, limit)
    message = str(caught.value)
    assert message.startswith(f"invalid {WHAT}: ") and message.endswith(f"expected {EXPECTED}")
    assert "\n" not in message and caught.value.exit_code == 2
    return message


def test_depth_limit_edge() -> None:
    limit = jsoninput.MAX_DEPTH
    assert loads("[" * limit + "]" * limit) is not None
    assert loads("{" + '"a":{' * (limit - 1) + "}" * limit) is not None
    assert "nested more than" in refused("[" * (limit + 1) + "]" * (limit + 1))
    assert "nested more than" in refused("[" * 50_000 + "]" * 50_000, limit=200_000)


def test_integer_digit_limit_edge() -> None:
    digits = jsoninput.MAX_INT_DIGITS
    assert loads("9" * digits) == int("9" * digits)
    assert loads("-" + "9" * digits) == -int("9" * digits)
    assert f"{digits + 1} digits" in refused("1" + "0" * digits)
    assert "4400 digits" in refused("[" + "7" * 4400 + "]", limit=10_000)


@pytest.mark.parametrize("text", ["1e400", "-1e400", "[1.5e309]"])
def test_floats_out_of_range_are_refused(text: str) -> None:
    assert "out of range" in refused(text)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"x": NaN}'])
def test_non_standard_constants_are_refused(text: str) -> None:
    assert "is not standard JSON" in refused(text)


def test_size_limit_edge() -> None:
    assert loads(" " * 998 + "{}") == {}
    assert "larger than 1000 characters (1001 characters)" in refused(" " * 999 + "{}")


@pytest.mark.parametrize("value", [None, 42, b"{}", bytearray(b"{}"), ["{}"], {"a": 1}])
def test_text_must_be_a_string(value: object) -> None:
    assert f"{type(value).__name__} given" in refused(value)


def test_syntax_errors_say_where() -> None:
    assert "line 2 column 1" in refused('{"a":\n}')


def test_what_loads_is_what_json_loads() -> None:
    text = '{"a": [1, -2.5, "x", null, true, {"b": ""}], "c": 12345678901234567890}'
    assert loads(text) == json.loads(text)


def test_read_text_file_limit_edge(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b"x" * 100)
    assert jsoninput.read_text_file(str(path), "--config", 100) == "x" * 100
    with pytest.raises(ConfigError, match="larger than 99 bytes"):
        jsoninput.read_text_file(str(path), "--config", 99)


def test_read_text_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to("/dev/zero")  # a link is followed: what counts is what it names
    with pytest.raises(ConfigError, match="a character device"):
        jsoninput.read_text_file(str(link), "--config", 100)
    with pytest.raises(ConfigError, match="No such file"):
        jsoninput.read_text_file(str(tmp_path / "missing"), "--config", 100)
    with pytest.raises(ConfigError, match="null"):
        jsoninput.read_text_file("/tmp/a\x00b", "--config", 100)
    with pytest.raises(ConfigError, match="File name too long"):
        jsoninput.read_text_file("/" + "a" * 5000, "--config", 100)
