"""docs/aws/shared-vpc-owner.yaml and shared-vpc-workload.yaml: lint-clean, buildable by moto,
and what they build carries the policies in docs/aws/ (the ones test_iam_policy_shared_vpc.py
checks against the code), rendered for the stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List

import boto3
import pytest
from cfnlint.api import ManualArgs, lint_file
from moto import mock_aws

from tests.test_cfn_template import LINT_REGIONS, policy_document
from tests.test_iam_policy import service_reference

DOCS = Path(__file__).resolve().parent.parent / "docs" / "aws"
OWNER_TEMPLATE = DOCS / "shared-vpc-owner.yaml"
WORKLOAD_TEMPLATE = DOCS / "shared-vpc-workload.yaml"
ACCOUNT = "123456789012"  # moto's: both stacks land in it
REGION = "eu-west-1"


def rendered(name: str, **values: str) -> Dict[str, Any]:
    text = (DOCS / name).read_text(encoding="utf-8")
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return dict(json.loads(text))


@pytest.mark.parametrize("template", [OWNER_TEMPLATE, WORKLOAD_TEMPLATE], ids=lambda p: p.name)
def test_cfn_lint_is_clean(template: Path) -> None:
    matches = lint_file(template, ManualArgs(regions=LINT_REGIONS))
    assert not matches, "\n".join(str(m) for m in matches)


@pytest.fixture
def moto_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def build(template: Path, name: str, parameters: Dict[str, str]) -> Dict[str, Any]:
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName=name,
        TemplateBody=template.read_text(encoding="utf-8"),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    listed = cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    return {
        "stack": stack,
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        "ids": {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in listed},
    }


def role_documents(role_name: str) -> Dict[str, Any]:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.get_role(RoleName=role_name)["Role"]
    inline = iam.get_role_policy(RoleName=role_name, PolicyName="mirror-vip")["PolicyDocument"]
    return {
        "arn": role["Arn"],
        "trust": policy_document(role["AssumeRolePolicyDocument"]),
        "policy": policy_document(inline),
    }


def both_stacks(external_id: str, tag: str = "") -> Dict[str, Any]:
    vpc = boto3.client("ec2", region_name=REGION).create_vpc(CidrBlock="10.30.0.0/16")
    vpc_id = vpc["Vpc"]["VpcId"]
    owner_role = f"arn:aws:iam::{ACCOUNT}:role/mirror-vip-routes"
    workload = build(WORKLOAD_TEMPLATE, "members", {"OwnerRoleArn": owner_role})
    member_role = workload["outputs"]["MemberRoleArn"]
    owner = build(
        OWNER_TEMPLATE,
        "routes",
        {
            "WorkloadRoleArn": member_role,
            "ExternalId": external_id,
            "VpcId": vpc_id,
            "RouteTableTagValue": tag,
        },
    )
    return {"vpc_id": vpc_id, "workload": workload, "owner": owner, "member_role": member_role}


def test_both_stacks_carry_the_documented_policies(moto_env: None) -> None:
    built = both_stacks("tenant-7")
    owner, workload = built["owner"], built["workload"]
    assert owner["stack"]["StackStatus"] == workload["stack"]["StackStatus"] == "CREATE_COMPLETE"
    routes = role_documents("mirror-vip-routes")
    assert owner["outputs"]["RoleArn"] == routes["arn"]
    assert json.loads(owner["outputs"]["MirrorVipSettings"]) == {
        "role_arn": routes["arn"],
        "external_id": "tenant-7",
    }
    assert routes["policy"] == rendered(
        "shared-vpc-owner-role-policy.json",
        REGION=REGION,
        OWNER_ACCOUNT_ID=ACCOUNT,
        VPC_ID=built["vpc_id"],
    )
    member_name = built["member_role"].rsplit("/", 1)[1]
    assert routes["trust"] == rendered(
        "shared-vpc-owner-trust-policy.json",
        WORKLOAD_ACCOUNT_ID=ACCOUNT,
        WORKLOAD_ROLE_NAME=member_name,
        EXTERNAL_ID="tenant-7",
    )
    members = role_documents(member_name)
    assert members["policy"] == rendered(
        "shared-vpc-workload-policy.json",
        OWNER_ACCOUNT_ID=ACCOUNT,
        OWNER_ROLE_NAME="mirror-vip-routes",
    )
    profile = boto3.client("iam", region_name=REGION).get_instance_profile(
        InstanceProfileName=workload["outputs"]["InstanceProfileName"]
    )["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [member_name]


def test_without_an_external_id_none_is_required(moto_env: None) -> None:
    built = both_stacks("")
    routes = role_documents("mirror-vip-routes")
    statements: List[Dict[str, Any]] = routes["trust"]["Statement"]
    assert statements[0]["Condition"] == {"StringLike": {"sts:RoleSessionName": "mirror-vip-*"}}
    assert statements[0]["Principal"] == {"AWS": built["member_role"]}
    assert json.loads(built["owner"]["outputs"]["MirrorVipSettings"]) == {"role_arn": routes["arn"]}


def test_a_tag_narrows_the_writes_to_the_tagged_tables_of_the_vpc(moto_env: None) -> None:
    built = both_stacks("", tag="prod")
    writes = role_documents("mirror-vip-routes")["policy"]["Statement"][1]
    assert writes["Condition"] == {
        "ArnEquals": {"ec2:Vpc": f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/{built['vpc_id']}"},
        "StringEquals": {"aws:ResourceTag/mirror-vip": "prod"},
    }
    keys = service_reference()["Resources"]["route-table"]["ConditionKeys"]
    assert {"ec2:Vpc", "aws:ResourceTag/${TagKey}"} <= set(keys)
