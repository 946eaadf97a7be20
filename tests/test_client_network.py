"""The EC2 client takes the network settings through botocore's own config: the proxy setting
as Config(proxies=...), over whatever HTTPS_PROXY / NO_PROXY say; ec2_endpoint as its
endpoint_url, over AWS_ENDPOINT_URL*; and its proxied connections report to the watchdog."""

from __future__ import annotations

import pytest

from mirror_vip import watchdog
from mirror_vip.aws import botocore_session, client_config, ec2_client

VPCE_EC2 = "https://vpce-0123456789abcdef0-abcdefgh.ec2.eu-west-1.vpce.amazonaws.com"
PROXY = "http://svc:s3cr%40t@proxy.corp.example:3128"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_PROFILE", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")


def proxy_used(client: object) -> object:
    http = client._endpoint.http_session  # type: ignore[attr-defined]
    return http._proxy_config.proxy_url_for(client.meta.endpoint_url)  # type: ignore[attr-defined]


def test_the_proxy_setting_is_botocores_proxies_config() -> None:
    config = client_config(30, PROXY)
    assert config.proxies == {"http": PROXY, "https": PROXY}
    assert config.proxies_config == {"proxy_use_forwarding_for_https": False}  # CONNECT, always
    assert client_config(30).proxies is None  # no setting: botocore reads the environment


def test_the_proxy_setting_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://other.corp.example:8080")
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")  # would send EC2 direct: not with a setting
    assert proxy_used(ec2_client(botocore_session(), "eu-west-1", 30, proxy=PROXY)) == PROXY


def test_without_the_setting_botocore_follows_https_proxy_and_no_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://other.corp.example:8080")
    assert proxy_used(ec2_client(botocore_session(), "eu-west-1", 30)) == (
        "http://other.corp.example:8080"
    )
    monkeypatch.setenv("NO_PROXY", ".amazonaws.com")
    assert proxy_used(ec2_client(botocore_session(), "eu-west-1", 30)) is None


def test_ec2_endpoint_wins_over_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", "https://ec2.other.example")
    client = ec2_client(botocore_session(), "eu-west-1", 30, endpoint_url=VPCE_EC2)
    assert client.meta.endpoint_url == VPCE_EC2
    assert client.meta.region_name == "eu-west-1"  # signed for the region, whatever the name


def test_proxied_pools_are_watched_too() -> None:
    """botocore's proxy managers share the session's pool classes (httpsession
    _get_proxy_manager), so a proxied connection reports to the watchdog as a direct one."""
    client = ec2_client(botocore_session(), "eu-west-1", 30, proxy=PROXY)
    http = client._endpoint.http_session
    manager = http._get_connection_manager(client.meta.endpoint_url, PROXY)
    pool = manager.connection_from_url(client.meta.endpoint_url)
    assert isinstance(pool, watchdog.TrackedHTTPSConnectionPool)
    headers = manager.proxy_headers
    assert headers["Proxy-Authorization"].startswith("Basic ")  # botocore sends the pair
