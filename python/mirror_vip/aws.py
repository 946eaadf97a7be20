"""The EC2 client, its retries, and what an AWS error means for us.

Retries live here and only here, in `call`: transient failures (throttling, 5xx, connection
errors, timeouts) are retried with jittered exponential backoff until the operation's
deadline. botocore knows no deadline: with its own retries on as well, each of our attempts
could run three of its, and a claim against an EC2 that stopped answering overran its
deadline by half. So botocore is configured for one attempt per call (its `standard` mode's
error handling otherwise), and its timeouts are sized from the deadline.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Optional, TypeVar

import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.loaders import Loader, create_loader

from .errors import AwsError

# EC2's mutating-action token bucket holds 50 requests per account and region (refill 5/s);
# 32 concurrent writes fit in one burst with room to spare for other tools, and keep the
# writes to one round trip for up to 32 route tables.
MAX_PARALLEL_WRITES = 32
PARALLEL_READS = 2  # a claim's describes (route tables, subnets) run side by side
ATTEMPTS_PER_CALL = 1  # botocore's; ours are in `call`
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 2.0

TRANSIENT_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestThrottled",
        "TooManyRequestsException",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
        "BandwidthLimitExceeded",
    }
)
CONNECTION_ERRORS = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

# What to do about a permanent error, by AWS error code.
FIXES = {
    "UnauthorizedOperation": "grant it to the instance role (docs/aws/iam-policy.json)",
    "AccessDenied": "grant it to the instance role (docs/aws/iam-policy.json)",
    "InvalidRouteTableID.NotFound": "the route table is gone; check --route-tables",
    "AuthFailure": "check the instance role's credentials (IMDS) or AWS_* variables",
    "UnrecognizedClientException": "check the instance role's credentials",
    "InvalidNetworkInterfaceID.NotFound": "check --eni: no such network interface",
}

T = TypeVar("T")


class Deadline:
    """A point in time an operation must finish by (monotonic clock)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


def client_config(deadline_s: float) -> Config:
    """Timeouts sized so a few attempts fit in the deadline; a pool as wide as our calls."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": ATTEMPTS_PER_CALL},
        connect_timeout=min(3.0, max(0.5, deadline_s / 10)),
        read_timeout=min(10.0, max(1.0, deadline_s / 4)),
        # the writes and, beside them, the describes: none of their connections is discarded
        max_pool_connections=MAX_PARALLEL_WRITES + PARALLEL_READS,
    )


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


def ec2_client(core: botocore.session.Session, region: str, deadline_s: float) -> Any:
    """The EC2 client, made by botocore's session as boto3.client makes it. boto3 itself is not
    imported: what it adds (resources, S3 transfers) a claim never uses, and its import costs
    ~20 ms of every cold start. Credentials come from botocore's standard chain (environment,
    profile, instance role through IMDS); AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_EC2 apply."""
    return core.create_client("ec2", region_name=region, config=client_config(deadline_s))


def error_code(exc: BaseException) -> Optional[str]:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message") or exc)
    return str(exc)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return error_code(exc) in TRANSIENT_CODES or status >= 500
    return False


def aws_error(exc: BaseException, action: str, resource: str) -> AwsError:
    """A permanent error as one line: code, what failed, what to do."""
    code = error_code(exc)
    if isinstance(exc, NoCredentialsError):
        return AwsError(
            f"{action} on {resource}: no AWS credentials found; attach an instance role "
            "(docs/aws/iam-policy.json) or set the AWS_* variables"
        )
    if code is None:
        again = " (retried until the deadline)" if is_transient(exc) else ""
        return AwsError(f"{action} on {resource} failed{again}: {type(exc).__name__}: {exc}")
    fix = FIXES.get(code)
    text = f"{code}: {action} on {resource} refused: {error_message(exc)}"
    if code in ("UnauthorizedOperation", "AccessDenied"):
        text = f"{code}: not allowed to {action} on {resource}"
    return AwsError(f"{text}; {fix}" if fix else text, code)


def checked(
    action: str, resource: str, fn: Callable[..., T], deadline: Deadline, **params: Any
) -> T:
    """call(), with a permanent or persistent failure turned into a one-line AwsError."""
    try:
        return call(fn, deadline, **params)
    except Exception as exc:
        raise aws_error(exc, action, resource) from None


def call(fn: Callable[..., T], deadline: Deadline, **params: Any) -> T:
    """fn(**params), retrying transient failures with jittered backoff until the deadline."""
    backoff = BACKOFF_START_S
    while True:
        try:
            return fn(**params)
        except Exception as exc:
            if not is_transient(exc):
                raise
            pause = random.uniform(backoff / 2, backoff)  # noqa: S311 - jitter, not crypto
            if deadline.remaining() <= pause:
                raise
            time.sleep(pause)
            backoff = min(backoff * 2, BACKOFF_MAX_S)


def open_connections(ec2: Any, count: int) -> int:
    """Open up to `count` connections to the EC2 endpoint and leave them in the client's pool.

    Run beside the describe, so the parallel writes after it find connections ready and do not
    each pay a TCP and TLS handshake (two round trips) on the critical path. botocore has no
    public API for this: we reach its urllib3 pool the way its own `send` does. Best effort:
    any surprise (a proxy, another botocore layout) makes it a no-op, never an error.
    """
    try:
        url = ec2.meta.endpoint_url
        http = ec2._endpoint.http_session
        if http._proxy_config.proxy_url_for(url):
            return 0
        pool = http._get_connection_manager(url, None).connection_from_url(url)
        http._setup_ssl_cert(pool, url, http._verify)
        idle = [pool._get_conn() for _ in range(max(0, count))]
    except Exception:
        return 0

    def connect(conn: Any) -> bool:
        try:
            if getattr(conn, "sock", None) is None:
                conn.connect()
            return True
        except Exception:
            conn.close()
            return False

    with ThreadPoolExecutor(max_workers=max(1, len(idle))) as pool_threads:
        opened = sum(pool_threads.map(connect, idle))
    for conn in idle:
        pool._put_conn(conn)
    return opened
