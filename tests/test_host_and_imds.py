"""Local facts (`ip -j`, sysfs) and the IMDSv2 identity."""

from __future__ import annotations

import json
import shutil
import socket
import time

import botocore.session
import pytest

from mirror_vip import api, host, settings
from mirror_vip import imds as metadata
from mirror_vip.errors import HostError, IdentityError
from tests.conftest import REGION, AwsLike, Imds, Member, World

IP_JSON = json.dumps(
    [
        {
            "ifindex": 2,
            "ifname": "eth0",
            "addr_info": [
                {"family": "inet", "local": "10.20.1.10", "prefixlen": 24, "label": "eth0"},
                {"family": "inet", "local": "10.20.1.11", "prefixlen": 24, "label": "eth0"},
                {"family": "inet", "local": "192.168.200.10", "prefixlen": 32, "label": "eth0:1"},
                {"family": "inet", "local": "192.168.200.11", "prefixlen": 32, "label": "eth0:2"},
            ],
        }
    ]
)


def test_labelled_address_among_several() -> None:
    found = host.parse_ip_json(IP_JSON)
    assert [a.address for a in found] == [
        "10.20.1.10",
        "10.20.1.11",
        "192.168.200.10",
        "192.168.200.11",
    ]
    assert host.labelled_address(found, "eth0:1") == "192.168.200.10"
    assert host.labelled_address(found, "eth0:2") == "192.168.200.11"
    assert host.labelled_address(found, "eth0:3") is None
    assert host.has_address(found, "192.168.200.11")


def test_ip_json_edge_cases() -> None:
    assert host.parse_ip_json("[]") == []
    assert host.parse_ip_json('[{"ifname": "eth0"}]') == []  # a link with no IPv4 address
    with pytest.raises(HostError, match="cannot parse"):
        host.parse_ip_json("inet 10.0.0.1/24 scope global eth0")


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (`ip`) is not installed")
def test_real_ip_command_on_loopback() -> None:
    found = host.addresses("lo")
    assert host.labelled_address(found, "lo") == "127.0.0.1"
    assert host.mac_address("lo") == "00:00:00:00:00:00"


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (`ip`) is not installed")
def test_missing_interface_says_what_to_pass() -> None:
    with pytest.raises(HostError, match="pass --interface"):
        host.addresses("nosuchif0")
    with pytest.raises(HostError, match="pass --interface"):
        host.mac_address("nosuchif0")


MEMBER = Member("i-0123456789abcdef0", "eni-0123456789abcdef0", "02:00:00:00:00:01", "subnet-1")


def _core() -> botocore.session.Session:
    return botocore.session.get_session()


def test_identity_over_imdsv2_with_one_token(imds: Imds) -> None:
    imds.become(MEMBER, "vpc-0123456789abcdef0")
    found = imds_identity()
    assert (found.instance_id, found.region, found.eni, found.vpc_id) == (
        MEMBER.instance_id,
        REGION,
        MEMBER.eni,
        "vpc-0123456789abcdef0",
    )
    puts = [r for r in imds.requests if r[0] == "PUT"]
    gets = [r for r in imds.requests if r[0] == "GET"]
    assert len(puts) == 1 and len(gets) == 4  # one token, reused


def imds_identity() -> metadata.Identity:
    return metadata.fetch_identity(_core(), MEMBER.mac)


def test_expired_token_is_renewed_once(imds: Imds) -> None:
    imds.become(MEMBER, "vpc-0123456789abcdef0")
    imds.expire_next = 1
    assert imds_identity().eni == MEMBER.eni
    assert sum(1 for r in imds.requests if r[0] == "PUT") == 2


def test_imds_that_keeps_refusing_tokens_fails_clearly(imds: Imds) -> None:
    imds.become(MEMBER, "vpc-0123456789abcdef0")
    imds.expire_next = 10
    with pytest.raises(IdentityError, match="401"):
        imds_identity()


def test_unknown_mac(imds: Imds) -> None:
    imds.become(MEMBER, "vpc-0123456789abcdef0")
    with pytest.raises(IdentityError, match="no network interface with MAC 02:00:00:00:00:99"):
        metadata.fetch_identity(_core(), "02:00:00:00:00:99")


def test_disabled_imds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(IdentityError, match="AWS_EC2_METADATA_DISABLED"):
        metadata.fetch_identity(_core(), MEMBER.mac)


def test_unreachable_imds_fails_within_its_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    # a listening socket that never answers: every request waits for its read timeout
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{port}/")
    started = time.monotonic()
    try:
        # the attempt's bound and the socket's read timeout are both 1 s: on a loaded machine
        # either may end the try first, and each says so in its own words
        with pytest.raises(IdentityError, match=r"IMDSv2 token: no (complete )?answer within 1"):
            metadata.fetch_identity(_core(), MEMBER.mac)
    finally:
        silent.close()
    # bounded: at most ATTEMPTS read timeouts, not botocore's defaults or forever
    assert time.monotonic() - started < metadata.TIMEOUT_S * metadata.ATTEMPTS + 2


HTML = "<html>\n<head><title>Proxy Authentication Required</title></head>\n</html>"
MAC_DIR = f"meta-data/network/interfaces/macs/{MEMBER.mac}"


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("meta-data/instance-id", HTML),
        ("meta-data/placement/region", "eu west 1"),
        (f"{MAC_DIR}/interface-id", HTML),
        (f"{MAC_DIR}/vpc-id", "vpc-0123456789abcdef0; DROP"),
    ],
)
def test_imds_values_that_are_not_what_imds_serves_are_refused(
    imds: Imds, path: str, value: str
) -> None:
    """A proxy answering for 169.254.169.254 (an HTML page): refused, naming the value."""
    imds.become(MEMBER, "vpc-0123456789abcdef0")
    imds.paths[path] = value
    with pytest.raises(IdentityError) as exc:
        imds_identity()
    text = str(exc.value)
    assert "IMDS answered unexpectedly" in text and path in text, text
    assert repr(value)[:20] in text and "\n" not in text, text


def test_a_claim_sends_nothing_to_ec2_when_imds_answers_html(
    member_a: World, aws: AwsLike, imds: Imds
) -> None:
    imds.paths[f"meta-data/network/interfaces/macs/{member_a.a.mac}/interface-id"] = HTML
    report = api.claim(settings.from_mapping({}))
    assert aws.calls == []
    assert report.exit_code == 1 and len(report.errors) == 1, report.errors
    assert "IMDS answered unexpectedly" in report.errors[0] and "<html>" in report.errors[0]
    assert set(member_a.targets().values()) == {None}
