"""A claim through a real forwarding proxy (issue 12, item 4), end to end: the `proxy` setting
names a CONNECT proxy on loopback (sim/connect_proxy.py), the fake AWS is HTTPS behind it, and
the environment is the worst case, every proxy variable naming the same proxy and NO_PROXY
empty. What is shown, from three records that do not depend on the product's own account:

- the proxy's (`carried`): a CONNECT to the fake AWS's host:port for the EC2 calls, nothing
  else: no IMDS request forwarded, no tunnel to IMDS;
- the fake AWS's (`Call.peer`): the proxy's upstream connections come from 127.0.0.2, the
  product's own from 127.0.0.1, so every EC2 call arriving from 127.0.0.2 came through a tunnel,
  with TLS end to end (the fake served it over its own HTTPS listener);
- the IMDS double's: the token PUT and the identity GETs arrived (and not through the proxy).

And that the claim did its work: where each table points now (read straight from moto), and
what the report says about it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List
from urllib.parse import urlsplit

import pytest

from mirror_vip import api, settings
from mirror_vip.report import CREATED, REPLACED, render_text
from sim.connect_proxy import ConnectProxy
from tests.conftest import VIP, AwsLike, Imds, Member, World

ROOT = Path(__file__).resolve().parents[1]
TUNNEL_SOURCE = "127.0.0.2"  # the proxy's side of every upstream connection
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")
CLI_GUARD_S = 120.0  # a hung subprocess fails the test rather than the run
LOOPBACK_MAC = "00:00:00:00:00:00"  # what /sys/class/net/lo/address says


def host_port(url: str) -> str:
    return urlsplit(url).netloc


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectProxy]:
    with ConnectProxy(source_address=TUNNEL_SOURCE).start() as started:
        yield started


def proxy_everything(monkeypatch: pytest.MonkeyPatch, url: str) -> Dict[str, str]:
    """The worst environment: every proxy variable names URL, NO_PROXY exempts nothing."""
    env = {name: url for name in PROXY_VARIABLES}
    env.update(dict.fromkeys(NO_PROXY_VARIABLES, ""))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def assert_ec2_went_through_the_proxy(proxy: ConnectProxy, aws: AwsLike, since: float) -> None:
    """Every call the fake AWS received came from the proxy's tunnels, and the proxy opened
    tunnels to the fake AWS and to nothing else, forwarding no plain request (no IMDS)."""
    fake = host_port(aws.fake.endpoint)
    calls = aws.fake.calls(since=since)
    assert calls, "the fake AWS received nothing"
    direct = [c.describe() for c in calls if c.peer != TUNNEL_SOURCE]
    assert not direct, f"EC2 calls that did not come through the proxy: {direct}"
    assert all(c.status == 200 for c in calls), [(c.describe(), c.code) for c in calls]
    tunnels = proxy.tunnels(status=None)
    assert tunnels and set(tunnels) == {fake}, tunnels
    assert proxy.forwarded() == [], "the proxy forwarded plain-http requests (IMDS?)"
    # each connection the fake accepted in this window is one of the proxy's tunnels
    opened = aws.fake.connections(since)
    assert {c.peer for c in opened} == {TUNNEL_SOURCE}
    assert len(opened) == len(tunnels)
    assert {c.tls for c in opened} == {"TLSv1.3"}  # TLS with the fake itself, end to end


def assert_imds_was_asked_directly(imds: Imds, proxy: ConnectProxy) -> None:
    imds_host = host_port(imds.url)
    assert ("PUT", "/latest/api/token") in imds.requests
    assert any(method == "GET" and "interface-id" in path for method, path in imds.requests)
    assert imds_host not in proxy.tunnels(status=None)
    assert not any(imds_host in url for url in proxy.forwarded())


def assert_switched(
    aws: AwsLike, world: World, report: Dict[str, Any], tables: Dict[str, str]
) -> None:
    """Every table points at member A (read straight from moto, unrecorded), and the report
    says what was done."""
    now = {t: aws.fake.route_target(t, f"{VIP}/32") for t in tables}
    assert now == dict.fromkeys(tables, world.a.eni)
    assert report["ok"] is True and report["outcome"] == "success", report["errors"]
    assert report["verified"] is True
    rows = {t["id"]: t for t in report["route_tables"]}
    assert {t: rows[t]["action"] for t in tables} == tables
    assert {t: rows[t]["after"] for t in tables} == dict.fromkeys(tables, world.a.eni)
    assert rows[world.tables[0]]["before"] == world.b.eni


def expected_actions(world: World) -> Dict[str, str]:
    """tables[0] routed to member B (replaced), the others without the route (created)."""
    actions = {t: CREATED for t in [world.main_table, *world.tables]}
    actions[world.tables[0]] = REPLACED
    return actions


# --- api.claim, in this process -------------------------------------------------------------


def test_claim_goes_through_the_proxy_setting_and_imds_does_not(
    member_a: World,
    aws: AwsLike,
    imds: Imds,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = member_a
    w.route(w.tables[0], w.b.eni)
    aws.fake.clear_calls()
    proxy_everything(monkeypatch, proxy.url)
    since = time.monotonic()
    imds.requests.clear()

    report = api.claim(settings.from_mapping({"proxy": proxy.url}))

    assert_switched(aws, w, report.to_dict(), expected_actions(w))
    assert "changed 3 of 3 route table(s)" in render_text(report)
    assert_ec2_went_through_the_proxy(proxy, aws, since)
    assert_imds_was_asked_directly(imds, proxy)
    actions = {c.action for c in aws.fake.calls(since=since)}
    assert {"DescribeRouteTables", "CreateRoute", "ReplaceRoute"} <= actions


# --- the CLI, as an operator runs it ----------------------------------------------------------


def run_cli(argv: List[str], env: Dict[str, str], home: Path) -> subprocess.CompletedProcess[str]:
    """`python -m mirror_vip ARGV` with the test's environment (the fake AWS, its CA, IMDS, the
    proxy variables) and nothing of this process's settings."""
    full = dict(os.environ)
    full.update(env)
    full["PYTHONPATH"] = str(ROOT / "python")
    full["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "mirror_vip", *argv],
        capture_output=True,
        text=True,
        env=full,
        timeout=CLI_GUARD_S,
        check=False,
    )


def test_cli_claim_with_proxy_option_goes_through_the_proxy_and_imds_does_not(
    world: World,
    aws: AwsLike,
    imds: Imds,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The operator's command on the loopback interface (its MAC is all zeros: IMDS answers
    for it as member A's)."""
    w = world
    w.route(w.tables[0], w.b.eni)
    imds.become(Member(w.a.instance_id, w.a.eni, LOOPBACK_MAC, w.a.subnet_id), w.vpc_id)
    env = proxy_everything(monkeypatch, proxy.url)
    aws.fake.clear_calls()
    since = time.monotonic()
    imds.requests.clear()

    done = run_cli(
        ["claim", "--json", "--vip", VIP, "--interface", "lo", "--force", "--proxy", proxy.url],
        env,
        tmp_path,
    )

    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_switched(aws, w, json.loads(done.stdout), expected_actions(w))
    assert_ec2_went_through_the_proxy(proxy, aws, since)
    assert_imds_was_asked_directly(imds, proxy)


# --- a shared VPC: the AssumeRole through the proxy too --------------------------------------

ROLE = "arn:aws:iam::123456789012:role/mirror-vip-routes"  # moto's default account: the owner
INSTANCE_KEY = "testing"  # the `aws` fixture's AWS_ACCESS_KEY_ID: this instance's own role


@pytest.mark.parametrize("own_sts_endpoint", [False, True], ids=["sts-by-env", "sts_endpoint"])
@pytest.mark.parametrize("environment", ["same-proxy", "other-proxy"])
def test_claim_as_a_role_assumes_it_through_the_proxy(
    member_a: World,
    aws: AwsLike,
    imds: Imds,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
    own_sts_endpoint: bool,
    environment: str,
) -> None:
    """role_arn: STS AssumeRole (moto's, behind the fake AWS) goes through the proxy setting's
    proxy as the EC2 calls do, whatever proxy the environment names (other-proxy: one that
    must carry nothing); with sts_endpoint, to that endpoint: a listener of the fake AWS
    serving TLS 1.2, so the connection that carried the AssumeRole tells where it went."""
    w = member_a
    w.route(w.tables[0], w.b.eni)
    values: Dict[str, Any] = {"proxy": proxy.url, "role_arn": ROLE}
    sts = aws.fake.endpoint
    if own_sts_endpoint:
        sts = values["sts_endpoint"] = aws.fake.listen(tls_version="1.2")
    aws.fake.clear_calls()
    with ConnectProxy().start() as other:
        proxy_everything(monkeypatch, proxy.url if environment == "same-proxy" else other.url)
        since = time.monotonic()
        imds.requests.clear()
        report = api.claim(settings.from_mapping(values))
    assert other.carried == [], "the environment's proxy carried calls"

    assert_switched(aws, w, report.to_dict(), expected_actions(w))
    calls = aws.fake.calls(since=since)
    assert {c.peer for c in calls} == {TUNNEL_SOURCE}, [(c.describe(), c.peer) for c in calls]
    (assume,) = [c for c in calls if c.action == "AssumeRole"]
    assert assume.status == 200 and assume.caller == INSTANCE_KEY
    assert set(proxy.tunnels(status=None)) == {host_port(aws.fake.endpoint), host_port(sts)}
    carrier = {c.seq: c for c in aws.fake.connections(since)}
    sts_tls = "TLSv1.2" if own_sts_endpoint else "TLSv1.3"
    assert carrier[assume.connection or 0].tls == sts_tls
    route_calls = [c for c in calls if c.action in ("DescribeRouteTables", "CreateRoute")]
    route_calls += [c for c in calls if c.action == "ReplaceRoute"]
    assert route_calls and {c.caller for c in route_calls} != {INSTANCE_KEY}
    assert INSTANCE_KEY not in {c.caller for c in route_calls}, "route calls as the role"
    assert {carrier[c.connection or 0].tls for c in route_calls} == {"TLSv1.3"}
    assert proxy.forwarded() == []
    assert_imds_was_asked_directly(imds, proxy)
