"""Honest wording (issue 10, item 12): what a report says is what happened.

Each case crosses a real socket where the failure lives there (a refused connection, a request
never answered); throttling comes from moto made to answer as AWS does (conftest.AwsLike).
"""

from __future__ import annotations

import socket
import time
from typing import Any, Iterator

import botocore.session
import pytest

from mirror_vip import api, settings
from mirror_vip import imds as metadata
from mirror_vip.errors import IdentityError
from mirror_vip.report import Report
from sim.imds import Identity, ImdsEmulator
from tests.conftest import VIP, AwsLike, FakeHost, Imds, Member, World

MAC = "02:00:00:aa:bb:cc"
PRIVATE_NAMES = ("_RetriesExceededError", "_RETRIES_EXCEEDED_ERROR_CLS", "EndpointConnectionError")


def closed_port() -> int:
    """A loopback port nothing listens on: a connection there is refused at once."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


def claim(**values: Any) -> Report:
    return api.claim(settings.from_mapping({"vip": VIP, **values}))


def test_imds_refusing_the_connection_is_not_called_silence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It was "gave no IMDSv2 token (no answer within 1s x 2)" for a refusal in 0.2 s."""
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f"http://127.0.0.1:{closed_port()}/")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    started = time.monotonic()
    with pytest.raises(IdentityError) as exc:
        metadata.fetch_identity(botocore.session.Session(), MAC)
    took = time.monotonic() - started
    text = str(exc.value)
    assert "refused" in text and "no answer" not in text, text
    assert took < 1.0, f"{took:.1f}s for a refused connection"


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImdsEmulator]:
    server = ImdsEmulator(
        Identity(
            instance_id="i-0123456789abcdef0",
            region="eu-west-1",
            availability_zone="eu-west-1a",
            mac=MAC,
            eni="eni-0123456789abcdef0",
            vpc_id="vpc-0123456789abcdef0",
            subnet_id="subnet-0123456789abcdef0",
            private_ip="10.0.0.10",
        )
    )
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.start() + "/")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    yield server
    server.stop()


def test_an_imds_path_that_never_answers_is_said_plainly(emulator: ImdsEmulator) -> None:
    """It was "IMDS at ... is unreachable (_RetriesExceededError)": botocore's private class."""
    emulator.add_fault("hang", path="meta-data/placement/")
    with pytest.raises(IdentityError) as exc:
        metadata.fetch_identity(botocore.session.Session(), MAC)
    text = str(exc.value)
    assert not [name for name in PRIVATE_NAMES if name in text], text
    assert "meta-data/placement/region" in text and "answer within 1" in text, text


def test_an_ec2_endpoint_that_refuses_is_said_plainly(
    monkeypatch: pytest.MonkeyPatch, imds: Imds, fake_host: FakeHost
) -> None:
    """It was "... failed (retried until the deadline): EndpointConnectionError: Could not
    connect to the endpoint URL: ...": botocore's class name, shown raw."""
    fake_host.carry()
    imds.become(
        Member("i-0123456789abcdef0", "eni-0123456789abcdef0", fake_host.mac, "subnet-1"),
        "vpc-0123456789abcdef0",
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    report = claim(deadline=4)  # 1.5 s once ran out on a loaded machine before the first call
    text = " | ".join(report.errors)
    assert report.exit_code == 1 and not report.ok
    assert not [name for name in PRIVATE_NAMES if name in text], text
    assert "could not connect" in text and "refused" in text, text
    assert "retried until the deadline" in text, text


def test_a_throttle_that_outlasts_the_deadline_says_it_was_retried(
    member_a: World, aws: AwsLike
) -> None:
    """It was "RequestLimitExceeded: ReplaceRoute on rtb-... refused: Request limit exceeded."
    after a second of retries: nothing said they had been made."""
    aws.throttle["ReplaceRoute"] = 10**6
    aws.throttle["CreateRoute"] = 10**6
    report = claim(deadline=4)  # 1.5 s once left a loaded machine time for one attempt only
    rows = [t for t in report.route_tables if t.action == "error"]
    assert rows and len(rows) == len(report.route_tables), report.route_tables
    for row in rows:
        assert row.error and "RequestLimitExceeded" in row.error, row
        assert "retried until the deadline" in row.error, row
