"""docs/aws/iam-policy.json grants exactly what python/mirror_vip calls, and no more.

The needed actions are derived from the code, not listed here: every attribute of an object
named like an EC2 client method (`ec2.replace_route`, called or passed to a retry helper),
every `get_paginator("...")` / `get_waiter("...")` name and every `getattr(x, "...")` string
that names an EC2 operation in botocore's service model. Each maps to `ec2:<OperationName>`.
The shape of the policy (reads on "*", writes on route tables under a VPC or tag condition)
is checked against the IAM action table that cfn-lint ships (from AWS's service
authorization reference).
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set

import botocore.session
import cfnlint.data.AdditionalSpecs
import pytest
from botocore import xform_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "mirror_vip"
POLICY = ROOT / "docs" / "aws" / "iam-policy.json"
SERVICE_REFERENCE = Path(cfnlint.data.AdditionalSpecs.__file__).parent / "Policies.json"

PLACEHOLDERS = ("REGION", "ACCOUNT_ID", "VPC_ID")
READ_PREFIXES = ("Describe", "Get", "List")
SCOPING_KEYS = ("ec2:Vpc", "aws:ResourceTag/", "ec2:ResourceTag/")
ROUTE_TABLE_ARN = re.compile(r"^arn:aws:ec2:REGION:ACCOUNT_ID:route-table/(\*|rtb-[0-9a-f]+)$")


# --- what the code needs --------------------------------------------------------------------


@cache
def ec2_operations() -> Dict[str, str]:
    """snake_case client method -> EC2 operation name, from botocore's service model."""
    model = botocore.session.get_session().get_service_model("ec2")
    return {xform_name(name): name for name in model.operation_names}


@cache
def ec2_waiters() -> Dict[str, str]:
    """snake_case waiter name -> the EC2 operation it polls."""
    waiters = botocore.session.get_session().get_waiter_model("ec2")
    return {xform_name(name): waiters.get_waiter(name).operation for name in waiters.waiter_names}


def package_sources() -> List[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _constant_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _operations_in(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(EC2 operation, line) for each use of an EC2 operation in one module."""
    methods = ec2_operations()
    operations = set(methods.values())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            if node.attr in methods:
                yield methods[node.attr], node.lineno
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) > 1:
                second = node.args[1]
                if isinstance(second, ast.Constant) and second.value in methods:
                    yield methods[str(second.value)], node.lineno
                continue
            name = _constant_arg(node)
            if name is None or not isinstance(func, ast.Attribute):
                continue
            if func.attr in ("get_paginator", "can_paginate") and name in methods:
                yield methods[name], node.lineno
            elif func.attr == "get_waiter" and name in ec2_waiters():
                yield ec2_waiters()[name], node.lineno
            elif func.attr == "_make_api_call" and name in operations:
                yield name, node.lineno


@cache
def needed_actions() -> Dict[str, List[str]]:
    """ec2:Action -> where the code uses it (file:line)."""
    found: Dict[str, List[str]] = defaultdict(list)
    for path in package_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for operation, line in _operations_in(tree):
            found[f"ec2:{operation}"].append(f"{path.relative_to(ROOT)}:{line}")
    return dict(found)


def client_services() -> Dict[str, List[str]]:
    """Service names passed to `.client("...")` or `.create_client("...")` in the package."""
    found: Dict[str, List[str]] = defaultdict(list)
    for path in package_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("client", "create_client")
            ):
                name = _constant_arg(node)
                if name is not None:
                    found[name].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return dict(found)


# --- what the policy grants -----------------------------------------------------------------


def load_policy() -> Dict[str, Any]:
    return json.loads(POLICY.read_text(encoding="utf-8"))


def _as_list(value: Any) -> List[Any]:
    return value if isinstance(value, list) else [value]


def statements() -> List[Dict[str, Any]]:
    return list(_as_list(load_policy()["Statement"]))


def granted_actions() -> Set[str]:
    return {
        action
        for statement in statements()
        if statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"])
    }


@cache
def service_reference() -> Dict[str, Any]:
    """cfn-lint's copy of the IAM service authorization reference, EC2 part."""
    return dict(json.loads(SERVICE_REFERENCE.read_text(encoding="utf-8"))["ec2"])


def render(policy_text: str, region: str, account: str, vpc: str) -> Dict[str, Any]:
    """The policy as an operator deploys it, placeholders filled in."""
    text = policy_text.replace("ACCOUNT_ID", account).replace("VPC_ID", vpc)
    return dict(json.loads(text.replace("REGION", region)))


# --- tests ----------------------------------------------------------------------------------


def test_the_code_makes_ec2_calls() -> None:
    assert needed_actions(), (
        "found no EC2 operation used in python/mirror_vip: either the core is not written "
        "yet, or it calls EC2 in a way this test cannot see (e.g. getattr with a variable); "
        "make the calls visible so the IAM policy can be checked against them"
    )


def test_the_code_talks_to_ec2_only() -> None:
    """And to STS, for a shared VPC's AssumeRole only: tests/test_iam_policy_shared_vpc.py checks
    that the STS calls are AssumeRole and that the workload account's policy grants it."""
    found = client_services()
    assert set(found) >= {"ec2"}, found
    others = {name: where for name, where in found.items() if name not in ("ec2", "sts")}
    assert not others, (
        f"the package creates clients for {sorted(others)} at {others}: their actions are "
        "not derived here; extend this test and docs/aws/iam-policy.json for them"
    )


def test_policy_grants_every_action_the_code_calls() -> None:
    missing = {a: w for a, w in needed_actions().items() if a not in granted_actions()}
    assert not missing, (
        "docs/aws/iam-policy.json lacks actions the code uses (add them, read actions to the "
        f"'*' statement, route writes to the route-table statement): {missing}"
    )


def test_policy_grants_nothing_the_code_does_not_call() -> None:
    extra = granted_actions() - set(needed_actions())
    assert not extra, (
        f"docs/aws/iam-policy.json grants actions nothing in python/mirror_vip uses: "
        f"{sorted(extra)}; remove them (least privilege)"
    )


def test_policy_document_shape() -> None:
    policy = load_policy()
    assert policy["Version"] == "2012-10-17"
    sids = [s.get("Sid") for s in statements()]
    assert len(set(sids)) == len(sids), f"duplicate Sid in {sids}"
    for statement in statements():
        assert statement["Effect"] == "Allow", "the policy only allows; no Deny, no NotAction"
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        for action in _as_list(statement["Action"]):
            assert action.startswith("ec2:") and "*" not in action and "?" not in action, (
                f"{action}: name each action; no wildcards, other services have no place here"
            )


def test_reads_are_on_star_and_writes_on_route_tables_of_one_vpc() -> None:
    for statement in statements():
        actions = [a.split(":", 1)[1] for a in _as_list(statement["Action"])]
        reads = [a for a in actions if a.startswith(READ_PREFIXES)]
        writes = [a for a in actions if not a.startswith(READ_PREFIXES)]
        assert not (reads and writes), f"{statement.get('Sid')}: keep reads and writes apart"
        resources = _as_list(statement["Resource"])
        if reads:
            assert resources == ["*"], f"{statement.get('Sid')}: Describe* cannot be scoped"
            assert "Condition" not in statement
            continue
        assert resources and all(ROUTE_TABLE_ARN.match(r) for r in resources), (
            f"{statement.get('Sid')}: route writes go on route-table ARNs only, got {resources}"
        )
        keys = [k for test in statement.get("Condition", {}).values() for k in test]
        assert keys and all(k.startswith(SCOPING_KEYS) for k in keys), (
            f"{statement.get('Sid')}: scope the writes with ec2:Vpc or a resource tag, got {keys}"
        )


def test_actions_resources_and_condition_keys_exist_in_the_service_reference() -> None:
    reference = service_reference()
    route_table = reference["Resources"]["route-table"]
    for statement in statements():
        for action in _as_list(statement["Action"]):
            name = action.split(":", 1)[1]
            entry = reference["Actions"].get(name.lower())
            assert entry is not None, f"{action} is not an EC2 IAM action"
            types = entry.get("Resources", [])
            if statement["Resource"] == "*":
                assert not types, f"{action} supports resource-level permissions: scope it"
            else:
                assert types == ["route-table"], f"{action}: resource types {types}"
        for test in statement.get("Condition", {}).values():
            for key in test:
                generic = re.sub(r"/.+$", "/${TagKey}", key) if "Tag/" in key else key
                assert generic in route_table["ConditionKeys"], (
                    f"{key} is not a condition key of route-table: {route_table['ConditionKeys']}"
                )


def test_placeholders_render_to_valid_arns() -> None:
    text = POLICY.read_text(encoding="utf-8")
    for placeholder in PLACEHOLDERS:
        assert placeholder in text, f"{placeholder} missing: docs/operations.md tells to fill it"
    rendered = render(text, "eu-west-1", "123456789012", "vpc-0123456789abcdef0")
    writes = [s for s in rendered["Statement"] if s["Resource"] != "*"]
    assert writes
    for statement in writes:
        assert statement["Resource"] == "arn:aws:ec2:eu-west-1:123456789012:route-table/*"
        assert statement["Condition"] == {
            "ArnEquals": {"ec2:Vpc": "arn:aws:ec2:eu-west-1:123456789012:vpc/vpc-0123456789abcdef0"}
        }
    assert not any(p in json.dumps(rendered) for p in PLACEHOLDERS)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("ec2.replace_route(RouteTableId='rtb-1')", {"ec2:ReplaceRoute"}),
        ("call(ec2.create_route, deadline, **params)", {"ec2:CreateRoute"}),
        ("ec2.get_paginator('describe_route_tables')", {"ec2:DescribeRouteTables"}),
        ("getattr(ec2, 'delete_route')", {"ec2:DeleteRoute"}),
        ("ec2.get_waiter('instance_running')", {"ec2:DescribeInstances"}),
        ("client._make_api_call('DescribeVpcs', {})", {"ec2:DescribeVpcs"}),
        ("report.route_tables = []; x.my_helper()", set()),
    ],
)
def test_the_scanner_sees_each_way_of_calling(source: str, expected: Set[str]) -> None:
    found = {f"ec2:{op}" for op, _ in _operations_in(ast.parse(source))}
    assert found == expected
