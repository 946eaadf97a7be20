"""Two accounts in the simulated VPC: the fake AWS answers as a shared VPC does (issue 12).

In a shared VPC the route tables belong to the VPC's owner account; the members run in a
workload (participant) account. AWS documents (VPC User Guide): "VPC owners are responsible
for creating, managing, and deleting the resources associated with a shared VPC. These include
subnets, route tables, ..." ("Responsibilities and permissions for owners and participants"),
and "Participants cannot view, modify, or delete resources that belong to other participants
or the VPC owner" ("Share your VPC with other accounts"). So a member's own role is refused
every route write on the owner's tables (EC2's UnauthorizedOperation, HTTP 403, its DryRun
probes included), whatever its own policy says; reads are left alone (the product reads the
tables as the role anyway when role_arn is set). The writes go through as a role of the owner
account assumed from the member's (sts:AssumeRole: the SAP on AWS guide's "Overlay IP with
shared Amazon VPC", the product's role_arn).

moto keeps one EC2 per account and knows nothing of sharing, so the whole VPC, the members'
network interfaces included, lives in moto's default account, which plays the owner here.
This layer sits at the proxy's HTTP front (FakeAws.intercept), never in moto's state:

- who signed a request is its SigV4 access key id (the proxy's record, `Call.caller`); which
  principal a key is, moto's own STS says through its public API (GetCallerIdentity signed
  with that key: moto's AssumeRole registers the ASIA... key it hands out under the role's
  account, and answers `arn:aws:sts::<account>:assumed-role/<role>/<session>` for it). The
  instance's own keys (the IMDS emulator's, also ASIA..., or a test's "testing") are no role
  of moto's: they are the workload account's;
- which tables are the owner's: every table of a VPC passed to `share` (a DescribeRouteTables
  asked of moto, once per table);
- route writes (CreateRoute, ReplaceRoute, DeleteRoute, dry run or not) on the owner's tables
  signed by anyone but a role of the owner account are refused as AWS does; the rest is
  forwarded unchanged.

Each ask is one request to moto on loopback, made once per key and once per table (cached).
"""

from __future__ import annotations

import http.client
import re
import threading
from typing import Dict, List, Optional, Set
from urllib.parse import urlencode

from .answering import ACCOUNT_ID
from .fakeaws import FakeAws
from .faults import Refusal, unauthorized
from .fidelity import ASK_TIMEOUT_S, MotoApi
from .record import ROUTE_WRITES, Call

OWNER_ACCOUNT = ACCOUNT_ID  # moto's default account: where the VPC lives
WORKLOAD_ACCOUNT = "111111111111"  # the members' account, as the fake tells it
OWNER_ROLE = f"arn:aws:iam::{OWNER_ACCOUNT}:role/mirror-vip-routes"
WORKLOAD_ROLE = "mirror-vip-member"  # the members' instance role's name, for the refusal text
STS_API_VERSION = "2011-06-15"
SETUP_KEY = "AKIDSIMSETUP00000000"  # asks about tables as the owner (moto's default account)

_ASSUMED = re.compile(r"^arn:[a-z-]+:sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/")
_ARN = re.compile(rb"<Arn>([^<]+)</Arn>")
_VPC = re.compile(rb"<vpcId>([^<]+)</vpcId>")


def authorization(key: str, region: str, service: str) -> str:
    """A SigV4 Authorization header naming KEY (moto reads the key, region and service from
    it and checks no signature)."""
    scope = f"{key}/20260101/{region}/{service}/aws4_request"
    return f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0"


class SharedVpc:
    """The owner/workload split over FAKE. `install()` starts refusing, `remove()` stops;
    `share(vpc_id)` makes that VPC's route tables the owner's."""

    def __init__(
        self,
        fake: FakeAws,
        owner: str = OWNER_ACCOUNT,
        workload: str = WORKLOAD_ACCOUNT,
    ) -> None:
        self.fake = fake
        self.owner = owner
        self.workload = workload
        self._vpcs: Set[str] = set()
        self._table_vpc: Dict[str, Optional[str]] = {}
        self._principals: Dict[str, str] = {}
        self._lock = threading.Lock()
        self.refused: List[Call] = []  # the writes this layer answered UnauthorizedOperation

    # --- life cycle ------------------------------------------------------------------------

    def install(self) -> SharedVpc:
        self.fake.intercept(self.refuse)
        return self

    def remove(self) -> None:
        self.fake.remove_hook(self.refuse)

    def __enter__(self) -> SharedVpc:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def share(self, vpc_id: str) -> None:
        with self._lock:
            self._vpcs.add(vpc_id)

    # --- who is who ----------------------------------------------------------------------------

    def principal(self, key: Optional[str], region: Optional[str] = None) -> str:
        """The ARN moto's STS gives for access key KEY: an assumed role's session ARN for a key
        its AssumeRole handed out, its default user's otherwise (the workload's own keys)."""
        if not key:
            return ""
        with self._lock:
            known = self._principals.get(key)
        if known is not None:
            return known
        found = self._caller_identity(key, region or self.fake.region)
        if found:  # an answer we could not read is asked again next time
            with self._lock:
                self._principals[key] = found
        return found

    def is_owner_role(self, key: Optional[str], region: Optional[str] = None) -> bool:
        """KEY is the credentials of a role of the owner account (an AssumeRole's answer)."""
        found = _ASSUMED.match(self.principal(key, region))
        return found is not None and found.group("account") == self.owner

    def role_of(self, key: Optional[str]) -> Optional[str]:
        """The role name behind KEY when it is an assumed role's, else None."""
        found = _ASSUMED.match(self.principal(key))
        return found.group("role") if found else None

    def is_owners(self, table: Optional[str]) -> bool:
        """TABLE belongs to a shared VPC (so to the owner account)."""
        if not table:
            return False
        with self._lock:
            if not self._vpcs:
                return False
            if table in self._table_vpc:
                return self._table_vpc[table] in self._vpcs
        vpc = self._vpc_of(table)
        with self._lock:
            if vpc is not None:
                self._table_vpc[table] = vpc
            return vpc in self._vpcs

    # --- the proxy's first look at each call ----------------------------------------------------

    def refuse(self, call: Call) -> Optional[Refusal]:
        """UnauthorizedOperation for a route write on the owner's table not signed by the
        owner's role (FakeAws.intercept); None lets the call go on."""
        if call.action not in ROUTE_WRITES or not self.is_owners(call.table):
            return None
        if self.is_owner_role(call.caller, call.region):
            return None
        with self._lock:
            self.refused.append(call)
        return unauthorized(self._denied(call))

    def _denied(self, call: Call) -> str:
        """In the words of EC2's refusals (the caller, the action, the table's ARN in its
        owner's account); AWS adds an encoded authorization message we leave out."""
        region = call.region or self.fake.region
        resource = f"arn:aws:ec2:{region}:{self.owner}:route-table/{call.table}"
        who = f"arn:aws:sts::{self.workload}:assumed-role/{WORKLOAD_ROLE}/{call.caller or '?'}"
        role = self.role_of(call.caller)
        if role is not None:  # a role, but of another account than the owner's
            who = self.principal(call.caller)
        return (
            f"You are not authorized to perform this operation. User: {who} is not authorized "
            f"to perform: ec2:{call.action} on resource: {resource}"
        )

    # --- asking moto ------------------------------------------------------------------------------

    def _caller_identity(self, key: str, region: str) -> str:
        host, port = self.fake.moto_endpoint.rsplit("/", 1)[-1].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=ASK_TIMEOUT_S)
        try:
            conn.request(
                "POST",
                "/",
                body=urlencode({"Action": "GetCallerIdentity", "Version": STS_API_VERSION}),
                headers={
                    "Authorization": authorization(key, region, "sts"),
                    "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                },
            )
            answer = conn.getresponse()
            payload = answer.read()
        finally:
            conn.close()
        found = _ARN.search(payload) if answer.status == 200 else None
        return found.group(1).decode() if found else ""

    def _vpc_of(self, table: str) -> Optional[str]:
        host, port = self.fake.moto_endpoint.rsplit("/", 1)[-1].rsplit(":", 1)
        status, payload = MotoApi(host, int(port)).ask(
            "DescribeRouteTables",
            [("RouteTableId.1", table)],
            authorization(SETUP_KEY, self.fake.region, "ec2"),
        )
        found = _VPC.search(payload) if status == 200 else None
        return found.group(1).decode() if found else None
