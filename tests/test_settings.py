"""Settings validation: the one rule set the CLI, the config file and IRIS share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror_vip import settings
from mirror_vip.errors import ConfigError


def test_defaults() -> None:
    s = settings.from_mapping({})
    assert s.vip is None
    assert (s.interface, s.vip_label, s.route_tables, s.deadline) == ("eth0", "eth0:1", "all", 30.0)
    assert s.to_dict() == {
        "vip": None,
        "interface": "eth0",
        "label": "eth0:1",
        "route_tables": "all",
        "route_table_tag": None,
        "region": None,
        "eni": None,
        "deadline": 30.0,
        "cache_file": None,
        "proxy": None,
        "ec2_endpoint": None,
        "sts_endpoint": None,
        "role_arn": None,
        "external_id": None,
    }


def test_everything_given_is_normalised() -> None:
    s = settings.from_mapping(
        {
            "vip": "192.168.200.10/32",
            "interface": "ens5",
            "label": "ens5:vip",
            "route_tables": "rtb-0123456789abcdef0, rtb-01234567,rtb-0123456789abcdef0",
            "route_table_tag": "mirror-vip=prod",
            "region": "us-gov-west-1",
            "eni": "eni-0123456789abcdef0",
            "deadline": "12.5",
        }
    )
    assert s.vip == "192.168.200.10"
    assert s.route_tables == ("rtb-0123456789abcdef0", "rtb-01234567")
    assert s.route_table_tag == ("mirror-vip", "prod")
    assert s.deadline == 12.5
    assert settings.from_mapping(s.to_dict()) == s  # what IRIS stores round-trips


@pytest.mark.parametrize(
    ("vip", "says"),
    [
        ("2001:db8::1", "IPv6"),
        ("10.0.0.0/24", "single address"),
        ("10.0.0.1/31", "single address"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.5", "multicast"),
        ("169.254.169.254", "link-local"),
        ("127.0.0.1", "loopback"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("10.0.0.256", "not an IPv4"),
        ("vip.example.com", "not an IPv4"),
        ("", "not an IPv4"),
    ],
)
def test_refused_vips_name_the_value(vip: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.validate_vip(vip)
    message = str(caught.value)
    assert repr(vip) in message and says in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "name",
    ["eth0;rm -rf /", "eth 0", "a" * 16, "", ".", "..", "eth0/1", "eth0\n", "éth0", "eth0:1"],
)
def test_refused_interface_names(name: str) -> None:
    with pytest.raises(ConfigError, match="invalid interface"):
        settings.from_mapping({"interface": name})


def test_label_rules() -> None:
    assert settings.from_mapping({"interface": "ens5"}).vip_label == "ens5:1"
    with pytest.raises(ConfigError, match="must begin with the interface name"):
        settings.from_mapping({"interface": "ens5", "label": "eth0:1"})
    with pytest.raises(ConfigError, match="invalid label"):
        settings.from_mapping({"label": "eth0:1; reboot"})
    with pytest.raises(ConfigError, match="longer than 15"):
        settings.from_mapping({"label": "eth0:0123456789ab"})


@pytest.mark.parametrize(
    "tables",
    ["rtb-123", "rtb-0123456789ABCDEF0", "subnet-01234567", "rtb-01234567,", ",", [], ["all"], 7],
)
def test_refused_route_tables(tables: object) -> None:
    with pytest.raises(ConfigError):
        settings.from_mapping({"route_tables": tables})


def test_route_tables_all_and_lists() -> None:
    assert settings.from_mapping({"route_tables": "ALL"}).route_tables == "all"
    assert settings.from_mapping({"route_tables": ["rtb-01234567"]}).route_tables == (
        "rtb-01234567",
    )


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("route_table_tag", "novalue", "Key=Value"),
        ("route_table_tag", "=x", "Key=Value"),
        ("route_table_tag", "aws:cloudformation:stack-name=x", "AWS's own"),
        ("region", "Europe", "region name"),
        ("region", "eu_west_1", "region name"),
        ("eni", "eni-xyz", "eni-"),
        ("eni", "i-0123456789abcdef0", "eni-"),
        ("deadline", "soon", "seconds"),
        ("deadline", 0, "between 1 and"),
        ("deadline", 99999, "between 1 and"),
        ("deadline", float("nan"), "between 1 and"),
        ("deadline", True, "seconds"),
        ("cache_file", "relative/path.json", "absolute file path"),
        ("cache_file", "/var/lib/mirror-vip/", "absolute file path"),
        ("colour", "blue", "unknown setting 'colour'"),
    ],
)
def test_refused_other_settings(key: str, value: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says if says[0] != "u" else "unknown setting"):
        settings.from_mapping({key: value})


def test_empty_tag_value_selects_tables_tagged_with_an_empty_value() -> None:
    assert settings.from_mapping({"route_table_tag": "ha="}).route_table_tag == ("ha", "")


def test_config_file_then_command_line(tmp_path: Path) -> None:
    path = tmp_path / "mirror-vip.json"
    path.write_text(json.dumps({"vip": "192.168.200.10", "deadline": 10, "region": "eu-west-1"}))
    s = settings.load({"deadline": "20", "region": None}, str(path))
    assert (s.vip, s.deadline, s.region) == ("192.168.200.10", 20.0, "eu-west-1")


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read --config"):
        settings.load({}, str(tmp_path / "missing.json"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"vip": ')
    with pytest.raises(ConfigError, match="line 1"):
        settings.load({}, str(broken))
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    with pytest.raises(ConfigError, match="JSON object"):
        settings.load({}, str(listed))


def test_validate_one_sees_the_other_settings() -> None:
    assert settings.validate_one("label", "ens5:9", {"interface": "ens5"}) == "ens5:9"
    with pytest.raises(ConfigError):
        settings.validate_one("label", "ens5:9", {"interface": "eth0"})
    assert settings.validate_one("route_tables", "rtb-01234567", {}) == ["rtb-01234567"]
    with pytest.raises(ConfigError, match="unknown setting"):
        settings.validate_one("vips", "10.0.0.1", {})


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("deadline", 10**400, "about 401 digits"),  # float() of it raised OverflowError
        ("vip", "\udcff", "UTF-8"),  # a non-UTF-8 byte from the shell
        ("route_table_tag", "k=\udcff", "UTF-8"),
        ("route_table_tag", "k=a\x00b", "control character"),
        ("cache_file", "/var/lib/\ud800.json", "UTF-8"),
        ("region", "x" * 100_000, "100000 characters"),
        ("route_tables", [{"a": [1] * 10_000}], "invalid route_tables"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_hostile_values_are_one_short_line(key: str, value: object, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.from_mapping({key: value})
    message = str(caught.value)
    assert says in message and "\n" not in message and len(message) < 400


def test_an_empty_config_path_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match="cannot read --config ''"):
        settings.load({}, "")


def test_unknown_setting_names_are_shortened() -> None:
    with pytest.raises(ConfigError) as caught:
        settings.from_json(json.dumps({"k" * 50_000: 1}))
    assert "unknown setting 'kkk" in str(caught.value) and len(str(caught.value)) < 400
