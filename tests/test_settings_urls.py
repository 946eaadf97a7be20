"""The URL settings (`proxy`, `ec2_endpoint`, `sts_endpoint`): what is accepted, what is refused
in one line naming the value and the fix, and a proxy's password never repeated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror_vip import bridge, settings
from mirror_vip.errors import ConfigError
from mirror_vip.urls import masked

VPCE_EC2 = "https://vpce-0123456789abcdef0-abcdefgh.ec2.eu-west-1.vpce.amazonaws.com"
VPCE_STS = "https://vpce-0fedcba9876543210-hgfedcba.sts.eu-west-1.vpce.amazonaws.com"
SECRET = "s3cr%40t"


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("http://proxy.corp.example:3128", "http://proxy.corp.example:3128"),
        ("  https://proxy.corp.example:8443/  ", "https://proxy.corp.example:8443"),
        ("http://10.0.0.5:3128", "http://10.0.0.5:3128"),
        ("http://[fd00::5]:3128", "http://[fd00::5]:3128"),
        (f"http://svc-mirror:{SECRET}@proxy.corp.example:3128", None),
    ],
)
def test_proxies_accepted(given: str, kept: str) -> None:
    assert settings.from_mapping({"proxy": given}).proxy == (kept or given)


@pytest.mark.parametrize(
    ("key", "given"),
    [
        ("ec2_endpoint", VPCE_EC2),
        (
            "ec2_endpoint",
            "https://vpce-0123456789abcdef0-abcdefgh-eu-west-1a.ec2.eu-west-1.vpce.amazonaws.com",
        ),
        ("ec2_endpoint", "https://ec2.eu-west-1.amazonaws.com"),
        ("ec2_endpoint", "https://ec2-fips.us-east-1.amazonaws.com"),
        ("ec2_endpoint", "https://ec2.aws.corp.example:8443"),  # a private alias of the endpoint
        ("sts_endpoint", VPCE_STS),
        ("sts_endpoint", "https://sts.eu-west-1.amazonaws.com"),
    ],
)
def test_endpoints_accepted(key: str, given: str) -> None:
    assert getattr(settings.from_mapping({key: given}), key) == given


@pytest.mark.parametrize(
    ("key", "given", "says"),
    [
        ("proxy", "proxy.corp.example:3128", "expected http:// or https://"),
        ("proxy", "socks5://proxy.corp.example:1080", "not SOCKS"),
        ("proxy", "ftp://proxy.corp.example:21", "expected http:// or https://"),
        ("proxy", "http://proxy.corp.example", "port is missing"),
        ("proxy", "http://proxy.corp.example:99999", "port out of range"),
        ("proxy", "http://proxy.corp.example:0", "port 0"),
        ("proxy", "http://proxy.corp.example:3128/squid", "nothing after it"),
        ("proxy", "http://proxy.corp.example:3128?x=1", "nothing after it"),
        ("proxy", "http://-proxy-:3128", "not a valid DNS name"),
        ("proxy", "http://[fd00::5:3128", "invalid ipv6"),
        ("proxy", "http://proxy corp:3128", "whitespace"),
        ("proxy", 3128, "expected a URL as a string"),
        ("ec2_endpoint", "http://ec2.eu-west-1.amazonaws.com", "expected https://"),
        ("ec2_endpoint", "vpce-0123.ec2.eu-west-1.vpce.amazonaws.com", "expected https://"),
        ("ec2_endpoint", VPCE_STS, "an endpoint of sts, not ec2"),
        ("sts_endpoint", VPCE_EC2, "an endpoint of ec2, not sts"),
        ("ec2_endpoint", "https://sts.eu-west-1.amazonaws.com", "an endpoint of sts, not ec2"),
        ("ec2_endpoint", VPCE_EC2 + "/path", "nothing after it"),
        ("ec2_endpoint", "https://user:pw@ec2.eu-west-1.amazonaws.com", "no user or password"),
        ("sts_endpoint", "https://sts.eu-west-1.amazonaws.com:65536", "port out of range"),
    ],
)
def test_refused_in_one_line_naming_value_and_fix(key: str, given: object, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.from_mapping({key: given})
    message = str(caught.value)
    assert message.startswith(f"invalid {key} ")
    assert says in message and "\n" not in message and len(message) < 400
    if isinstance(given, str) and "@" not in given:
        assert repr(given.strip()) in message
    assert "; " in message  # then the fix


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("http://svc:p@ss@proxy.corp.example:3128", "percent-encode"),  # '@' unencoded
        ("http://svc:pa/ss@proxy.corp.example:3128", "percent-encode"),  # parsed as a path
        ("http://svc:pa#ss@proxy.corp.example:3128", "percent-encode"),  # parsed as a fragment
        ("http://svc:pässword@proxy.corp.example:3128", "non-ASCII"),
        ("http://svc:p%C3%A4ss@proxy.corp.example:3128", "as ASCII"),  # botocore: ascii codec
        ("http://svc@proxy.corp.example:3128", "needs a password"),
        ("http://svc:@proxy.corp.example:3128", "needs a password"),
        ("http://svc:secretword@proxy.corp.example", "port is missing"),
    ],
)
def test_a_refused_proxy_never_repeats_its_password(given: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.from_mapping({"proxy": given})
    message = str(caught.value)
    assert says in message
    for fragment in ("p@ss", "pa/ss", "pa#ss", "pässword", "p%C3%A4ss", "secretword"):
        assert fragment not in message
    assert "proxy.corp.example" in message and "***" in message


def test_a_password_is_kept_for_botocore_and_shown_masked() -> None:
    url = f"http://svc-mirror:{SECRET}@proxy.corp.example:3128"
    chosen = settings.from_mapping({"proxy": url})
    assert chosen.to_dict()["proxy"] == url  # what IRIS stores: the whole URL
    assert chosen.shown()["proxy"] == "http://svc-mirror:***@proxy.corp.example:3128"
    assert SECRET not in repr(chosen)
    answer = json.loads(bridge.validate_settings(json.dumps({"proxy": url})))
    assert answer["settings"]["proxy"] == url  # MirrorVip.Config stores this
    assert answer["shown"]["proxy"] == "http://svc-mirror:***@proxy.corp.example:3128"  # Show()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p@h:1", "http://u:***@h:1"),
        ("http://token@h:1", "http://***@h:1"),
        ("http://u:p@ss/w@h:1", "http://u:***@h:1"),
        ("u:p@h:1", "u:***@h:1"),
        ("http://h:1", "http://h:1"),
    ],
)
def test_masked(url: str, shown: str) -> None:
    assert masked(url) == shown


def test_validate_one_and_round_trip() -> None:
    values = {"proxy": "http://proxy.corp.example:3128", "ec2_endpoint": VPCE_EC2}
    assert settings.validate_one("sts_endpoint", VPCE_STS, values) == VPCE_STS
    chosen = settings.from_mapping({**values, "sts_endpoint": VPCE_STS})
    stored = chosen.to_dict()  # what IRIS stores round-trips
    assert settings.from_mapping(stored).to_dict() == stored
    assert settings.validate_one("proxy", "", values) is None  # "": back to the default


def test_iris_show_prints_the_masked_settings() -> None:
    """MirrorVip.Config's Show() displays "shown", not "settings" (which it stores)."""
    text = (Path(__file__).resolve().parents[1] / "src/cls/MirrorVip/Config.cls").read_text()
    show = text.split("ClassMethod Show()", 1)[1].split("\nClassMethod ", 1)[0]
    assert "answer.shown.%GetIterator()" in show and "answer.settings" not in show
