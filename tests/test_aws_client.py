"""The EC2 client is made as boto3 makes it: endpoints and credentials from the standard places;
its connections report to the watchdog."""

from __future__ import annotations

import pytest

from mirror_vip import watchdog
from mirror_vip.aws import attempt_limit_s, botocore_session, client_config, ec2_client
from mirror_vip.errors import IdentityError


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"])
def test_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, keys: None, variable: str
) -> None:
    monkeypatch.setenv(variable, "http://127.0.0.1:4566")
    assert (
        ec2_client(botocore_session(), "eu-west-1", 30).meta.endpoint_url == "http://127.0.0.1:4566"
    )


def test_default_endpoint_is_the_regional_one(keys: None) -> None:
    client = ec2_client(botocore_session(), "ap-southeast-2", 30)
    assert client.meta.endpoint_url == "https://ec2.ap-southeast-2.amazonaws.com"
    assert (
        client.meta.config.retries["total_max_attempts"] == 1
    )  # our loop retries, to the deadline


def test_the_clients_connections_report_to_the_watchdog(keys: None) -> None:
    client = ec2_client(botocore_session(), "eu-west-1", 30)
    classes = client._endpoint.http_session._pool_classes_by_scheme
    assert classes["https"] is watchdog.TrackedHTTPSConnectionPool
    assert classes["http"] is watchdog.TrackedHTTPConnectionPool


def test_credentials_come_from_the_standard_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    credentials = botocore_session().get_credentials()
    assert credentials is not None and credentials.access_key == "AKIDEXAMPLE"
    assert credentials.method == "env"


def test_no_credentials_anywhere_is_said_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(IdentityError, match="no AWS credentials found; attach an instance role"):
        ec2_client(botocore_session(), "eu-west-1", 30)


def test_timeouts_fit_the_deadline() -> None:
    short, long = client_config(4), client_config(600)
    assert short.read_timeout == 1.0 and short.connect_timeout == 0.5
    assert long.read_timeout == 10.0 and long.connect_timeout == 3.0
    assert attempt_limit_s(4) == 1.5 and attempt_limit_s(600) == 13.0
