"""The IMDSv2 emulator (sim.imds): tokens enforced, the instance's identity, role credentials
in botocore's shape, and its fault modes; checked with raw HTTP, with botocore's own
credential provider, and with the product's identity lookup."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any, Dict, Iterator, Optional, Tuple

import botocore.session
import pytest
from botocore.utils import InstanceMetadataFetcher

from mirror_vip import imds as product_imds
from mirror_vip.errors import IdentityError
from sim.imds import Identity, ImdsEmulator, _ImdsHandler, access_key_for

MAC = "02:00:00:aa:bb:cc"
TTL = "X-aws-ec2-metadata-token-ttl-seconds"
IDENTITY = Identity(
    instance_id="i-0123456789abcdef0",
    region="eu-west-1",
    availability_zone="eu-west-1b",
    mac=MAC,
    eni="eni-0123456789abcdef0",
    vpc_id="vpc-0123456789abcdef0",
    subnet_id="subnet-0123456789abcdef0",
    private_ip="10.109.10.74",
    vpc_cidr="10.109.10.0/24",
    subnet_cidr="10.109.10.64/26",
)


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImdsEmulator]:
    """On loopback, with botocore pointed at it and nothing else to find credentials in."""
    server = ImdsEmulator(IDENTITY)
    url = server.start()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url + "/")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    yield server
    server.stop()


def request(
    server: ImdsEmulator, method: str, path: str, headers: Optional[Dict[str, str]] = None
) -> Tuple[int, str]:
    host, port = server.endpoint.replace("http://", "").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def token(server: ImdsEmulator, ttl: str = "60") -> str:
    status, text = request(
        server, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": ttl}
    )
    assert status == 200
    return text


def get(server: ImdsEmulator, path: str, tok: Optional[str]) -> Tuple[int, str]:
    headers = {"X-aws-ec2-metadata-token": tok} if tok else {}
    return request(server, "GET", "/latest/" + path, headers)


# --- IMDSv2 as AWS serves it --------------------------------------------------------------------


def test_get_without_a_token_is_401(emulator: ImdsEmulator) -> None:
    assert get(emulator, "meta-data/instance-id", None)[0] == 401
    assert get(emulator, "meta-data/instance-id", "forged")[0] == 401


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 400),
        ({"X-aws-ec2-metadata-token-ttl-seconds": "0"}, 400),
        ({"X-aws-ec2-metadata-token-ttl-seconds": "21601"}, 400),
        ({"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "1.2.3.4"}, 403),
    ],
)
def test_token_requests_are_checked(
    emulator: ImdsEmulator, headers: Dict[str, str], status: int
) -> None:
    assert request(emulator, "PUT", "/latest/api/token", headers)[0] == status


def test_identity_paths(emulator: ImdsEmulator) -> None:
    tok = token(emulator)
    mac_dir = f"meta-data/network/interfaces/macs/{MAC}/"
    expected = {
        "meta-data/instance-id": IDENTITY.instance_id,
        "meta-data/placement/region": IDENTITY.region,
        "meta-data/placement/availability-zone": IDENTITY.availability_zone,
        "meta-data/placement/availability-zone/": IDENTITY.availability_zone,
        "meta-data/mac": MAC,
        mac_dir + "interface-id": IDENTITY.eni,
        mac_dir + "vpc-id": IDENTITY.vpc_id,
        mac_dir + "subnet-id": IDENTITY.subnet_id,
        mac_dir + "subnet-ipv4-cidr-block": IDENTITY.subnet_cidr,
    }
    assert {path: get(emulator, path, tok) for path in expected} == {
        path: (200, value) for path, value in expected.items()
    }
    assert (
        get(emulator, "meta-data/network/interfaces/macs/02:00:00:00:00:01/interface-id", tok)[0]
        == 404
    )
    assert get(emulator, "meta-data/network/interfaces/macs/", tok) == (200, MAC + "/")
    doc = json.loads(get(emulator, "dynamic/instance-identity/document", tok)[1])
    assert (doc["instanceId"], doc["region"]) == (IDENTITY.instance_id, IDENTITY.region)


def test_role_credentials_in_botocores_shape(emulator: ImdsEmulator) -> None:
    tok = token(emulator)
    status, role = get(emulator, "meta-data/iam/security-credentials/", tok)
    assert (status, role) == (200, IDENTITY.role)
    creds = json.loads(get(emulator, f"meta-data/iam/security-credentials/{role}", tok)[1])
    assert creds["Code"] == "Success" and creds["Type"] == "AWS-HMAC"
    assert creds["AccessKeyId"] == access_key_for(IDENTITY.instance_id)
    assert {"SecretAccessKey", "Token", "Expiration", "LastUpdated"} <= set(creds)
    fetched = InstanceMetadataFetcher(base_url=emulator.endpoint).retrieve_iam_role_credentials()
    assert fetched["access_key"] == creds["AccessKeyId"]
    assert fetched["role_name"] == IDENTITY.role


def test_boto3_finds_the_instance_role_through_the_default_chain(emulator: ImdsEmulator) -> None:
    session = botocore.session.Session()
    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.method == "iam-role"
    assert credentials.access_key == IDENTITY.access_key_id


def test_the_products_identity_lookup_reads_the_emulator(emulator: ImdsEmulator) -> None:
    found = product_imds.fetch_identity(botocore.session.Session(), MAC)
    assert (found.instance_id, found.region, found.eni, found.vpc_id) == (
        IDENTITY.instance_id,
        IDENTITY.region,
        IDENTITY.eni,
        IDENTITY.vpc_id,
    )
    assert all(c.status == 200 for c in emulator.calls)


# --- fault modes -------------------------------------------------------------------------------


def test_expired_tokens_answer_401_and_a_new_token_works(emulator: ImdsEmulator) -> None:
    old = token(emulator)
    emulator.expire_tokens()
    assert get(emulator, "meta-data/instance-id", old)[0] == 401
    assert get(emulator, "meta-data/instance-id", token(emulator)) == (200, IDENTITY.instance_id)


def test_the_product_recovers_from_one_401(emulator: ImdsEmulator) -> None:
    emulator.reject_next(1)
    found = product_imds.fetch_identity(botocore.session.Session(), MAC)
    assert found.eni == IDENTITY.eni
    statuses = [c.status for c in emulator.gets()]
    assert statuses[0] == 401 and set(statuses[1:]) == {200}


@pytest.mark.parametrize("fault", ["slow", "hang", "reset", "down"])
def test_an_unanswering_imds_is_a_bounded_identity_error(
    emulator: ImdsEmulator, fault: str
) -> None:
    if fault == "slow":
        emulator.slow(3.0)
    elif fault == "down":
        emulator.stop()
    else:
        emulator.mode = fault
    started = time.monotonic()
    with pytest.raises(IdentityError) as exc:
        product_imds.fetch_identity(botocore.session.Session(), MAC)
    took = time.monotonic() - started
    assert "IMDS" in str(exc.value)
    assert took < 6.0, f"gave up only after {took:.1f}s"


def test_a_fault_on_one_path_leaves_the_others_alone(emulator: ImdsEmulator) -> None:
    emulator.add_fault("slow", 0.5, path="meta-data/iam/")
    tok = token(emulator)
    started = time.monotonic()
    assert get(emulator, "meta-data/instance-id", tok) == (200, IDENTITY.instance_id)
    assert time.monotonic() - started < 0.5
    assert get(emulator, "meta-data/iam/security-credentials/", tok) == (200, IDENTITY.role)
    assert time.monotonic() - started >= 0.5


def test_a_dribbled_token_sends_its_head_at_once_then_a_byte_at_a_time(
    emulator: ImdsEmulator,
) -> None:
    emulator.add_fault("dribble", 0.02, path="api/token")
    host, port = emulator.endpoint.replace("http://", "").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=0.3)  # per socket read
    conn.request("PUT", "/latest/api/token", headers={TTL: "60"})
    started = time.monotonic()
    resp = conn.getresponse()
    assert resp.status == 200 and time.monotonic() - started < 0.3
    text = resp.read().decode()  # never 0.3 s without a byte: the read timeout never fires
    took = time.monotonic() - started
    conn.close()
    assert len(text) >= 40 and took >= 0.02 * (len(text) - 1)
    assert get(emulator, "meta-data/instance-id", text) == (200, IDENTITY.instance_id)
    (put,) = [c for c in emulator.calls if c.method == "PUT"]
    assert put.end - put.at >= 0.02 * (len(text) - 1)


@pytest.mark.parametrize("dribbled", [False, True], ids=["whole", "dribbled"])
def test_an_answer_is_in_the_record_with_its_end_before_the_client_has_it(
    emulator: ImdsEmulator, monkeypatch: pytest.MonkeyPatch, dribbled: bool
) -> None:
    # The handler's thread is held just after its last write, as a loaded machine may hold it:
    # a test reading the record once the client has the whole answer must find the end there.
    resume = threading.Event()
    send = _ImdsHandler._send

    def send_then_stall(handler: Any, *args: Any) -> None:
        send(handler, *args)
        resume.wait(5.0)

    monkeypatch.setattr(_ImdsHandler, "_send", send_then_stall)
    if dribbled:
        emulator.add_fault("dribble", 0.01, path="api/token")
    try:
        text = token(emulator)
        (put,) = [c for c in emulator.calls if c.method == "PUT"]
        assert put.status == 200 and put.end > 0.0, put
        assert put.end - put.at >= (0.01 * (len(text) - 1) if dribbled else 0.0)
    finally:
        resume.set()


def test_a_hang_on_one_path_ends_at_heal_and_answer_overrides_a_value(
    emulator: ImdsEmulator,
) -> None:
    emulator.add_fault("hang", path="meta-data/network/")
    emulator.answer_with("meta-data/instance-id", "<html>proxy</html>")
    tok = token(emulator)
    assert get(emulator, "meta-data/instance-id", tok) == (200, "<html>proxy</html>")
    host, port = emulator.endpoint.replace("http://", "").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", f"/latest/meta-data/network/interfaces/macs/{MAC}/interface-id")
    time.sleep(0.2)  # the request is held
    emulator.heal()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()
    assert get(emulator, "meta-data/instance-id", tok) == (200, IDENTITY.instance_id)
