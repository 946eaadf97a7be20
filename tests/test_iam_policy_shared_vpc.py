"""A shared VPC's two accounts' policies grant exactly what python/mirror_vip does as whom.

docs/aws/shared-vpc-workload-policy.json is the members' instance role (workload account);
docs/aws/shared-vpc-owner-role-policy.json and shared-vpc-owner-trust-policy.json are the role
of the VPC's owner account that the members assume. Which call is made as which principal is
not visible in the source (routes.py takes whichever client it is given), so it is recorded:
every command runs against moto with role_arn set, and each request's signing key says whose
it was (tests/test_shared_vpc_role.py's `signed`). Then:

- the commands made every EC2 call the code contains (test_iam_policy.needed_actions), so the
  record covers the code;
- the actions made as the instance are exactly the workload policy's EC2 actions, those made as
  the role exactly the owner policy's, and the only STS call is AssumeRole, as the instance;
- each recorded call is allowed by its policy as an operator renders it (a small evaluator of
  Allow statements: actions, resource ARNs with wildcards, ArnEquals/StringEquals/StringLike),
  and the trust policy admits the AssumeRole the code sent, and refuses another external id
  or a session not named mirror-vip-*.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

import pytest

from mirror_vip import api, settings
from tests.conftest import REGION, FakeHost, Imds, World
from tests.test_iam_policy import READ_PREFIXES, needed_actions, service_reference
from tests.test_shared_vpc_role import INSTANCE_KEY, OWNER, Signed, signed

__all__ = ["signed"]  # the fixture

DOCS = Path(__file__).resolve().parent.parent / "docs" / "aws"
WORKLOAD = DOCS / "shared-vpc-workload-policy.json"
OWNER_POLICY = DOCS / "shared-vpc-owner-role-policy.json"
TRUST = DOCS / "shared-vpc-owner-trust-policy.json"
WORKLOAD_ACCOUNT = "111111111111"
WORKLOAD_ROLE = f"arn:aws:iam::{WORKLOAD_ACCOUNT}:role/mirror-vip-member"
ROLE_NAME = "mirror-vip-routes"
ROLE = f"arn:aws:iam::{OWNER}:role/{ROLE_NAME}"
EXTERNAL_ID = "tenant-7.prod"


def _list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else [value]


def rendered(path: Path, **values: str) -> Dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    for placeholder, value in values.items():
        assert placeholder in text, f"{path.name}: {placeholder} is documented as a placeholder"
        text = text.replace(placeholder, value)
    return dict(json.loads(text))


def granted(path: Path, service: str) -> Set[str]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return {
        action.split(":", 1)[1]
        for statement in _list(document["Statement"])
        for action in _list(statement["Action"])
        if action.startswith(f"{service}:")
    }


def allows(
    policy: Dict[str, Any],
    action: str,
    resource: str = "*",
    context: Optional[Dict[str, Optional[str]]] = None,
    principal: Optional[str] = None,
) -> bool:
    """Whether an Allow statement of POLICY grants ACTION on RESOURCE (no Deny is used)."""
    for statement in _list(policy["Statement"]):
        assert statement["Effect"] == "Allow"
        if action not in _list(statement["Action"]):
            continue
        if principal is not None and principal not in _list(statement["Principal"]["AWS"]):
            continue
        if "Resource" in statement and not any(
            fnmatchcase(resource, pattern) for pattern in _list(statement["Resource"])
        ):
            continue
        if all(
            _holds(operator, key, want, (context or {}).get(key))
            for operator, tests in statement.get("Condition", {}).items()
            for key, want in tests.items()
        ):
            return True
    return False


def _holds(operator: str, key: str, want: Any, have: Optional[str]) -> bool:
    if have is None:  # IAM: a condition on a key the request lacks does not match
        return False
    if operator in ("ArnEquals", "StringEquals"):
        return have in _list(want)
    if operator == "StringLike":
        return any(fnmatchcase(have, pattern) for pattern in _list(want))
    raise AssertionError(f"{operator} on {key}: teach this evaluator the operator first")


# --- the record -------------------------------------------------------------------------------


@pytest.fixture
def record(
    member_a: World, signed: List[Signed], imds: Imds, fake_host: FakeHost, monkeypatch: Any
) -> List[Signed]:
    """Every command, in a shared VPC set-up, as IRIS and an operator run them."""
    w = member_a
    chosen = settings.from_mapping({"role_arn": ROLE, "external_id": EXTERNAL_ID})
    w.route(w.tables[0], w.b.eni)  # one ReplaceRoute, the rest CreateRoute
    assert api.claim(chosen).ok
    assert api.status(chosen).ok
    assert api.doctor(chosen).ok
    assert api.release(chosen).ok
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert api.claim(
        settings.from_mapping({**chosen.to_dict(), "eni": w.a.eni, "region": REGION})
    ).ok
    return signed


def test_the_record_covers_every_ec2_call_in_the_code(record: List[Signed]) -> None:
    made = {f"ec2:{s.action}" for s in record if s.service == "ec2"}
    assert made == set(needed_actions()), (
        "the commands above no longer make every EC2 call the code contains (or make one the "
        f"scan does not see): made {sorted(made)}, in the code {sorted(needed_actions())}"
    )
    assert {(s.service, s.action) for s in record if s.service != "ec2"} == {("sts", "AssumeRole")}


def test_each_account_grants_exactly_what_is_done_as_it(record: List[Signed]) -> None:
    as_instance = {s.action for s in record if s.service == "ec2" and s.key == INSTANCE_KEY}
    as_role = {s.action for s in record if s.service == "ec2" and s.key != INSTANCE_KEY}
    assert as_instance == granted(WORKLOAD, "ec2"), "workload policy vs calls as the instance"
    assert as_role == granted(OWNER_POLICY, "ec2"), "owner role policy vs calls as the role"
    assert not as_instance & as_role
    assert {s.key for s in record if s.service == "sts"} == {INSTANCE_KEY}
    assert granted(WORKLOAD, "sts") == {"AssumeRole"}
    assert granted(OWNER_POLICY, "sts") == set() and granted(TRUST, "sts") == {"AssumeRole"}


def test_every_recorded_call_is_allowed_as_rendered(record: List[Signed], member_a: World) -> None:
    owner = rendered(OWNER_POLICY, REGION=REGION, OWNER_ACCOUNT_ID=OWNER, VPC_ID=member_a.vpc_id)
    workload = rendered(WORKLOAD, OWNER_ACCOUNT_ID=OWNER, OWNER_ROLE_NAME=ROLE_NAME)
    vpc = f"arn:aws:ec2:{REGION}:{OWNER}:vpc/{member_a.vpc_id}"
    for call in record:
        action = f"{call.service}:{call.action}"
        if call.service == "sts":
            assert allows(workload, action, call.params["RoleArn"]), call
            assert not allows(owner, action, call.params["RoleArn"])
            continue
        policy, other = (workload, owner) if call.key == INSTANCE_KEY else (owner, workload)
        resource, context = "*", {}
        if not call.action.startswith(READ_PREFIXES):
            resource = f"arn:aws:ec2:{REGION}:{OWNER}:route-table/{call.params['RouteTableId']}"
            context = {"ec2:Vpc": vpc}
        assert allows(policy, action, resource, context), call
        assert not allows(other, action, resource, context), f"{call}: granted to both"
    elsewhere = {"ec2:Vpc": f"arn:aws:ec2:{REGION}:{OWNER}:vpc/vpc-0ther"}
    table = f"arn:aws:ec2:{REGION}:{OWNER}:route-table/rtb-0123456789abcdef0"
    assert not allows(owner, "ec2:ReplaceRoute", table, elsewhere), "writes stay in the VPC"
    assert not allows(workload, "sts:AssumeRole", f"arn:aws:iam::{OWNER}:role/other")


def test_the_trust_policy_admits_the_members_session_and_nothing_else(
    record: List[Signed],
) -> None:
    trust = rendered(
        TRUST,
        WORKLOAD_ACCOUNT_ID=WORKLOAD_ACCOUNT,
        WORKLOAD_ROLE_NAME="mirror-vip-member",
        EXTERNAL_ID=EXTERNAL_ID,
    )
    sent = [s.params for s in record if s.action == "AssumeRole"]
    assert sent
    for params in sent:
        context = {
            "sts:ExternalId": params.get("ExternalId"),
            "sts:RoleSessionName": params["RoleSessionName"],
        }
        assert allows(trust, "sts:AssumeRole", context=context, principal=WORKLOAD_ROLE), params
        wrong_id = {**context, "sts:ExternalId": "guessed"}
        assert not allows(trust, "sts:AssumeRole", context=wrong_id, principal=WORKLOAD_ROLE)
        other = "arn:aws:iam::111111111111:role/someone-else"
        assert not allows(trust, "sts:AssumeRole", context=context, principal=other)
    anonymous = {"sts:ExternalId": EXTERNAL_ID, "sts:RoleSessionName": "botocore-session-1"}
    assert not allows(trust, "sts:AssumeRole", context=anonymous, principal=WORKLOAD_ROLE), (
        "only sessions named mirror-vip-*: CloudTrail in the owner account names the member"
    )


# --- the documents themselves -------------------------------------------------------------------


@pytest.mark.parametrize("path", [WORKLOAD, OWNER_POLICY, TRUST], ids=lambda p: p.name)
def test_actions_resources_and_keys_exist_in_the_service_reference(path: Path) -> None:
    ec2 = service_reference()
    sts = _sts_reference()
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["Version"] == "2012-10-17"
    sids = [s.get("Sid") for s in _list(document["Statement"])]
    assert len(set(sids)) == len(sids)
    for statement in _list(document["Statement"]):
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        for action in _list(statement["Action"]):
            service, name = action.split(":", 1)
            assert "*" not in name, f"{action}: name each action"
            reference = {"ec2": ec2, "sts": sts}[service]
            entry = reference["Actions"].get(name.lower())
            assert entry is not None, f"{action} is not an IAM action"
            if statement.get("Resource") == "*":
                assert not entry.get("Resources"), f"{action} can be scoped: scope it"
        for test in statement.get("Condition", {}).values():
            for key in test:
                assert key in ("ec2:Vpc", "sts:ExternalId", "sts:RoleSessionName"), key


@cache
def _sts_reference() -> Dict[str, Any]:
    from tests.test_iam_policy import SERVICE_REFERENCE

    return dict(json.loads(SERVICE_REFERENCE.read_text(encoding="utf-8"))["sts"])


def test_the_workload_policy_may_assume_that_one_role_only() -> None:
    document = rendered(WORKLOAD, OWNER_ACCOUNT_ID=OWNER, OWNER_ROLE_NAME=ROLE_NAME)
    assume = [s for s in document["Statement"] if "sts:AssumeRole" in _list(s["Action"])]
    assert len(assume) == 1 and _list(assume[0]["Resource"]) == [ROLE]
    reads = [s for s in document["Statement"] if s not in assume]
    assert all(a.split(":")[1].startswith(READ_PREFIXES) for s in reads for a in s["Action"])
