"""Shared fixtures for the core's tests: moto made to answer as AWS does, an IMDSv2 double,
a VPC world builder, and the host's interface facts."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import boto3
import pytest
from moto import mock_aws
from moto.ec2.exceptions import EC2ClientError, RouteAlreadyExistsError
from moto.ec2.responses import EC2Response

import mirror_vip.api
from mirror_vip import host

REGION = "eu-west-1"
VIP = "192.168.200.10"  # outside the VPC CIDR, as AWS documents overlay IPs
ROUTE_WRITES = ("CreateRoute", "ReplaceRoute", "DeleteRoute")


@dataclass
class AwsLike:
    """moto, corrected where it differs from AWS (DESIGN.md lists the gaps), with a call record
    and injectable faults.

    - DryRun on route writes answers DryRunOperation (moto performs the change);
    - CreateRoute onto an existing destination answers RouteAlreadyExists (moto overwrites);
    - `deny` holds (action, route table) pairs answered with UnauthorizedOperation;
    - `throttle[action]` answers RequestLimitExceeded that many times;
    - `hooks` run before each call with (moto's EC2 backend, action, params): another writer.
    """

    calls: List[Tuple[str, Dict[str, Any]]] = field(default_factory=list)
    deny: Set[Tuple[str, str]] = field(default_factory=set)
    throttle: Dict[str, int] = field(default_factory=dict)
    hooks: List[Callable[[Any, str, Dict[str, Any]], None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, *actions: str) -> int:
        return sum(1 for action, _ in self.calls if action in actions)

    @property
    def writes(self) -> List[Tuple[str, Dict[str, Any]]]:
        return [(a, p) for a, p in self.calls if a in ROUTE_WRITES]


def _patched_call_action(aws: AwsLike, original: Any) -> Any:
    def call_action(self: Any) -> Any:
        action = self._get_action()
        params = {k: self._get_param(k) for k in ("RouteTableId", "DestinationCidrBlock", "DryRun")}
        with aws.lock:
            aws.calls.append((action, params))
            fault = _fault(aws, action, params)
        for hook in list(aws.hooks):
            hook(self.ec2_backend, action, params)
        if fault is not None:
            status, headers, body = self.serialized(_result(fault))
            headers["status"] = status
            return status, headers, body
        if action == "CreateRoute" and not params["DryRun"]:
            backend = self.ec2_backend
            table = backend.get_route_table(params["RouteTableId"])
            for route in table._routes.values():
                if route.destination_cidr_block == params["DestinationCidrBlock"]:
                    status, headers, body = self.serialized(
                        _result(RouteAlreadyExistsError(params["DestinationCidrBlock"]))
                    )
                    headers["status"] = status
                    return status, headers, body
        return original(self)

    return call_action


def _fault(aws: AwsLike, action: str, params: Dict[str, Any]) -> Optional[Exception]:
    if aws.throttle.get(action, 0) > 0:
        aws.throttle[action] -= 1
        return EC2ClientError("RequestLimitExceeded", "Request limit exceeded.")
    if (action, params.get("RouteTableId")) in aws.deny:
        return EC2ClientError(
            "UnauthorizedOperation", "You are not authorized to perform this operation."
        )
    if action in ROUTE_WRITES and str(params.get("DryRun")).lower() == "true":
        return EC2ClientError(
            "DryRunOperation", "Request would have succeeded, but DryRun flag is set."
        )
    return None


def _result(exc: Exception) -> Any:
    from moto.core.responses import ActionResult

    return ActionResult(exc)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsLike]:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    recorder = AwsLike()
    monkeypatch.setattr(
        EC2Response, "call_action", _patched_call_action(recorder, EC2Response.call_action)
    )
    # In-process moto answers without sockets; opening connections ahead of the writes would
    # dial the real EC2 endpoint. tests/test_preopen.py covers it against a local server.
    monkeypatch.setattr(mirror_vip.api, "open_connections", lambda ec2, count: 0)
    with mock_aws():
        yield recorder


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


def build_world(tables: int = 2, tag_first: Optional[Tuple[str, str]] = None) -> World:
    ec2 = boto3.client("ec2", region_name=REGION)
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
