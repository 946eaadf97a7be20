"""The doctor's network checks (netchecks.py), each made to pass, warn and fail against real
sockets on loopback: an EC2 stand-in that answers (quickly or late), closed ports, our
forwarding proxy (sim/connect_proxy.py), and the IMDS emulator (sim/imds.py) with its token PUT
held, as a hop limit of 1 holds it for a container."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from mirror_vip import api, netchecks, settings
from mirror_vip.aws import Deadline, botocore_session, client_config
from mirror_vip.report import FAIL, PASS, WARN
from sim.connect_proxy import ConnectProxy
from sim.imds import Identity, ImdsEmulator
from tests.conftest import REGION, AwsLike, FakeHost, World

PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY")
PROXY_VARIABLES += ("all_proxy", "NO_PROXY", "no_proxy")
AUTH_FAILURE = (
    b"<Response><Errors><Error><Code>AuthFailure</Code><Message>no</Message></Error></Errors>"
    b"<RequestID>1</RequestID></Response>"
)


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("container", raising=False)


class Ec2StandIn:
    """Answers every request with EC2's AuthFailure (an answer: EC2 reached), after DELAY_S."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.requests = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                stand_in.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(stand_in.delay_s)
                self.send_response(401)
                self.send_header("Content-Length", str(len(AUTH_FAILURE)))
                self.end_headers()
                self.wfile.write(AUTH_FAILURE)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ec2_stand_in() -> Iterator[Ec2StandIn]:
    stand_in = Ec2StandIn()
    yield stand_in
    stand_in.stop()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def client(endpoint: str, deadline_s: float = 30, proxy: str = "") -> Any:
    return botocore_session().create_client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=client_config(deadline_s, proxy or None),
    )


def reachable(endpoint: str, deadline_s: float = 30, proxy: str = "") -> netchecks.Check:
    check = netchecks.ec2_reachable(
        client(endpoint, deadline_s, proxy), "vpc-0123456789abcdef0", Deadline(deadline_s)
    )
    assert check.name == "ec2_reachable"
    return check


# --- EC2 unreachable --------------------------------------------------------------------------


def test_ec2_that_answers_passes_even_with_an_error(ec2_stand_in: Ec2StandIn) -> None:
    check = reachable(ec2_stand_in.url)
    assert check.status == PASS and ec2_stand_in.url in check.detail
    assert ec2_stand_in.requests == 1


def test_ec2_that_answers_late_warns(ec2_stand_in: Ec2StandIn) -> None:
    """Deadline 30: connect timeout 3 s; an answer after 2 s (over half of it) warns."""
    ec2_stand_in.delay_s = 2.0
    check = reachable(ec2_stand_in.url)
    assert check.status == WARN, check.detail
    assert "more than half the 3s connect timeout" in check.detail


def test_ec2_refused_fails_naming_the_three_fixes() -> None:
    check = reachable(f"https://127.0.0.1:{closed_port()}")
    assert check.status == FAIL
    assert check.detail.startswith("EC2 unreachable: https://127.0.0.1:")
    assert "connection refused" in check.detail
    for fix in ("NAT gateway", "EC2 interface VPC endpoint", "ec2_endpoint", "set proxy"):
        assert fix in check.detail
    assert f"com.amazonaws.{REGION}.ec2" in check.detail


def test_ec2_not_answering_in_time_fails_within_the_attempts() -> None:
    """A peer that accepts and never answers: two bounded attempts, then the fixes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        started = time.monotonic()
        check = reachable(f"http://127.0.0.1:{server.getsockname()[1]}", deadline_s=4)
        took = time.monotonic() - started
    finally:
        server.close()
    assert check.status == FAIL and "NAT gateway" in check.detail
    assert took < 4 + 1  # never past the deadline (and its one-second grace on a loaded box)


def test_tls_failure_fails_naming_the_ca_bundle(ec2_stand_in: Ec2StandIn) -> None:
    check = reachable(ec2_stand_in.url.replace("http:", "https:"))  # TLS to a plain server
    assert check.status == FAIL and "TLS failed" in check.detail
    assert "AWS_CA_BUNDLE" in check.detail


def test_a_proxy_that_refuses_the_tunnel_fails_naming_its_allow_list() -> None:
    target = f"127.0.0.1:{closed_port()}"
    with ConnectProxy(deny={target}).start() as proxy:
        check = reachable(f"https://{target}", proxy=proxy.url)
        assert proxy.tunnels(status=403) == [target]
    assert check.status == FAIL
    assert f"the proxy answered 403 Forbidden to CONNECT {target}" in check.detail
    assert "allow-list" in check.detail and f"through the proxy {proxy.url}" in check.detail


def test_a_proxy_that_wants_credentials_fails_naming_them() -> None:
    with ConnectProxy(credentials=("svc", "right")).start() as proxy:
        url = proxy.url.replace("http://", "http://svc:wrong@")
        check = reachable(f"https://127.0.0.1:{closed_port()}", proxy=url)
    assert check.status == FAIL and "407" in check.detail and "USER:PASSWORD" in check.detail
    assert "wrong" not in check.detail and "svc:***@" in check.detail


def test_a_proxy_that_is_not_there_fails_naming_the_setting() -> None:
    check = reachable(
        "https://ec2.eu-west-1.amazonaws.com", proxy=f"http://127.0.0.1:{closed_port()}"
    )
    assert check.status == FAIL and "check the proxy setting" in check.detail


# --- proxy variables ----------------------------------------------------------------------


def environment_check(
    ec2_url: str = "https://ec2.eu-west-1.amazonaws.com", in_iris: bool = False, **values: Any
) -> netchecks.Check:
    chosen = settings.from_mapping(values)
    ec2 = client(chosen.ec2_endpoint or ec2_url, proxy=chosen.proxy or "")
    check = netchecks.proxy_environment(chosen, ec2, Deadline(4), in_iris)
    assert check.name == "proxy_environment"
    return check


def test_no_proxy_variable_passes() -> None:
    assert environment_check().status == PASS


def test_variables_kept_away_by_no_proxy_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "169.254.169.254,.amazonaws.com")
    check = environment_check()
    assert check.status == PASS and "NO_PROXY keeps" in check.detail


def test_http_proxy_without_no_proxy_warns_for_other_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://svc:hunter2@proxy.corp.example:3128")
    check = environment_check()
    assert check.status == WARN
    assert "http_proxy would take IMDS requests" in check.detail
    assert "mirror-vip asks IMDS directly" in check.detail and "AWS CLI" in check.detail
    assert "add 169.254.169.254 to NO_PROXY" in check.detail


def test_all_proxy_is_named_for_curl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "http://proxy.corp.example:3128")
    check = environment_check()
    assert check.status == WARN and "ALL_PROXY would take IMDS requests" in check.detail


def test_the_proxy_setting_takes_precedence_over_https_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://other.corp.example:8080")
    monkeypatch.setenv("NO_PROXY", "169.254.169.254")
    check = environment_check(proxy="http://svc:hunter2@proxy.corp.example:3128")
    assert check.status == PASS
    assert "HTTPS_PROXY is not used for EC2: the proxy setting" in check.detail
    assert "hunter2" not in check.detail and "svc:***@proxy.corp.example" in check.detail


def test_a_shell_proxy_iris_will_not_have_fails_when_ec2_needs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://svc:hunter2@proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "169.254.169.254")
    check = environment_check(f"https://127.0.0.1:{closed_port()}")  # nothing answers directly
    assert check.status == FAIL
    assert "IRIS's processes do not inherit it" in check.detail
    assert "fix: set proxy to http://svc:***@proxy.corp.example:3128" in check.detail
    assert "hunter2" not in check.detail


def test_a_shell_proxy_warns_when_ec2_answers_directly_too(
    monkeypatch: pytest.MonkeyPatch, ec2_stand_in: Ec2StandIn
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp.example:3128")  # the stand-in is http
    monkeypatch.setenv("NO_PROXY", "169.254.169.254")
    check = environment_check(ec2_stand_in.url)
    assert check.status == WARN and "add 127.0.0.1 to NO_PROXY" in check.detail
    assert ec2_stand_in.requests == 1  # the direct probe


def test_a_proxy_in_iris_own_environment_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "169.254.169.254")
    check = environment_check(in_iris=True)
    assert check.status == WARN and "IRIS's own environment has HTTPS_PROXY" in check.detail


# --- the IMDS hop limit in a container ------------------------------------------------------

WHO = Identity(
    instance_id="i-0123456789abcdef0",
    region=REGION,
    availability_zone=f"{REGION}a",
    mac="02:00:00:00:00:01",
    eni="eni-0123456789abcdef0",
    vpc_id="vpc-0123456789abcdef0",
    subnet_id="subnet-0123456789abcdef0",
    private_ip="10.20.1.10",
)


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ImdsEmulator]:
    imds = ImdsEmulator(WHO)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.start())
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)
    yield imds
    imds.stop()


def in_container(root: Path) -> Path:
    (root / ".dockerenv").write_text("")
    return root


def hop_limit(root: Path, token_worked: bool = False) -> netchecks.Check:
    check = netchecks.imds_hop_limit(botocore_session(), Deadline(10), token_worked, root)
    assert check.name == "imds_hop_limit"
    return check


def test_a_token_that_arrived_passes(tmp_path: Path) -> None:
    assert hop_limit(tmp_path, token_worked=True).status == PASS
    check = hop_limit(in_container(tmp_path), token_worked=True)
    assert check.status == PASS and "in a container (/.dockerenv exists)" in check.detail


def test_a_token_put_answered_passes_in_a_container(tmp_path: Path, emulator: ImdsEmulator) -> None:
    check = hop_limit(in_container(tmp_path))
    assert check.status == PASS and "IMDS answered the token PUT (HTTP 200)" in check.detail


def test_a_token_put_without_answer_in_a_container_fails(
    tmp_path: Path, emulator: ImdsEmulator
) -> None:
    """As a hop limit of 1 does it: the PUT's answer never comes, a GET's does (401: IMDSv1
    is off, so the instance id is not known and the fix says where it goes)."""
    emulator.add_fault("hang", path="api/token")
    check = hop_limit(in_container(tmp_path))
    assert check.status == FAIL
    assert "answers GETs (HTTP 401)" in check.detail and "token PUT got no" in check.detail
    assert (
        "fix: aws ec2 modify-instance-metadata-options --instance-id INSTANCE_ID "
        "--http-put-response-hop-limit 2 --http-endpoint enabled"
    ) in check.detail
    assert [c.method for c in emulator.calls] == ["GET"]  # the PUT is held still, unanswered


def test_the_same_outside_a_known_container_fails_too(
    tmp_path: Path, emulator: ImdsEmulator
) -> None:
    emulator.add_fault("hang", path="api/token")
    check = hop_limit(tmp_path)
    assert check.status == FAIL and "not in a container" in check.detail
    assert "something on the way" in check.detail


def test_imds_silent_in_a_container_warns_cannot_tell(
    tmp_path: Path, emulator: ImdsEmulator
) -> None:
    emulator.stop()  # connection refused: no PUT answer, no GET answer
    check = hop_limit(in_container(tmp_path))
    assert check.status == WARN and "cannot tell the hop limit" in check.detail


def test_imds_silent_outside_a_container_is_not_a_hop_limit_matter(
    tmp_path: Path, emulator: ImdsEmulator
) -> None:
    emulator.stop()
    assert hop_limit(tmp_path).status == PASS


def test_imds_disabled_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    check = hop_limit(in_container(tmp_path))
    assert check.status == PASS and "IMDS is disabled" in check.detail


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ({".dockerenv": ""}, "/.dockerenv exists"),
        ({"run/.containerenv": ""}, "/run/.containerenv exists"),
        ({"proc/1/cgroup": "12:pids:/kubepods/burstable/pod1/abc\n"}, "names kubepods"),
        ({"proc/self/cgroup": "0::/system.slice/docker-abc.scope\n"}, "names docker"),
        ({"proc/1/cgroup": "0::/\n"}, None),
        ({}, None),
    ],
)
def test_container_hints(tmp_path: Path, files: dict, says: Any) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = netchecks.container_hint(tmp_path, environ={})
    assert found is None if says is None else says in str(found)
    assert netchecks.container_hint(tmp_path, {"container": "podman"}) == (
        found or "container=podman in the environment"
    )


# --- in the doctor ---------------------------------------------------------------------------


def test_doctor_in_a_container_with_hop_limit_1(
    member_a: World,
    aws: AwsLike,
    fake_host: FakeHost,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole doctor as a containerised member sees it: no token, the hop limit named."""
    w = member_a
    who = Identity(
        instance_id=w.a.instance_id,
        region=REGION,
        availability_zone=f"{REGION}a",
        mac=w.a.mac,
        eni=w.a.eni,
        vpc_id=w.vpc_id,
        subnet_id=w.a.subnet_id,
        private_ip="10.20.1.10",
    )
    imds = ImdsEmulator(who)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.start())
    imds.add_fault("hang", path="api/token")
    monkeypatch.setattr(netchecks, "ROOT", in_container(tmp_path))
    try:
        report = api.doctor(settings.from_mapping({}))
    finally:
        imds.stop()
    found = {c.name: c for c in report.checks}
    assert report.exit_code == 1
    assert found["imds"].status == FAIL and found["imds_hop_limit"].status == FAIL
    assert "--http-put-response-hop-limit 2" in found["imds_hop_limit"].detail
    assert aws.calls == []  # nothing reached EC2


def test_doctor_skips_the_ec2_checks_when_ec2_is_unreachable(
    member_a: World, aws: AwsLike, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ec2_endpoint at a closed port: one FAIL with the fixes, and no check after it waits
    out the deadline."""
    started = time.monotonic()
    report = api.doctor(
        settings.from_mapping(
            {"ec2_endpoint": f"https://127.0.0.1:{closed_port()}", "deadline": 10}
        )
    )
    names: List[str] = [c.name for c in report.checks]
    assert names[-1] == "ec2_reachable" and report.checks[-1].status == FAIL
    assert "route_tables" not in names and "permissions" not in names
    assert time.monotonic() - started < 10
