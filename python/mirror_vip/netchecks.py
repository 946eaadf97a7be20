"""The doctor's checks of the network path: EC2 reachable, proxy variables, the IMDS hop limit.

Each returns one Check (pass, warn or fail) whose detail ends with the fix. They exist for the
subnets hospitals and banks run databases in: no internet route, EC2 reached through an
interface VPC endpoint or an egress proxy, sometimes IRIS in a container.
"""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, ProxyConnectionError, SSLError
from botocore.utils import should_bypass_proxies

from . import imds, unproxied, watchdog
from .aws import Deadline, attempt_limit_s, retrying, timeouts
from .failures import OutOfTime, describe, tunnel_refusal
from .report import FAIL, PASS, WARN, Check
from .settings import Settings
from .urls import masked

IMDS_HOST = "169.254.169.254"
ROOT = Path("/")  # where container_hint looks (tests point it elsewhere)
PROBE_ATTEMPTS = 2  # a lost SYN is not "unreachable"
SLOW_SHARE = 0.5  # a first answer slower than this share of the connect timeout is a warning
EC2_FIXES = (
    "give the subnet a route to a NAT gateway, or create an EC2 interface VPC endpoint "
    "(com.amazonaws.{region}.ec2) with private DNS (without it, set ec2_endpoint to its DNS "
    "name), or set proxy to your egress proxy"
)
# Where a container leaves its mark (Docker, Podman; cgroup v1 paths of Docker, Kubernetes,
# containerd, CRI-O, LXC). cgroup v2 with a private namespace shows "0::/": no hint there.
CONTAINER_FILES = (".dockerenv", "run/.containerenv")
CGROUP_FILES = ("proc/1/cgroup", "proc/self/cgroup")
CGROUP_MARKERS = ("docker", "kubepods", "containerd", "crio", "libpod", "lxc")
HOP_LIMIT_FIX = (
    "aws ec2 modify-instance-metadata-options --instance-id {instance} "
    "--http-put-response-hop-limit 2 --http-endpoint enabled"
)


# --- EC2 unreachable ------------------------------------------------------------------------


def ec2_reachable(ec2: Any, vpc_id: str, deadline: Deadline) -> Check:
    """One read (DescribeVpcs on our VPC, at most PROBE_ATTEMPTS tries) along the client's own
    path: its endpoint, its proxy, its CA bundle. Any answer from AWS, an error too, means EC2
    is reached; what fails before an answer is said with the fix for it."""
    url = str(ec2.meta.endpoint_url)
    via = _proxy_of(ec2, url)
    path = f"{url} through the proxy {masked(via)}" if via else url
    connect_s, _ = timeouts(deadline.seconds)
    started = time.monotonic()
    try:
        retrying(
            lambda: ec2.describe_vpcs(VpcIds=[vpc_id]),
            deadline,
            attempt_limit_s(deadline.seconds),
            PROBE_ATTEMPTS,
        )
    except ClientError:  # AWS answered (an error is an answer)
        pass
    except OutOfTime as exc:  # a throttled or 5xx answer twice is an answer too
        if not isinstance(exc.last, ClientError):
            return _unreachable(ec2, path, via, exc.last)
    except Exception as exc:  # not retried: a proxy that refused, TLS that failed
        return _unreachable(ec2, path, via, exc)
    took = time.monotonic() - started
    if took > SLOW_SHARE * connect_s:
        return Check(
            "ec2_reachable",
            WARN,
            f"{path} answered, but only after {took:.1f}s, more than half the {connect_s:g}s "
            f"connect timeout of the {deadline.seconds:g}s deadline: a failover's writes each "
            "pay that again; raise the deadline, or reach EC2 closer (an interface endpoint)",
        )
    return Check("ec2_reachable", PASS, f"{path} answered in {took:.2f}s")


def _proxy_of(ec2: Any, url: str) -> Optional[str]:
    try:
        found = ec2._endpoint.http_session._proxy_config.proxy_url_for(url)
    except AttributeError:
        return None
    return str(found) if found else None


def _unreachable(
    ec2: Any, path: str, via: Optional[str], failure: Optional[BaseException]
) -> Check:
    region = str(getattr(ec2.meta, "region_name", "") or "REGION")
    why = describe(failure) if failure is not None else "no time left to try"
    tunnel = tunnel_refusal(failure)
    if isinstance(failure, SSLError):
        fix = (
            "the CA that signs its certificate (or your TLS-inspecting proxy's) must be in "
            "AWS_CA_BUNDLE; an ec2_endpoint must be the endpoint's own DNS name"
        )
        why = f"TLS failed: {failure}"
    elif tunnel is not None:
        status, words = tunnel
        why = f"the proxy answered {status} {words} to CONNECT {_host_port(path)}"
        fix = {
            "407": "the proxy wants credentials: give them in proxy as http://USER:PASSWORD@...",
            "403": "the proxy's allow-list must let CONNECT to this host on port 443 through",
        }.get(
            status,
            "the proxy cannot reach EC2 itself: ask its administrators, or "
            "create an EC2 interface endpoint",
        )
    elif isinstance(failure, ProxyConnectionError) and via:
        fix = "check the proxy setting (host and port) and that this subnet may reach the proxy"
    else:
        fix = EC2_FIXES.format(region=region)
    return Check("ec2_reachable", FAIL, f"EC2 unreachable: {path}: {why}; fix: {fix}")


def _host_port(path: str) -> str:
    parts = urlsplit(path.split(" ", 1)[0])
    return f"{parts.hostname}:{parts.port or 443}"


# --- proxy variables -----------------------------------------------------------------------


def proxy_environment(
    chosen: Settings,
    ec2: Optional[Any],
    deadline: Deadline,
    in_iris: bool,
) -> Check:
    """What this process's HTTP(S)_PROXY / ALL_PROXY / NO_PROXY would do to IMDS and EC2 calls.

    mirror-vip asks IMDS directly whatever they say (unproxied.py); its EC2 calls take the
    proxy setting when there is one, else botocore follows HTTPS_PROXY and NO_PROXY. Other
    tools on the host follow the variables to IMDS too (the AWS CLI and SDKs: HTTP_PROXY;
    curl: http_proxy and ALL_PROXY). IRIS started by systemd does not see a login shell's
    variables, so a doctor run from the shell may test a path a failover will not take.
    """
    proxies = _environment_proxies()
    if not proxies:
        return Check("proxy_environment", PASS, "no proxy variable is set")
    notes: List[str] = []
    status = PASS
    imds_by = _capturing(proxies, f"http://{IMDS_HOST}/", ("http", "all"))
    if imds_by:
        status = WARN
        notes.append(
            f"{_named(imds_by)} would take IMDS requests ({IMDS_HOST}): mirror-vip asks IMDS "
            "directly whatever it says, but other tools on this host (the AWS CLI and SDKs, "
            "curl) send them to the proxy, which answers for its own instance or not at all; "
            f"fix: add {IMDS_HOST} to NO_PROXY and no_proxy"
        )
    url = str(ec2.meta.endpoint_url) if ec2 is not None else ""
    scheme = "https" if url.startswith("https:") else "http"
    ec2_by = _capturing(proxies, url, (scheme,)) if url else []
    if ec2_by and chosen.proxy:
        notes.append(
            f"{_named(ec2_by)} is not used for EC2: the proxy setting "
            f"({masked(chosen.proxy)}) takes precedence"
        )
    elif ec2_by:
        value = masked(ec2_by[0][1])
        host = urlsplit(url).hostname
        if in_iris:
            status = _worse(status, WARN)
            notes.append(
                f"IRIS's own environment has {_named(ec2_by)} ({value}), which carries the EC2 "
                f"calls; fix: set proxy to {value}, so that IRIS keeps it whatever starts it"
            )
        elif _direct_answer(ec2, url, deadline):
            status = _worse(status, WARN)
            notes.append(
                f"this shell's {_named(ec2_by)} ({value}) carries this run's EC2 calls; IRIS "
                f"does not inherit it and reaches {host} directly, which answers too; fix: add "
                f"{host} to NO_PROXY, or set proxy to {value}, so that both take one path"
            )
        else:
            status = FAIL
            notes.append(
                f"this shell's {_named(ec2_by)} ({value}) carries this run's EC2 calls, but "
                f"IRIS's processes do not inherit it and {host} does not answer directly: a "
                f"failover claim would not reach EC2; fix: set proxy to {value}"
            )
    if not notes:
        names = _named(list(proxies.values()))
        return Check(
            "proxy_environment",
            PASS,
            f"{names} set, and NO_PROXY keeps IMDS and EC2 calls away from it",
        )
    return Check("proxy_environment", status, "; ".join(notes))


def _worse(status: str, other: str) -> str:
    order = (PASS, WARN, FAIL)
    return max(status, other, key=order.index)


def _environment_proxies() -> Dict[str, Tuple[str, str]]:
    """scheme -> (variable, proxy URL), as urllib reads them for botocore (getproxies): the
    lower-case variable wins over the upper-case one."""
    found: Dict[str, Tuple[str, str]] = {}
    for scheme, url in urllib.request.getproxies_environment().items():
        if scheme in ("http", "https", "all") and url:
            lower = f"{scheme}_proxy"
            found[scheme] = (lower if os.environ.get(lower) else lower.upper(), url)
    return found


def _capturing(
    proxies: Dict[str, Tuple[str, str]], url: str, schemes: Tuple[str, ...]
) -> List[Tuple[str, str]]:
    """[(variable, proxy URL)] of the proxy variables that would carry a request to URL, by
    botocore's rule (NO_PROXY as urllib reads it: host suffixes and '*', no CIDR ranges)."""
    if should_bypass_proxies(url):
        return []
    return [proxies[s] for s in schemes if s in proxies]


def _named(found: List[Tuple[str, str]]) -> str:
    return " and ".join(dict.fromkeys(name for name, _ in found))


def _direct_answer(ec2: Any, url: str, deadline: Deadline) -> bool:
    """Does URL answer at all without a proxy (one unsigned GET, any HTTP status)?"""
    connect_s, read_s = timeouts(deadline.seconds)
    try:
        verify = ec2._endpoint.http_session._verify
    except AttributeError:
        verify = True
    session = unproxied.session((connect_s, read_s), verify)
    watchdog.install(session)
    try:
        with watchdog.bounded(time.monotonic() + connect_s + read_s):
            session.send(AWSRequest(method="GET", url=url.rstrip("/") + "/").prepare())
    except Exception:
        return False
    finally:
        session.close()
    return True


# --- the IMDS hop limit in a container ------------------------------------------------------


def container_hint(
    root: Optional[Path] = None, environ: Optional[Mapping[str, str]] = None
) -> Optional[str]:
    """Why we think this process runs in a container, or None."""
    root = ROOT if root is None else root
    for name in CONTAINER_FILES:
        if (root / name).exists():
            return f"/{name} exists"
    for name in CGROUP_FILES:
        try:
            text = (root / name).read_text(errors="replace")
        except OSError:
            continue
        marker = next((m for m in CGROUP_MARKERS if m in text), None)
        if marker:
            return f"/{name} names {marker}"
    env = os.environ if environ is None else environ
    if env.get("container"):  # set by systemd-nspawn and podman
        return f"container={env['container']} in the environment"
    return None


def imds_hop_limit(
    core: botocore.session.Session,
    deadline: Deadline,
    token_worked: bool,
    root: Optional[Path] = None,
) -> Check:
    """IMDS sends the token PUT's answer with an IP TTL of the instance's hop limit; a
    container behind a bridge is one hop more, so with the default limit of 1 the answer dies
    on the way while GETs (no such limit) come back. AWS's EC2 User Guide ("Use the Instance
    Metadata Service", considerations): in a container, if the hop limit is 1 the IMDSv2 call
    may get no response at all; raise it to 2. The limit itself is not served by IMDS (only
    DescribeInstances' MetadataOptions shows it), so it is read from its symptom: a PUT with
    no answer and a GET with one. TOKEN_WORKED: this run already got a token."""
    hint = container_hint(root)
    where = f"in a container ({hint})" if hint else "not in a container"
    if token_worked:
        return Check("imds_hop_limit", PASS, f"{where}; the IMDSv2 token reached this process")
    probe = imds.probe_token(core, deadline)
    if probe is None:
        return Check("imds_hop_limit", PASS, f"{where}; IMDS is disabled: no token is asked for")
    if probe.put is not None:
        return Check(
            "imds_hop_limit",
            PASS,
            f"{where}; IMDS answered the token PUT (HTTP {probe.put}): not a hop limit problem",
        )
    if probe.get is not None:
        fix = HOP_LIMIT_FIX.format(instance=probe.instance_id or "INSTANCE_ID")
        path = (
            "this container's bridge"
            if hint
            else "something on the way (a container, a network namespace)"
        )
        return Check(
            "imds_hop_limit",
            FAIL,
            f"{where}: IMDS at {probe.endpoint} answers GETs (HTTP {probe.get}) but the IMDSv2 "
            f"token PUT got {probe.put_failure}: its answer leaves IMDS with the hop limit as "
            f"its IP TTL, and {path} is one hop more (AWS recommends 2 for containers); "
            f"fix: {fix}",
        )
    if hint:
        return Check(
            "imds_hop_limit",
            WARN,
            f"{where}; cannot tell the hop limit: IMDS at {probe.endpoint} answers neither the "
            f"token PUT ({probe.put_failure}) nor a GET, which a hop limit never stops; fix: let "
            "this container reach 169.254.169.254 (see the imds check)",
        )
    return Check(
        "imds_hop_limit",
        PASS,
        f"{where}: the hop limit does not matter here (IMDS does not answer at all: see imds)",
    )
