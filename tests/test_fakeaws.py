"""The fake AWS (sim.fakeaws): moto behind our fidelity-and-fault proxy, served over HTTPS.

Each test drives the proxy with plain boto3 (no retries, so every fault is seen as is) and
checks moto's state straight from moto, and the proxy's call record.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from mirror_vip import watchdog
from mirror_vip.aws import open_connections
from sim.fabric import wait_for
from sim.fakeaws import Call, CallSummary, FakeAws, Fault
from tests.sim_fixtures import sim_aws  # noqa: F401 - a fixture

VIP = "192.168.255.10/32"


@dataclass
class Net:
    aws: FakeAws
    proxy: Any  # boto3 EC2 client through the proxy
    vpc: str
    tables: List[str]
    eni_a: str
    eni_b: str

    def target(self, table: str) -> Any:
        return self.aws.route_target(table, VIP)


@pytest.fixture(scope="module")
def proxy(sim_aws: FakeAws) -> Any:  # noqa: F811 - the imported fixture
    return sim_aws.client(via_proxy=True)


@pytest.fixture
def net(sim_aws: FakeAws, proxy: Any) -> Iterator[Net]:  # noqa: F811
    """A VPC of its own in the module's fake AWS (a moto reset costs ~0.5 s: not per test)."""
    sim_aws.clear_faults()
    ec2 = sim_aws.ec2
    vpc = ec2.create_vpc(CidrBlock="10.109.10.0/24")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.109.10.0/26")["Subnet"]["SubnetId"]
    eni_a = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    eni_b = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    tables = [ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"] for _ in range(2)]
    for table in tables:
        ec2.create_route(RouteTableId=table, DestinationCidrBlock=VIP, NetworkInterfaceId=eni_a)
    sim_aws.clear_calls()
    yield Net(sim_aws, proxy, vpc, tables, eni_a, eni_b)
    sim_aws.clear_faults()


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def _replace(net: Net, table: str, eni: str, **extra: Any) -> Any:
    return net.proxy.replace_route(
        RouteTableId=table, DestinationCidrBlock=VIP, NetworkInterfaceId=eni, **extra
    )


# --- fidelity: answers moto gets wrong --------------------------------------------------------


@pytest.mark.parametrize("action", ["ReplaceRoute", "CreateRoute", "DeleteRoute"])
def test_dry_run_answers_dry_run_operation_and_changes_nothing(net: Net, action: str) -> None:
    table = net.tables[0]
    call = {
        "ReplaceRoute": lambda: _replace(net, table, net.eni_b, DryRun=True),
        "CreateRoute": lambda: net.proxy.create_route(
            RouteTableId=table, DestinationCidrBlock=VIP, NetworkInterfaceId=net.eni_b, DryRun=True
        ),
        "DeleteRoute": lambda: net.proxy.delete_route(
            RouteTableId=table, DestinationCidrBlock=VIP, DryRun=True
        ),
    }[action]
    with pytest.raises(ClientError) as exc:
        call()
    assert _code(exc) == "DryRunOperation"
    assert _status(exc) == 412
    assert net.target(table) == net.eni_a
    assert [c.applied for c in net.aws.calls()] == [None]  # never reached moto


def test_dry_run_of_a_denied_action_answers_unauthorized(net: Net) -> None:
    net.aws.deny("ReplaceRoute", table=net.tables[1])
    _ok_dry_run(net, net.tables[0])
    with pytest.raises(ClientError) as exc:
        _replace(net, net.tables[1], net.eni_b, DryRun=True)
    assert _code(exc) == "UnauthorizedOperation"
    assert _status(exc) == 403
    assert net.target(net.tables[1]) == net.eni_a


def _ok_dry_run(net: Net, table: str) -> None:
    with pytest.raises(ClientError) as exc:
        _replace(net, table, net.eni_b, DryRun=True)
    assert _code(exc) == "DryRunOperation"


def test_create_route_onto_an_existing_destination_is_refused(net: Net) -> None:
    with pytest.raises(ClientError) as exc:
        net.proxy.create_route(
            RouteTableId=net.tables[0], DestinationCidrBlock=VIP, NetworkInterfaceId=net.eni_b
        )
    assert _code(exc) == "RouteAlreadyExists"
    assert net.target(net.tables[0]) == net.eni_a  # moto alone would have overwritten it


def test_create_route_where_there_is_none_creates_it(net: Net) -> None:
    net.aws.ec2.delete_route(RouteTableId=net.tables[0], DestinationCidrBlock=VIP)
    net.proxy.create_route(
        RouteTableId=net.tables[0], DestinationCidrBlock=VIP, NetworkInterfaceId=net.eni_b
    )
    assert net.target(net.tables[0]) == net.eni_b


def test_a_route_to_a_deleted_interface_is_a_blackhole_as_aws_shows_it(net: Net) -> None:
    ec2 = net.aws.ec2
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [net.vpc]}])["Subnets"][0]
    spare = ec2.create_network_interface(SubnetId=subnet["SubnetId"])["NetworkInterface"]
    gone = spare["NetworkInterfaceId"]
    _replace(net, net.tables[1], gone)
    ec2.delete_network_interface(NetworkInterfaceId=gone)

    def states(client: Any) -> Dict[str, str]:
        found = client.describe_route_tables(RouteTableIds=net.tables)["RouteTables"]
        return {
            t["RouteTableId"]: r["State"]
            for t in found
            for r in t["Routes"]
            if r.get("DestinationCidrBlock") == VIP
        }

    assert states(net.aws.ec2) == {net.tables[0]: "active", net.tables[1]: "active"}  # moto
    assert states(net.proxy) == {net.tables[0]: "active", net.tables[1]: "blackhole"}
    assert net.target(net.tables[1]) == gone  # the target is still shown, as AWS does


def test_moto_answers_for_replace_and_delete_of_a_missing_route_pass_through(net: Net) -> None:
    net.aws.ec2.delete_route(RouteTableId=net.tables[0], DestinationCidrBlock=VIP)
    with pytest.raises(ClientError) as exc:
        _replace(net, net.tables[0], net.eni_b)
    assert _code(exc) == "InvalidParameterValue"
    assert "CreateRoute" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        net.proxy.delete_route(RouteTableId=net.tables[0], DestinationCidrBlock=VIP)
    assert _code(exc) == "InvalidRoute.NotFound"


# --- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [("throttle", "RequestLimitExceeded", 503), ("error500", "InternalError", 500)],
)
def test_scripted_errors_fire_the_given_number_of_times(
    net: Net, kind: str, code: str, status: int
) -> None:
    fault = net.aws.add_fault(Fault(kind, action="ReplaceRoute", times=2))
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            _replace(net, net.tables[0], net.eni_b)
        assert (_code(exc), _status(exc)) == (code, status)
        assert net.target(net.tables[0]) == net.eni_a
    _replace(net, net.tables[0], net.eni_b)
    assert net.target(net.tables[0]) == net.eni_b
    assert fault.fired == 2
    assert [(c.status, c.code) for c in net.aws.calls("ReplaceRoute")] == [
        (status, code),
        (status, code),
        (200, None),
    ]


def test_skip_lets_the_first_matches_through(net: Net) -> None:
    net.aws.add_fault(Fault("throttle", action="ReplaceRoute", skip=1, times=1))
    _replace(net, net.tables[0], net.eni_b)
    with pytest.raises(ClientError):
        _replace(net, net.tables[1], net.eni_b)
    assert [c.fault for c in net.aws.calls("ReplaceRoute")] == [None, "throttle"]


def test_a_dropped_connection_changes_nothing(net: Net) -> None:
    net.aws.add_fault(Fault("drop", action="ReplaceRoute", times=1))
    with pytest.raises(ConnectionClosedError):
        _replace(net, net.tables[0], net.eni_b)
    assert net.target(net.tables[0]) == net.eni_a
    (call,) = net.aws.calls("ReplaceRoute")
    assert (call.status, call.applied, call.landed) == (0, None, False)


def test_a_connection_dropped_after_the_write_leaves_the_write_applied(net: Net) -> None:
    net.aws.add_fault(Fault("drop_after", action="ReplaceRoute", times=1))
    with pytest.raises(ConnectionClosedError):
        _replace(net, net.tables[0], net.eni_b)
    assert net.target(net.tables[0]) == net.eni_b
    (call,) = net.aws.calls("ReplaceRoute")
    assert call.landed and call.status == 0


def test_a_hung_call_times_the_client_out_and_is_never_forwarded(net: Net) -> None:
    net.aws.add_fault(Fault("hang", action="ReplaceRoute", times=1, seconds=30))
    impatient = net.aws.client(via_proxy=True, read_timeout=0.3, connect_timeout=1)
    with pytest.raises(ReadTimeoutError):
        impatient.replace_route(
            RouteTableId=net.tables[0], DestinationCidrBlock=VIP, NetworkInterfaceId=net.eni_b
        )
    net.aws.clear_faults()  # ends the hold at once
    (call,) = net.aws.calls("ReplaceRoute")
    assert wait_for(lambda: call.end > 0, 5.0), "the hold did not end"
    assert call.applied is None and net.target(net.tables[0]) == net.eni_a


def test_clear_faults_drops_a_call_held_by_latency_unforwarded(net: Net) -> None:
    net.aws.set_latency("ReplaceRoute", 30)
    impatient = net.aws.client(via_proxy=True, read_timeout=0.3, connect_timeout=1)
    with pytest.raises(ReadTimeoutError):
        impatient.replace_route(
            RouteTableId=net.tables[0], DestinationCidrBlock=VIP, NetworkInterfaceId=net.eni_b
        )
    net.aws.clear_faults()
    (call,) = net.aws.calls("ReplaceRoute")
    assert wait_for(lambda: call.end > 0, 5.0)
    assert call.applied is None and net.target(net.tables[0]) == net.eni_a


def test_a_slow_answer_times_the_client_out_but_the_write_landed(net: Net) -> None:
    net.aws.add_fault(Fault("slow", action="ReplaceRoute", times=1, seconds=1.5))
    impatient = net.aws.client(via_proxy=True, read_timeout=0.3, connect_timeout=1)
    with pytest.raises(ReadTimeoutError):
        impatient.replace_route(
            RouteTableId=net.tables[0], DestinationCidrBlock=VIP, NetworkInterfaceId=net.eni_b
        )
    assert net.target(net.tables[0]) == net.eni_b
    (call,) = net.aws.calls("ReplaceRoute")
    assert call.landed and call.applied is not None and call.applied - call.start < 0.3


def test_latency_delays_the_call_before_moto_sees_it(net: Net) -> None:
    net.aws.set_latency("DescribeRouteTables", 0.2)
    net.proxy.describe_route_tables(RouteTableIds=[net.tables[0]])
    _replace(net, net.tables[0], net.eni_b)
    slow, fast = net.aws.calls("DescribeRouteTables")[0], net.aws.calls("ReplaceRoute")[0]
    assert slow.applied is not None and slow.applied - slow.start >= 0.2
    assert fast.applied is not None and fast.applied - fast.start < 0.2
    assert slow.fault == "latency" and fast.fault is None


@pytest.mark.parametrize("kind", ["dribble", "dribble_head"])
def test_a_dribbled_answer_defeats_a_per_read_timeout_and_the_write_lands(
    net: Net, kind: str
) -> None:
    """Every socket read gets a byte before botocore's read timeout (1 s): the whole answer
    takes as long as the dribble, however long that is (here longer than the read timeout).
    With 0.3 s, a loaded machine once held the dribbling thread past it."""
    size = 100 if kind == "dribble" else 200  # bytes dribbled, at least: the body (and head)
    every = 1.2 / size
    net.aws.add_fault(Fault(kind, action="ReplaceRoute", times=1, seconds=every))
    impatient = net.aws.client(via_proxy=True, read_timeout=1.0, connect_timeout=1)
    started = time.monotonic()
    impatient.replace_route(
        RouteTableId=net.tables[0], DestinationCidrBlock=VIP, NetworkInterfaceId=net.eni_b
    )
    took = time.monotonic() - started
    (call,) = net.aws.calls("ReplaceRoute")
    assert call.landed and call.fault == kind and call.status == 200
    assert net.target(net.tables[0]) == net.eni_b
    assert took >= size * every and call.end - call.applied >= size * every  # type: ignore[operator]


def test_a_dribble_ends_when_the_client_goes_or_at_clear_faults(net: Net) -> None:
    net.aws.add_fault(Fault("dribble", action="DescribeVpcs", seconds=0.05))
    for leave in ("close", "clear_faults"):
        since = time.monotonic()
        client = _raw_request(net.aws, "Action=DescribeVpcs&Version=2016-11-15")
        assert client.recv(4096).startswith(b"HTTP/1.1 200")  # the head at once
        assert len(client.recv(4096)) == 1  # then a byte at a time
        if leave == "close":
            client.close()
        else:
            net.aws.clear_faults()
        (call,) = net.aws.calls("DescribeVpcs", since)
        assert wait_for(lambda c=call: c.end > 0, 5.0), f"still dribbling after {leave}"
        assert call.status == 0 and call.end - since < 5.0
        client.close()


def _raw_request(aws: FakeAws, body: str) -> socket.socket:
    """BODY posted on a TLS socket of our own (trusting the fake's CA), left open."""
    host, port = aws.endpoint.split("://")[1].split(":")
    context = ssl.create_default_context(cafile=aws.ca_file)
    sock = context.wrap_socket(
        socket.create_connection((host, int(port)), timeout=5), server_hostname=host
    )
    head = (
        f"POST / HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body.encode())
    return sock


# --- TLS and the connection set-up model --------------------------------------------------------

ROUND_TRIP_S = 0.2
FLIGHTS = {"1.3": 1, "1.2": 2}  # server flights the client waits for, after TCP's round trip


@pytest.fixture(scope="module")
def endpoints(sim_aws: FakeAws) -> Dict[str, str]:  # noqa: F811
    """The module's fake AWS over TLS 1.3 (its first listener) and over TLS 1.2."""
    return {"1.3": sim_aws.endpoint, "1.2": sim_aws.listen(tls_version="1.2")}


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_a_new_connection_pays_tcp_and_its_tls_flights_once(
    net: Net, endpoints: Dict[str, str], version: str
) -> None:
    fresh = net.aws.client(via_proxy=True, endpoint=endpoints[version])  # no connection open yet
    net.aws.set_round_trip(ROUND_TRIP_S)
    try:
        since = time.monotonic()
        fresh.describe_route_tables(RouteTableIds=[net.tables[0]])
        first_done = time.monotonic()
        fresh.describe_route_tables(RouteTableIds=[net.tables[0]])
    finally:
        net.aws.set_round_trip(0.0)
    (conn,) = net.aws.connections(since)  # both requests on one kept-alive connection
    first, second = net.aws.calls("DescribeRouteTables", since)
    assert (conn.tls, conn.handshakes, conn.requests) == (f"TLSv{version}", 1, 2)
    assert conn.flights_held == FLIGHTS[version]
    set_up = (1 + FLIGHTS[version]) * ROUND_TRIP_S
    assert first.start >= conn.ready >= conn.opened + set_up
    assert first_done - since >= set_up
    assert second.start >= first.end  # the second paid no set-up: same connection, one handshake
    assert first.connection == second.connection == conn.seq


def test_a_connection_opened_early_has_paid_its_set_up_when_used(net: Net) -> None:
    fresh = net.aws.client(via_proxy=True, max_pool_connections=4)
    watchdog.install(fresh._endpoint.http_session)  # the pool classes the product's client has
    net.aws.set_round_trip(ROUND_TRIP_S)
    try:
        since = time.monotonic()
        assert open_connections(fresh, 2) == 2
        assert wait_for(lambda: sum(c.ready > 0 for c in net.aws.connections(since)) == 2, 5.0)
        fresh.describe_route_tables(RouteTableIds=[net.tables[0]])
    finally:
        net.aws.set_round_trip(0.0)
    opened = net.aws.connections(since)
    assert len(opened) == 2  # the call used one of them: none new, no set-up paid
    (call,) = net.aws.calls("DescribeRouteTables", since)
    assert call.connection in {c.seq for c in opened}
    assert all(c.handshakes == 1 for c in opened)


def test_a_client_that_does_not_trust_the_ca_is_refused_and_the_record_says_why(
    net: Net,
) -> None:
    since = time.monotonic()
    host, port = net.aws.endpoint.split("://")[1].split(":")
    context = ssl.create_default_context()  # the system's CAs only
    raw = socket.create_connection((host, int(port)), timeout=5)
    with raw, pytest.raises(ssl.SSLCertVerificationError):
        context.wrap_socket(raw, server_hostname=host)
    assert wait_for(lambda: any(c.error for c in net.aws.connections(since)), 5.0)
    (conn,) = net.aws.connections(since)
    assert conn.handshakes == 0 and conn.requests == 0
    assert net.aws.calls(since=since) == []


def test_the_certificate_names_the_address_served(sim_aws: FakeAws) -> None:  # noqa: F811
    host, port = sim_aws.endpoint.split("://")[1].split(":")
    pem = ssl.get_server_certificate((host, int(port)))
    context = ssl.create_default_context(cafile=sim_aws.ca_file)
    raw = socket.create_connection((host, int(port)), timeout=5)
    with raw, context.wrap_socket(raw, server_hostname=host) as tls:
        names = tls.getpeercert()["subjectAltName"]
    assert ("IP Address", host) in names and pem.startswith("-----BEGIN CERTIFICATE-----")
    assert sim_aws.env() == {"AWS_ENDPOINT_URL": sim_aws.endpoint, "AWS_CA_BUNDLE": sim_aws.ca_file}


def test_deny_one_table_refuses_it_and_only_it(net: Net) -> None:
    net.aws.deny("ReplaceRoute", table=net.tables[1])
    _replace(net, net.tables[0], net.eni_b)
    with pytest.raises(ClientError) as exc:
        _replace(net, net.tables[1], net.eni_b)
    assert _code(exc) == "UnauthorizedOperation"
    assert net.tables[1] in str(exc.value)
    assert (net.target(net.tables[0]), net.target(net.tables[1])) == (net.eni_b, net.eni_a)


def test_probabilistic_faults_follow_the_seed() -> None:
    def fired(seed: int) -> List[bool]:
        aws = FakeAws(seed=seed)
        fault = aws.add_fault(Fault("throttle", probability=0.5))
        outcome = []
        for i in range(40):
            before = fault.fired
            aws._pick_faults(Call(seq=i, action="ReplaceRoute", params={}, start=0.0))
            outcome.append(fault.fired > before)
        return outcome

    assert fired(3) == fired(3)
    assert fired(3) != fired(4)
    assert 5 < sum(fired(3)) < 35


# --- the record and the hooks ----------------------------------------------------------------


def test_the_record_has_action_params_caller_times_and_status(net: Net) -> None:
    net.proxy.describe_route_tables()
    _replace(net, net.tables[0], net.eni_b)
    describe, replace = net.aws.calls()
    assert (describe.action, replace.action) == ("DescribeRouteTables", "ReplaceRoute")
    assert replace.params["RouteTableId"] == net.tables[0]
    assert (replace.table, replace.destination, replace.target) == (net.tables[0], VIP, net.eni_b)
    assert replace.caller == "AKIDSIMSETUP00000000" and replace.region == net.aws.region
    assert describe.start <= describe.end <= replace.start <= replace.end
    assert replace.is_write and replace.landed and not describe.is_write
    summary = CallSummary.of(net.aws.calls())
    assert (summary.round_trips, summary.writes) == (2, 1)


def test_no_route_windows_come_from_the_record(net: Net) -> None:
    before = net.aws.routes_to(VIP, net.vpc)
    since = 0.0
    table = net.tables[0]
    net.proxy.delete_route(RouteTableId=table, DestinationCidrBlock=VIP)
    net.proxy.create_route(
        RouteTableId=table, DestinationCidrBlock=VIP, NetworkInterfaceId=net.eni_b
    )
    _replace(net, net.tables[1], net.eni_b)
    windows = net.aws.no_route_windows(VIP, before, since)
    (gone,) = windows[table]
    assert gone[1] is not None and gone[0] < gone[1]
    assert windows[net.tables[1]] == []
    history = net.aws.route_history(table, VIP)
    assert [target for _, target in history] == [None, net.eni_b]


def test_write_hook_sees_landed_writes_in_order_and_before_hook_can_interfere(net: Net) -> None:
    seen: List[str] = []
    net.aws.on_write(lambda call: seen.append(f"{call.action}:{call.target}"))
    doomed = net.tables[1]

    def delete_doomed(call: Call) -> None:
        if call.table == doomed:
            net.aws.ec2.delete_route_table(RouteTableId=doomed)

    net.aws.before_forward(delete_doomed)
    try:
        _replace(net, net.tables[0], net.eni_b)
        with pytest.raises(ClientError) as exc:
            _replace(net, doomed, net.eni_b)
        assert _code(exc) == "InvalidRouteTableID.NotFound"
    finally:
        net.aws.remove_hook(delete_doomed)
    net.proxy.delete_route(RouteTableId=net.tables[0], DestinationCidrBlock=VIP)
    assert seen == [f"ReplaceRoute:{net.eni_b}", "DeleteRoute:None"]


def test_reset_forgets_state_faults_and_record(sim_aws: FakeAws) -> None:  # noqa: F811
    """Last in the module: the others share the module's moto state."""
    sim_aws.add_fault(Fault("throttle"))
    sim_aws.ec2.create_vpc(CidrBlock="10.1.0.0/16")
    sim_aws.reset()
    client = sim_aws.client(via_proxy=True)
    found = client.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.1.0.0/16"]}])
    assert found["Vpcs"] == []
    assert [c.status for c in sim_aws.calls()] == [200]
