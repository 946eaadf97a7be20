"""A proxy that will not carry the claim: it refuses the CONNECT to EC2 (403, an allow-list
without EC2) or asks for credentials (407: none given, or the wrong ones). The claim ends within
its deadline with one line naming the proxy (its password masked) and what to fix, and nothing
is changed: no route call reached EC2, and the tables are as they were.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from mirror_vip import api, settings
from mirror_vip.aws import attempt_limit_s
from sim.connect_proxy import ConnectProxy
from tests.conftest import VIP, AwsLike, Imds, Member, World
from tests.test_proxy_claim import (
    LOOPBACK_MAC,
    ROLE,
    TUNNEL_SOURCE,
    host_port,
    proxy_everything,
    run_cli,
)

DEADLINE_S = 6.0
PASSWORD = "s3cr%40t-pw"  # percent-encoded '@': the setting as an operator writes it
CASES = {
    # name: (the proxy's credentials, the user:password the setting gives, the status seen)
    "forbidden": (None, None, 403),
    "no-credentials": (("svc", "right"), None, 407),
    "wrong-credentials": (("svc", "right"), ("svc", PASSWORD), 407),
}


@pytest.fixture
def refusing(request: pytest.FixtureRequest, aws: AwsLike) -> Iterator[Tuple[ConnectProxy, str]]:
    """The proxy of CASES[request.param] and the proxy setting naming it."""
    wanted, given, _ = CASES[request.param]
    deny = [host_port(aws.fake.endpoint)] if request.param == "forbidden" else []
    with ConnectProxy(credentials=wanted, deny=deny, source_address=TUNNEL_SOURCE).start() as p:
        userinfo = f"{given[0]}:{given[1]}@" if given else ""
        yield p, p.url.replace("://", f"://{userinfo}")


@pytest.mark.parametrize("refusing", sorted(CASES), indirect=True)
def test_a_refusing_proxy_fails_the_claim_in_one_line_and_changes_nothing(
    member_a: World,
    aws: AwsLike,
    imds: Imds,
    refusing: Tuple[ConnectProxy, str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    proxy, setting = refusing
    case = request.node.callspec.params["refusing"]
    status = CASES[case][2]
    w = member_a
    w.route(w.tables[0], w.b.eni)
    before = {t: aws.fake.route_target(t, f"{VIP}/32") for t in [w.main_table, *w.tables]}
    aws.fake.clear_calls()
    proxy_everything(monkeypatch, setting)
    since = time.monotonic()

    started = time.monotonic()
    report = api.claim(settings.from_mapping({"proxy": setting, "deadline": DEADLINE_S}))
    took = time.monotonic() - started

    assert not report.ok and report.exit_code == 1
    assert len(report.errors) == 1, report.errors
    line = report.errors[0]
    assert f"the proxy http://{'***:***@' if '@' in setting else ''}{host_port(proxy.url)} " in line
    assert PASSWORD not in line and "right" not in line
    assert f"answered {status} " in line and "to CONNECT" in line, line
    fix = {
        "forbidden": "allow-list must let CONNECT to the AWS endpoint on port 443 through",
        "no-credentials": "give the proxy's user and password in the proxy setting",
        "wrong-credentials": "correct the user and password in the proxy setting",
    }[case]
    assert fix in line, line
    # nothing reached EC2, nothing changed
    assert aws.fake.calls(since=since) == []
    assert {t: aws.fake.route_target(t, f"{VIP}/32") for t in before} == before
    assert report.route_tables == [] or all(r.action == "error" for r in report.route_tables)
    assert proxy.tunnels(status=status), proxy.carried
    # within the deadline, as its model bounds it: the last attempt may start just before it
    assert took < DEADLINE_S + attempt_limit_s(DEADLINE_S), took


@pytest.mark.parametrize("refusing", ["wrong-credentials"], indirect=True)
def test_the_cli_says_a_refusing_proxy_in_one_line_without_the_password(
    world: World,
    aws: AwsLike,
    imds: Imds,
    refusing: Tuple[ConnectProxy, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """As an operator runs it: exit 1, no traceback, the password nowhere in the output."""
    proxy, setting = refusing
    w = world
    imds.become(Member(w.a.instance_id, w.a.eni, LOOPBACK_MAC, w.a.subnet_id), w.vpc_id)
    env = proxy_everything(monkeypatch, setting)
    aws.fake.clear_calls()
    since = time.monotonic()
    argv = ["claim", "--vip", VIP, "--interface", "lo", "--force", "--proxy", setting]
    done = run_cli([*argv, "--deadline", str(DEADLINE_S)], env, tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    said = [line for line in (done.stdout + done.stderr).splitlines() if "to CONNECT" in line]
    assert said and "correct the user and password in the proxy setting" in said[0], said
    assert aws.fake.calls(since=since) == []
    assert proxy.tunnels(status=407) and not proxy.tunnels(status=200)
    tables = [w.main_table, *w.tables]
    assert {aws.fake.route_target(t, f"{VIP}/32") for t in tables} == {None}


@pytest.mark.parametrize("refusing", ["forbidden"], indirect=True)
def test_a_refused_assume_role_tunnel_is_one_line_naming_the_proxy_and_the_role(
    member_a: World,
    aws: AwsLike,
    imds: Imds,
    refusing: Tuple[ConnectProxy, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """role_arn with sts_endpoint on a listener the proxy refuses (EC2's it lets through): the
    AssumeRole's refusal says the proxy, its answer and the role; no route call is made."""
    proxy, setting = refusing
    sts = aws.fake.listen()
    proxy.deny = {host_port(sts)}
    w = member_a
    aws.fake.clear_calls()
    since = time.monotonic()
    values = {"proxy": setting, "role_arn": ROLE, "sts_endpoint": sts, "deadline": DEADLINE_S}
    report = api.claim(settings.from_mapping(values))

    assert not report.ok and report.exit_code == 1 and len(report.errors) == 1, report.errors
    line = report.errors[0]
    assert f"the proxy {proxy.url} answered 403 Forbidden to CONNECT" in line, line
    assert ROLE in line and "allow-list" in line, line
    routes = [c for c in aws.fake.calls(since=since) if c.action != "DescribeNetworkInterfaces"]
    assert routes == [], [c.describe() for c in routes]
    tables = [w.main_table, *w.tables]
    assert {aws.fake.route_target(t, f"{VIP}/32") for t in tables} == {None}


def test_a_proxy_that_comes_back_within_the_deadline_carries_the_claim(
    member_a: World, aws: AwsLike, imds: Imds, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy being restarted refuses connections for a moment: like EC2's endpoint refusing,
    that is worth retrying until the deadline, not the end of a failover claim."""
    w = member_a
    down = ConnectProxy(source_address=TUNNEL_SOURCE)
    with socket.socket() as probe:  # a port nothing listens on, until the proxy starts there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    setting = f"http://127.0.0.1:{port}"
    proxy_everything(monkeypatch, setting)
    refused = threading.Event()
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: object) -> None:
        try:
            real_connect(sock, address)
        except ConnectionRefusedError:
            refused.set()  # the claim's first attempt met the proxy down: start it now
            raise

    monkeypatch.setattr(socket.socket, "connect", connect)
    starter = threading.Thread(
        target=lambda: refused.wait(DEADLINE_S) and down.start(port=port), daemon=True
    )
    starter.start()
    try:
        report = api.claim(settings.from_mapping({"proxy": setting, "deadline": 20}))
    finally:
        starter.join(DEADLINE_S)
        down.stop()
    assert refused.is_set()
    assert report.ok, report.errors
    assert set(w.targets().values()) == {w.a.eni}
    assert down.tunnels(status=200)
