"""The EC2 client is made as boto3 makes it: endpoints and credentials from the standard places."""

from __future__ import annotations

import pytest

from mirror_vip.aws import botocore_session, client_config, ec2_client


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"])
def test_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "http://127.0.0.1:4566")
    assert (
        ec2_client(botocore_session(), "eu-west-1", 30).meta.endpoint_url == "http://127.0.0.1:4566"
    )


def test_default_endpoint_is_the_regional_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    client = ec2_client(botocore_session(), "ap-southeast-2", 30)
    assert client.meta.endpoint_url == "https://ec2.ap-southeast-2.amazonaws.com"
    assert (
        client.meta.config.retries["total_max_attempts"] == 1
    )  # our loop retries, to the deadline


def test_credentials_come_from_the_standard_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    credentials = botocore_session().get_credentials()
    assert credentials is not None and credentials.access_key == "AKIDEXAMPLE"
    assert credentials.method == "env"


def test_timeouts_fit_the_deadline() -> None:
    short, long = client_config(4), client_config(600)
    assert short.read_timeout == 1.0 and short.connect_timeout == 0.5
    assert long.read_timeout == 10.0 and long.connect_timeout == 3.0
