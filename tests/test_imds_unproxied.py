"""IMDS is never asked through a proxy, whatever HTTP(S)_PROXY / ALL_PROXY / NO_PROXY say.

botocore builds its IMDS fetchers' HTTP session with the environment's proxies
(`IMDSFetcher.__init__`: `proxies=get_environ_proxies(base_url)`), so on a host whose shell
exports HTTP_PROXY without NO_PROXY=169.254.169.254 every metadata request (the token PUT, the
identity, the instance role's credentials) goes to the proxy, which forwards it to *its own*
instance's IMDS, or refuses it. Here a real forwarding proxy on loopback stands in the
environment, and the record shows what it carried: nothing.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from mirror_vip import credentials, imds
from mirror_vip.aws import Deadline, botocore_session
from sim.connect_proxy import ConnectProxy
from sim.imds import Identity, ImdsEmulator
from tests.conftest import Imds, Member

MAC = "02:00:00:00:00:01"
WHO = Identity(
    instance_id="i-0123456789abcdef0",
    region="eu-west-1",
    availability_zone="eu-west-1a",
    mac=MAC,
    eni="eni-0123456789abcdef0",
    vpc_id="vpc-0123456789abcdef0",
    subnet_id="subnet-0123456789abcdef0",
    private_ip="10.20.1.10",
)
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY")


@pytest.fixture
def proxy_everything(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectProxy]:
    """Every proxy variable names a forwarding proxy, and NO_PROXY exempts nothing."""
    with ConnectProxy().start() as proxy:
        for name in PROXY_VARIABLES:
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        yield proxy


def test_the_proxy_would_carry_imds_requests(proxy_everything: ConnectProxy, imds: Imds) -> None:
    """What the environment does to anything that follows it (botocore's own fetcher as
    botocore builds it): the proxy forwards IMDS requests. The tests below rely on it."""
    from botocore.utils import IMDSFetcher

    fetcher = IMDSFetcher(base_url=imds.url.rstrip("/"), timeout=2)
    assert fetcher._fetch_metadata_token() is not None
    assert proxy_everything.forwarded() == [f"{imds.url}latest/api/token"]


def test_identity_is_fetched_directly(proxy_everything: ConnectProxy, imds: Imds) -> None:
    imds.become(Member(WHO.instance_id, WHO.eni, MAC, WHO.subnet_id), WHO.vpc_id)
    found = imds_identity()
    assert (found.instance_id, found.eni, found.vpc_id) == (WHO.instance_id, WHO.eni, WHO.vpc_id)
    assert proxy_everything.carried == []
    assert ("PUT", "/latest/api/token") in imds.requests  # IMDS itself was asked


def imds_identity() -> imds.Identity:
    return imds.fetch_identity(botocore_session(), MAC, Deadline(10))


def test_instance_role_credentials_are_fetched_directly(
    proxy_everything: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's own credential chain (InstanceMetadataProvider), as a claim resolves it."""
    emulator = ImdsEmulator(WHO)
    url = emulator.start()
    try:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
        monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
        core = botocore_session()
        found = credentials.resolve(core, Deadline(10).end, 10)
        assert found.get_frozen_credentials().access_key == WHO.access_key_id
        assert proxy_everything.carried == []
        assert any("security-credentials" in c.path for c in emulator.gets())
    finally:
        emulator.stop()
