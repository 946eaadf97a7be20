"""This instance's identity from the EC2 instance metadata service, IMDSv2 only.

We build on botocore's IMDSFetcher, as botocore's own region fetcher does: it already resolves
AWS_EC2_METADATA_SERVICE_ENDPOINT (and the endpoint mode) from the session's config, checks it,
honours AWS_EC2_METADATA_DISABLED, and holds the HTTP session (given one without proxies:
unproxied.py).
The requests are our own: botocore's helpers (`_fetch_metadata_token`, `_get_request`) retry
within themselves, turn a read timeout on the token into "no token" and a refused connection
into the same silence, and know no deadline. Here each request goes through the product's one
retry loop (aws.retrying): at most ATTEMPTS tries, each bounded by TIMEOUT_S and the deadline
(watchdog.bounded: against a dribbling answer too), and a failure says what happened. What IMDS
answers is checked before anything is sent to EC2: a proxy answering for 169.254.169.254 serves
an HTML page as readily as an ENI id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.exceptions import (
    BotoCoreError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.utils import IMDSFetcher

from . import unproxied, watchdog
from .aws import Deadline, retrying
from .errors import IdentityError
from .failures import CONNECTION_ERRORS, AttemptTimedOut, OutOfTime, describe, reason

TIMEOUT_S = 1  # per try, as botocore's own default for IMDS (metadata_service_timeout)
ATTEMPTS = 2
DEFAULT_DEADLINE_S = 30.0
TOKEN_TTL_S = "21600"  # noqa: S105 - seconds, as botocore asks (not a secret)
TOKEN_PATH = "latest/api/token"  # noqa: S105 - a path
TOKEN = re.compile(r"[A-Za-z0-9+/=_.-]{1,1024}")
# What IMDS serves at each path we read, and how we say it when it serves something else.
VALUES = {
    "instance-id": (re.compile(r"i-[0-9a-f]{8,17}"), "an instance id (i-...)"),
    "region": (re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}"), "a region (eu-west-1)"),
    "interface-id": (re.compile(r"eni-[0-9a-f]{8,17}"), "a network interface id (eni-...)"),
    "vpc-id": (re.compile(r"vpc-[0-9a-f]{8,17}"), "a VPC id (vpc-...)"),
}


@dataclass(frozen=True)
class Identity:
    instance_id: str
    region: str
    eni: str
    vpc_id: str
    mac: str


class _Imds(IMDSFetcher):
    """One token, reused for every GET; fetched again once if IMDS says it expired (401)."""

    def __init__(self, session: botocore.session.Session, deadline: Deadline) -> None:
        config = {
            "ec2_metadata_service_endpoint": session.get_config_variable(
                "ec2_metadata_service_endpoint"
            ),
            "ec2_metadata_service_endpoint_mode": session.get_config_variable(
                "ec2_metadata_service_endpoint_mode"
            ),
            # IMDSv1 is never used: a missing token is an error, not a fallback.
            "ec2_metadata_v1_disabled": True,
        }
        super().__init__(timeout=TIMEOUT_S, num_attempts=1, config=config)
        self._deadline = deadline
        self._token: Optional[str] = None
        unproxied.unproxy(self)  # IMDS directly, whatever HTTP_PROXY says
        watchdog.install(self._private._session)

    @property
    def _private(self) -> Any:
        """IMDSFetcher's attributes are private (untyped in the stubs): reached through here."""
        return self

    @property
    def disabled(self) -> bool:
        return bool(self._private._disabled)

    @property
    def endpoint(self) -> str:
        return str(self.get_base_url())

    def get(self, path: str) -> str:
        what = f"meta-data/{path}"
        for _ in range(2):
            if self._token is None:
                self._token = self._fetch_token()
            status, text = self._request(
                "GET", what, f"latest/{what}", {"x-aws-ec2-metadata-token": self._token}
            )
            if status == 401:  # token expired: take a new one, once
                self._token = None
                continue
            if status == 404 and "/macs/" in path:
                raise IdentityError(
                    f"IMDS knows no network interface with MAC {path.split('/')[3]}; "
                    "the VIP interface must be an ENI of this instance"
                )
            if status != 200 or not text:
                raise IdentityError(f"IMDS answered {status} for {what}")
            return _checked(what, text, *VALUES[path.rsplit("/", 1)[-1]])
        raise IdentityError(f"IMDS refused two fresh tokens for {what} (401)")

    def once(self, method: str, path: str, headers: Any) -> Tuple[Optional[int], str, str]:
        """(status, text, "") of one try, or (None, "", why) when it got no answer."""
        url = self._private._construct_url(path)

        def send() -> Tuple[int, str]:
            response = self._private._session.send(
                AWSRequest(method=method, url=url, headers=headers).prepare()
            )
            return int(response.status_code), str(response.text or "").strip()

        try:
            status, text = retrying(send, self._deadline, TIMEOUT_S, 1, _transient)
        except OutOfTime as exc:
            return None, "", _trouble(exc.last) if exc.last else "no time left to ask"
        except BotoCoreError as exc:
            return None, "", _trouble(exc)
        return status, text, ""

    def _fetch_token(self) -> str:
        status, text = self._request(
            "PUT", "IMDSv2 token", TOKEN_PATH, {"x-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL_S}
        )
        if status != 200 or not text:
            raise IdentityError(f"IMDS at {self.endpoint} gave no IMDSv2 token (HTTP {status})")
        return _checked("the IMDSv2 token", text, TOKEN, "a token")

    def _request(self, method: str, what: str, path: str, headers: Any) -> Tuple[int, str]:
        """(status, text) of one request: up to ATTEMPTS tries of at most TIMEOUT_S each while
        the deadline allows (aws.retrying); a 5xx answer is tried again. IdentityError, saying
        what happened, when no try got an answer."""
        url = self._private._construct_url(path)

        def once() -> Tuple[int, str]:
            request = AWSRequest(method=method, url=url, headers=headers)
            response = self._private._session.send(request.prepare())
            if int(response.status_code) >= 500:
                raise _ServerError(f"answered HTTP {response.status_code}")
            return int(response.status_code), str(response.text or "").strip()

        try:
            return retrying(once, self._deadline, TIMEOUT_S, ATTEMPTS, _transient)
        except OutOfTime as exc:
            raise IdentityError(self._failed(what, exc)) from None
        except BotoCoreError as exc:  # not worth a second try (e.g. a malformed request)
            raise IdentityError(f"IMDS at {self.endpoint}, {what}: {describe(exc)}") from None

    def _failed(self, what: str, exc: OutOfTime) -> str:
        where = f"IMDS at {self.endpoint}, {what}"
        deadline = f"the {exc.deadline_s:g}s deadline"
        failure, tries = exc.last, exc.attempts
        if failure is None:
            return f"{where}: not asked, {deadline} had run out"
        if isinstance(failure, AttemptTimedOut) and failure.by_deadline:
            return f"{where}: no complete answer before {deadline} ran out"
        text = f"{where}: {_trouble(failure)} ({tries} {'try' if tries == 1 else 'tries'})"
        return text + (f", then {deadline} ran out" if exc.deadline_reached else "")


class _ServerError(Exception):
    """IMDS answered 5xx: worth another try."""


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, (_ServerError, AttemptTimedOut, *CONNECTION_ERRORS))


def _trouble(failure: BaseException) -> str:
    if isinstance(failure, ReadTimeoutError):
        return f"no answer within {TIMEOUT_S:g}s"
    if isinstance(failure, ConnectTimeoutError):
        return f"no connection within {TIMEOUT_S:g}s"
    if isinstance(failure, EndpointConnectionError):
        return reason(failure.kwargs.get("error"))
    return describe(failure)


def _checked(what: str, value: str, pattern: Any, expected: str) -> str:
    """VALUE, if it is what IMDS serves at WHAT; else one line naming it."""
    if pattern.fullmatch(value):
        return value
    shown = repr(value[:60]) + ("..." if len(value) > 60 else "")
    raise IdentityError(
        f"IMDS answered unexpectedly for {what}: {shown}, not {expected}; is something else "
        "answering for it? (check AWS_EC2_METADATA_SERVICE_ENDPOINT)"
    )


@dataclass(frozen=True)
class TokenProbe:
    """One IMDSv2 token PUT and, when it got no answer, one GET without a token: what tells a
    hop limit too low for this network path (the PUT's answer never arrives, a GET's does)."""

    endpoint: str
    put: Optional[int]  # the PUT's HTTP status; None: no answer
    put_failure: str  # why the PUT got no answer, in words ("" when it got one)
    get: Optional[int] = None  # the tokenless GET's status (401 with IMDSv1 off); None: none
    instance_id: Optional[str] = None  # what that GET answered, when IMDSv1 is on


def probe_token(session: botocore.session.Session, deadline: Deadline) -> Optional[TokenProbe]:
    """One try of each (TIMEOUT_S, watchdog-bounded), never raising; None when IMDS is
    disabled (AWS_EC2_METADATA_DISABLED)."""
    imds = _Imds(session, deadline)
    if imds.disabled:
        return None
    put, _, why = imds.once("PUT", TOKEN_PATH, {"x-aws-ec2-metadata-token-ttl-seconds": "60"})
    if put is not None:
        return TokenProbe(imds.endpoint, put, "")
    get, text, _ = imds.once("GET", "latest/meta-data/instance-id", {})
    found = text if get == 200 and VALUES["instance-id"][0].fullmatch(text) else None
    return TokenProbe(imds.endpoint, None, why, get, found)


def fetch_identity(
    session: botocore.session.Session, mac: str, deadline: Optional[Deadline] = None
) -> Identity:
    """Instance id, region, and the ENI and VPC behind the interface with this MAC.

    The ENI is the one whose MAC is the VIP interface's, not the instance's first ENI:
    multi-ENI instances are common (ClusterLabs' aws-vpc-move-ip learned this the hard way).
    """
    imds = _Imds(session, deadline or Deadline(DEFAULT_DEADLINE_S))
    if imds.disabled:
        raise IdentityError("IMDS is disabled (AWS_EC2_METADATA_DISABLED=true)")
    instance_id = imds.get("instance-id")
    region = imds.get("placement/region")
    eni = imds.get(f"network/interfaces/macs/{mac}/interface-id")
    vpc_id = imds.get(f"network/interfaces/macs/{mac}/vpc-id")
    return Identity(instance_id=instance_id, region=region, eni=eni, vpc_id=vpc_id, mac=mac)
