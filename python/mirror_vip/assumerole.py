"""A shared VPC: the route tables belong to the VPC's owner account, so their reads and writes
are made as a role of that account (setting role_arn), assumed from this instance's own role.

botocore's own machinery assumes it: AssumeRoleCredentialFetcher (the AssumeRole call, its
answer kept in a dict in memory, never in a file) behind DeferredRefreshableCredentials (fetched
on first use, fetched again before they expire), as botocore's AssumeRoleProvider builds them
for a profile's role_arn (botocore/credentials.py). They sign the route calls through a
botocore session of their own, whose credential chain is only them. What is ours:

- the STS client (aws.sts_client): the regional endpoint, one attempt per call, timeouts from
  the deadline, its connections watched;
- the first AssumeRole starts as soon as the identity is known, in the background, bounded by
  the deadline through the product's one retry loop (aws.retrying); `ready` waits for it while
  it opens the EC2 connections the writes will use, so the role costs a claim the AssumeRole's
  own round trip and no handshake more;
- RoleSessionName mirror-vip-<instance id>: CloudTrail in the owner account names the member;
- a refusal said as one line naming the role, the accounts and what to fix in each.
"""

from __future__ import annotations

import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Optional

import botocore.session
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import ClientError

from .aws import (
    MAX_PARALLEL_WRITES,
    PARALLEL_READS,
    Deadline,
    attempt_limit_s,
    aws_error,
    botocore_session,
    ec2_client,
    error_code,
    error_message,
    open_connections,
    retrying,
    sts_client,
)
from .errors import AwsError, ConfigError
from .failures import NO_CREDENTIALS_FIX, OutOfTime, name_grantee

SESSION_PREFIX = "mirror-vip-"
SESSION_NAME_MAX = 64  # AssumeRole's RoleSessionName: 2-64 of [\w+=,.@-]
OWNER_POLICY = "docs/aws/shared-vpc-owner-role-policy.json"
WORKLOAD_POLICY = "docs/aws/shared-vpc-workload-policy.json"
TRUST_POLICY = "docs/aws/shared-vpc-owner-trust-policy.json"
OWN_CREDENTIALS_REFUSED = (
    "InvalidClientTokenId",
    "ExpiredToken",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
)
_ARN = re.compile(r"arn:(?P<partition>[a-z-]+):(?:iam|sts)::(?P<account>\d{12}):")
_CALLER = re.compile(
    r"User: (?P<arn>arn:(?P<partition>[a-z-]+):sts::\d{12}:assumed-role/(?P<role>[^/\s]+)/\S+)"
)


def session_name(instance_id: str, eni: str) -> str:
    """mirror-vip-<instance id> (the ENI's id when no instance is known: --eni off EC2)."""
    who = re.sub(r"[^\w+=,.@-]", "-", instance_id or eni or "unknown", flags=re.ASCII)
    return (SESSION_PREFIX + who)[:SESSION_NAME_MAX]


def account_of(arn: str) -> str:
    found = _ARN.match(arn)
    return found.group("account") if found else "?"


class _Only(CredentialProvider):
    """A credential chain of one link: the assumed role's credentials."""

    METHOD = "assume-role"
    CANONICAL_NAME = "mirror-vip-role"

    def __init__(self, credentials: Any) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> Any:
        return self._credentials


@dataclass(frozen=True)
class Network:
    """The settings ec2_endpoint, sts_endpoint and proxy (urls.py): the role's clients take
    the same network path as the instance's own."""

    ec2_endpoint: Optional[str] = None
    sts_endpoint: Optional[str] = None
    proxy: Optional[str] = None


class AssumedRole:
    """The owner account's role: its EC2 client (`ec2`), and the AssumeRole behind it, started
    at once. Call `ready` before the first route call."""

    def __init__(
        self,
        core: botocore.session.Session,
        role_arn: str,
        external_id: Optional[str],
        session: str,
        region: str,
        deadline: Deadline,
        network: Optional[Network] = None,
    ) -> None:
        _same_partition(core, role_arn, region)
        net = network or Network()
        self.role_arn = role_arn
        self.external_id = external_id
        self.session = session
        self.grantee = f"the role {role_arn} in account {account_of(role_arn)} ({OWNER_POLICY})"
        self._deadline = deadline
        extra: Dict[str, Any] = {"RoleSessionName": session}
        if external_id:
            extra["ExternalId"] = external_id

        def client_creator(service: str, **keys: Any) -> Any:
            return sts_client(core, region, deadline.seconds, net.sts_endpoint, net.proxy, **keys)

        fetcher = AssumeRoleCredentialFetcher(
            client_creator, core.get_credentials(), role_arn, extra_args=extra
        )
        self.credentials = DeferredRefreshableCredentials(
            refresh_using=fetcher.fetch_credentials, method=_Only.METHOD
        )
        own = botocore_session()
        own.register_component("credential_provider", CredentialResolver([_Only(self.credentials)]))
        self.ec2 = ec2_client(own, region, deadline, net.ec2_endpoint, net.proxy)
        name_grantee(self.ec2, self.grantee)
        self._fetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mirror-vip-sts")
        self._assumed: Future[Any] = self._fetch.submit(self._assume)
        self._fetch.shutdown(wait=False)

    def _assume(self) -> Any:
        limit = attempt_limit_s(self._deadline.seconds)
        return retrying(self.credentials.get_frozen_credentials, self._deadline, limit)

    def ready(self, preopen: int = PARALLEL_READS) -> None:
        """Wait for the role's credentials, opening up to PREOPEN connections to EC2 meanwhile;
        AwsError (one line: the role, the accounts, the fix) when AssumeRole failed."""
        if preopen > 0 and not self._assumed.done():
            open_connections(self.ec2, min(preopen, MAX_PARALLEL_WRITES + PARALLEL_READS))
        try:
            self._assumed.result()
        except Exception as exc:
            raise self.refused(exc) from None

    def refused(self, exc: BaseException) -> AwsError:
        """AssumeRole's failure as one line. AWS answers AccessDenied alike whether the trust
        policy does not name the caller, the external id does not match, or the caller's own
        policy does not allow sts:AssumeRole: the line names each fix and where it is made."""
        last = exc.last if isinstance(exc, OutOfTime) and exc.last is not None else exc
        code = error_code(exc)
        role, owner = self.role_arn, account_of(self.role_arn)
        if code == "AccessDenied" and isinstance(last, ClientError):
            caller = _CALLER.search(error_message(last))
            if caller:
                who, workload = caller.group("arn"), account_of(caller.group("arn"))
                principal = f"arn:{caller.group('partition')}:iam::{workload}:role/"
                principal += f"{caller.group('role')} (its path included, if any)"
            else:
                who, workload, principal = "this instance", "this instance's", "its instance role"
            if self.external_id:
                external = " and require sts:ExternalId equal to the external_id setting"
            else:
                external = " (if it requires an sts:ExternalId, set external_id to it)"
            return AwsError(
                f"AccessDenied: {who} may not assume {role}: in account {owner}, that role's "
                f"trust policy must allow sts:AssumeRole to {principal}{external} "
                f"({TRUST_POLICY}); in account {workload}, the instance role's policy must "
                f"allow sts:AssumeRole on {role} ({WORKLOAD_POLICY})",
                code,
            )
        if code == "RegionDisabledException":
            return AwsError(
                f"RegionDisabledException: AssumeRole of {role}: STS is deactivated in this "
                "region for this instance's account: activate it (IAM console, Account "
                "settings, Security Token Service (STS), Endpoints)",
                code,
            )
        inner = aws_error(exc, "AssumeRole", role)
        if code in OWN_CREDENTIALS_REFUSED:
            own = "STS refused this instance's own credentials"
            return AwsError(f"{inner}: {own}; {NO_CREDENTIALS_FIX}", code)
        return AwsError(f"{inner} (the role the route tables are read and written as)", code)


def _same_partition(core: botocore.session.Session, role_arn: str, region: str) -> None:
    """A role of one partition (aws, aws-cn, aws-us-gov...) cannot be assumed from another."""
    try:
        partition = core.get_partition_for_region(region)
    except Exception:  # a region this botocore does not know yet: AWS will say
        return
    found = _ARN.match(role_arn)
    if found and found.group("partition") != partition:
        raise ConfigError(
            f"invalid role_arn {role_arn!r}: it is in partition {found.group('partition')}, "
            f"this instance's region {region} in {partition}; pass a role ARN of {partition}"
        )
