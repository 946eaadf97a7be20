"""The EC2 client, its retries, and the deadline over every request.

Retries live here and only here, in `call`: transient failures (throttling, 5xx, connection
errors, timeouts) are retried with jittered exponential backoff until the operation's
deadline. botocore knows no deadline: with its own retries on as well, each of our attempts
could run three of its, and a claim against an EC2 that stopped answering overran its
deadline by half. So botocore is configured for one attempt per call (its `standard` mode's
error handling otherwise), and its timeouts are sized from the deadline.

Its timeouts bound each socket operation, not a call, so every attempt also runs under a
wall-clock bound (watchdog.bounded) that ends it, whatever the peer sends, by the sooner of
the deadline and connect + read timeout from its start; no attempt starts without time left.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union
from urllib.parse import urlsplit

import botocore.session
from botocore.config import Config
from botocore.loaders import Loader, create_loader
from urllib3.util.proxy import connection_requires_http_tunnel

from . import credentials, pooled, watchdog
from .failures import AttemptTimedOut, OutOfTime, is_transient
from .failures import aws_error as aws_error
from .failures import error_code as error_code
from .failures import error_message as error_message

# EC2's mutating-action token bucket holds 50 requests per account and region (refill 5/s);
# 32 concurrent writes fit in one burst with room to spare for other tools, and keep the
# writes to one round trip for up to 32 route tables.
MAX_PARALLEL_WRITES = 32
PARALLEL_READS = 2  # a claim's describes (route tables, subnets) run side by side
ATTEMPTS_PER_CALL = 1  # botocore's; ours are in `call`
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 2.0
MIN_ATTEMPT_S = 0.1  # an attempt is not started with less time than this left

T = TypeVar("T")
_LOG = logging.getLogger(__name__)


class Deadline:
    """A point in time an operation must finish by (monotonic clock). `seconds` is the whole
    operation's deadline, as the user set it (for messages)."""

    def __init__(self, seconds: float, end: Optional[float] = None) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds if end is None else end

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def sooner(self, seconds: float) -> Deadline:
        """This deadline less SECONDS: keeps that much time for a step after (a verify read)."""
        return Deadline(self.seconds, self.end - seconds)


def timeouts(deadline_s: float) -> Tuple[float, float]:
    """(connect, read) timeouts of each socket operation: a few attempts fit in the deadline."""
    return min(3.0, max(0.5, deadline_s / 10)), min(10.0, max(1.0, deadline_s / 4))


def client_config(deadline_s: float, proxy: Optional[str] = None) -> Config:
    """Timeouts sized from the deadline; a pool as wide as our calls; the proxy, if any.

    A proxy given here is botocore's Config(proxies=...): it carries every request of the
    client whatever HTTP(S)_PROXY and NO_PROXY say (botocore reads the environment only when
    Config has no proxies: endpoint.EndpointCreator). For an https endpoint the proxy is asked
    to CONNECT and TLS runs end to end through the tunnel; an https:// proxy URL adds TLS to
    the proxy itself (urllib3's TLS in TLS), verified against the same CA bundle.
    """
    connect, read = timeouts(deadline_s)
    config = Config(
        retries={"mode": "standard", "total_max_attempts": ATTEMPTS_PER_CALL},
        connect_timeout=connect,
        read_timeout=read,
        # the writes and, beside them, the describes: none of their connections is discarded
        max_pool_connections=MAX_PARALLEL_WRITES + PARALLEL_READS,
    )
    if proxy:
        config = config.merge(
            Config(
                proxies={"http": proxy, "https": proxy},
                # tunnel (CONNECT) even to an https:// proxy, never hand it the request to
                # forward: TLS, and the signature, stay end to end between us and AWS
                proxies_config={"proxy_use_forwarding_for_https": False},
            )
        )
    return config


def attempt_limit_s(deadline_s: float) -> float:
    """The longest one attempt may take: the connect and read timeouts, back to back. A peer
    that answers (or dribbles) past it is given up on, and the call tried again if time is left."""
    return sum(timeouts(deadline_s))


_LOADERS: Dict[Optional[str], Loader] = {}
_LOADERS_LOCK = threading.Lock()


def botocore_session() -> botocore.session.Session:
    """A new botocore session that shares this process's data loader.

    The loader holds the parsed service models (EC2's is ~4 MB of JSON, and finding it walks
    botocore's data directories): ~100 ms of CPU to build each time. A fresh session would
    build its own; sharing it makes every claim after the first in a long-lived process (the
    reconcile task) skip that. One loader per AWS_DATA_PATH, exactly as the session would
    have made it; it is only ever read after loading.
    """
    core = botocore.session.get_session()
    data_path = core.get_config_variable("data_path")
    with _LOADERS_LOCK:
        loader = _LOADERS.get(data_path)
        if loader is None:
            loader = _LOADERS[data_path] = create_loader(data_path)
    core.register_component("data_loader", loader)
    return core


def ec2_client(
    core: botocore.session.Session,
    region: str,
    deadline: Union[Deadline, float],
    endpoint_url: Optional[str] = None,
    proxy: Optional[str] = None,
) -> Any:
    """The EC2 client, made by botocore's session as boto3.client makes it. boto3 itself is not
    imported: what it adds (resources, S3 transfers) a claim never uses, and its import costs
    ~20 ms of every cold start. Credentials come from botocore's standard chain (environment,
    profile, instance role through IMDS), resolved first within the deadline (credentials.py);
    ENDPOINT_URL (the ec2_endpoint setting) wins over AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_EC2,
    which apply without it; PROXY (the proxy setting) is client_config's. Its connections
    report to the watchdog."""
    if not isinstance(deadline, Deadline):
        deadline = Deadline(deadline)
    credentials.resolve(core, deadline.end, deadline.seconds)
    config = client_config(deadline.seconds, proxy)
    ec2: Any = core.create_client(
        "ec2", region_name=region, config=config, endpoint_url=endpoint_url
    )
    watchdog.install(getattr(getattr(ec2, "_endpoint", None), "http_session", None))
    make_proxy_manager(ec2)
    return ec2


def sts_client(
    core: botocore.session.Session,
    region: str,
    deadline_s: float,
    endpoint_url: Optional[str] = None,
    proxy: Optional[str] = None,
    **credentials: Any,
) -> Any:
    """An STS client for an AssumeRole (assumerole.py), made as the EC2 client is: one attempt
    per call (the retries are ours), timeouts from the deadline, its connections watched.

    Always STS's regional endpoint, never the global sts.amazonaws.com in us-east-1: botocore
    before 1.40 defaults `sts_regional_endpoints` to "legacy", the global endpoint for 16
    regions (eu-west-1 among them; botocore/args.py LEGACY_GLOBAL_STS_REGIONS, its default
    changed in 1.40.0), and AWS_STS_REGIONAL_ENDPOINTS=legacy asks for it still. A session
    variable outranks both. ENDPOINT_URL (the sts_endpoint setting) wins over
    AWS_ENDPOINT_URL_STS, which still applies without it; PROXY as for EC2."""
    core.set_config_variable("sts_regional_endpoints", "regional")
    config = client_config(deadline_s, proxy)
    sts: Any = core.create_client(
        "sts", region_name=region, config=config, endpoint_url=endpoint_url, **credentials
    )
    watchdog.install(getattr(getattr(sts, "_endpoint", None), "http_session", None))
    make_proxy_manager(sts)
    return sts


def make_proxy_manager(client: Any) -> bool:
    """Build CLIENT's proxy connection manager now, in this thread, if its endpoint is reached
    through a proxy. botocore builds it on first use, unlocked (URLLib3Session
    ._get_proxy_manager: look up, build, store): two threads sending their first request at
    once (the two describes, open_connections beside them) may each build one, and the
    connections of the one overwritten land in a pool that no request uses again. False, and
    nothing done, without a proxy or on a botocore laid out otherwise."""
    try:
        url = client.meta.endpoint_url
        http = client._endpoint.http_session
        proxy_url = http._proxy_config.proxy_url_for(url)
        if not proxy_url:
            return False
        http._get_proxy_manager(proxy_url)
    except Exception as exc:  # botocore's layout, or a proxy URL it cannot take: said in send
        _LOG.debug("proxy manager not built ahead (%s: %s)", type(exc).__name__, exc)
        return False
    return True


def checked(
    action: str, resource: str, fn: Callable[..., T], deadline: Deadline, **params: Any
) -> T:
    """call(), with a permanent or persistent failure turned into a one-line AwsError."""
    try:
        return call(fn, deadline, **params)
    except Exception as exc:
        raise aws_error(exc, action, resource) from None


def call(fn: Callable[..., T], deadline: Deadline, **params: Any) -> T:
    """fn(**params), an EC2 call, retried on transient failures until the deadline; each
    attempt bounded by the deadline and attempt_limit_s (see `retrying`)."""
    return retrying(lambda: fn(**params), deadline, attempt_limit_s(deadline.seconds))


def retrying(
    once: Callable[[], T],
    deadline: Deadline,
    attempt_s: float,
    max_attempts: Optional[int] = None,
    transient: Callable[[BaseException], bool] = is_transient,
) -> T:
    """once(), retrying transient failures with jittered backoff until the deadline (or
    MAX_ATTEMPTS): the one retry loop, for EC2 (`call`) and IMDS alike.

    Each attempt is bounded (watchdog.bounded): by the deadline, and by ATTEMPT_S so a peer that
    stalls or dribbles is left for a fresh connection while time remains. An attempt that ran
    out of time is an AttemptTimedOut whatever came back (a body cut short may even parse). No
    attempt starts with less than MIN_ATTEMPT_S left. OutOfTime, carrying the last failure, when
    the deadline or MAX_ATTEMPTS ends the retries; a failure that is not transient as it is."""
    backoff = BACKOFF_START_S
    attempts = 0
    last: Optional[BaseException] = None
    while True:
        if deadline.remaining() < MIN_ATTEMPT_S:
            raise OutOfTime(deadline.seconds, attempts, last)
        attempts += 1
        started = time.monotonic()
        failure: Optional[BaseException] = None
        with watchdog.bounded(min(deadline.end, started + attempt_s)) as attempt:
            try:
                result = once()
            except Exception as exc:
                failure = exc
        if attempt.expired:
            cut = attempt.end >= deadline.end  # by the deadline, not the attempt's own limit
            if cut and last is not None:
                raise OutOfTime(deadline.seconds, attempts, last)  # the earlier failure says more
            failure = AttemptTimedOut(attempt.end - started, by_deadline=cut)
        elif failure is None:
            return result
        last = failure
        if not transient(failure):
            raise failure
        if max_attempts is not None and attempts >= max_attempts:
            raise OutOfTime(deadline.seconds, attempts, last, deadline_reached=False)
        pause = random.uniform(backoff / 2, backoff)  # noqa: S311 - jitter, not crypto
        if deadline.remaining() <= pause + MIN_ATTEMPT_S:
            raise OutOfTime(deadline.seconds, attempts, last)
        time.sleep(pause)
        backoff = min(backoff * 2, BACKOFF_MAX_S)


def open_connections(ec2: Any, count: int) -> int:
    """Open up to `count` connections to the EC2 endpoint and leave them in the client's pool.

    Run beside the describe, so the parallel writes after it find connections ready and do not
    each pay a TCP and TLS handshake (two round trips) on the critical path. botocore has no
    public API for this: we reach its urllib3 pool the way its own `send` does. Each connection
    goes back to the pool as soon as it is open, so a write never waits for a slower one. A
    TLS 1.3 server's session tickets, which arrive after that, do not get it thrown away: the
    pool's queue reads them before urllib3 looks (pooled.py; the pool classes watchdog.install
    gives botocore). Through a proxy (the proxy setting, or botocore's reading of HTTPS_PROXY)
    the pool is the proxy manager's, as botocore's `send` finds it, and each connection is
    opened as urllib3 opens one before its first request (`_prepare_proxy`: the CONNECT, then
    TLS with EC2 inside the tunnel); urllib3 does not tunnel again a connection already open
    (1.26: `is_new_proxy_conn`; 2.x: `conn.is_closed`). Best effort: any surprise (another
    botocore layout, a failed connect, a proxy refusing the CONNECT) opens fewer, never raises;
    fewer than asked is said at debug level.
    """
    wanted = max(0, count)
    try:
        url = ec2.meta.endpoint_url
        http = ec2._endpoint.http_session
        proxy_url = http._proxy_config.proxy_url_for(url)
        pool = http._get_connection_manager(url, proxy_url).connection_from_url(url)
        http._setup_ssl_cert(pool, url, http._verify)
        tunnel = proxy_url is not None and connection_requires_http_tunnel(
            pool.proxy, pool.proxy_config, urlsplit(url).scheme
        )
        if url.startswith("https:") and not isinstance(pool.pool, pooled.IdleConnections):
            _LOG.debug("this pool may discard the connections opened ahead (pooled.py)")
        idle = [pool._get_conn() for _ in range(wanted)]
    except Exception as exc:
        _LOG.debug(
            "opened 0 of %d connections ahead of the writes: the EC2 client is not laid out "
            "as this botocore was (%s: %s)",
            wanted,
            type(exc).__name__,
            exc,
        )
        return 0

    limit_s = float(ec2.meta.config.connect_timeout or 1.0)
    failures: List[str] = []

    def connect(conn: Any) -> bool:
        try:
            if getattr(conn, "sock", None) is None:
                # TCP and, for https, the TLS handshake: neither may hold the writes back long
                with watchdog.bounded(time.monotonic() + 2 * limit_s) as attempt:
                    if tunnel:
                        pool._prepare_proxy(conn)  # CONNECT, then TLS inside the tunnel
                    else:
                        conn.connect()
                if attempt.expired:
                    raise AttemptTimedOut(2 * limit_s)
            opened = getattr(conn, "sock", None) is not None
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            opened = False
        pool._put_conn(conn)  # at once: a write may take it now
        return opened

    with ThreadPoolExecutor(max_workers=max(1, len(idle))) as pool_threads:
        opened = sum(pool_threads.map(connect, idle))
    if opened < wanted:
        _LOG.debug(
            "opened %d of %d connections ahead of the writes; the writes open the rest (%s)",
            opened,
            wanted,
            failures[0] if failures else "no error",
        )
    return opened
