"""What a failed AWS or IMDS request means for us, and how we say it.

One line each, in the reader's words: what failed, why, what to do. botocore's exception class
names (EndpointConnectionError, its IMDS fetcher's private _RetriesExceededError, ...) are not
words for a reader and never appear.
"""

from __future__ import annotations

import re
import ssl
from typing import Any, List, Optional, Tuple

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

from .errors import AwsError

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
NO_CREDENTIALS_FIX = "attach an instance role (docs/aws/iam-policy.json) or set the AWS_* variables"
# Put into an error answer's "Error" by `name_grantee`: whom a refused action is to be granted to.
GRANTEE = "MirrorVipGrantee"
REFUSED = ("UnauthorizedOperation", "AccessDenied")


def name_grantee(client: Any, grantee: str) -> None:
    """CLIENT's refused calls say to grant the action to GRANTEE (in a shared VPC the route
    calls are made as the owner account's role, the rest as this instance's role). botocore
    emits after-call with the parsed answer before it raises it as a ClientError, whose
    `response` that answer is (botocore/client.py, _make_api_call)."""

    def note(parsed: Any = None, **_: Any) -> None:
        error = parsed.get("Error") if isinstance(parsed, dict) else None
        if isinstance(error, dict) and error.get("Code") in REFUSED:
            error[GRANTEE] = grantee

    client.meta.events.register("after-call.ec2", note)


class AttemptTimedOut(Exception):
    """One attempt ran out of time (watchdog.bounded) before its answer was complete: its own
    limit of SECONDS, or (BY_DEADLINE) what was left of the deadline."""

    def __init__(self, seconds: float, by_deadline: bool = False) -> None:
        text = "before the deadline" if by_deadline else f"within {seconds:.1f}s"
        super().__init__(f"no complete answer {text}")
        self.seconds = seconds
        self.by_deadline = by_deadline


class OutOfTime(Exception):
    """`aws.retrying` stopped: the deadline left no time for another attempt (or, with
    DEADLINE_REACHED false, the attempts allowed were used up). `last` is the last attempt's
    failure (None: not even one was made)."""

    def __init__(
        self,
        deadline_s: float,
        attempts: int,
        last: Optional[BaseException],
        deadline_reached: bool = True,
    ) -> None:
        super().__init__(f"gave up after {attempts} attempt(s), deadline {deadline_s:g}s")
        self.deadline_s = deadline_s
        self.attempts = attempts
        self.last = last
        self.deadline_reached = deadline_reached


def error_code(exc: BaseException) -> Optional[str]:
    if isinstance(exc, OutOfTime):
        return error_code(exc.last) if exc.last is not None else None
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message") or exc)
    return str(exc)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (AttemptTimedOut, *CONNECTION_ERRORS)):
        return True
    if isinstance(exc, SSLError):
        # a handshake the peer cut short is tried again (botocore's retries count SSLError as
        # a connection error); a certificate that fails to verify will fail again
        return not isinstance(
            (getattr(exc, "kwargs", None) or {}).get("error"), ssl.CertificateError
        )
    if isinstance(exc, ProxyConnectionError):
        # a proxy down or restarting, as EC2's endpoint refusing: tried again while time is
        # left; a proxy that answered the CONNECT with a refusal (403, 407) will answer so again
        return tunnel_refusal(exc) is None
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return error_code(exc) in TRANSIENT_CODES or status >= 500
    return False


def describe(exc: BaseException) -> str:
    """A transport failure in words (no class names): "could not connect to URL: connection
    refused", "no answer from URL within the read timeout", ..."""
    kwargs = getattr(exc, "kwargs", None) or {}
    url = kwargs.get("endpoint_url") or kwargs.get("proxy_url") or "the endpoint"
    if isinstance(exc, ProxyConnectionError):
        refused = tunnel_refusal(exc)
        if refused is not None:
            return _tunnel_refused(url, *refused)
        return f"could not connect to the proxy {url}: {reason(kwargs.get('error'))}"
    if isinstance(exc, ConnectTimeoutError):
        return f"no connection to {url} within the connect timeout"
    if isinstance(exc, EndpointConnectionError):
        return f"could not connect to {url}: {reason(kwargs.get('error'))}"
    if isinstance(exc, ReadTimeoutError):
        return f"no answer from {url} within the read timeout"
    if isinstance(exc, ConnectionClosedError):
        return f"{url} closed the connection before a complete answer"
    return str(exc) or type(exc).__name__


def tunnel_refusal(failure: Optional[BaseException]) -> Optional[Tuple[str, str]]:
    """(status, reason) when a proxy refused the CONNECT (urllib3 wraps http.client's
    "Tunnel connection failed: 403 Forbidden" in its ProxyError)."""
    seen: List[BaseException] = []
    stack: List[Any] = [failure]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or item in seen:
            continue
        seen.append(item)
        found = re.search(r"Tunnel connection failed: (\d{3}) ?([^'\")]*)", str(item))
        if found:
            return found.group(1), found.group(2).strip()
        kwargs = getattr(item, "kwargs", None) or {}
        stack.extend([item.__cause__, item.__context__, kwargs.get("error"), *item.args])
    return None


def _tunnel_refused(url: str, status: str, words: str) -> str:
    """A proxy's refusal of the CONNECT, with what to change. URL is botocore's, its user and
    password already masked (***:***@) when it has them."""
    said = f"the proxy {url} answered {status} {words} to CONNECT".rstrip()
    if status == "407" and "@" in url:
        fix = "correct the user and password in the proxy setting (percent-encoded)"
    elif status == "407":
        fix = (
            "give the proxy's user and password in the proxy setting "
            "(http://USER:PASSWORD@HOST:PORT, percent-encoded)"
        )
    elif status == "403":
        fix = "the proxy's allow-list must let CONNECT to the AWS endpoint on port 443 through"
    else:
        fix = "the proxy cannot reach the AWS endpoint itself: ask its administrators"
    return f"{said}: {fix}"


def reason(error: object) -> str:
    """The operating system's words for why a connection failed ("connection refused")."""
    seen = error
    while isinstance(seen, BaseException):
        if isinstance(seen, OSError) and seen.strerror:
            return str(seen.strerror).lower()
        seen = seen.__cause__ or seen.__context__
    text = str(error or "").rsplit("]", 1)[-1].strip()
    return text.lower() or "no connection"


def aws_error(exc: BaseException, action: str, resource: str) -> AwsError:
    """A permanent or persistent failure as one line: code, what failed, why, what to do."""
    if isinstance(exc, OutOfTime):
        if exc.last is None:
            return AwsError(
                f"{action} on {resource} not sent: the {exc.deadline_s:g}s deadline had run out"
            )
        inner = aws_error(exc.last, action, resource)
        if not exc.deadline_reached:
            return AwsError(f"{inner} ({exc.attempts} attempts)", inner.code)
        if exc.attempts >= 2:
            retried = f"retried until the deadline, {exc.attempts} attempts"
            return AwsError(f"{inner} ({retried})", inner.code)
        if isinstance(exc.last, AttemptTimedOut) and exc.last.by_deadline:
            return inner
        return AwsError(f"{inner} (no time left to try again before the deadline)", inner.code)
    if isinstance(exc, NoCredentialsError):
        return AwsError(f"{action} on {resource}: no AWS credentials found; {NO_CREDENTIALS_FIX}")
    code = error_code(exc)
    if code is None:
        return AwsError(f"{action} on {resource}: {describe(exc)}")
    if code in REFUSED:
        text = f"{code}: not allowed to {action} on {resource}"
    elif is_transient(exc):
        text = f"{code}: {action} on {resource}: {error_message(exc)}"
    else:
        text = f"{code}: {action} on {resource} refused: {error_message(exc)}"
    fix = FIXES.get(code)
    grantee = _grantee(exc) if code in REFUSED else None
    if grantee:
        fix = f"grant it to {grantee}"
    return AwsError(f"{text}; {fix}" if fix else text, code)


def _grantee(exc: BaseException) -> Optional[str]:
    if not isinstance(exc, ClientError):
        return None
    grantee = exc.response.get("Error", {}).get(GRANTEE)
    return str(grantee) if grantee else None
