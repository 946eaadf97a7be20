"""Shared fixtures for the core's tests: the fake AWS (moto's server behind our proxy, over
HTTPS, answering as AWS does) with a call record and faults, an IMDSv2 double, a VPC world
builder, and the host's interface facts."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import boto3
import pytest

from mirror_vip import host
from sim.fakeaws import Call, FakeAws
from sim.faults import Refusal, throttled, unauthorized

REGION = "eu-west-1"
VIP = "192.168.200.10"  # outside the VPC CIDR, as AWS documents overlay IPs
ROUTE_WRITES = ("CreateRoute", "ReplaceRoute", "DeleteRoute")
RECORDED_PARAMS = ("RouteTableId", "DestinationCidrBlock", "DryRun")

Hook = Callable[[Any, str, Dict[str, Any]], None]


@dataclass
class AwsLike:
    """The session's fake AWS as one test sees it: the calls it received, and faults.

    The product reaches it as a user would, over HTTPS through AWS_ENDPOINT_URL, trusting its
    CA through AWS_CA_BUNDLE (the `aws` fixture sets both). The proxy answers as AWS does where
    moto does not (DryRun, RouteAlreadyExists, blackhole routes: sim/fidelity.py); here:
    - `calls`: (action, params) for every call, params holding RECORDED_PARAMS (None if absent);
    - `deny` holds (action, route table) pairs answered with UnauthorizedOperation;
    - `throttle[action]` answers RequestLimitExceeded that many times;
    - `hooks` run for each call before it is answered, with (an EC2 client straight to moto,
      unrecorded and unfaulted, action, params): another writer.
    `fake` is the FakeAws itself (its faults, record and connections).
    """

    fake: FakeAws
    ec2: Any
    calls: List[Tuple[str, Dict[str, Any]]] = field(default_factory=list)
    deny: Set[Tuple[str, str]] = field(default_factory=set)
    throttle: Dict[str, int] = field(default_factory=dict)
    hooks: List[Hook] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, *actions: str) -> int:
        return sum(1 for action, _ in self.calls if action in actions)

    @property
    def writes(self) -> List[Tuple[str, Dict[str, Any]]]:
        return [(a, p) for a, p in self.calls if a in ROUTE_WRITES]

    def intercept(self, call: Call) -> Optional[Refusal]:
        """The proxy's first look at CALL (FakeAws.intercept): record, hooks, faults."""
        params: Dict[str, Any] = {k: call.params.get(k) for k in RECORDED_PARAMS}
        with self.lock:
            self.calls.append((call.action, params))
            refusal = self._refusal(call.action, params)
        for hook in list(self.hooks):
            hook(self.ec2, call.action, params)
        return refusal

    def _refusal(self, action: str, params: Dict[str, Any]) -> Optional[Refusal]:
        if self.throttle.get(action, 0) > 0:
            self.throttle[action] -= 1
            return throttled()
        if (action, params.get("RouteTableId")) in self.deny:
            return unauthorized()
        return None


@pytest.fixture(scope="session")
def fake_aws() -> Iterator[FakeAws]:
    """One fake AWS for the session: tests keep apart by building VPCs of their own (moto's
    reset and the first call after it cost ~0.15 s, against ~0.05 s for a VPC)."""
    fake = FakeAws(region=REGION, seed=1).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def aws(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsLike]:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_EC2", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for key, value in fake_aws.env().items():
        monkeypatch.setenv(key, value)
    recorder = AwsLike(fake_aws, fake_aws.ec2)
    fake_aws.clear_faults()
    fake_aws.clear_calls()
    fake_aws.intercept(recorder.intercept)
    try:
        yield recorder
    finally:
        fake_aws.remove_hook(recorder.intercept)
        fake_aws.clear_faults()


# --- a VPC with two members -------------------------------------------------------------------


@dataclass
class Member:
    instance_id: str
    eni: str
    mac: str
    subnet_id: str


@dataclass
class World:
    ec2: Any
    vpc_id: str
    subnets: List[str]
    tables: List[str]  # extra route tables; the main table is `main_table`
    main_table: str
    a: Member
    b: Member

    def target(self, table_id: str, vip: str = VIP) -> Optional[str]:
        table = self.ec2.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]
        for route in table["Routes"]:
            if route.get("DestinationCidrBlock") == f"{vip}/32":
                return str(route.get("NetworkInterfaceId") or route.get("InstanceId"))
        return None

    def targets(self, vip: str = VIP) -> Dict[str, Optional[str]]:
        return {t: self.target(t, vip) for t in [self.main_table, *self.tables]}

    def route(self, table_id: str, eni: str, vip: str = VIP) -> None:
        self.ec2.create_route(
            RouteTableId=table_id, DestinationCidrBlock=f"{vip}/32", NetworkInterfaceId=eni
        )


def build_world(
    tables: int = 2, tag_first: Optional[Tuple[str, str]] = None, ec2: Any = None
) -> World:
    """A VPC of its own with two members, built with EC2 (default: a client as the product's
    environment makes it, through the proxy and recorded; or straight to moto: aws.ec2)."""
    ec2 = ec2 or boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet_a = ec2.create_subnet(
        VpcId=vpc, CidrBlock="10.20.1.0/24", AvailabilityZone=f"{REGION}a"
    )["Subnet"]["SubnetId"]
    subnet_b = ec2.create_subnet(
        VpcId=vpc, CidrBlock="10.20.2.0/24", AvailabilityZone=f"{REGION}b"
    )["Subnet"]["SubnetId"]
    main = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"][0]["RouteTableId"]
    extra = []
    for i in range(tables):
        spec = []
        if i == 0 and tag_first:
            spec = [
                {
                    "ResourceType": "route-table",
                    "Tags": [{"Key": tag_first[0], "Value": tag_first[1]}],
                }
            ]
        extra.append(
            ec2.create_route_table(VpcId=vpc, TagSpecifications=spec)["RouteTable"]["RouteTableId"]
        )
    members = []
    for subnet in (subnet_a, subnet_b):
        inst = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, SubnetId=subnet)
        nic = inst["Instances"][0]["NetworkInterfaces"][0]
        ec2.modify_network_interface_attribute(
            NetworkInterfaceId=nic["NetworkInterfaceId"], SourceDestCheck={"Value": False}
        )
        members.append(
            Member(
                instance_id=inst["Instances"][0]["InstanceId"],
                eni=nic["NetworkInterfaceId"],
                mac=nic["MacAddress"].lower(),
                subnet_id=subnet,
            )
        )
    return World(ec2, vpc, [subnet_a, subnet_b], extra, main, members[0], members[1])


@pytest.fixture
def world(aws: AwsLike) -> World:
    w = build_world()
    aws.calls.clear()
    return w


# --- IMDSv2 double ------------------------------------------------------------------------------


@dataclass
class Imds:
    """An IMDSv2 double on loopback: 401 without a token, counts requests, can expire tokens."""

    url: str
    paths: Dict[str, str]
    requests: List[Tuple[str, str]] = field(default_factory=list)
    expire_next: int = 0  # answer this many token-bearing GETs with 401
    tokens: Set[str] = field(default_factory=set)

    def become(self, member: Member, vpc_id: str, region: str = REGION) -> None:
        base = f"meta-data/network/interfaces/macs/{member.mac}"
        self.paths.clear()
        self.paths.update(
            {
                "meta-data/instance-id": member.instance_id,
                "meta-data/placement/region": region,
                "meta-data/placement/availability-zone": f"{region}a",
                f"{base}/interface-id": member.eni,
                f"{base}/vpc-id": vpc_id,
            }
        )


@pytest.fixture
def imds(monkeypatch: pytest.MonkeyPatch) -> Iterator[Imds]:
    state = Imds(url="", paths={})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_PUT(self) -> None:
            state.requests.append(("PUT", self.path))
            if self.path != "/latest/api/token" or not self.headers.get(
                "x-aws-ec2-metadata-token-ttl-seconds"
            ):
                self._send(400, "")
                return
            token = f"token-{len(state.tokens)}"
            state.tokens.add(token)
            self._send(200, token)

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            token = self.headers.get("x-aws-ec2-metadata-token")
            if token not in state.tokens:
                self._send(401, "")
                return
            if state.expire_next > 0:
                state.expire_next -= 1
                state.tokens.discard(token)
                self._send(401, "")
                return
            value = state.paths.get(self.path.removeprefix("/latest/"))
            self._send(200, value) if value is not None else self._send(404, "")

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", state.url)
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    yield state
    server.shutdown()
    server.server_close()


# --- the host's interface ---------------------------------------------------------------------


@dataclass
class FakeHost:
    """What `ip -j -4 addr show dev eth0` and /sys/class/net/eth0/address would show."""

    mac: str = "02:00:00:00:00:01"
    addresses: List[host.Address] = field(default_factory=list)

    def carry(self, vip: str = VIP, label: str = "eth0:1") -> None:
        self.addresses.append(host.Address(vip, 32, label))

    def ip_json(self) -> str:
        return json.dumps(
            [
                {
                    "ifname": "eth0",
                    "addr_info": [
                        {
                            "family": "inet",
                            "local": a.address,
                            "prefixlen": a.prefixlen,
                            "label": a.label,
                        }
                        for a in self.addresses
                    ],
                }
            ]
        )


@pytest.fixture
def fake_host(monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    fake = FakeHost(addresses=[host.Address("10.20.1.10", 24, "eth0")])

    def addresses(interface: str) -> List[host.Address]:
        if interface != "eth0":
            raise host.HostError(f"cannot read the addresses of interface {interface!r}")
        return host.parse_ip_json(fake.ip_json())

    def mac_address(interface: str) -> str:
        return fake.mac

    monkeypatch.setattr(host, "addresses", addresses)
    monkeypatch.setattr(host, "mac_address", mac_address)
    return fake


@pytest.fixture
def member_a(world: World, imds: Imds, fake_host: FakeHost) -> World:
    """Run as member A: IMDS says A, the host carries the VIP on eth0:1 with A's MAC."""
    imds.become(world.a, world.vpc_id)
    fake_host.mac = world.a.mac
    fake_host.carry()
    return world
